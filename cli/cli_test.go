package cli

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate"
)

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tok")
	if err := os.WriteFile(tokenFile, []byte(" file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		name      string
		s         settings
		env       map[string]string
		base      string
		token     string
		tokenPath string
		err       string
	}{
		{name: "defaults, no token file", err: "does not exist", tokenPath: filepath.Join(wd, DefaultTokenFile)},
		{name: "env", env: map[string]string{EnvAPI: "http://127.0.0.1:1/api/x/", EnvTokenFile: tokenFile}, base: "http://127.0.0.1:1/api/x", token: "file-token", tokenPath: tokenFile},
		{name: "token env wins over the file", env: map[string]string{EnvToken: "env-token", EnvTokenFile: tokenFile}, base: DefaultAPI, token: "env-token", tokenPath: tokenFile},
		{name: "flags win over env", s: settings{api: "https://gw.example/api", token: "flag-token", tokenFile: "rel/tok"}, env: map[string]string{EnvAPI: "http://x", EnvToken: "env-token"}, base: "https://gw.example/api", token: "flag-token", tokenPath: filepath.Join(wd, "rel/tok")},
		{name: "not a URL", s: settings{api: "localhost:8080", token: "t"}, err: "not an http(s) URL", tokenPath: filepath.Join(wd, DefaultTokenFile)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.getenv = func(k string) string { return tc.env[k] }
			if got := s.resolvedTokenFile(); got != tc.tokenPath {
				t.Errorf("token file %q, want %q", got, tc.tokenPath)
			}
			c, err := s.client()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.base != tc.base || c.token != tc.token {
				t.Errorf("base %q token %q, want %q %q", c.base, c.token, tc.base, tc.token)
			}
		})
	}
}

func TestAPIErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/invalid":
			w.WriteHeader(422)
			_, _ = w.Write([]byte(`{"error":"invalid workflow","field":"targets[0].url","errors":[{"path":"/a","message":"expected string"}]}`))
		case "/plain":
			w.WriteHeader(502)
			_, _ = w.Write([]byte("bad gateway from a proxy"))
		case "/redirect":
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		default:
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(401)
			}
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	c := &client{base: srv.URL, token: "tok", http: srv.Client()}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		path, want string
	}{
		{"/invalid", "invalid workflow (field targets[0].url) [HTTP 422]\n  /a: expected string"},
		{"/plain", "bad gateway from a proxy [HTTP 502]"},
		{"/ok", ""},
	} {
		_, _, err := c.do(t.Context(), http.MethodGet, tc.path, nil, nil)
		var ae *APIError
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.path, err)
			}
			continue
		}
		if !errors.As(err, &ae) || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
	if _, status, _ := c.do(t.Context(), http.MethodGet, "/redirect", nil, nil); status != http.StatusFound {
		t.Errorf("a redirect was followed (status %d): the token would go elsewhere", status)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2h", now.Add(-2 * time.Hour), false},
		{"2026-12-01T08:00:00Z", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"-1h", time.Time{}, true},
	} {
		got, err := parseWhen(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestAddModuleVersions(t *testing.T) {
	mods := map[string]bool{"hookgate": true, "http.handlers.hookgate_api": true}
	text := "admin.api.load v2.11.9\n\nhookgate\nhttp.handlers.hookgate_api\nhttp.handlers.other v1.0.0\n\n  Non-standard modules: 3\n"
	for _, tc := range []struct {
		name                     string
		in                       string
		versions, packages, json bool
		want                     string
	}{
		{"plain list unchanged", "hookgate\nx\n", false, false, false, "hookgate\nx\n"},
		{"versions", text, true, false, false, "admin.api.load v2.11.9\n\nhookgate V\nhttp.handlers.hookgate_api V\nhttp.handlers.other v1.0.0\n\n  Non-standard modules: 3\n"},
		{"versions and packages", "hookgate\n", true, true, false, "hookgate V github.com/hookgate/hookgate\n"},
		{"json", `[{"module_name":"hookgate","module_type":"non-standard"},{"module_name":"other","module_type":"non-standard","version":"v1"}]`, false, false, true,
			"[\n  {\n    \"module_name\": \"hookgate\",\n    \"module_type\": \"non-standard\",\n    \"package_url\": \"github.com/hookgate/hookgate\",\n    \"version\": \"V\"\n  },\n  {\n    \"module_name\": \"other\",\n    \"module_type\": \"non-standard\",\n    \"version\": \"v1\"\n  }\n]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(addModuleVersions([]byte(tc.in), mods, tc.versions, tc.packages, tc.json))
			want := strings.ReplaceAll(tc.want, " V", " "+hookgate.CurrentVersion())
			want = strings.ReplaceAll(want, `"V"`, `"`+hookgate.CurrentVersion()+`"`)
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestCommandTree: every subcommand the README documents exists.
func TestCommandTree(t *testing.T) {
	root := NewCommand()
	for _, path := range []string{
		"workflows list", "workflows get", "workflows create", "workflows regenerate", "workflows delete",
		"subscriptions list", "subscriptions get", "subscriptions create", "subscriptions delete",
		"subscriptions enable", "subscriptions disable", "subscriptions test", "subscriptions rotate-secret",
		"topics list", "events publish", "events get", "events tail",
		"deliveries list", "deliveries get", "deliveries retry", "token",
	} {
		c, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) != 0 || c.Name() != strings.Fields(path)[len(strings.Fields(path))-1] {
			t.Errorf("%s: not found (%v)", path, err)
		}
	}
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "subscriptions") {
		t.Errorf("help: %v\n%s", err, out.String())
	}
}
