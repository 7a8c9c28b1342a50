package module

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Issue #8, finding 6: the first requests a handler serves arrive together
// (a burst right after a start or a reload). Run under -race, this drives
// one fresh ingress handler from many goroutines at once, on a forwarding
// and a passthrough workflow.
func TestIngressConcurrentFirstRequests(t *testing.T) {
	target := newSink(t)
	app := newSink(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow fwd {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			forward %[2]s/fwd
		}
		workflow pass {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
		}
	}
	reverse_proxy %[3]s
`, pinnedKey, target.URL, strings.TrimPrefix(app.URL, "http://")))

	body := easylife(t, "groupcreated")
	const n = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			wf := "fwd"
			if i%2 == 1 {
				wf = "pass"
			}
			resp, err := http.Post(base+"/hooks/"+wf+"/"+pinnedKey, "application/json", bytesReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	for i, s := range statuses {
		want := http.StatusAccepted
		if i%2 == 1 {
			want = http.StatusOK // the app's answer
		}
		if s != want {
			t.Errorf("request %d: status %d, want %d", i, s, want)
		}
	}
	if got := len(app.received()); got != n/2 {
		t.Errorf("the app received %d passthrough requests, want %d", got, n/2)
	}
}

// Issue #8, finding 8: a passthrough workflow honours idempotency_header. A
// retry within the dedupe window is answered 200 duplicate and does not
// reach the app; a request the app failed to take (5xx) may be retried.
func TestPassthroughIdempotency(t *testing.T) {
	app := newSink(t)
	flaky := newSink(t, http.StatusBadGateway)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	handle /hooks/flaky/* {
		hookgate_ingress /hooks/* {
			workflow flaky {
				sample ../examples/easylife/groupcreated.json
				key %[1]s
				idempotency_header X-Request-Id
			}
		}
		reverse_proxy %[3]s
	}
	handle {
		hookgate_ingress /hooks/* {
			workflow pass {
				sample ../examples/easylife/groupcreated.json
				key %[1]s
				idempotency_header X-Request-Id
			}
		}
		reverse_proxy %[2]s
	}
`, pinnedKey, strings.TrimPrefix(app.URL, "http://"), strings.TrimPrefix(flaky.URL, "http://")))

	body := easylife(t, "groupcreated")
	url := base + "/hooks/pass/" + pinnedKey
	if status, out := call(t, "POST", url, body, "X-Request-Id", "delivery-1"); status != http.StatusOK || out["ok"] != true {
		t.Fatalf("first: %d %v, want the app's answer", status, out)
	}
	status, out := call(t, "POST", url, body, "X-Request-Id", "delivery-1")
	if status != http.StatusOK || out["status"] != "duplicate" || out["id"] == "" {
		t.Fatalf("retry: %d %v, want 200 duplicate", status, out)
	}
	if status, out := call(t, "POST", url, body, "X-Request-Id", "delivery-2"); status != http.StatusOK || out["ok"] != true {
		t.Fatalf("another id: %d %v", status, out)
	}
	if status, out := call(t, "POST", url, body); status != http.StatusOK || out["ok"] != true {
		t.Fatalf("no idempotency header: %d %v", status, out)
	}
	got := app.received()
	if len(got) != 3 {
		t.Fatalf("the app received %d requests, want 3 (the retry is not passed on)", len(got))
	}
	if got[0].Header.Get("X-Hookgate-Event-Id") == got[1].Header.Get("X-Hookgate-Event-Id") {
		t.Error("two different requests share an event id")
	}

	// The app failed the first try: the retry is passed on.
	furl := base + "/hooks/flaky/" + pinnedKey
	if status, _ := call(t, "POST", furl, body, "X-Request-Id", "delivery-3"); status != http.StatusBadGateway {
		t.Fatalf("first try: %d, want the app's 502", status)
	}
	if status, out := call(t, "POST", furl, body, "X-Request-Id", "delivery-3"); status != http.StatusOK || out["ok"] != true {
		t.Fatalf("retry after a failure: %d %v, want the app's answer", status, out)
	}
	if status, out := call(t, "POST", furl, body, "X-Request-Id", "delivery-3"); status != http.StatusOK || out["status"] != "duplicate" {
		t.Fatalf("retry after the success: %d %v, want 200 duplicate", status, out)
	}
	if n := len(flaky.received()); n != 2 {
		t.Errorf("the flaky app received %d requests, want 2", n)
	}
}
