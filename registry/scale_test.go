package registry

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// putAll writes n documents into a bucket with asynchronous publishes (a
// KV put is a publish on $KV.<bucket>.<key>), 1,000 in flight at most, and
// waits for every ack.
func putAll(t *testing.T, ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, n int, doc func(i int) (string, []byte)) {
	t.Helper()
	const inFlight = 1000
	for from := 0; from < n; from += inFlight {
		acks := make([]jetstream.PubAckFuture, 0, inFlight)
		for i := from; i < min(from+inFlight, n); i++ {
			k, v := doc(i)
			f, err := js.PublishAsync("$KV."+kv.Bucket()+"."+k, v)
			if err != nil {
				t.Fatalf("publishing %s: %v", k, err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publishing %s: %v", f.Msg().Subject, err)
			case <-ctx.Done():
				t.Fatal("publishes not acknowledged in time")
			}
		}
	}
}

// A restart with 10,000 workflows (each with a sample contract and a
// target) and 10,000 subscriptions loads within a few seconds: the initial
// values are compiled in parallel and applied as one change. Compiling a
// workflow's sample contract dominates (about 1ms each without -race).
func TestStartAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 resources")
	}
	const n = 10000
	eng := openEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seedStart := time.Now()
	putAll(t, ctx, eng.JetStream(), eng.Workflows, n, func(i int) (string, []byte) {
		id := fmt.Sprintf("wf%05d", i)
		return id, fmt.Appendf(nil, `{"id":%q,"sample":{"eventType":"groupcreated","groupId":"g%d","members":[{"id":1,"mail":"a@b.c"}]},"targets":[{"url":"http://127.0.0.1:9/%s"}]}`, id, i, id)
	})
	putAll(t, ctx, eng.JetStream(), eng.Subscriptions, n, func(i int) (string, []byte) {
		id := fmt.Sprintf("sub%05d", i)
		return id, fmt.Appendf(nil, `{"id":%q,"name":%q,"topics":["topic.%d","ns%d.*"],"url":"http://127.0.0.1:9/%s","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`, id, id, i%1000, i%50, id)
	})
	t.Logf("seeded %d workflows and %d subscriptions in %v", n, n, time.Since(seedStart))

	cpu0, measured := processCPU()
	start := time.Now()
	r := New(eng, testGuard(), nil)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	cpu1, _ := processCPU()
	t.Cleanup(r.Stop)
	t.Logf("start with %d workflows and %d subscriptions: %v, %v of CPU (GOMAXPROCS %d)", n, n, took, cpu1-cpu0, runtime.GOMAXPROCS(0))
	if got := r.workflows.len(); got != n {
		t.Fatalf("%d workflows loaded, want %d", got, n)
	}
	if got := r.subscriptions.len(); got != n {
		t.Fatalf("%d subscriptions loaded, want %d", got, n)
	}
	if got := r.destinations.len(); got != 2*n {
		t.Errorf("%d destinations, want %d", got, 2*n)
	}
	if w, ok := r.Workflow("wf01234"); !ok || w.Contract == nil || len(w.Targets) != 1 {
		t.Errorf("wf01234 loaded as %+v", w)
	}
	if subs := r.SubscriptionsForTopic("topic.7"); len(subs) != n/1000 {
		t.Errorf("topic.7 has %d subscriptions, want %d", len(subs), n/1000)
	}
	// The budget is 20s on two cores, with -race. The machine may be
	// shared: the CPU time spent is what is held to it, 2 × 20s.
	if measured && cpu1-cpu0 > 40*time.Second {
		t.Errorf("start used %v of CPU, want under 40s (20s on two cores)", cpu1-cpu0)
	}
}

// Creating subscriptions does not get slower as they grow: the median
// latency of the last 500 of 10,000 creates through the store is under
// twice that of the first 500 (plus 1ms of slack for a shared machine).
func TestCreateLatencyFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 subscriptions")
	}
	const n, window = 10000, 500
	_, r := newTestRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lat := make([]time.Duration, n)
	for i := range n {
		id := fmt.Sprintf("s%05d", i)
		start := time.Now()
		if _, err := r.CreateSubscription(ctx, Subscription{ID: id, Name: id,
			Topics: []string{fmt.Sprintf("topic.%d", i%1000), "*"}, URL: "http://127.0.0.1:9/"}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		lat[i] = time.Since(start)
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	first, last := median(lat[:window]), median(lat[n-window:])
	var trend []time.Duration // medians of every 2,000 creates
	for i := 0; i < n; i += 2000 {
		trend = append(trend, median(lat[i:i+2000]).Round(time.Microsecond))
	}
	t.Logf("median create latency: first %d %v, last %d %v; by 2,000: %v", window, first, window, last, trend)
	if last > 2*first+time.Millisecond {
		t.Errorf("creates got slower: median %v for the last %d, %v for the first %d", last, window, first, window)
	}
	if got := len(r.SubscriptionsForTopic("topic.1")); got != n {
		t.Errorf("topic.1 has %d subscriptions (all match \"*\"), want %d", got, n)
	}
}
