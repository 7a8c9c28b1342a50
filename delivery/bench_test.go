package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/registry"
)

// BenchmarkDeliver measures the pipeline's capacity to one subscriber, in
// process: events published by 32 goroutines (no HTTP in front), stored,
// consumed, POSTed to a sink on 127.0.0.1 (the standard envelope, signed)
// and recorded in the delivery log. One op is one event delivered; the
// sink, the engine and the pipeline share the machine's cores.
//
//	go test -run '^$' -bench Deliver -benchtime 20000x ./delivery/
func BenchmarkDeliver(b *testing.B) {
	var got atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	var want atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		if got.Add(1) >= want.Load() {
			once.Do(func() { close(done) })
		}
	}))
	defer sink.Close()

	ctx := testenv.Context(b)
	eng := testenv.Engine(b)
	reg := registry.New(eng, testGuard(), nil)
	if err := reg.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer reg.Stop()
	if _, err := reg.CreateSubscription(ctx, registry.Subscription{ID: "bench", Name: "bench", Topics: []string{"bench.tick"}, URL: sink.URL}); err != nil {
		b.Fatal(err)
	}
	p := New(eng, reg, testGuard().Client(), nil, Options{})
	if err := p.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer p.Stop()

	data := json.RawMessage(`{"run":"bench","seq":1,"sent_ns":1764671000000000000}`)
	want.Store(int64(b.N))
	jobs := make(chan int, 256)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if _, err := p.Publish(ctx, &Event{ID: fmt.Sprintf("evt_%d", i), Topic: "bench.tick", Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := range b.N {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case <-done:
	case <-time.After(time.Duration(b.N)*time.Millisecond + 30*time.Second):
		b.Fatalf("%d of %d events delivered", got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
