package hookgate

import (
	"runtime/debug"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "devel"},
		{"main module, tagged", &debug.BuildInfo{Main: debug.Module{Path: ImportPath, Version: "v1.2.3"}}, "v1.2.3"},
		{"main module, pseudo-version", &debug.BuildInfo{Main: debug.Module{Path: ImportPath, Version: "v0.0.0-20261202080000-a489f89d2a6b+dirty"}}, "v0.0.0-20261202080000-a489f89d2a6b+dirty"},
		{"main module, no VCS", &debug.BuildInfo{Main: debug.Module{Path: ImportPath, Version: "(devel)"}}, "devel"},
		{"dependency (xcaddy)", &debug.BuildInfo{
			Main: debug.Module{Path: "caddy", Version: "(devel)"},
			Deps: []*debug.Module{{Path: "github.com/caddyserver/caddy/v2", Version: "v2.11.9"}, {Path: ImportPath, Version: "v0.4.0"}},
		}, "v0.4.0"},
		{"replaced dependency", &debug.BuildInfo{
			Main: debug.Module{Path: "caddy"},
			Deps: []*debug.Module{{Path: ImportPath, Version: "v0.4.0", Replace: &debug.Module{Path: "../hookgate", Version: "v0.4.1"}}},
		}, "v0.4.1"},
		{"not in the binary", &debug.BuildInfo{Main: debug.Module{Path: "other"}}, "devel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionFromBuildInfo(tc.bi); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCurrentVersionNeverEmpty(t *testing.T) {
	if CurrentVersion() == "" {
		t.Fatal("CurrentVersion is empty")
	}
}
