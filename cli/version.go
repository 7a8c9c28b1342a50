package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/hookgate/hookgate"
)

// `caddy version` prints caddy.Version(), whose full form starts with
// caddy.CustomVersion: hookgate puts its own version there, so the binary
// reports "hookgate <version> <caddy version>". A CustomVersion set at build
// time (-ldflags -X) is kept after it.
func init() {
	v := "hookgate " + hookgate.CurrentVersion()
	if caddy.CustomVersion != "" {
		v += " " + caddy.CustomVersion
	}
	caddy.CustomVersion = v
	cobra.OnInitialize(patchListModules)
}

// hookgateCommand is the command the last build made (set by build), from
// which patchListModules finds the root.
var hookgateCommand *cobra.Command

// patchListModules makes `list-modules --versions` (and --packages, --json)
// show hookgate's modules with hookgate's version. Caddy finds a module's
// version among the binary's dependencies; when hookgate is the main module
// (go build ./caddy) it is not one, and its modules would show none. It
// runs before the command, once cobra has chosen it.
func patchListModules() {
	if hookgateCommand == nil {
		return
	}
	for _, c := range hookgateCommand.Root().Commands() {
		if c.Name() != "list-modules" || c.RunE == nil || c.Annotations["hookgate"] != "" {
			continue
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations["hookgate"] = "versions"
		orig := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return rewriteStdout(func() error { return orig(cmd, args) }, func(out []byte) []byte {
				return addModuleVersions(out, hookgateModules(), flagSet(cmd, "versions"), flagSet(cmd, "packages"), flagSet(cmd, "json"))
			})
		}
	}
}

func flagSet(cmd *cobra.Command, name string) bool {
	v, _ := cmd.Flags().GetBool(name)
	return v
}

// hookgateModules returns the IDs of the Caddy modules hookgate's packages
// define.
func hookgateModules() map[string]bool {
	out := map[string]bool{}
	for _, id := range caddy.Modules() {
		info, err := caddy.GetModule(id)
		if err != nil {
			continue
		}
		typ := reflect.TypeOf(info.New())
		for typ != nil && typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ == nil {
			continue
		}
		if p := typ.PkgPath(); p == hookgate.ImportPath || strings.HasPrefix(p, hookgate.ImportPath+"/") {
			out[id] = true
		}
	}
	return out
}

// addModuleVersions adds hookgate's version (and module path) to the lines
// of list-modules output that name a hookgate module without one.
func addModuleVersions(out []byte, mods map[string]bool, versions, packages, asJSON bool) []byte {
	if asJSON {
		var items []map[string]any
		if json.Unmarshal(out, &items) != nil {
			return out
		}
		for _, it := range items {
			name, _ := it["module_name"].(string)
			if mods[name] && it["version"] == nil {
				it["version"] = hookgate.CurrentVersion()
				it["package_url"] = hookgate.ImportPath
			}
		}
		b, err := json.MarshalIndent(items, "", "  ")
		if err != nil {
			return out
		}
		return append(b, '\n')
	}
	if !versions && !packages {
		return out
	}
	lines := strings.SplitAfter(string(out), "\n")
	for i, l := range lines {
		id := strings.TrimRight(l, "\n")
		if !mods[id] {
			continue // not a module, or already has its version
		}
		if versions {
			id += " " + hookgate.CurrentVersion()
		}
		if packages {
			id += " " + hookgate.ImportPath
		}
		lines[i] = id + l[len(strings.TrimRight(l, "\n")):]
	}
	return []byte(strings.Join(lines, ""))
}

// rewriteStdout runs fn with os.Stdout going to a pipe, then writes what
// it printed, rewritten, to the real standard output.
func rewriteStdout(fn func() error, rewrite func([]byte) []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fn()
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, r)
		done <- buf.Bytes()
	}()
	runErr := fn()
	os.Stdout = stdout
	_ = w.Close()
	out := <-done
	_ = r.Close()
	if _, err := stdout.Write(rewrite(out)); err != nil && runErr == nil {
		runErr = fmt.Errorf("writing the module list: %w", err)
	}
	return runErr
}
