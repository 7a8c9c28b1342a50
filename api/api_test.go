package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
)

const (
	adminToken   = "admin-token-0123456789"
	publishToken = "publish-token-abcdef"
)

// Payloads from the seed systems (shared/seeds).
const (
	// Orange Logic: the Data of a document.deleted event.
	orangeLogicData = `{"RecordID": "2QDTWAW4499"}`
	orangeLogicID   = "773bdd63-29be-4e77-8f39-fb0b572a7a88"
	// ACTIVATE: the payload of a USER_CREATED webhook.
	activateData = `{"username": "demo", "email": "demo@parallelworks.com",
		"userId": "66ec445884b4103f670d0c86", "organization": "parallelworks", "remainingSeats": 5}`
	// Orchestry: a provisioning payload.
	orchestryData = `{"tenantId": "1840b34e-6fe7-4a56-9ad3-0b7b58c49dc7",
		"requestId": "5f0e3c1a-2b7d-4e4f-9a51-3a8d1c2b4e6f", "templateId": "team-template",
		"groupId": "3d7b56b2-30e8-457c-8ddb-0312f73d1362",
		"sharePointUrl": "https://nuborocks.sharepoint.com/sites/intranetsite"}`
)

// env is a real engine, registry and pipeline with the API in front.
type env struct {
	t    *testing.T
	eng  *engine.Engine
	reg  *registry.Registry
	pipe *delivery.Pipeline
	h    *Handler
	logs *observer.ObservedLogs
	// secrets are the keys and secrets the API showed; none may be logged.
	mu      sync.Mutex
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	eng, err := engine.Open(ctx, engine.Config{StorageDir: t.TempDir(), CreateTimeout: 15 * time.Second}, log.Named("engine"))
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	allow, err := netguard.ParseAllow([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	guard := netguard.New(allow)
	reg := registry.New(eng, guard, log.Named("registry"))
	if err := reg.Start(ctx); err != nil {
		t.Fatalf("registry.Start: %v", err)
	}
	pipe := delivery.New(eng, reg, guard.Client(), log.Named("delivery"), delivery.Options{})
	if err := pipe.Start(ctx); err != nil {
		t.Fatalf("pipeline.Start: %v", err)
	}
	h, err := New(reg, pipe, Options{
		Tokens: []string{adminToken}, PublishTokens: []string{publishToken}, Logger: log.Named("api"),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &env{t: t, eng: eng, reg: reg, pipe: pipe, h: h, logs: logs}
	t.Cleanup(func() {
		pipe.Stop()
		reg.Stop()
		_ = eng.Close()
		e.checkLogs()
	})
	return e
}

// remember records a key or secret that must never be logged.
func (e *env) remember(s string) {
	if s == "" {
		e.t.Fatalf("expected a key or secret, got none")
	}
	e.mu.Lock()
	e.secrets = append(e.secrets, s)
	e.mu.Unlock()
}

// checkLogs fails when a key or secret the API showed appears in a log line.
func (e *env) checkLogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		for _, s := range e.secrets {
			if strings.Contains(line, s) {
				e.t.Errorf("a key or secret appears in a log line: %q", entry.Message)
			}
		}
	}
}

// response is a recorded answer.
type response struct {
	*httptest.ResponseRecorder
	t *testing.T
}

// json decodes the body as a JSON object.
func (r response) json() map[string]any {
	r.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &m); err != nil {
		r.t.Fatalf("answer %d is not a JSON object: %v: %s", r.Code, err, r.Body)
	}
	return m
}

// decode decodes the body into v.
func (r response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body.Bytes(), v); err != nil {
		r.t.Fatalf("answer %d: %v: %s", r.Code, err, r.Body)
	}
}

// expect fails unless the status is want.
func (r response) expect(want int) response {
	r.t.Helper()
	if r.Code != want {
		r.t.Fatalf("status %d, want %d: %s", r.Code, want, r.Body)
	}
	return r
}

// req is a request to the API.
type req struct {
	method, path string
	token        string // "" = adminToken, "-" = none
	body         any    // string, []byte or a value marshalled to JSON
	header       http.Header
}

