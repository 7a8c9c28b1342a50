package delivery

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/registry"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// The heap does not grow with retained events: three rounds of 40,000
// delivered events, measured after each; the slope between the first and the
// last must stay under 100 bytes per event. A soak test:
// HOOKGATE_SOAK=1 go test -run TestHeapFlatWithRetainedEvents -v ./delivery/
func TestHeapFlatWithRetainedEvents(t *testing.T) {
	if os.Getenv("HOOKGATE_SOAK") == "" {
		t.Skip("soak test: set HOOKGATE_SOAK=1")
	}
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	s := struct{ URL string }{srv.URL}
	e := newEnv(t)
	if _, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "w", Targets: []registry.Target{{URL: s.URL}}}); err != nil {
		t.Fatal(err)
	}
	e.start(Options{})
	h0 := heapInUse()
	const n = 40000
	data := json.RawMessage(`{"eventType":"groupcreated","groupId":"8c1c3a4e-4b5f-4d3a-9f1e-2a7b9c0d1e2f","displayName":"Project Falcon","owner":"someone@example.com"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	round := func() uint64 {
		var wg sync.WaitGroup
		before := got.Load()
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n/16; i++ {
					if _, err := e.pipe.Publish(ctx, &Event{Workflow: "w", Data: data}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if !waitFor(120*time.Second, func() bool { return got.Load() >= before+n/16*16 }) {
			t.Fatal("not delivered")
		}
		time.Sleep(3 * time.Second)
		return heapInUse()
	}
	h1 := round()
	h2 := round()
	h3 := round()
	t.Logf("heap %d MB -> %d -> %d -> %d MB: slope %d B/event", h0>>20, h1>>20, h2>>20, h3>>20, (int64(h3)-int64(h1))/(2*n))
	if slope := (int64(h3) - int64(h1)) / (2 * n); slope > 100 {
		t.Errorf("heap grows by %d bytes per retained event", slope)
	}
}
