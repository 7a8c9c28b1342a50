package module

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

var updateGolden = flag.Bool("update", false, "rewrite the expected JSON of testdata/caddyfile_adapt/*.caddyfiletest")

// TestCaddyfileAdaptGolden adapts every testdata/caddyfile_adapt file, kept
// as Caddy keeps its own (caddytest/integration/caddyfile_adapt): a
// Caddyfile, a line of ten dashes, then the expected JSON, or, for a
// configuration that must be refused, a part of the expected error. With
// -update, the JSON parts are rewritten from the adapter's output (review
// the diff before committing).
func TestCaddyfileAdaptGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, expected, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			caddyfile = strings.TrimSpace(caddyfile) + "\n"
			expected = strings.TrimSpace(expected)

			if expected != "" && !strings.HasPrefix(expected, "{") {
				_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
				if err == nil || !strings.Contains(err.Error(), expected) {
					t.Fatalf("error %v, want it to contain:\n%s", err, expected)
				}
				return
			}
			if *updateGolden {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
				if err != nil {
					t.Fatal(err)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				doc := strings.TrimSpace(caddyfile) + "\n----------\n" + pretty.String() + "\n"
				if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, path, caddyfile, "caddyfile", expected) {
				t.Error("adapted JSON differs from the expected JSON (see the diff above; -update rewrites it)")
			}
		})
	}
}

// Issue #8, finding 11: the root Caddyfile and the README's recommended
// configuration set read, header, write and idle timeouts on every server.
func TestRecommendedConfigsSetTimeouts(t *testing.T) {
	t.Chdir("..") // their sample paths are relative to the repository
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var recommended string
	for block := range strings.SplitSeq(string(readme), "```caddyfile\n") {
		body, _, _ := strings.Cut(block, "```")
		if strings.Contains(body, "read_header") {
			recommended = body
			break
		}
	}
	if recommended == "" {
		t.Fatal("README.md has no recommended configuration with timeouts")
	}
	root, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"read_timeout": 10e9, "read_header_timeout": 5e9, "write_timeout": 30e9, "idle_timeout": 120e9,
	}
	for name, src := range map[string]string{"Caddyfile": string(root), "README.md": recommended} {
		t.Run(name, func(t *testing.T) {
			cfg, err := adapt(t, src)
			if err != nil {
				t.Fatal(err)
			}
			servers := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
			if len(servers) == 0 {
				t.Fatal("no servers")
			}
			for sn, s := range servers {
				srv := s.(map[string]any)
				for field, v := range want {
					if srv[field] != v {
						t.Errorf("server %s: %s = %v, want %v", sn, field, srv[field], v)
					}
				}
			}
		})
	}
}