func (e *env) do(q req) response {
	e.t.Helper()
	var body io.Reader = http.NoBody
	switch b := q.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	r := httptest.NewRequest(q.method, "http://gw.test"+q.path, body)
	if q.body != nil {
		r.Header.Set("Content-Type", "application/json") // unless q.header sets another
	}
	for k, v := range q.header {
		r.Header[k] = v
	}
	switch q.token {
	case "":
		r.Header.Set("Authorization", "Bearer "+adminToken)
	case "-":
	default:
		r.Header.Set("Authorization", "Bearer "+q.token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return response{ResponseRecorder: w, t: e.t}
}

// get, post, put, patch and del are shorthands for admin requests.
func (e *env) get(path string) response { e.t.Helper(); return e.do(req{method: "GET", path: path}) }
func (e *env) post(path string, body any) response {
	e.t.Helper()
	return e.do(req{method: "POST", path: path, body: body})
}
func (e *env) put(path string, body any) response {
	e.t.Helper()
	return e.do(req{method: "PUT", path: path, body: body})
}
func (e *env) patch(path string, body any) response {
	e.t.Helper()
	return e.do(req{method: "PATCH", path: path, body: body})
}
func (e *env) del(path string) response { e.t.Helper(); return e.do(req{method: "DELETE", path: path}) }

// errorCheck asserts an error answer: status, JSON {"error"} and, when
// field is set, the "field" member.
func errorCheck(t *testing.T, r response, status int, field string) map[string]any {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status %d, want %d: %s", r.Code, status, r.Body)
	}
	if ct := r.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m := r.json()
	if s, _ := m["error"].(string); s == "" {
		t.Errorf("no error message: %s", r.Body)
	}
	if field != "" && m["field"] != field {
		t.Errorf("field %v, want %q: %s", m["field"], field, r.Body)
	}
	return m
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sink is an HTTP receiver on 127.0.0.1.
type sink struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []*sinkRequest
}

type sinkRequest struct {
	header http.Header
	body   []byte
}

func newSink(t *testing.T, status int) *sink {
	t.Helper()
	s := &sink{}
	s.status.Store(int32(status))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, &sinkRequest{header: r.Header.Clone(), body: b})
		s.mu.Unlock()
		w.Header().Set("X-Sink", "yes")
		w.WriteHeader(int(s.status.Load()))
		fmt.Fprintf(w, `{"received":%d}`, len(b))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) requests() []*sinkRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*sinkRequest(nil), s.got...)
}

func TestNew(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"no token", Options{}, true},
		{"empty token", Options{Tokens: []string{""}}, true},
		{"blank publish token", Options{Tokens: []string{"x"}, PublishTokens: []string{"  "}}, true},
		{"full token", Options{Tokens: []string{"x"}}, false},
		{"publish token only", Options{PublishTokens: []string{"x"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(e.reg, e.pipe, tc.opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New: err %v, want error %v", err, tc.wantErr)
			}
		})
	}
	if _, err := New(nil, nil, Options{Tokens: []string{"x"}}); err == nil {
		t.Error("New without a registry: no error")
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	e.put("/topics/document.deleted", map[string]any{"description": "Orange Logic"}).expect(http.StatusCreated)
	publish := map[string]any{"topic": "document.deleted", "data": json.RawMessage(orangeLogicData)}
	tests := []struct {
		name   string
		req    req
		raw    string // raw Authorization header, when set
		status int
	}{
		{"no token", req{method: "GET", path: "/topics", token: "-"}, "", http.StatusUnauthorized},
		{"no token, unknown route", req{method: "GET", path: "/nope", token: "-"}, "", http.StatusUnauthorized},
		{"wrong token", req{method: "GET", path: "/topics", token: "wrong"}, "", http.StatusUnauthorized},
		{"token prefix", req{method: "GET", path: "/topics", token: adminToken[:5]}, "", http.StatusUnauthorized},
		{"basic scheme", req{method: "GET", path: "/topics", token: "-"}, "Basic " + adminToken, http.StatusUnauthorized},
		{"bearer without token", req{method: "GET", path: "/topics", token: "-"}, "Bearer ", http.StatusUnauthorized},
		{"publish token on GET /topics", req{method: "GET", path: "/topics", token: publishToken}, "", http.StatusForbidden},
		{"publish token on unknown route", req{method: "GET", path: "/nope", token: publishToken}, "", http.StatusForbidden},
		{"publish token on GET /events/x", req{method: "GET", path: "/events/x", token: publishToken}, "", http.StatusForbidden},
		{"publish token on POST /workflows", req{method: "POST", path: "/workflows", token: publishToken, body: map[string]any{"id": "x"}}, "", http.StatusForbidden},
		{"publish token publishes", req{method: "POST", path: "/events", token: publishToken, body: publish}, "", http.StatusAccepted},
		{"admin token publishes", req{method: "POST", path: "/events", body: publish}, "", http.StatusAccepted},
		{"admin token", req{method: "GET", path: "/topics"}, "", http.StatusOK},
		{"lower-case scheme", req{method: "GET", path: "/topics", token: "-"}, "bearer " + adminToken, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raw != "" {
				tc.req.header = http.Header{"Authorization": {tc.raw}}
			}
			r := e.do(tc.req)
			if r.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Code, tc.status, r.Body)
			}
			if tc.status >= 400 {
				errorCheck(t, r, tc.status, "")
			}
			if got := r.Header().Get("WWW-Authenticate"); (tc.status == http.StatusUnauthorized) != (got == "Bearer") {
				t.Errorf("WWW-Authenticate %q with status %d", got, r.Code)
			}
		})
	}
}

