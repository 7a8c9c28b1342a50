package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
)

// A restart of the pipeline (and of the registry and engine over the same
// storage) re-sends nothing that was delivered, to destinations declared in
// the configuration (which are declared again after the restart) as well as
// to API ones; a delivery waiting for a retry is still retried.
func TestRestartResendsNothing(t *testing.T) {
	ok := newSink(t, nil)
	flaky := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	dir := t.TempDir()
	const n = 200
	var restarted time.Time
	run := func(publish bool) {
		ctx := testCtx(t)
		eng, err := engine.Open(ctx, engine.Config{StorageDir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		reg := registry.New(eng, testGuard(), nil)
		if err := reg.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer reg.Stop()
		conf, err := registry.CompileSubscription(registry.Subscription{ID: "conf", Name: "conf", Topics: []string{"t"}, URL: ok.URL}, "", testGuard())
		if err != nil {
			t.Fatal(err)
		}
		wf, err := registry.CompileWorkflow(registry.Workflow{ID: "wf", Targets: []registry.Target{{URL: ok.URL}}}, testGuard())
		if err != nil {
			t.Fatal(err)
		}
		set := reg.DeclareConfig([]*registry.CompiledWorkflow{wf}, nil, []*registry.CompiledSubscription{conf})
		defer set.Release()
		if publish {
			if _, err := reg.CreateSubscription(ctx, registry.Subscription{ID: "flaky", Name: "flaky", Topics: []string{"r"}, URL: flaky.URL,
				RetrySchedule: []registry.Duration{registry.Duration(1500 * time.Millisecond)}}); err != nil {
				t.Fatal(err)
			}
		}
		p := New(eng, reg, testGuard().Client(), nil, Options{})
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		if publish {
			for i := range n {
				for _, ev := range []*Event{
					{Topic: "t", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))},
					{Workflow: "wf", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))},
				} {
					if _, err := p.Publish(ctx, ev); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := p.Publish(ctx, &Event{Topic: "r", Data: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			ok.waitCount(t, 2*n, 20*time.Second)
			flaky.waitCount(t, 1, 5*time.Second) // the retry is due after the restart
			return
		}
		flaky.waitCount(t, 2, 10*time.Second)
		// The retry was due 1.5 s after the failure, about when the
		// restart began. Its copy, parked just before the stop, must have
		// been taken by its parking consumer before that stopped: a copy
		// sent to a consumer as it goes waits out the ack wait (5 s from
		// when it was sent) after the restart too.
		if took := time.Since(restarted); took > 3500*time.Millisecond {
			t.Errorf("the retry due before the restart came %v after it", took)
		} else {
			t.Logf("retry %v after the restart", took)
		}
		time.Sleep(time.Second) // anything re-sent would arrive meanwhile
	}
	run(true)
	restarted = time.Now()
	run(false)
	if got := ok.count(); got != 2*n {
		t.Errorf("sink received %d requests over a restart, want %d (nothing re-sent)", got, 2*n)
	}
	if got := flaky.count(); got != 2 {
		t.Errorf("flaky sink received %d requests, want 2 (one failure, one retry after the restart)", got)
	}
}

// 10,000 destinations on one engine: the number of consumers does not grow
// with them, one event fans out to 3,000 subscriptions within the bound, and
// every other destination is served.
func TestTenThousandDestinations(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 subscriptions")
	}
	s := newSink(t, nil)
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e.ctx = ctx
	const total, fan = 10000, 3000
	start := time.Now()
	for i := range total {
		topic := "big"
		if i >= fan {
			topic = fmt.Sprintf("own.%d", i)
		}
		id := fmt.Sprintf("s%05d", i)
		if _, err := e.reg.CreateSubscription(e.ctx, registry.Subscription{ID: id, Name: id, Topics: []string{topic}, URL: s.URL}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("created %d subscriptions in %s", total, time.Since(start).Round(time.Millisecond))
	e.start(Options{})

	start = time.Now()
	e.publish(&Event{Topic: "big", Data: json.RawMessage(`{"fan":"out"}`)})
	s.waitCount(t, fan, 60*time.Second)
	t.Logf("one event delivered to %d subscriptions in %s", fan, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	for i := fan; i < total; i++ {
		e.publish(&Event{Topic: fmt.Sprintf("own.%d", i), Data: json.RawMessage(`{}`)})
	}
	s.waitCount(t, total, 120*time.Second)
	t.Logf("%d events to %d other subscriptions delivered in %s", total-fan, total-fan, time.Since(start).Round(time.Millisecond))

	info, err := e.eng.EventStream.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	qinfo, err := e.eng.QueueStream.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want, wantq := engine.Partitions+1, engine.Partitions+len(parkSpecs()); info.State.Consumers != want || qinfo.State.Consumers != wantq {
		t.Errorf("consumers: %d on events, %d on the queue; want %d and %d", info.State.Consumers, qinfo.State.Consumers, want, wantq)
	}
	// A restart of the pipeline re-sends nothing and starts quickly.
	e.stopPipeline(e.pipe)
	start = time.Now()
	e.start(Options{})
	t.Logf("pipeline restarted in %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)
	if got := s.count(); got != total {
		t.Errorf("%d requests after the restart, want %d", got, total)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use %d MiB", ms.HeapInuse>>20)
}

// Reordering a workflow's targets while a delivery waits for its retry
// keeps the delivery, and its history, with its own target: the retry goes
// to the same URL and the record grows there.
func TestReorderedTargetsKeepTheirDeliveries(t *testing.T) {
	flaky := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	steady := newSink(t, nil)
	e := newEnv(t)
	wait := registry.Duration(time.Second)
	cw, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "prov", Targets: []registry.Target{
		{URL: flaky.URL + "/a", RetrySchedule: []registry.Duration{wait}},
		{URL: steady.URL + "/b", RetrySchedule: []registry.Duration{wait}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	flakyID := cw.Targets[0].ID
	e.start(Options{})
	ev := &Event{Workflow: "prov", Data: json.RawMessage(`{"n":1}`)}
	e.publish(ev)
	flaky.waitCount(t, 1, 5*time.Second)
	e.waitRecord(flakyID+"."+ev.ID, 5*time.Second, statusIs(StatusPending))

	// The targets swap places (and the steady one's URL changes).
	patch := fmt.Sprintf(`{"targets":[{"url":%q,"retry_schedule":["1s"]},{"url":%q,"retry_schedule":["1s"]}]}`, steady.URL+"/b2", flaky.URL+"/a")
	updated, err := e.reg.UpdateWorkflow(e.ctx, "prov", []byte(patch))
	if err != nil {
		t.Fatal(err)
	}
	if updated.Targets[1].ID != flakyID {
		t.Fatalf("the flaky target's id changed with its position: %s, was %s", updated.Targets[1].ID, flakyID)
	}
	flaky.waitCount(t, 2, 5*time.Second)
	rec := e.waitRecord(flakyID+"."+ev.ID, 5*time.Second, statusIs(StatusSucceeded))
	if len(rec.Attempts) != 2 || rec.Attempts[0].StatusCode != http.StatusServiceUnavailable || rec.Attempts[1].StatusCode != http.StatusOK {
		t.Errorf("history of the reordered target: %+v", rec.Attempts)
	}
	for _, r := range flaky.requests() {
		if r.Path != "/a" {
			t.Errorf("the retry went to %s", r.Path)
		}
	}
	if n := steady.count(); n != 1 {
		t.Errorf("the other target got %d requests, want 1", n)
	}
}

// A bulk retry queues every failed delivery of a subscription in the time
// window again, in event order, with a fresh attempt budget; deliveries of
// other subscriptions, and failures replayed since, are left alone.
func TestBulkRetry(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		if down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "a", Topics: []string{"t"}, URL: s.URL + "/a", MaxAttempts: 1})
	e.subscribe(registry.Subscription{ID: "b", Topics: []string{"t"}, URL: s.URL + "/b", MaxAttempts: 1})
	e.start(Options{PerDestination: 1}) // one at a time: arrival order is queue order
	since := time.Now().UTC()
	var ids []string
	for i := range 5 {
		ev := &Event{Topic: "t", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		e.publish(ev)
		ids = append(ids, ev.ID)
	}
	for _, id := range ids {
		e.waitRecord("a."+id, 5*time.Second, statusIs(StatusFailed))
		e.waitRecord("b."+id, 5*time.Second, statusIs(StatusFailed))
	}
	for _, q := range []BulkQuery{{}, {Subscription: "a", Workflow: "w"}, {Subscription: "a", Status: StatusPending}, {Subscription: "a", Since: since, Until: since.Add(-time.Second)}} {
		if _, err := e.pipe.BulkRetry(e.ctx, q); !errors.Is(err, ErrBadBulkQuery) {
			t.Errorf("BulkRetry(%+v) = %v, want ErrBadBulkQuery", q, err)
		}
	}
	down.Store(false)
	before := s.count()
	res, err := e.pipe.BulkRetry(e.ctx, BulkQuery{Subscription: "a", Since: since})
	if err != nil || res.Queued != 5 || res.NextSince != nil {
		t.Fatalf("BulkRetry = %+v, %v", res, err)
	}
	for _, id := range ids {
		rec := e.waitRecord("a."+id, 5*time.Second, statusIs(StatusSucceeded))
		if rec.Replays != 1 || len(rec.Attempts) != 2 {
			t.Errorf("replayed record %+v", rec)
		}
		if rec := e.waitRecord("b."+id, time.Second, statusIs(StatusFailed)); rec.Replays != 0 {
			t.Errorf("the other subscription's delivery was replayed: %+v", rec)
		}
	}
	reqs := s.requests()[before:]
	if len(reqs) != 5 {
		t.Fatalf("%d requests after the bulk retry, want 5", len(reqs))
	}
	for i, r := range reqs {
		if r.Header.Get("Webhook-Id") != ids[i] {
			t.Errorf("request %d carries %s, want %s (event order)", i, r.Header.Get("Webhook-Id"), ids[i])
		}
	}
	// Nothing failed is left: a second bulk retry queues nothing.
	if res, err := e.pipe.BulkRetry(e.ctx, BulkQuery{Subscription: "a", Since: since}); err != nil || res.Queued != 0 {
		t.Errorf("second BulkRetry = %+v, %v", res, err)
	}
}
