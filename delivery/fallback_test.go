package delivery

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/registry"
)

func TestFallbackStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   bool
	}{
		{200, false}, {202, false}, {400, false}, {404, false}, {429, false},
		{500, false}, {501, false}, {502, true}, {503, true}, {504, true}, {505, false},
	} {
		if got := FallbackStatus(tc.status); got != tc.want {
			t.Errorf("FallbackStatus(%d) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestCaptureRequest(t *testing.T) {
	for _, tc := range []struct {
		name       string
		target     string
		header     map[string]string
		tls        bool
		wantURI    string
		wantHeader map[string]string // "" means absent
	}{
		{
			name:    "plain",
			target:  "http://gw.example/hooks/orders?a=1&b=%2F",
			header:  map[string]string{"Content-Type": "application/json", "X-Custom": "v"},
			wantURI: "/hooks/orders?a=1&b=%2F",
			wantHeader: map[string]string{
				"Content-Type": "application/json", "X-Custom": "v",
				"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "gw.example",
			},
		},
		{
			name:   "hop-by-hop headers and those named in Connection are left out",
			target: "http://gw.example/hooks/orders",
			header: map[string]string{
				"Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "timeout=5",
				"Te": "trailers", "Upgrade": "h2c", "Proxy-Authorization": "Basic eA==", "Content-Length": "3",
				"Expect": "100-continue", "Transfer-Encoding": "chunked", "Authorization": "Bearer app-token",
			},
			wantURI: "/hooks/orders",
			wantHeader: map[string]string{
				"Connection": "", "X-Secret-Hop": "", "Keep-Alive": "", "Te": "", "Upgrade": "",
				"Proxy-Authorization": "", "Content-Length": "", "Expect": "", "Transfer-Encoding": "",
				"Authorization": "Bearer app-token",
			},
		},
		{
			name:       "tls",
			target:     "https://gw.example/hooks/a%20b",
			tls:        true,
			wantURI:    "/hooks/a%20b",
			wantHeader: map[string]string{"X-Forwarded-Proto": "https"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, tc.target, nil)
			r.RemoteAddr = "192.0.2.7:4242"
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			q := CaptureRequest(r)
			if q.Method != http.MethodPut || q.URI() != tc.wantURI {
				t.Errorf("got %s %s, want PUT %s", q.Method, q.URI(), tc.wantURI)
			}
			for k, want := range tc.wantHeader {
				if got := q.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			// What is stored reads back the same.
			back, err := decodeRequest(q.encode())
			if err != nil {
				t.Fatal(err)
			}
			if back.Method != q.Method || back.URI() != q.URI() || len(back.Header) != len(q.Header) {
				t.Fatalf("decoded %+v, want %+v", back, q)
			}
			for k, v := range q.Header {
				if strings.Join(back.Header[k], "\x00") != strings.Join(v, "\x00") {
					t.Errorf("decoded header %s = %q, want %q", k, back.Header[k], v)
				}
			}
		})
	}
}

func TestRequestEncodingKeepsBytes(t *testing.T) {
	q := &Request{Method: "PATCH", Path: "/hooks/w/x%2Fy", Query: "q=%C3%A9&q=2", Header: http.Header{
		"X-Latin1": {"caf\xe9"}, "X-Multi": {"a", "b"}, "X-Quote": {`{"json": "va\\lue"}`},
	}}
	ev := &Event{ID: "evt_x", Workflow: "w", Data: []byte("a=1&b=\x00\xff"), Time: time.Unix(1, 0).UTC(), Request: q}
	m := ev.message("subject")
	back, err := eventFromMessage(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Request == nil || back.Request.Method != "PATCH" || back.Request.URI() != q.URI() {
		t.Fatalf("request = %+v", back.Request)
	}
	for k, v := range q.Header {
		if got := back.Request.Header[k]; strings.Join(got, "|") != strings.Join(v, "|") {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if string(back.Data) != string(ev.Data) {
		t.Errorf("data = %q", back.Data)
	}
	// A corrupt stored request is an unreadable event, not a request with
	// made-up fields.
	m.Header.Set(hdrRequest, "%%%")
	if _, err := eventFromMessage(m.Header, m.Data); err == nil {
		t.Error("a corrupt stored request decoded")
	}
}

// TestFallbackDelivery runs a fallback event through the pipeline: it is
// retried on the workflow's schedule while the app fails, then delivered
// once with the stored method, path, query, headers and body.
func TestFallbackDelivery(t *testing.T) {
	type got struct {
		method, uri, host string
		header            http.Header
		body              []byte
	}
	var mu sync.Mutex
	var reqs []got
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, got{r.Method, r.URL.RequestURI(), r.Host, r.Header.Clone(), b})
		n := len(reqs)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(app.Close)

	e := newEnv(t)
	ms := registry.Duration(20 * time.Millisecond)
	cw, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "pass", Fallback: &registry.Fallback{
		URL: app.URL + "/base/", RetrySchedule: []registry.Duration{ms, ms, ms},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cw.Fallback == nil || cw.Fallback.ID != "wf=pass=fallback" || !cw.Fallback.IsFallback() {
		t.Fatalf("fallback destination = %+v", cw.Fallback)
	}
	if d, ok := e.reg.Destination("wf=pass=fallback"); !ok || d != cw.Fallback {
		t.Fatal("the fallback is not a registry destination")
	}
	e.start(Options{})
	body := []byte(`{"order": 12345678901234567890, "note":"é"}`)
	ev := &Event{ID: NewEventID(), Workflow: "pass", Data: body, Request: &Request{
		Method: http.MethodPut, Path: "/hooks/pass", Query: "src=x&n=1",
		Header: http.Header{"Content-Type": {"application/json"}, "X-Hookgate-Event-Id": {"evt_1"}, "X-Forwarded-Host": {"gw.example"}},
	}}
	e.publish(ev)
	rec := e.waitRecord(recordID("wf=pass=fallback", ev.ID), 10*time.Second, statusIs(StatusSucceeded))
	if len(rec.Attempts) != 3 {
		t.Errorf("attempts = %d, want 3", len(rec.Attempts))
	}
	time.Sleep(100 * time.Millisecond) // nothing more comes
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 3 {
		t.Fatalf("app received %d requests, want 3 (two 503, one 204)", len(reqs))
	}
	for _, r := range reqs {
		if r.method != http.MethodPut || r.uri != "/base/hooks/pass?src=x&n=1" || string(r.body) != string(body) {
			t.Errorf("app received %s %s %q", r.method, r.uri, r.body)
		}
		if r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Hookgate-Event-Id") != "evt_1" ||
			r.header.Get("X-Forwarded-Host") != "gw.example" || r.host != strings.TrimPrefix(app.URL, "http://") {
			t.Errorf("app received headers %v, host %q", r.header, r.host)
		}
	}
}

func TestCompileFallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w     registry.Workflow
		field string
	}{
		{"no url", registry.Workflow{ID: "w", Fallback: &registry.Fallback{}}, "fallback.url"},
		{"query", registry.Workflow{ID: "w", Fallback: &registry.Fallback{URL: "http://127.0.0.1:1/x?y=1"}}, "fallback.url"},
		{"not allowed", registry.Workflow{ID: "w", Fallback: &registry.Fallback{URL: "http://10.1.1.1/"}}, "fallback.url"},
		{"with targets", registry.Workflow{ID: "w", Targets: []registry.Target{{URL: "http://127.0.0.1:1/"}}, Fallback: &registry.Fallback{URL: "http://127.0.0.1:1"}}, "fallback"},
		{"timeout", registry.Workflow{ID: "w", Fallback: &registry.Fallback{URL: "http://127.0.0.1:1", Timeout: registry.Duration(time.Hour)}}, "fallback.timeout"},
		{"breaker", registry.Workflow{ID: "w", Fallback: &registry.Fallback{URL: "http://127.0.0.1:1", FlowControl: registry.FlowControl{MaxInFlight: -1}}}, "fallback.max_in_flight"},
		{"ok", registry.Workflow{ID: "w", Fallback: &registry.Fallback{URL: "http://127.0.0.1:1/app/"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cw, err := registry.CompileWorkflow(tc.w, testGuard())
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				d := cw.Fallback
				if d.URL != "http://127.0.0.1:1/app" || d.MaxAttempts != registry.DefaultMaxAttempts || d.Timeout != registry.DefaultTimeout || d.Flow.BreakerOff {
					t.Errorf("destination = %+v", d)
				}
				return
			}
			var ie *registry.InvalidError
			if err == nil || !asInvalid(err, &ie) || ie.Field != tc.field {
				t.Errorf("err = %v, want one on %s", err, tc.field)
			}
		})
	}
}

func asInvalid(err error, target **registry.InvalidError) bool { return errors.As(err, target) }
