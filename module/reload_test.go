package module

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// pooled returns the runtimes in the usage pool.
func pooled() []*runtime {
	var out []*runtime
	runtimes.Range(func(_, v any) bool {
		out = append(out, v.(*runtime))
		return true
	})
	return out
}

// TestReloadKeepsEngine: 20 reloads with the same engine config keep one
// engine (the same embedded server) and lose no accepted webhook sent while
// they happen; a reload that changes storage_dir moves to a new engine and
// shuts the old one down.
func TestReloadKeepsEngine(t *testing.T) {
	target := newSink(t)
	dir := t.TempDir()
	site := func(i int) string {
		return fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow reload {
			sample ../examples/easylife/groupcreated.json
			key %s
			forward %s/in
		}
	}
	hookgate_api /api/hookgate/* {
		token %s
	}
	respond "generation %d" 200
`, pinnedKey, target.URL, testToken, i)
	}
	startCaddy(t, dir, "", site(0))
	rts := pooled()
	if len(rts) != 1 {
		t.Fatalf("%d engines in the pool, want 1", len(rts))
	}
	first := rts[0]
	srv := first.eng.Server()

	// Data written before the reloads.
	if status, body := apiCall(t, "POST", "/workflows", map[string]any{"id": "from-api"}); status != 201 {
		t.Fatalf("create workflow: %d %v", status, body)
	}

	// Webhooks sent during the reloads.
	stop := make(chan struct{})
	var mu sync.Mutex
	var accepted []string
	refused := 0
	var reasons []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		body := easylife(t, "groupcreated")
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("POST", base+"/hooks/reload/"+pinnedKey, bytesReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			mu.Lock()
			if err == nil && resp.StatusCode == http.StatusAccepted {
				var out map[string]any
				decodeJSON(resp, &out)
				accepted = append(accepted, out["id"].(string))
			} else {
				refused++
				if err != nil {
					reasons = append(reasons, err.Error())
				} else {
					reasons = append(reasons, resp.Status)
				}
			}
			mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// The generation is read on a new connection each time: a kept-alive
	// one, opened by the webhook sender just before a reload, reaches the
	// previous configuration's server during its grace period.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	generation := func() string {
		resp, err := fresh.Get(base + "/")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for i := 1; i <= 20; i++ {
		startCaddy(t, dir, "", site(i))
		if got := generation(); got != fmt.Sprintf("generation %d", i) {
			t.Fatalf("reload %d not in effect: %q", i, got)
		}
		if rts := pooled(); len(rts) != 1 || rts[0] != first || rts[0].eng.Server() != srv {
			t.Fatalf("reload %d replaced the engine", i)
		}
	}
	close(stop)
	wg.Wait()
	if !srv.Running() {
		t.Fatal("the embedded server stopped during reloads")
	}
	mu.Lock()
	t.Logf("%d webhooks accepted during 20 reloads, %d refused %v", len(accepted), refused, reasons)
	want := append([]string(nil), accepted...)
	mu.Unlock()
	if len(want) == 0 {
		t.Fatal("no webhook was accepted during the reloads")
	}
	waitFor(t, "every accepted webhook delivered", 20*time.Second, func() bool {
		got := map[string]bool{}
		for _, r := range target.received() {
			got[r.Header.Get("Webhook-Id")] = true
		}
		for _, id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})
	if status, _ := apiCall(t, "GET", "/workflows/from-api", nil); status != 200 {
		t.Fatalf("workflow created before the reloads is gone: %d", status)
	}

	// A new storage_dir is a new engine; the old one is shut down.
	startCaddy(t, t.TempDir(), "", site(21))
	rts = pooled()
	if len(rts) != 1 || rts[0] == first {
		t.Fatalf("storage_dir change kept the old engine (%d in pool)", len(rts))
	}
	waitFor(t, "old engine shut down", 5*time.Second, func() bool { return !srv.Running() })
	if status, _ := apiCall(t, "GET", "/workflows/from-api", nil); status != 404 {
		t.Fatalf("the new engine should not have the old engine's workflow: %d", status)
	}
	var _ *server.Server = srv
}
