package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

const testToken = "test-token-0123456789"

// Ports of the in-process Caddy the end-to-end tests start. They are
// 9080, 9443 and 2999 (admin), each moved by HOOKGATE_TEST_PORT_OFFSET so
// that two checkouts can run this package's tests at the same time.
var (
	testPortOffset = portOffset()
	testHTTPPort   = 9080 + testPortOffset
	testHTTPSPort  = 9443 + testPortOffset
	testAdminPort  = 2999 + testPortOffset
	testAdminAddr  = fmt.Sprintf("localhost:%d", testAdminPort)
	base           = fmt.Sprintf("http://127.0.0.1:%d", testHTTPPort)
)

func portOffset() int {
	n, err := strconv.Atoi(os.Getenv("HOOKGATE_TEST_PORT_OFFSET"))
	if err != nil || n < 0 || n > 5000 {
		return 0
	}
	return n
}

func init() { caddytest.Default.AdminPort = testAdminPort }

// newTester returns a caddytest.Tester whose configuration is unloaded when
// the test ends. caddytest leaves the last configuration running until the
// next test loads its own; its engine would still be writing to the
// storage of a test whose temporary directories are being removed. Create
// it after those directories: cleanups run in reverse order.
func newTester(t *testing.T) *caddytest.Tester {
	tc := caddytest.NewTester(t)
	t.Cleanup(func() { unloadCaddy(t) })
	return tc
}

// unloadCaddy loads a configuration with only the admin endpoint, which
// stops every app of the running one (engines closed, storage released).
func unloadCaddy(t *testing.T) {
	cfg := fmt.Sprintf(`{"admin":{"listen":%q}}`, testAdminAddr)
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post("http://"+testAdminAddr+"/load", "application/json", strings.NewReader(cfg))
	if err != nil {
		t.Errorf("unloading the test's Caddy configuration: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("unloading the test's Caddy configuration: %s %s", resp.Status, b)
	}
}

// startCaddy loads a Caddyfile into the in-process Caddy (started by
// caddytest on first use). global goes inside the hookgate option; site is
// the body of the :9080 site.
func startCaddy(t *testing.T, storage, global, site string) *caddytest.Tester {
	t.Helper()
	cfg := testCaddyfile(storage, global, site)
	tc := newTester(t)
	tc.InitServer(cfg, "caddyfile")
	// Connections kept alive from an earlier configuration would still
	// reach its (gracefully stopping) servers.
	http.DefaultClient.CloseIdleConnections()
	if t.Failed() {
		t.FailNow()
	}
	return tc
}

// recorded is one request a sink received.
type recorded struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// sink is an HTTP target on 127.0.0.1 that records what it receives and
// answers with the statuses it is told to.
type sink struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []recorded
	statuses []int // answered in turn; then 200
	headers  map[string]string
}

func newSink(t *testing.T, statuses ...int) *sink {
	s := &sink{statuses: statuses}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), b, time.Now()})
		status := 200
		if len(s.statuses) > 0 {
			status, s.statuses = s.statuses[0], s.statuses[1:]
		}
		for k, v := range s.headers {
			w.Header().Set(k, v)
		}
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) received() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call makes a request and decodes a JSON answer.
func call(t *testing.T, method, url string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	status, _, raw := rawCall(t, method, url, body, headers...)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"_raw": string(raw)}
	}
	return status, out
}

// rawCall makes a request and returns the answer's status, headers and body
// as they came. A body ([]byte, string, or a value encoded as JSON) is sent
// as application/json unless the headers say otherwise.
func rawCall(t *testing.T, method, url string, body any, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// apiCall calls the management API with the test token.
func apiCall(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return call(t, method, base+"/api/hookgate"+path, body, "Authorization", "Bearer "+testToken)
}

func easylife(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "easylife", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func decodeJSON(resp *http.Response, v any) {
	_ = json.NewDecoder(resp.Body).Decode(v)
}

// testCaddyfile builds the configuration startCaddy loads.
func testCaddyfile(storage, global, site string) string {
	return testCaddyfileWith("", storage, global, site)
}

// testCaddyfileWith is testCaddyfile with more of Caddy's global options.
func testCaddyfileWith(options, storage, global, site string) string {
	return fmt.Sprintf(`{
	admin %s
	http_port %d
	https_port %d
	skip_install_trust
	grace_period 1s
%s
	hookgate {
		storage_dir %s
		allow_targets 127.0.0.1/32
%s
	}
}

:%d {
%s
}
`, testAdminAddr, testHTTPPort, testHTTPSPort, options, storage, global, testHTTPPort, site)
}