// TestOverHTTP runs the handler behind a real server and a stripped prefix,
// as the Caddy glue mounts it.
func TestOverHTTP(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.StripPrefix("/api/hookgate", e.h))
	defer srv.Close()
	call := func(method, path, token string, body io.Reader) *http.Response {
		t.Helper()
		r, _ := http.NewRequest(method, srv.URL+"/api/hookgate"+path, body)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := call("GET", "/topics", "", nil); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp := call("GET", "/topics", adminToken, nil)
	var topics map[string][]any
	if err := json.NewDecoder(resp.Body).Decode(&topics); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /topics: %d %v", resp.StatusCode, err)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	// An over-large body is refused with 413 without being read whole.
	big := strings.NewReader(`{"name":"` + strings.Repeat("a", MaxBody+10) + `"}`)
	if resp := call("POST", "/subscriptions", adminToken, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("over-large body: %d", resp.StatusCode)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/", http.StatusNotFound, ""}, // GET / is the web console
		{"GET", "/nope", http.StatusNotFound, ""},
		{"GET", "/workflows/a/b/c", http.StatusNotFound, ""},
		{"GET", "/workflows//test", http.StatusNotFound, ""},
		{"PUT", "/workflows", http.StatusMethodNotAllowed, "GET, POST"},
		{"POST", "/workflows/x", http.StatusMethodNotAllowed, "DELETE, GET, PATCH"},
		{"GET", "/workflows/x/regenerate", http.StatusMethodNotAllowed, "POST"},
		{"POST", "/workflows/x/schema", http.StatusMethodNotAllowed, "GET"},
		{"POST", "/topics", http.StatusMethodNotAllowed, "GET"},
		{"POST", "/topics/a", http.StatusMethodNotAllowed, "DELETE, GET, PUT"},
		{"DELETE", "/subscriptions", http.StatusMethodNotAllowed, "GET, POST"},
		{"GET", "/subscriptions/x/rotate-secret", http.StatusMethodNotAllowed, "POST"},
		{"GET", "/events", http.StatusMethodNotAllowed, "POST"},
		{"DELETE", "/events/x", http.StatusMethodNotAllowed, "GET"},
		{"POST", "/deliveries", http.StatusMethodNotAllowed, "GET"},
		{"GET", "/deliveries/x/retry", http.StatusMethodNotAllowed, "POST"},
		{"GET", "/workflows/", http.StatusOK, ""},
		{"GET", "/topics", http.StatusOK, ""},
		{"GET", "/subscriptions", http.StatusOK, ""},
		{"GET", "/deliveries", http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(req{method: tc.method, path: tc.path})
			if r.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Code, tc.status, r.Body)
			}
			if tc.status >= 400 {
				errorCheck(t, r, tc.status, "")
			}
			if got := r.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
	// Empty lists are [] rather than null (topics always hold the built-in
	// ones).
	for _, c := range []struct{ path, key string }{{"/workflows", "workflows"}, {"/subscriptions", "subscriptions"}, {"/deliveries", "deliveries"}} {
		if list, ok := e.get(c.path).json()[c.key].([]any); !ok || len(list) != 0 {
			t.Errorf("GET %s: %q is %v, want []", c.path, c.key, list)
		}
	}
}

// TestInternalError checks that a failure of the engine is answered 500
// with a generic message, its detail logged.
func TestInternalError(t *testing.T) {
	e := newEnv(t)
	e.eng.Conn().Close()
	r := e.get("/deliveries")
	m := errorCheck(t, r, http.StatusInternalServerError, "")
	if m["error"] != "internal error" {
		t.Errorf("error %q, want the generic message", m["error"])
	}
	if e.logs.FilterMessage("management API request failed").Len() == 0 {
		t.Error("the failure was not logged")
	}
}

// readExample reads a payload of examples/.
func readExample(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
