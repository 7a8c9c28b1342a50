// Package hookgate holds what describes the product as a whole: its
// version. The gateway itself is in the module, api, ingress and delivery
// packages; the command line in cli.
package hookgate

import (
	"runtime/debug"
	"sync"
)

// ImportPath is the Go module path of hookgate.
const ImportPath = "github.com/hookgate/hookgate"

// Version is hookgate's version. Release builds set it:
//
//	go build -ldflags '-X github.com/hookgate/hookgate.Version=v1.2.3' ./caddy
//
// When it is not set, it is the module version the Go toolchain recorded in
// the binary (a tag, or a pseudo-version of the commit when built from a
// clone), else "devel". Read it with CurrentVersion.
var Version string

var (
	versionOnce sync.Once
	version     string
)

// CurrentVersion returns Version, or the version from the build info when
// Version is not set.
func CurrentVersion() string {
	versionOnce.Do(func() {
		version = Version
		if version == "" {
			bi, _ := debug.ReadBuildInfo()
			version = versionFromBuildInfo(bi)
		}
	})
	return version
}

// versionFromBuildInfo is hookgate's module version in bi: the main
// module's when hookgate is the main module (go build ./caddy), the
// dependency's when hookgate is built into another binary (xcaddy).
func versionFromBuildInfo(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel"
	}
	mod := &bi.Main
	if mod.Path != ImportPath {
		mod = nil
		for _, dep := range bi.Deps {
			if dep.Path == ImportPath {
				mod = dep
				break
			}
		}
	}
	if mod == nil {
		return "devel"
	}
	if mod.Replace != nil && mod.Replace.Version != "" {
		return mod.Replace.Version
	}
	if mod.Version == "" || mod.Version == "(devel)" {
		return "devel"
	}
	return mod.Version
}
