package module

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// outageApp is the app behind a passthrough workflow, on 127.0.0.1: it can
// be stopped and started again on the same port (down: connections are
// refused), made to answer 503 to everything (maintenance), or to answer
// too slowly (a timeout of reverse_proxy). Up, it answers the status asked
// in X-Answer (default 200), with a body and a header of its own.
type outageApp struct {
	t    *testing.T
	addr string

	mu   sync.Mutex
	srv  *http.Server
	mode string // "up", "unavailable" or "slow"
	reqs []appRequest
}

// appRequest is a request the app received; Taken: it answered 2xx.
type appRequest struct {
	Method, URI string
	Header      http.Header
	Body        []byte
	Taken       bool
	At          time.Time
}

func newOutageApp(t *testing.T) *outageApp {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &outageApp{t: t, addr: ln.Addr().String(), mode: "up"}
	a.serve(ln)
	t.Cleanup(a.stop)
	return a
}

func (a *outageApp) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(a.handle), ReadHeaderTimeout: 5 * time.Second}
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the listener and every connection: the app is down.
func (a *outageApp) stop() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// start listens again on the same port.
func (a *outageApp) start() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		a.t.Fatalf("restarting the app on %s: %v", a.addr, err)
	}
	a.serve(ln)
}

func (a *outageApp) setMode(m string) {
	a.mu.Lock()
	a.mode = m
	a.mu.Unlock()
}

func (a *outageApp) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	mode := a.mode
	a.mu.Unlock()
	status := http.StatusOK
	switch mode {
	case "unavailable", "slow":
		status = http.StatusServiceUnavailable
	default:
		if v := r.Header.Get("X-Answer"); v != "" {
			_, _ = fmt.Sscan(v, &status)
		}
	}
	a.mu.Lock()
	a.reqs = append(a.reqs, appRequest{r.Method, r.URL.RequestURI(), r.Header.Clone(), body, status >= 200 && status < 300, time.Now()})
	a.mu.Unlock()
	if mode == "slow" {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}
	w.Header().Set("X-App", mode)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "the app answered %d (%s)", status, mode)
}

func (a *outageApp) received() []appRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]appRequest(nil), a.reqs...)
}

// taken returns the requests the app took (answered 2xx), by event id,
// leaving out those that asked for their answer (X-Answer).
func (a *outageApp) taken() map[string][]appRequest {
	out := map[string][]appRequest{}
	for _, r := range a.received() {
		if r.Taken && r.Header.Get("X-Answer") == "" {
			id := r.Header.Get("X-Hookgate-Event-Id")
			out[id] = append(out[id], r)
		}
	}
	return out
}

