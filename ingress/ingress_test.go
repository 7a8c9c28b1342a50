package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

type env struct {
	eng  *engine.Engine
	reg  *registry.Registry
	pipe *delivery.Pipeline
	in   *Ingress
}

func newEnv(t testing.TB) *env {
	t.Helper()
	eng := testenv.Engine(t)
	guard := testenv.LoopbackGuard()
	reg := registry.New(eng, guard, nil)
	if err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pipe := delivery.New(eng, reg, guard.Client(), nil, delivery.Options{})
	t.Cleanup(func() { reg.Stop(); eng.Close() })
	return &env{eng: eng, reg: reg, pipe: pipe, in: &Ingress{Registry: reg, Pipeline: pipe}}
}

func readFile(t *testing.T, name string) []byte { return readFileB(t, name) }

func readFileB(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../examples/easylife/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testKey = "a-pinned-test-key-0123456789"

func (e *env) declare(t *testing.T, ws ...registry.Workflow) {
	t.Helper()
	var cws []*registry.CompiledWorkflow
	for _, w := range ws {
		if w.FixedKey == "" {
			w.FixedKey = testKey
		}
		cw, err := registry.CompileWorkflow(w, e.reg.Guard())
		if err != nil {
			t.Fatal(err)
		}
		cws = append(cws, cw)
	}
	e.reg.DeclareConfig(cws, nil, nil)
}

func post(path, ctype string, body string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// twoArrays returns {"a":[0..n-1],"b":[n..2n-1]}: disjoint, so that
// any(body.a, # in body.b) compares every pair.
func twoArrays(n int) string {
	var b strings.Builder
	b.WriteString(`{"a":[`)
	for i := range 2 * n {
		switch {
		case i == n:
			b.WriteString(`],"b":[`)
		case i > 0:
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i))
	}
	b.WriteString(`]}`)
	return b.String()
}

// chunked makes r look like a request without Content-Length.
func chunked(r *http.Request) *http.Request {
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	return r
}

// TestStatusTable covers every row of the SPEC's ingress table.
func TestStatusTable(t *testing.T) {
	e := newEnv(t)
	group := string(readFile(t, "groupcreated.json"))
	planner := string(readFile(t, "plannercreated.json"))
	hmacKey := "It's a Secret to Everybody"
	e.declare(t,
		registry.Workflow{ID: "prov", Sample: readFile(t, "groupcreated.json"), MaxBody: 4096,
			Filter:            `body.eventType in ["groupcreated", "sharepointcreated"]`,
			IdempotencyHeader: "X-Request-Id",
			Targets:           []registry.Target{{URL: "http://127.0.0.1:1/sink"}}},
		registry.Workflow{ID: "empty"},
		registry.Workflow{ID: "pass", Sample: []byte(`{"a":1}`)},
		registry.Workflow{ID: "gh", Sample: []byte(`{}`), Verify: &registry.Verify{Provider: "github", Secrets: []string{hmacKey}}},
		registry.Workflow{ID: "off", Enabled: new(bool)},
		registry.Workflow{ID: "hdr", Sample: []byte(`{}`), Filter: `headers["x-event"] == "push" && query.source == "gh" && method == "POST" && workflow.id == "hdr"`},
		// The CPU-bound filter of issue #8 (5.6 s an evaluation before).
		registry.Workflow{ID: "costly", Sample: []byte(`{}`), Filter: `let r = 1..700; all(r, all(r, all(r, true)))`},
		// The quadratic filter of issue #8 (3.8 s a webhook before).
		registry.Workflow{ID: "quadratic", Sample: []byte(`{}`), Filter: `any(body.a, # in body.b)`},
	)
	ghSig := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	big := `{"pad":"` + strings.Repeat("x", 5000) + `"}`
	tests := []struct {
		name    string
		req     *http.Request
		id, key string
		status  int
		outcome string
		check   func(t *testing.T, res *Result)
	}{
		{"wrong key", post("/", "application/json", group), "prov", "nope", 401, OutcomeUnauthorized, nil},
		{"unknown workflow", post("/", "application/json", group), "ghost", testKey, 401, OutcomeUnauthorized, nil},
		{"disabled workflow", post("/", "", ""), "off", testKey, 401, OutcomeUnauthorized, nil},
		{"method", httptest.NewRequest(http.MethodGet, "/", nil), "prov", testKey, 405, OutcomeMethod, nil},
		{"too large", post("/", "application/json", big), "prov", testKey, 413, OutcomeTooLarge, nil},
		{"too large, chunked", chunked(post("/", "application/json", big)), "prov", testKey, 413, OutcomeTooLarge, nil},
		{"chunked within the limit", chunked(post("/", "application/json", group)), "prov", testKey, 202, OutcomeAccepted, nil},
		{"media type", post("/", "text/plain", group), "prov", testKey, 415, OutcomeMediaType, nil},
		{"form values are strings for the contract", post("/", "application/x-www-form-urlencoded", "a=1"), "pass", testKey, 422, OutcomeInvalid, nil},
		{"form body passes", post("/", "application/x-www-form-urlencoded", "b=1"), "pass", testKey, 0, OutcomePassed, nil},
		{"bad form", post("/", "application/x-www-form-urlencoded", "a=%zz"), "prov", testKey, 400, OutcomeBadForm, nil},
		{"not json", post("/", "application/json", "{"), "prov", testKey, 400, OutcomeBadJSON, nil},
		{"contract", post("/", "application/json", `{"eventType": 5}`), "prov", testKey, 422, OutcomeInvalid,
			func(t *testing.T, res *Result) {
				errs := res.Response.(ErrorBody).Errors
				if len(errs) != 1 || errs[0].Path != "/eventType" {
					t.Errorf("errors = %+v", errs)
				}
			}},
		{"no contract non-empty", post("/", "application/json", `{}`), "empty", testKey, 422, OutcomeInvalid, nil},
		{"filtered", post("/", "application/json", planner), "prov", testKey, 202, OutcomeFiltered, nil},
		{"accepted", post("/", "application/json", group, "X-Request-Id", "r1"), "prov", testKey, 202, OutcomeAccepted,
			func(t *testing.T, res *Result) {
				if res.EventID != IdempotentEventID("prov", "r1") {
					t.Errorf("event id %q", res.EventID)
				}
			}},
		{"duplicate", post("/", "application/json", group, "X-Request-Id", "r1"), "prov", testKey, 200, OutcomeDuplicate, nil},
		{"+json accepted", post("/", "application/cloudevents+json; charset=utf-8", group), "prov", testKey, 202, OutcomeAccepted, nil},
		{"key in header", post("/", "application/json", group, "X-Webhook-Key", testKey), "prov", "", 202, OutcomeAccepted, nil},
		{"key as bearer", post("/", "application/json", group, "Authorization", "Bearer "+testKey), "prov", "", 202, OutcomeAccepted, nil},
		{"empty body, no contract, passes", post("/", "", ""), "empty", testKey, 0, OutcomePassed, nil},
		{"passthrough", post("/", "application/json", `{"a":2,"b":true}`), "pass", testKey, 0, OutcomePassed,
			func(t *testing.T, res *Result) {
				if !res.Pass || string(res.Body) != `{"a":2,"b":true}` || res.EventID == "" {
					t.Errorf("pass result %+v", res)
				}
			}},
		{"filter on headers and query", post("/?source=gh", "application/json", `{}`, "X-Event", "push"), "hdr", testKey, 0, OutcomePassed, nil},
		{"filter on headers: no match", post("/?source=gh", "application/json", `{}`, "X-Event", "pull"), "hdr", testKey, 202, OutcomeFiltered, nil},
		{"hmac ok", post("/", "application/json", "Hello, World!", "X-Hub-Signature-256", ghSig), "gh", testKey, 400, OutcomeBadJSON, nil},
		{"hmac bad", post("/", "application/json", `{}`, "X-Hub-Signature-256", ghSig), "gh", testKey, 401, OutcomeSignature, nil},
		{"filter over its bound", post("/", "application/json", `{}`), "costly", testKey, 422, OutcomeOverBound,
			func(t *testing.T, res *Result) {
				if msg := res.Response.(ErrorBody).Error; !strings.Contains(msg, "eval_steps") && !strings.Contains(msg, "eval_time") {
					t.Errorf("error %q names no bound", msg)
				}
			}},
		{"quadratic filter over its bound", post("/", "application/json", twoArrays(20_000)), "quadratic", testKey, 422, OutcomeOverBound,
			func(t *testing.T, res *Result) {
				if msg := res.Response.(ErrorBody).Error; !strings.Contains(msg, "eval_time") {
					t.Errorf("error %q does not name eval_time", msg)
				}
			}},
		{"too large names max_body", post("/", "application/json", big), "prov", testKey, 413, OutcomeTooLarge,
			func(t *testing.T, res *Result) {
				if msg := res.Response.(ErrorBody).Error; !strings.Contains(msg, "max_body of 4096") {
					t.Errorf("error %q", msg)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.in.Handle(tc.req, tc.id, tc.key)
			if res.Status != tc.status || res.Outcome != tc.outcome {
				t.Fatalf("status %d outcome %q, want %d %q (response %+v)", res.Status, res.Outcome, tc.status, tc.outcome, res.Response)
			}
			if res.Status == 401 && res.Outcome == OutcomeUnauthorized {
				if b, _ := json.Marshal(res.Response); string(b) != `{"error":"unknown workflow or invalid key"}` {
					t.Errorf("401 body %s", b)
				}
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func TestStandardWebhooksVerification(t *testing.T) {
	e := newEnv(t)
	secret, _ := signature.NewSecret()
	e.declare(t, registry.Workflow{ID: "sw", Sample: []byte(`{"x":1}`), Verify: &registry.Verify{Provider: "standard", Secrets: []string{secret}}})
	key, _ := signature.ParseSecret(secret)
	body := `{"x":2}`
	r := post("/", "application/json", body)
	signature.SetHeaders(r.Header, [][]byte{key}, "msg_1", time.Now(), []byte(body))
	if res := e.in.Handle(r, "sw", testKey); !res.Pass {
		t.Fatalf("signed request refused: %+v", res.Response)
	}
	r = post("/", "application/json", `{"x":3}`)
	signature.SetHeaders(r.Header, [][]byte{key}, "msg_1", time.Now(), []byte(body))
	if res := e.in.Handle(r, "sw", testKey); res.Status != 401 {
		t.Fatalf("tampered request: %d", res.Status)
	}
}

// TestUnavailable: a write that JetStream cannot acknowledge is a 503, never a 2xx.
func TestUnavailable(t *testing.T) {
	e := newEnv(t)
	e.declare(t, registry.Workflow{ID: "prov", Sample: []byte(`{}`), Targets: []registry.Target{{URL: "http://127.0.0.1:1/"}}})
	if err := e.eng.JetStream().DeleteStream(context.Background(), engine.StreamEvents); err != nil {
		t.Fatal(err)
	}
	r := post("/", "application/json", `{}`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res := e.in.Handle(r.WithContext(ctx), "prov", testKey)
	if res.Status != 503 || res.Err == nil {
		t.Fatalf("status %d err %v", res.Status, res.Err)
	}
}

func TestRegenerateRefusesOldKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, key, err := e.reg.CreateWorkflow(ctx, registry.Workflow{ID: "api1"})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.in.Handle(post("/", "", ""), "api1", key); !res.Pass {
		t.Fatalf("first key refused: %+v", res)
	}
	key2, err := e.reg.Regenerate(ctx, "api1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if res := e.in.Handle(post("/", "", ""), "api1", key); res.Status != 401 {
		t.Fatalf("old key still accepted: %d", res.Status)
	}
	if res := e.in.Handle(post("/", "", ""), "api1", key2); !res.Pass {
		t.Fatalf("new key refused")
	}
	key3, err := e.reg.Regenerate(ctx, "api1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key2, key3} {
		if res := e.in.Handle(post("/", "", ""), "api1", k); !res.Pass {
			t.Fatalf("key within grace refused")
		}
	}
}

func TestSplitAndKeyFromHeaders(t *testing.T) {
	for _, tc := range []struct{ in, wf, key string }{
		{"/a/b", "a", "b"}, {"/a", "a", ""}, {"/a/", "a", ""}, {"", "", ""}, {"/a/b/", "a", "b"},
	} {
		if wf, key := Split(tc.in); wf != tc.wf || key != tc.key {
			t.Errorf("Split(%q) = %q %q", tc.in, wf, key)
		}
	}
	h := http.Header{}
	h.Set("Authorization", "bearer  k1 ")
	if KeyFromHeaders(h) != "k1" {
		t.Error("bearer")
	}
	h.Set("X-Webhook-Key", "k2")
	if KeyFromHeaders(h) != "k2" {
		t.Error("header wins")
	}
}

func FuzzHandle(f *testing.F) {
	for _, n := range []string{"groupcreated", "sharepointcreated", "vivaengagecreated", "plannercreated", "onenotecreated"} {
		b, err := os.ReadFile("../examples/easylife/" + n + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "application/json", "X-Request-Id", "r")
	}
	f.Add([]byte("{"), "text/plain", "", "")
	eng := testenv.Engine(f)
	guard := testenv.LoopbackGuard()
	reg := registry.New(eng, guard, nil)
	if err := reg.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	defer reg.Stop()
	sample, _ := os.ReadFile("../examples/easylife/groupcreated.json")
	cw, err := registry.CompileWorkflow(registry.Workflow{ID: "prov", Sample: sample, FixedKey: testKey, MaxBody: 8192,
		Filter: `body?.user?.department == "DEV" || body?.eventType == "groupcreated"`, IdempotencyHeader: "X-Request-Id"}, guard)
	if err != nil {
		f.Fatal(err)
	}
	reg.DeclareConfig([]*registry.CompiledWorkflow{cw}, nil, nil)
	in := &Ingress{Registry: reg}
	f.Fuzz(func(t *testing.T, body []byte, ctype, hname, hval string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", ctype)
		if hname != "" && !strings.ContainsAny(hname, " :\r\n\x00") {
			r.Header.Set(hname, hval)
		}
		res := in.Handle(r, "prov", testKey)
		if res.Status == 0 && !res.Pass {
			t.Fatalf("no decision: %+v", res)
		}
	})
}
