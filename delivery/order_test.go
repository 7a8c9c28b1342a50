package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/registry"
)

// orderSink is an HTTP sink on 127.0.0.1 for ordered deliveries: every
// body's data is {"k": key, "n": index of the event within its key}. It
// records each key's attempts and successes in the order they arrive, and
// counts the times two attempts of one key overlapped.
type orderSink struct {
	*sink
	mu        sync.Mutex
	attempts  map[string][]int
	successes map[string][]int
	inflight  map[string]int
	overlaps  atomic.Int32
	// fail decides the answer to an attempt: 0 succeeds with 200, a status
	// answers it, -1 hangs until the client gives up.
	fail func(key string, n, attempt int) int
}

func newOrderSink(t *testing.T, fail func(key string, n, attempt int) int) *orderSink {
	o := &orderSink{attempts: map[string][]int{}, successes: map[string][]int{}, inflight: map[string]int{}, fail: fail}
	o.sink = newSink(t, o.reply)
	return o
}

func (o *orderSink) reply(w http.ResponseWriter, r *http.Request, i int) {
	reqs := o.sink.requests()
	var body struct {
		Data struct {
			K string `json:"k"`
			N int    `json:"n"`
		} `json:"data"`
	}
	if err := json.Unmarshal(reqs[i-1].Body, &body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	k, n := body.Data.K, body.Data.N
	o.mu.Lock()
	o.inflight[k]++
	if o.inflight[k] > 1 {
		o.overlaps.Add(1)
	}
	attempt := 0
	for _, x := range o.attempts[k] {
		if x == n {
			attempt++
		}
	}
	o.attempts[k] = append(o.attempts[k], n)
	o.mu.Unlock()
	code := 0
	if o.fail != nil {
		code = o.fail(k, n, attempt)
	}
	if code == -1 {
		<-r.Context().Done()
	}
	o.mu.Lock()
	o.inflight[k]--
	if code == 0 {
		o.successes[k] = append(o.successes[k], n)
	}
	o.mu.Unlock()
	if code > 0 {
		w.WriteHeader(code)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (o *orderSink) succeeded(k string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.successes[k]...)
}

// check verifies that each key's attempts came in order (an event's
// retries before the next event, never an earlier event after a later one)
// and that every event of every key succeeded exactly once.
func (o *orderSink) check(t *testing.T, keys []string, n int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range keys {
		at := o.attempts[k]
		for i := 1; i < len(at); i++ {
			if at[i] < at[i-1] {
				t.Errorf("key %s: attempts out of order: %v", k, at)
				break
			}
		}
		if got := o.successes[k]; len(got) != n {
			t.Errorf("key %s: %d successes, want %d: %v", k, len(got), n, got)
		} else {
			for i, x := range got {
				if x != i {
					t.Errorf("key %s: successes %v, want 0..%d in order", k, got, n-1)
					break
				}
			}
		}
	}
	if v := o.overlaps.Load(); v > 0 {
		t.Errorf("%d attempts of one key overlapped", v)
	}
}

func (o *orderSink) done(keys []string, n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range keys {
		if len(o.successes[k]) < n {
			return false
		}
	}
	return true
}

// publishKeys publishes n events per key on topic, the events of one key
// from one goroutine (their publish order), the keys in parallel.
func (e *env) publishKeys(topic string, keys []string, n int) {
	e.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				ev := &Event{Topic: topic, Data: json.RawMessage(fmt.Sprintf(`{"k":%q,"n":%d,"RecordID":%q}`, k, i, k))}
				if _, err := e.pipe.Publish(e.ctx, ev); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatalf("Publish: %v", err)
	}
}

func fastRetries(attempts int) registry.Subscription {
	return registry.Subscription{MaxAttempts: attempts, Timeout: registry.Duration(300 * time.Millisecond),
		RetrySchedule: []registry.Duration{registry.Duration(20 * time.Millisecond), registry.Duration(100 * time.Millisecond)},
		FlowControl:   registry.FlowControl{Breaker: &registry.Breaker{Off: true}}}
}

// Events of one key are delivered one at a time, in publish order, with
// 500s and timeouts in the middle; a key whose head keeps failing holds up
// only itself; an unordered subscription to the same events is not held up.
func TestOrderedDeliveryPerKey(t *testing.T) {
	var stuckOpen atomic.Bool
	o := newOrderSink(t, func(k string, n, attempt int) int {
		switch {
		case k == "stuck" && n == 0 && !stuckOpen.Load():
			return http.StatusServiceUnavailable
		case n%4 == 1 && attempt < 2:
			return http.StatusInternalServerError
		case n%5 == 3 && attempt == 0:
			return -1 // times out
		}
		return 0
	})
	plain := newSink(t, nil)
	e := newEnv(t)
	sub := fastRetries(100)
	sub.ID, sub.Topics, sub.URL = "ord", []string{"rec.*"}, o.URL
	sub.Ordered, sub.OrderKey = true, "data.RecordID"
	e.subscribe(sub)
	e.subscribe(registry.Subscription{ID: "plain", Topics: []string{"rec.*"}, URL: plain.URL})
	e.start(Options{})

	keys := []string{"a", "b", "c", "d"}
	const n = 10
	e.publishKeys("rec.updated", append([]string{"stuck"}, keys...), n)

	// Every other key is delivered while the stuck key's head fails.
	if !waitFor(30*time.Second, func() bool { return o.done(keys, n) }) {
		o.check(t, keys, n)
		t.Fatal("the keys were not delivered while another key's head failed")
	}
	if got := o.succeeded("stuck"); len(got) != 0 {
		t.Fatalf("stuck key delivered %v before its head", got)
	}
	plain.waitCount(t, 5*n, 10*time.Second)
	if waitFor(5*time.Second, func() bool { return e.pipe.OrderHeldBack() == n-1 }) == false {
		t.Errorf("OrderHeldBack = %d, want %d (the stuck key's followers)", e.pipe.OrderHeldBack(), n-1)
	}
	stuckOpen.Store(true)
	all := append([]string{"stuck"}, keys...)
	if !waitFor(30*time.Second, func() bool { return o.done(all, n) }) {
		t.Error("not every event was delivered")
	}
	o.check(t, all, n)
	if got := e.pipe.OrderHeldBack(); got != 0 {
		t.Errorf("OrderHeldBack = %d after all were delivered", got)
	}
}

// Without order_key the destination's events are one key: strictly in
// order, one at a time, failures in the middle included; a delivery that
// fails for good lets the next go.
func TestOrderedDeliveryWholeDestination(t *testing.T) {
	o := newOrderSink(t, func(_ string, n, attempt int) int {
		switch {
		case n == 4:
			return http.StatusInternalServerError // fails for good (3 attempts)
		case n%3 == 2 && attempt == 0:
			return http.StatusBadGateway
		}
		return 0
	})
	e := newEnv(t)
	sub := fastRetries(3)
	sub.ID, sub.Topics, sub.URL, sub.Ordered = "whole", []string{"*"}, o.URL, true
	e.subscribe(sub)
	e.start(Options{})
	const n = 15
	e.publishKeys("t", []string{"x"}, n)
	if !waitFor(30*time.Second, func() bool { return len(o.succeeded("x")) >= n-1 }) {
		t.Fatalf("delivered %v", o.succeeded("x"))
	}
	o.mu.Lock()
	at := o.attempts["x"]
	o.mu.Unlock()
	for i := 1; i < len(at); i++ {
		if at[i] < at[i-1] {
			t.Fatalf("attempts out of order: %v", at)
		}
	}
	if got := o.succeeded("x"); len(got) != n-1 || got[3] != 3 || got[4] != 5 {
		t.Errorf("successes %v, want 0..14 without 4", got)
	}
	if v := o.sink.maxIn.Load(); v != 1 {
		t.Errorf("%d attempts in flight at once, want 1", v)
	}
}

// The order holds across a restart: the followers of a failing head wait in
// the stream (beyond a small in-memory bound), the new pipeline finds them
// there, and nothing is lost.
func TestOrderedDeliveryRestart(t *testing.T) {
	var open atomic.Bool
	o := newOrderSink(t, func(k string, n, attempt int) int {
		if n == 0 && !open.Load() {
			return http.StatusInternalServerError
		}
		if n%7 == 5 && attempt == 0 {
			return http.StatusInternalServerError
		}
		return 0
	})
	e := newEnv(t)
	sub := fastRetries(100)
	sub.ID, sub.Topics, sub.URL = "rs", []string{"*"}, o.URL
	sub.Ordered, sub.OrderKey = true, "data.k"
	e.subscribe(sub)
	// PerDestination 2: at most 8 held in memory, the rest go back to
	// the stream.
	first := e.start(Options{PerDestination: 2})
	keys := []string{"p", "q"}
	const n = 20
	e.publishKeys("t", keys, n)
	if !waitFor(10*time.Second, func() bool { return first.OrderHeldBack() == 2*(n-1) }) {
		t.Fatalf("OrderHeldBack = %d, want %d", first.OrderHeldBack(), 2*(n-1))
	}
	for _, k := range keys {
		if got := o.succeeded(k); len(got) != 0 {
			t.Fatalf("key %s: %v delivered before its head", k, got)
		}
	}
	e.stopPipeline(first)
	open.Store(true)
	time.Sleep(100 * time.Millisecond)
	second := e.start(Options{PerDestination: 2})
	if !waitFor(60*time.Second, func() bool { return o.done(keys, n) }) {
		t.Errorf("after the restart: p %v, q %v", o.succeeded("p"), o.succeeded("q"))
	}
	o.check(t, keys, n)
	if got := second.OrderHeldBack(); got != 0 {
		t.Errorf("OrderHeldBack = %d after all were delivered", got)
	}
}

// An ordered destination alone on its events still goes through the
// fan-out (so that its unfinished deliveries are all in the queue stream);
// an unordered one alone keeps the direct path.
func TestOrderedSkipsDirectPath(t *testing.T) {
	o := newOrderSink(t, nil)
	e := newEnv(t)
	sub := fastRetries(3)
	sub.ID, sub.Topics, sub.URL, sub.Ordered = "alone", []string{"only"}, o.URL, true
	e.subscribe(sub)
	e.start(Options{})
	e.publishKeys("only", []string{"z"}, 3)
	if !waitFor(10*time.Second, func() bool { return o.done([]string{"z"}, 3) }) {
		t.Fatalf("delivered %v", o.succeeded("z"))
	}
	o.check(t, []string{"z"}, 3)
	info, err := e.eng.QueueStream.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq < 3 {
		t.Errorf("queue stream last seq %d: the deliveries did not go through the fan-out", info.State.LastSeq)
	}
}

func TestOrderDeferDelay(t *testing.T) {
	for _, tc := range []struct {
		pos  int
		want time.Duration
	}{
		{0, orderRecheck}, {255, orderRecheck}, {256, orderRecheck}, {512, 4 * orderRecheck},
		{768, 9 * orderRecheck}, {2560, 100 * orderRecheck}, {10000, orderDeferMax}, {1 << 40, orderDeferMax},
	} {
		if got := orderDeferDelay(tc.pos, 256); got != tc.want {
			t.Errorf("orderDeferDelay(%d, 256) = %v, want %v", tc.pos, got, tc.want)
		}
	}
}

// Two instances sharing the engine (the consumers hand each some of the
// deliveries): one key's events are still attempted one at a time, in
// order, whichever instance holds them.
func TestOrderedDeliveryTwoInstances(t *testing.T) {
	o := newOrderSink(t, func(_ string, n, attempt int) int {
		if n%4 == 2 && attempt == 0 {
			return http.StatusInternalServerError
		}
		return 0
	})
	e := newEnv(t)
	sub := fastRetries(100)
	sub.ID, sub.Topics, sub.URL = "two", []string{"*"}, o.URL
	sub.Ordered, sub.OrderKey = true, "data.k"
	e.subscribe(sub)
	other := e.newPipeline(Options{PerDestination: 2})
	if err := other.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.start(Options{PerDestination: 2})
	keys := []string{"m", "n"}
	const n = 12
	e.publishKeys("t", keys, n)
	if !waitFor(60*time.Second, func() bool { return o.done(keys, n) }) {
		t.Errorf("m %v, n %v", o.succeeded("m"), o.succeeded("n"))
	}
	o.check(t, keys, n)
}

// Events whose key does not evaluate to a string or a number (missing
// here) go together under the key "": in order, one at a time, none lost.
func TestOrderedDeliveryKeyMissing(t *testing.T) {
	o := newOrderSink(t, func(_ string, n, attempt int) int {
		if n%3 == 1 && attempt == 0 {
			return http.StatusInternalServerError
		}
		return 0
	})
	e := newEnv(t)
	sub := fastRetries(10)
	sub.ID, sub.Topics, sub.URL = "nokey", []string{"*"}, o.URL
	sub.Ordered, sub.OrderKey = true, "data.missing.id"
	e.subscribe(sub)
	e.start(Options{})
	const n = 8
	e.publishKeys("t", []string{"x", "y"}, n) // two keys by the sink's reckoning, one "" for the gate
	if !waitFor(30*time.Second, func() bool { return o.done([]string{"x", "y"}, n) }) {
		t.Fatalf("x %v, y %v", o.succeeded("x"), o.succeeded("y"))
	}
	o.check(t, []string{"x", "y"}, n)
	if v := o.sink.maxIn.Load(); v != 1 {
		t.Errorf("%d attempts in flight at once, want 1 (one key)", v)
	}
}

// Turning ordered on while deliveries are queued (and retrying) orders
// them too: from then on they succeed in publish order.
func TestOrderedTurnedOnWithQueuedDeliveries(t *testing.T) {
	var open atomic.Bool
	o := newOrderSink(t, func(_ string, _, _ int) int {
		if !open.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	other := newSink(t, nil)
	e := newEnv(t)
	sub := fastRetries(100)
	sub.ID, sub.Topics, sub.URL = "late", []string{"*"}, o.URL
	sub.RetrySchedule = []registry.Duration{registry.Duration(50 * time.Millisecond), registry.Duration(300 * time.Millisecond)}
	e.subscribe(sub)
	e.subscribe(registry.Subscription{ID: "other", Topics: []string{"*"}, URL: other.URL})
	e.start(Options{})
	const n = 10
	e.publishKeys("t", []string{"k"}, n)
	if !waitFor(10*time.Second, func() bool { return o.sink.count() >= 2*n }) {
		t.Fatalf("%d attempts before ordering", o.sink.count())
	}
	if _, err := e.reg.UpdateSubscription(e.ctx, "late", []byte(`{"ordered":true,"order_key":"data.k"}`)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return e.pipe.OrderHeldBack() == n-1 }) {
		t.Fatalf("OrderHeldBack = %d, want %d", e.pipe.OrderHeldBack(), n-1)
	}
	open.Store(true)
	if !waitFor(30*time.Second, func() bool { return o.done([]string{"k"}, n) }) {
		t.Fatalf("delivered %v", o.succeeded("k"))
	}
	if got := o.succeeded("k"); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("successes %v, want 0..9 in order", got)
	}
}