// TestFallbackAcrossAppOutage: a passthrough workflow with a fallback.
// With the app up, the sender gets the app's own answer (a 500 too); with
// the app answering 503, answering too slowly, or down, the sender gets 202
// queued; across a restart of hookgate, each queued request reaches the app
// exactly once when it is back, with its method, path (no key), query,
// headers (no key) and body.
func TestFallbackAcrossAppOutage(t *testing.T) {
	app := newOutageApp(t)
	dir := t.TempDir()
	schedule := strings.TrimSpace(strings.Repeat("100ms ", 99))
	site := fmt.Sprintf(`
	handle /metrics {
		metrics
	}
	hookgate_ingress /hooks/* {
		workflow orders-fb {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			methods POST PUT
			idempotency_header X-Request-Id
			fallback http://%[2]s {
				timeout 2s
				retry_schedule %[3]s
				breaker {
					failures 3
					cooldown 100ms
					max_cooldown 400ms
				}
			}
		}
	}
	hookgate_api /api/hookgate/* {
		token %[4]s
	}
	reverse_proxy %[2]s {
		transport http {
			response_header_timeout 1s
		}
	}
`, pinnedKey, app.addr, schedule, testToken)
	startCaddy(t, dir, "", site)
	hook := base + "/hooks/orders-fb/" + pinnedKey

	// The app is up: its own status, headers and body pass through, a 500
	// included (not a fallback status); nothing is queued.
	for _, want := range []int{201, 500, 404} {
		status, hdr, body := rawCall(t, "POST", hook+"?src=up", easylife(t, "groupcreated"), "X-Answer", fmt.Sprint(want))
		wantBody := fmt.Sprintf("the app answered %d (up)", want)
		if status != want || string(body) != wantBody || hdr.Get("X-App") != "up" || hdr.Get("Content-Type") != "text/plain" {
			t.Fatalf("app up, answering %d: got %d %v %q", want, status, hdr, body)
		}
	}
	if got := app.received(); len(got) != 3 || got[0].URI != "/hooks/orders-fb?src=up" || got[0].Header.Get("X-Hookgate-Event-Id") == "" {
		t.Fatalf("the app received %+v", got)
	}

	type sent struct {
		id, method, uri string
		body            []byte
	}
	var queued []sent
	send := func(what, method, query string, body []byte, headers ...string) {
		t.Helper()
		url := hook
		if len(headers) > 0 && headers[0] == "Authorization" {
			url = base + "/hooks/orders-fb" // the key in the header instead
		}
		status, hdr, raw := rawCall(t, method, url+query, body, headers...)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil || status != http.StatusAccepted || out["status"] != "queued" || len(out) != 2 {
			t.Fatalf("%s: got %d %q, want 202 {id, status: queued}", what, status, raw)
		}
		if hdr.Get("X-App") != "" || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: the app's held answer leaked headers into the 202: %v", what, hdr)
		}
		id, _ := out["id"].(string)
		if id == "" {
			t.Fatalf("%s: no id in %q", what, raw)
		}
		queued = append(queued, sent{id, method, "/hooks/orders-fb" + query, body})
	}

	// The app answers 503 (maintenance): queued.
	app.setMode("unavailable")
	b1 := []byte(`{"eventType":"groupcreated","data":{"id":"b1","n":12345678901234567890}}`)
	send("app answering 503", "PUT", "?src=maintenance&x=%2F", b1)

	// The app answers too slowly (reverse_proxy times out: 504): queued.
	app.setMode("slow")
	b2 := easylife(t, "sharepointcreated")
	send("app too slow", "POST", "?src=slow", b2)
	var slow appRequest
	for _, r := range app.received() {
		if r.URI == "/hooks/orders-fb?src=slow" && slow.URI == "" {
			slow = r // the request reverse_proxy gave up on
		}
	}

	// The app is down (connection refused: 502): queued; the sender's
	// retry (same X-Request-Id) is a duplicate of the same event.
	app.stop()
	app.setMode("up")
	b3 := easylife(t, "plannercreated")
	send("app down", "POST", "?src=down", b3, "X-Request-Id", "req-down-1")
	status, body := call(t, "POST", hook+"?src=down", b3, "X-Request-Id", "req-down-1")
	if status != http.StatusOK || body["status"] != "duplicate" || body["id"] != queued[2].id {
		t.Fatalf("retry of a queued request: %d %v, want 200 duplicate %s", status, body, queued[2].id)
	}
	b4 := easylife(t, "onenotecreated")
	send("app down, key in Authorization", "POST", "", b4, "Authorization", "Bearer "+pinnedKey)

	// hookgate restarts while the app is down: the queued requests stay.
	// Each has been tried first, so that none is on its way to the
	// pipeline at the stop (a message fetched but not yet handed over is
	// only redelivered after the pipeline's ack wait of 30s).
	for _, q := range queued {
		waitFor(t, "a first attempt of "+q.id, 10*time.Second, func() bool {
			_, list := apiCall(t, "GET", "/deliveries?event="+q.id, nil)
			ds, _ := list["deliveries"].([]any)
			if len(ds) != 1 {
				return false
			}
			at, _ := ds[0].(map[string]any)["attempts"].([]any)
			return len(at) > 0
		})
	}
	startCaddy(t, t.TempDir(), "", `respond "elsewhere" 200`)
	startCaddy(t, dir, "", site)
	time.Sleep(500 * time.Millisecond)
	if n := len(app.taken()); n != 0 {
		t.Fatalf("the app took %d requests while down", n)
	}

	// The app is back: each queued request arrives once.
	app.start()
	back := time.Now()
	defer func() {
		for _, r := range app.received() {
			t.Logf("app received %s %s taken=%v event=%s after %v", r.Method, r.URI, r.Taken, r.Header.Get("X-Hookgate-Event-Id"), r.At.Sub(back))
		}
	}()
	deadline := time.Now().Add(40 * time.Second) // beyond the ack wait of 30s
	for len(app.taken()) < len(queued) {
		if time.Now().After(deadline) {
			for _, r := range app.received() {
				t.Logf("app received %s %s taken=%v event=%s", r.Method, r.URI, r.Taken, r.Header.Get("X-Hookgate-Event-Id"))
			}
			for _, q := range queued {
				_, list := apiCall(t, "GET", "/deliveries?event="+q.id, nil)
				t.Logf("deliveries of %s: %v", q.id, list)
			}
			t.Fatalf("the app took %d of the %d queued requests", len(app.taken()), len(queued))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // nothing more may come
	taken := app.taken()
	if len(taken) != len(queued) {
		t.Fatalf("the app took %d events, want %d: %v", len(taken), len(queued), taken)
	}
	for i, q := range queued {
		got := taken[q.id]
		if len(got) != 1 {
			t.Errorf("queued request %d (%s) taken %d times, want once", i, q.id, len(got))
			continue
		}
		r := got[0]
		if r.Method != q.method || r.URI != q.uri || string(r.Body) != string(q.body) {
			t.Errorf("queued request %d: the app received %s %s %q, want %s %s %q", i, r.Method, r.URI, r.Body, q.method, q.uri, q.body)
		}
		if r.Header.Get("X-Hookgate-Workflow") != "orders-fb" || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("X-Forwarded-Host") == "" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Errorf("queued request %d: headers %v", i, r.Header)
		}
		if strings.Contains(r.URI, pinnedKey) || strings.Contains(string(r.Body), pinnedKey) {
			t.Errorf("queued request %d: the key reached the app: %s", i, r.URI)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, pinnedKey) {
					t.Errorf("queued request %d: the key reached the app in %s", i, k)
				}
			}
		}
	}
	if r := taken[queued[2].id]; len(r) == 1 && r[0].Header.Get("X-Request-Id") != "req-down-1" {
		t.Errorf("the sender's headers were not kept: %v", r[0].Header)
	}
	if r := taken[queued[3].id]; len(r) == 1 && r[0].Header.Get("Authorization") != "" {
		t.Errorf("the key sent in Authorization reached the app")
	}
	// The slow attempt reached the app before hookgate gave up on it: the
	// delivery carries the same event id, for the app to tell.
	if slow.Header.Get("X-Hookgate-Event-Id") != queued[1].id {
		t.Errorf("the slow attempt had event id %q, the 202 said %q", slow.Header.Get("X-Hookgate-Event-Id"), queued[1].id)
	}

	// The deliveries are recorded as succeeded; the metrics count them.
	for _, q := range queued {
		waitFor(t, "delivery record of "+q.id, 5*time.Second, func() bool {
			_, list := apiCall(t, "GET", "/deliveries?event="+q.id, nil)
			ds, _ := list["deliveries"].([]any)
			return len(ds) == 1 && ds[0].(map[string]any)["status"] == "succeeded"
		})
	}
	_, m := call(t, "GET", base+"/metrics", nil)
	text, _ := m["_raw"].(string)
	for _, want := range []string{
		`hookgate_ingress_fallback_total{reason="status_503",result="queued",workflow="orders-fb"} 1`,
		`hookgate_ingress_fallback_total{reason="error_504",result="queued",workflow="orders-fb"} 1`,
		`hookgate_ingress_fallback_total{reason="error_502",result="queued",workflow="orders-fb"} 2`,
		`hookgate_delivery_attempts_total{kind="fallback",outcome="succeeded"}`,
		`hookgate_delivery_attempts_total{kind="fallback",outcome="retrying"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(text, "fallback"))
		}
	}

	// The API shows the fallback.
	status, wf := apiCall(t, "GET", "/workflows/orders-fb", nil)
	fb, _ := wf["fallback"].(map[string]any)
	if status != http.StatusOK || fb == nil || fb["url"] != "http://"+app.addr || fb["timeout"] != "2s" || fb["circuit"] == nil {
		t.Errorf("GET workflow: %d %v", status, wf)
	}
}

// TestFallbackWorkflowFromAPI: a workflow created through the API with a
// fallback queues what the app does not take, and a fallback is refused on
// a workflow with targets.
func TestFallbackWorkflowFromAPI(t *testing.T) {
	app := newOutageApp(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/*
	hookgate_api /api/hookgate/* {
		token %s
	}
	reverse_proxy %s
`, testToken, app.addr))
	status, body := apiCall(t, "POST", "/workflows", map[string]any{
		"id": "api-fb", "sample": map[string]any{"n": 1},
		"fallback": map[string]any{"url": "http://" + app.addr + "/later", "retry_schedule": []string{"100ms", "100ms", "100ms"}},
	})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	key, _ := body["key"].(string)
	if fb, _ := body["fallback"].(map[string]any); fb == nil || fb["timeout"] != "10s" {
		t.Errorf("created workflow's fallback: %v", body["fallback"])
	}
	app.setMode("unavailable")
	status, out := call(t, "POST", base+"/hooks/api-fb/"+key+"?a=b", `{"n":2}`)
	if status != http.StatusAccepted || out["status"] != "queued" {
		t.Fatalf("app unavailable: %d %v", status, out)
	}
	app.setMode("up")
	waitFor(t, "the delivery", 10*time.Second, func() bool { return len(app.taken()[out["id"].(string)]) == 1 })
	r := app.taken()[out["id"].(string)][0]
	if r.Method != "POST" || r.URI != "/later/hooks/api-fb?a=b" || string(r.Body) != `{"n":2}` {
		t.Errorf("the fallback received %s %s %q", r.Method, r.URI, r.Body)
	}

	// A merge patch changes one field of the fallback.
	status, body = apiCall(t, "PATCH", "/workflows/api-fb", map[string]any{"fallback": map[string]any{"timeout": "3s"}})
	if fb, _ := body["fallback"].(map[string]any); status != http.StatusOK || fb == nil || fb["timeout"] != "3s" || fb["url"] != "http://"+app.addr+"/later" {
		t.Errorf("patch: %d %v", status, body)
	}

	status, body = apiCall(t, "POST", "/workflows", map[string]any{
		"id": "both", "targets": []any{map[string]any{"url": "http://" + app.addr}},
		"fallback": map[string]any{"url": "http://" + app.addr},
	})
	if status != http.StatusBadRequest && status != http.StatusUnprocessableEntity {
		t.Errorf("fallback with targets: %d %v", status, body)
	}
}
