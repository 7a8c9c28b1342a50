package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
)

func TestParkClass(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want int
	}{
		{time.Second, 0},
		{9 * time.Second, 0},
		{10 * time.Second, 1},
		{59 * time.Second, 1},
		{time.Minute, 2},
		{9 * time.Minute, 2},
		{10 * time.Minute, 3},
		{59 * time.Minute, 3},
		{time.Hour, 4},
		{24 * time.Hour, 4},
	}
	for _, tt := range tests {
		if got := parkClass(tt.wait); got != tt.want {
			t.Errorf("parkClass(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
	if len(parkSpecs()) != len(parkClasses)+1 {
		t.Fatalf("%d parking consumers for %d classes", len(parkSpecs()), len(parkClasses)+1)
	}
}

// lowPartitionBound lowers the partitions' bound on messages in flight for
// one test (consumers are created with it at Start).
func lowPartitionBound(t *testing.T, n int) {
	old := partitionMaxAckPending
	partitionMaxAckPending = n
	t.Cleanup(func() { partitionMaxAckPending = old })
}

// consumerInfo reads a consumer's state.
func consumerInfo(t *testing.T, e *env, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.eng.JetStream().Consumer(e.ctx, stream, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// A destination that fails every attempt, with more deliveries waiting for
// a retry (or for its open circuit) than its partition's consumer may hold
// in flight, does not hold up the other destinations of its partition: its
// waiting deliveries are parked outside the partition. Before parking, the
// partition's consumer stopped at its bound with the failing destination's
// retries, and the healthy destination got nothing until they came due.
func TestFailingDestinationDoesNotHoldUpItsPartition(t *testing.T) {
	const bound = 20
	lowPartitionBound(t, bound)
	failingID, healthyID := "failing", ""
	for i := 0; healthyID == ""; i++ {
		if id := fmt.Sprintf("healthy%d", i); Partition(id) == Partition(failingID) {
			healthyID = id
		}
	}
	failing := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	healthy := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{
		ID: failingID, Topics: []string{"failing.*"}, URL: failing.URL,
		MaxAttempts: 10, RetrySchedule: []registry.Duration{registry.Duration(10 * time.Minute)},
	})
	e.subscribe(registry.Subscription{ID: healthyID, Topics: []string{"healthy.*"}, URL: healthy.URL})
	// 2 in flight and 8 waiting in memory per destination: below the
	// bound, the rest of a destination's deliveries wait parked.
	e.start(Options{PerDestination: 2})
	const backlog = 5 * bound
	for range backlog {
		e.publish(&Event{Topic: "failing.x", Data: json.RawMessage(`{}`)})
	}
	// Every failing delivery was taken from the partition: attempted and
	// parked for its retry, or deferred (parked) for the open circuit.
	direct := ConsumerDirectPrefix + fmt.Sprint(Partition(failingID))
	if !waitFor(10*time.Second, func() bool {
		info := consumerInfo(t, e, engine.StreamEvents, direct)
		return info.Delivered.Stream >= backlog && info.NumPending == 0 && info.NumAckPending <= 2*waitingPerSlot+2
	}) {
		info := consumerInfo(t, e, engine.StreamEvents, direct)
		t.Fatalf("the failing destination's deliveries stay in their partition: delivered up to %d of %d, ack pending %d, pending %d (failing got %d attempts)",
			info.Delivered.Stream, backlog, info.NumAckPending, info.NumPending, failing.count())
	}
	start := time.Now()
	for range bound {
		e.publish(&Event{Topic: "healthy.x", Data: json.RawMessage(`{}`)})
	}
	if !waitFor(5*time.Second, func() bool { return healthy.count() >= bound }) {
		t.Fatalf("the healthy destination got %d of %d deliveries within 5s behind %d failing ones", healthy.count(), bound, backlog)
	}
	t.Logf("the healthy destination was served in %v; the failing one got %d attempts", time.Since(start), failing.count())
	var parked uint64
	for _, spec := range parkSpecs() {
		info := consumerInfo(t, e, spec.stream, spec.name)
		parked += info.NumPending + uint64(info.NumAckPending)
	}
	inPartition := uint64(consumerInfo(t, e, engine.StreamEvents, direct).NumAckPending)
	if parked+inPartition != backlog || parked < backlog-2*waitingPerSlot-2 {
		t.Errorf("%d deliveries parked and %d in the partition, want the failing destination's %d, all but at most %d parked",
			parked, inPartition, backlog, 2*waitingPerSlot+2)
	}
	if depth, err := e.pipe.QueueDepth(e.ctx); err != nil || depth != backlog {
		t.Errorf("queue depth %d (%v), want the failing destination's %d deliveries", depth, err, backlog)
	}
}

// A retry due in a second or more waits parked, not in its partition's
// consumer, and comes back with the attempts it made: the attempt budget
// and the record's history are those of one delivery.
func TestParkedRetryKeepsItsAttempts(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			s := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
				if n <= 2 {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			e := newEnv(t)
			e.subscribe(registry.Subscription{
				ID: "parked", Topics: []string{"parked.*"}, URL: s.URL, MaxAttempts: 3,
				RetrySchedule: []registry.Duration{registry.Duration(1500 * time.Millisecond)},
			})
			e.start(Options{})
			ev := &Event{ID: "evt_parked", Topic: "parked.x", Data: json.RawMessage(`{}`)}
			e.publish(ev)
			s.waitCount(t, 1, 5*time.Second)
			// Waiting for its retry, the delivery is parked.
			direct := ConsumerDirectPrefix + fmt.Sprint(Partition("parked"))
			if !waitFor(time.Second, func() bool {
				return consumerInfo(t, e, engine.StreamEvents, direct).NumAckPending == 0 &&
					consumerInfo(t, e, engine.StreamQueue, ConsumerParkPrefix+"0").NumAckPending == 1
			}) {
				t.Fatalf("the retry is not parked: partition ack pending %d, parking class 0 ack pending %d",
					consumerInfo(t, e, engine.StreamEvents, direct).NumAckPending,
					consumerInfo(t, e, engine.StreamQueue, ConsumerParkPrefix+"0").NumAckPending)
			}
			if restart {
				e.stopPipeline(e.pipe)
				e.start(Options{})
			}
			rec := e.waitRecord("parked.evt_parked", 15*time.Second, statusIs(StatusSucceeded))
			if len(rec.Attempts) != 3 {
				t.Fatalf("%d attempts recorded, want 3: %+v", len(rec.Attempts), rec.Attempts)
			}
			if gap := rec.Attempts[1].At.Sub(rec.Attempts[0].At); gap < 1500*time.Millisecond {
				t.Errorf("the first retry came %v after the attempt, before its 1.5s", gap)
			}
			time.Sleep(500 * time.Millisecond)
			reqs := s.requests()
			if len(reqs) != 3 {
				t.Fatalf("the sink got %d requests, want 3", len(reqs))
			}
			for i, r := range reqs {
				if id := r.Header.Get("Webhook-Id"); id != "evt_parked" {
					t.Errorf("request %d has webhook-id %q", i+1, id)
				}
			}
		})
	}
}

// A parked retry whose budget runs out fails with its count: parking does
// not restart the count.
func TestParkedRetriesEndAtMaxAttempts(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	e := newEnv(t)
	e.subscribe(registry.Subscription{
		ID: "budget", Topics: []string{"budget.*"}, URL: s.URL, MaxAttempts: 3,
		RetrySchedule: []registry.Duration{registry.Duration(time.Second)},
		FlowControl:   registry.FlowControl{Breaker: &registry.Breaker{Failures: 100}},
	})
	e.start(Options{})
	e.publish(&Event{ID: "evt_budget", Topic: "budget.x", Data: json.RawMessage(`{}`)})
	rec := e.waitRecord("budget.evt_budget", 15*time.Second, statusIs(StatusFailed))
	if len(rec.Attempts) != 3 || rec.Reason != "gave up after 3 attempts" {
		t.Fatalf("record: %d attempts, reason %q; want 3 and the budget's reason", len(rec.Attempts), rec.Reason)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := s.count(); n != 3 {
		t.Fatalf("the sink got %d attempts, want 3", n)
	}
}
