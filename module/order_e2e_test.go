package module

import (
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
)

// keySink is an HTTP target on 127.0.0.1 for ordered deliveries: each body
// carries {"k": key, "n": index within the key} (at the top or under
// "data"). It records every attempt and every success per key, in arrival
// order, and counts attempts of one key that overlapped.
type keySink struct {
	*httptest.Server
	mu        sync.Mutex
	attempts  map[string][]int
	successes map[string][]int
	inflight  map[string]int
	overlaps  atomic.Int32
	fail      func(k string, n, attempt int) int
}

func newKeySink(t *testing.T, fail func(k string, n, attempt int) int) *keySink {
	s := &keySink{attempts: map[string][]int{}, successes: map[string][]int{}, inflight: map[string]int{}, fail: fail}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		type kn struct {
			K string `json:"k"`
			N int    `json:"n"`
		}
		var body struct {
			kn
			Data *kn `json:"data"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		v := body.kn
		if body.Data != nil {
			v = *body.Data
		}
		s.mu.Lock()
		s.inflight[v.K]++
		if s.inflight[v.K] > 1 {
			s.overlaps.Add(1)
		}
		attempt := 0
		for _, x := range s.attempts[v.K] {
			if x == v.N {
				attempt++
			}
		}
		s.attempts[v.K] = append(s.attempts[v.K], v.N)
		s.mu.Unlock()
		status := http.StatusOK
		if c := s.fail(v.K, v.N, attempt); c != 0 {
			status = c
		}
		s.mu.Lock()
		s.inflight[v.K]--
		if status == http.StatusOK {
			s.successes[v.K] = append(s.successes[v.K], v.N)
		}
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *keySink) succeeded(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.successes[k])
}

// check verifies each key's attempts in order and its n successes 0..n-1.
func (s *keySink) check(t *testing.T, keys []string, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		at := s.attempts[k]
		for i := 1; i < len(at); i++ {
			if at[i] < at[i-1] {
				t.Errorf("key %s: attempts out of order: %v", k, at)
				break
			}
		}
		got := s.successes[k]
		ok := len(got) == n
		for i := range got {
			ok = ok && got[i] == i
		}
		if !ok {
			t.Errorf("key %s: successes %v, want 0..%d in order", k, got, n-1)
		}
	}
	if v := s.overlaps.Load(); v > 0 {
		t.Errorf("%d attempts of one key overlapped", v)
	}
}

// TestOrderedDeliveryFromCaddyfile (issue #9): a subscription with ordered
// and order_key, and an ordered forward target, through real Caddy: with
// 500s in the middle and one key's head failing for a while, each key's
// events reach the sink in publish order, one at a time, none lost, and the
// other keys are not held up; the API shows the options, the metrics the
// held-back deliveries.
func TestOrderedDeliveryFromCaddyfile(t *testing.T) {
	var release atomic.Bool
	s := newKeySink(t, func(k string, n, attempt int) int {
		switch {
		case k == "slow" && n == 0 && !release.Load():
			return http.StatusServiceUnavailable
		case n%3 == 1 && attempt == 0:
			return http.StatusInternalServerError
		}
		return 0
	})
	sample := filepath.Join(t.TempDir(), "sample.json")
	if err := os.WriteFile(sample, []byte(`{"k": "wf", "n": 0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startCaddy(t, t.TempDir(), fmt.Sprintf(`
		topic rec.updated
		subscription ordered-sub {
			topics rec.updated
			url %s/sub
			ordered
			order_key `+"`data.RecordID`"+`
			max_attempts 100
			retry_schedule 20ms 100ms
			breaker off
		}
`, s.URL), fmt.Sprintf(`
	handle /metrics {
		metrics
	}
	hookgate_ingress /hooks/* {
		workflow seq {
			sample %s
			key %s
			forward %s/wf {
				id in-order
				ordered
				retry_schedule 20ms 50ms
				breaker off
			}
		}
	}
%s`, sample, pinnedKey, s.URL, apiBlock))

	keys := []string{"a", "b", "c"}
	const n = 8
	var wg sync.WaitGroup
	for _, k := range append([]string{"slow"}, keys...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				status, body := publish(t, map[string]any{"topic": "rec.updated", "data": map[string]any{"RecordID": k, "k": k, "n": i}})
				if status != http.StatusAccepted {
					t.Errorf("publish %s %d: %d %v", k, i, status, body)
					return
				}
			}
		}()
	}
	for i := range n {
		if status, body := call(t, "POST", base+"/hooks/seq/"+pinnedKey, map[string]any{"k": "wf", "n": i}); status != http.StatusAccepted {
			t.Fatalf("webhook %d: %d %v", i, status, body)
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	waitFor(t, "the other keys and the workflow target delivered while the slow key's head fails", 30*time.Second, func() bool {
		for _, k := range append([]string{"wf"}, keys...) {
			if s.succeeded(k) < n {
				return false
			}
		}
		return true
	})
	if got := s.succeeded("slow"); got != 0 {
		t.Fatalf("slow key: %d delivered before its head", got)
	}
	var text string
	waitFor(t, "the held-back gauge", 10*time.Second, func() bool {
		_, body := call(t, "GET", base+"/metrics", nil)
		text, _ = body["_raw"].(string)
		return strings.Contains(text, fmt.Sprintf("hookgate_delivery_ordered_held_back %d", n-1))
	})
	_, sub := apiCall(t, "GET", "/subscriptions/ordered-sub", nil)
	if sub["ordered"] != true || sub["order_key"] != "data.RecordID" {
		t.Errorf("subscription view: ordered %v, order_key %v", sub["ordered"], sub["order_key"])
	}
	_, wf := apiCall(t, "GET", "/workflows/seq", nil)
	if targets, _ := wf["targets"].([]any); len(targets) != 1 || targets[0].(map[string]any)["ordered"] != true {
		t.Errorf("workflow view: %v", wf["targets"])
	}

	release.Store(true)
	waitFor(t, "the slow key delivered", 30*time.Second, func() bool { return s.succeeded("slow") == n })
	s.check(t, append([]string{"slow", "wf"}, keys...), n)
	waitFor(t, "the held-back gauge back to 0", 10*time.Second, func() bool {
		_, body := call(t, "GET", base+"/metrics", nil)
		text, _ = body["_raw"].(string)
		return strings.Contains(text, "hookgate_delivery_ordered_held_back 0")
	})
}

// Ordering options in the Caddyfile: adapted into the JSON config, and
// refused with file:line when wrong.
func TestAdaptOrdering(t *testing.T) {
	cfg, err := adapt(t, "{\n\thookgate {\n\t\tsubscription s {\n\t\t\ttopics a\n\t\t\turl http://example.com/\n\t\t\tordered\n\t\t\torder_key `data.RecordID`\n\t\t}\n\t}\n}\n:8080 {\n\thookgate_ingress {\n\t\tworkflow w {\n\t\t\tforward http://example.com/ {\n\t\t\t\tordered\n\t\t\t}\n\t\t}\n\t}\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := hookgateApp(t, cfg); !strings.Contains(got, `"order_key":"data.RecordID","ordered":true`) {
		t.Errorf("global option: %s", got)
	}
	b, _ := json.Marshal(cfg)
	if !strings.Contains(string(b), `"targets":[{"ordered":true,"url":"http://example.com/"}]`) {
		t.Errorf("forward target not ordered: %s", b)
	}

	for _, tc := range []struct{ name, global, site, want string }{
		{"bad order_key", "subscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tordered\n\t\torder_key `data.(`\n\t}", "",
			`order_key: order_key "data.(": `},
		{"bad order_key line", "subscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tordered\n\t\torder_key `data.(`\n\t}", "",
			`at Caddyfile:7`},
		{"order_key without ordered", "subscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\torder_key `data.RecordID`\n\t}", "",
			`subscription "s": order_key: is set but ordered is not, at Caddyfile:6`},
		{"ordered takes no argument", "subscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tordered yes\n\t}", "",
			`wrong argument count`},
		{"order_key needs its expression", "subscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tordered\n\t\torder_key\n\t}", "",
			`wrong argument count`},
		{"target order_key unknown name", "", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\tordered\n\t\t\torder_key `body.id`\n\t\t}\n\t}\n}",
			`order_key "body.id": unknown name body (1:1), at Caddyfile:11`},
		{"target order_key without ordered", "", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\torder_key `data.id`\n\t\t}\n\t}\n}",
			`workflow "w": targets[0].order_key: is set but ordered is not, at Caddyfile:9`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, "{\n\thookgate {\n\t"+tc.global+"\n\t}\n}\n:8080 {\n"+tc.site+"\n}\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
