package module

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const pinnedKey = "easylife-pinned-key-0123456789"

var easylifeNames = []string{"groupcreated", "sharepointcreated", "vivaengagecreated", "plannercreated", "onenotecreated"}

// TestIngressEasyLifeEndToEnd: all five EasyLife payloads are accepted and
// forwarded JSON-equal; a filter keeps the others from the sink; a sink that
// fails twice gets exactly one success after three attempts; passthrough
// reaches reverse_proxy with the hookgate headers and without the key.
func TestIngressEasyLifeEndToEnd(t *testing.T) {
	all := newSink(t)
	filtered := newSink(t)
	flaky := newSink(t, 500, 503)
	app := newSink(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow easylife {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			idempotency_header X-Request-Id
			forward %[2]s/all
		}
		workflow teams-only {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			filter `+"`"+`body.eventType in ["groupcreated", "sharepointcreated"]`+"`"+`
			forward %[3]s/filtered
		}
		workflow flaky {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			forward %[4]s/flaky {
				retry_schedule 100ms 100ms 100ms
			}
		}
		workflow app {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
		}
	}
	hookgate_api /api/hookgate/* {
		token %[6]s
	}
	reverse_proxy %[5]s
`, pinnedKey, all.URL, filtered.URL, flaky.URL, strings.TrimPrefix(app.URL, "http://"), testToken))

	for i, name := range easylifeNames {
		status, body := call(t, "POST", base+"/hooks/easylife/"+pinnedKey, easylife(t, name), "X-Request-Id", fmt.Sprint("req-", i))
		if status != http.StatusAccepted || body["status"] != "accepted" || body["id"] == "" {
			t.Fatalf("%s: %d %v", name, status, body)
		}
		status, body = call(t, "POST", base+"/hooks/teams-only/"+pinnedKey, easylife(t, name))
		want := "accepted"
		if name == "plannercreated" || name == "onenotecreated" {
			want = "filtered"
		}
		if status != http.StatusAccepted || body["status"] != want {
			t.Fatalf("teams-only %s: %d %v, want %s", name, status, body, want)
		}
	}
	// A retried webhook (same X-Request-Id) is a duplicate, delivered once.
	status, body := call(t, "POST", base+"/hooks/easylife/"+pinnedKey, easylife(t, "groupcreated"), "X-Request-Id", "req-0")
	if status != http.StatusOK || body["status"] != "duplicate" {
		t.Fatalf("duplicate: %d %v", status, body)
	}

	waitFor(t, "five deliveries", 10*time.Second, func() bool { return len(all.received()) >= 5 })
	waitFor(t, "three filtered deliveries", 10*time.Second, func() bool { return len(filtered.received()) >= 3 })
	time.Sleep(300 * time.Millisecond) // nothing more may come
	got := all.received()
	if len(got) != 5 {
		t.Fatalf("sink received %d requests, want 5", len(got))
	}
	for _, name := range easylifeNames {
		found := false
		for _, r := range got {
			found = found || jsonEqual(r.Body, easylife(t, name))
		}
		if !found {
			t.Errorf("%s was not forwarded JSON-equal", name)
		}
	}
	for _, r := range got {
		if r.Header.Get("Webhook-Id") == "" || r.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(r.Header.Get("User-Agent"), "hookgate/") {
			t.Errorf("delivery headers: %v", r.Header)
		}
	}
	for _, r := range filtered.received() {
		if strings.Contains(string(r.Body), "plannercreated") || strings.Contains(string(r.Body), "onenotecreated") {
			t.Errorf("a filtered event reached the sink: %s", r.Body[:60])
		}
	}
	if n := len(filtered.received()); n != 3 {
		t.Errorf("filtered sink got %d, want 3", n)
	}

	// Flaky target: 500, 503, then 200: one success after three attempts.
	status, body = call(t, "POST", base+"/hooks/flaky/"+pinnedKey, easylife(t, "groupcreated"))
	if status != http.StatusAccepted {
		t.Fatalf("flaky: %d %v", status, body)
	}
	eventID := body["id"].(string)
	waitFor(t, "three attempts", 10*time.Second, func() bool { return len(flaky.received()) >= 3 })
	var rec map[string]any
	waitFor(t, "delivery record succeeded", 5*time.Second, func() bool {
		_, list := apiCall(t, "GET", "/deliveries?event="+eventID, nil)
		ds, _ := list["deliveries"].([]any)
		if len(ds) != 1 {
			return false
		}
		rec = ds[0].(map[string]any)
		return rec["status"] == "succeeded"
	})
	if attempts := rec["attempts"].([]any); len(attempts) != 3 {
		t.Errorf("attempts = %d, want 3: %v", len(attempts), attempts)
	}
	time.Sleep(300 * time.Millisecond)
	reqs := flaky.received()
	if len(reqs) != 3 {
		t.Fatalf("flaky sink got %d requests, want 3", len(reqs))
	}
	if id := reqs[0].Header.Get("Webhook-Id"); id != eventID || reqs[2].Header.Get("Webhook-Id") != id {
		t.Errorf("webhook-id must be the event id on every retry: %q %q", id, reqs[2].Header.Get("Webhook-Id"))
	}

	// Passthrough to reverse_proxy, key in a header.
	status, _ = call(t, "POST", base+"/hooks/app", easylife(t, "sharepointcreated"), "X-Webhook-Key", pinnedKey)
	if status != http.StatusOK {
		t.Fatalf("passthrough: %d", status)
	}
	reqs = app.received()
	if len(reqs) != 1 {
		t.Fatalf("app got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Header.Get("X-Hookgate-Workflow") != "app" || r.Header.Get("X-Hookgate-Event-Id") == "" {
		t.Errorf("passthrough headers: %v", r.Header)
	}
	if r.Header.Get("X-Webhook-Key") != "" || strings.Contains(r.Path, pinnedKey) {
		t.Errorf("the key reached the app: %s %v", r.Path, r.Header)
	}
	if !jsonEqual(r.Body, easylife(t, "sharepointcreated")) {
		t.Errorf("passthrough body changed")
	}

	// Refusals, as JSON.
	for _, tc := range []struct {
		method, path, ctype, body string
		status                    int
	}{
		{"POST", "/hooks/easylife/wrong-key", "application/json", "{}", 401},
		{"POST", "/hooks/nosuch/" + pinnedKey, "application/json", "{}", 401},
		{"GET", "/hooks/easylife/" + pinnedKey, "", "", 405},
		{"POST", "/hooks/easylife/" + pinnedKey, "text/plain", "{}", 415},
		{"POST", "/hooks/easylife/" + pinnedKey, "application/json", `{"eventType":1}`, 422},
		{"POST", "/hooks/easylife/" + pinnedKey, "application/json", `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 413},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s, want %d JSON", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
		}
	}

	// Issue #8: a body announced as 200 GB is refused from its header, and
	// a streamed body over max_body is cut off at the limit.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /hooks/easylife/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200000000000\r\n\r\n{}", pinnedKey)
	// net/http reads up to 256 KiB of an unread body before it replies:
	// end the sending side so that it stops waiting for the rest.
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("200 GB announced: %d, want 413", resp.StatusCode)
	}
	streamed := io.MultiReader(strings.NewReader(`{"pad":"`), strings.NewReader(strings.Repeat("x", 2<<20)), strings.NewReader(`"}`))
	req, _ := http.NewRequest("POST", base+"/hooks/easylife/"+pinnedKey, streamed)
	req.Header.Set("Content-Type", "application/json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("streamed over max_body (length %d): %d, want 413", req.ContentLength, resp.StatusCode)
	}
}

// TestIngressRegenerate: a config workflow without a pinned key gets one from
// the API; regenerating refuses the old key at once.
func TestIngressRegenerate(t *testing.T) {
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow phrase {
			schema ../examples/phrase/job-schema.json
		}
	}
	hookgate_api /api/hookgate/* {
		token %s
	}
	respond "app" 200
`, testToken))
	payload := `{"jobUid":"abc123","status":"COMPLETED","project":{"uid":"p1","name":"Demo"}}`
	status, _ := call(t, "POST", base+"/hooks/phrase/whatever", payload)
	if status != 401 {
		t.Fatalf("a keyless workflow must refuse: %d", status)
	}
	status, body := apiCall(t, "POST", "/workflows/phrase/regenerate", nil)
	if status != 200 {
		t.Fatalf("regenerate: %d %v", status, body)
	}
	key1 := body["key"].(string)
	if want := base + "/hooks/phrase/" + key1; body["url"] != want {
		t.Errorf("url %v, want %s", body["url"], want)
	}
	if status, _ = call(t, "POST", base+"/hooks/phrase/"+key1, payload); status != 200 {
		t.Fatalf("new key: %d", status)
	}
	_, body = apiCall(t, "POST", "/workflows/phrase/regenerate", nil)
	key2 := body["key"].(string)
	if status, _ = call(t, "POST", base+"/hooks/phrase/"+key1, payload); status != 401 {
		t.Fatalf("old key after regenerate: %d", status)
	}
	if status, _ = call(t, "POST", base+"/hooks/phrase/"+key2, payload); status != 200 {
		t.Fatalf("second key: %d", status)
	}
	if status, body = call(t, "POST", base+"/hooks/phrase/"+key2, `{"jobUid":1}`); status != 422 {
		t.Fatalf("schema violation: %d %v", status, body)
	}
}

// TestAccessLogRedaction checks the README's recipe: Caddy's access log
// keeps the workflow key out with a regexp filter on request>uri.
func TestAccessLogRedaction(t *testing.T) {
	logFile := t.TempDir() + "/access.log"
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	log {
		output file %s
		format filter {
			request>uri regexp "^(/hooks/[^/]+/)[^/?]+" "${1}REDACTED"
		}
	}
	hookgate_ingress /hooks/* {
		workflow logged {
			key %s
		}
	}
	respond "app" 200
`, logFile, pinnedKey))
	if status, body := call(t, "POST", base+"/hooks/logged/"+pinnedKey, nil); status != 200 {
		t.Fatalf("webhook: %d %v", status, body)
	}
	var logged string
	waitFor(t, "access log line", 5*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		logged = string(b)
		return strings.Contains(logged, "/hooks/logged/")
	})
	if strings.Contains(logged, pinnedKey) {
		t.Fatalf("the key is in the access log: %s", logged)
	}
	if !strings.Contains(logged, "/hooks/logged/REDACTED") {
		t.Fatalf("redacted URI missing: %s", logged)
	}
}
