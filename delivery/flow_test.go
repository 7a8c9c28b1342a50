package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
)

// flowEvents records circuit transitions and rate-limited waits.
type flowEvents struct {
	outcomes
	mu          sync.Mutex
	transitions map[string][]string
	limited     atomic.Int64
	deferred    atomic.Int64
}

func (o *flowEvents) CircuitChanged(d *destination.Destination, from, to string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.transitions == nil {
		o.transitions = map[string][]string{}
	}
	o.transitions[d.ID] = append(o.transitions[d.ID], from+">"+to)
}

func (o *flowEvents) RateLimited(*destination.Destination) { o.limited.Add(1) }

func (o *flowEvents) Deferred(*destination.Destination) { o.deferred.Add(1) }

func (o *flowEvents) of(id string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.transitions[id])
}

var _ FlowObserver = (*flowEvents)(nil)

func TestHealthFailure(t *testing.T) {
	for _, tc := range []struct {
		name            string
		res             Result
		failure, counts bool
	}{
		{"2xx", Result{StatusCode: 204}, false, true},
		{"404 is an answer", Result{StatusCode: 404}, false, true},
		{"400 is an answer", Result{StatusCode: 400}, false, true},
		{"408", Result{StatusCode: 408}, true, true},
		{"429", Result{StatusCode: 429}, true, true},
		{"500", Result{StatusCode: 500}, true, true},
		{"503", Result{StatusCode: 503}, true, true},
		{"transport error", Result{Err: errors.New("connection refused"), Duration: time.Millisecond}, true, true},
		{"envelope error, nothing sent", Result{Err: errors.New("envelope: boom")}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := healthFailure(&tc.res)
			if f != tc.failure || c != tc.counts {
				t.Errorf("healthFailure = %v, %v; want %v, %v", f, c, tc.failure, tc.counts)
			}
		})
	}
}

// Deliveries to a destination with rate_limit 20/s arrive at 20/s at the
// sink, and the waits are not attempts.
func TestRateLimit(t *testing.T) {
	s := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "rl", Topics: []string{"*"}, URL: s.URL,
		FlowControl: registry.FlowControl{RateLimit: "20/s"}})
	obs := &flowEvents{}
	e.start(Options{Observer: obs})
	const n = 80
	for i := range n {
		e.publish(&Event{ID: fmt.Sprintf("r%d", i), Topic: "t", Data: json.RawMessage(`{}`)})
	}
	reqs := s.waitCount(t, n, 10*time.Second)
	// The rate once the burst (a tenth of a second's worth: 2) is spent,
	// over the remaining 77 intervals (≈ 3.9 s).
	const burst = 2
	rate := float64(n-1-burst) / reqs[n-1].At.Sub(reqs[burst].At).Seconds()
	t.Logf("%.1f deliveries/s at the sink, want 20 ±20%%", rate)
	if rate < 16 || rate > 24 {
		t.Errorf("%.1f deliveries/s at rate_limit 20/s, want 20 ±20%%", rate)
	}
	inWindow := 0
	for _, r := range reqs {
		if r.At.Sub(reqs[0].At) < time.Second {
			inWindow++
		}
	}
	if inWindow > 20+burst+2 {
		t.Errorf("%d deliveries in the first second at 20/s", inWindow)
	}
	if obs.limited.Load() == 0 {
		t.Error("no rate-limited wait observed")
	}
	for i := range n {
		rec := e.waitRecord(fmt.Sprintf("rl.r%d", i), 5*time.Second, statusIs(StatusSucceeded))
		if len(rec.Attempts) != 1 {
			t.Fatalf("r%d: %d attempts; waiting for the rate limit is not an attempt", i, len(rec.Attempts))
		}
	}
}

// max_in_flight bounds the concurrent requests to one destination below
// the global per-destination bound.
func TestMaxInFlight(t *testing.T) {
	release := newCloser(t)
	s := blockingSink(t, release, 10*time.Second)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "mif", Topics: []string{"*"}, URL: s.URL, Timeout: registry.Duration(15 * time.Second),
		FlowControl: registry.FlowControl{MaxInFlight: 3}})
	e.start(Options{PerDestination: 64})
	const n = 12
	for i := range n {
		e.publish(&Event{ID: fmt.Sprintf("m%d", i), Topic: "t", Data: json.RawMessage(`{}`)})
	}
	s.waitCount(t, 3, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if c := s.count(); c != 3 {
		t.Errorf("%d requests held at once, want 3 (max_in_flight)", c)
	}
	release.close()
	s.waitCount(t, n, 10*time.Second)
	if m := s.maxIn.Load(); m != 3 {
		t.Errorf("sink saw %d concurrent requests, want 3", m)
	}
	for i := range n {
		if rec := e.waitRecord(fmt.Sprintf("mif.m%d", i), 5*time.Second, statusIs(StatusSucceeded)); len(rec.Attempts) != 1 {
			t.Errorf("m%d: %d attempts", i, len(rec.Attempts))
		}
	}
}

// The circuit opens after the configured consecutive failures; while open
// nothing is attempted; after the cool-down one probe goes (half-open); a
// failed probe doubles the cool-down; a successful one closes the circuit
// and the backlog drains; nothing is lost and no wait counts as an attempt.
func TestCircuitBreaker(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "cb", Topics: []string{"*"}, URL: s.URL, MaxAttempts: 100,
		RetrySchedule: []registry.Duration{registry.Duration(50 * time.Millisecond)},
		FlowControl: registry.FlowControl{MaxInFlight: 1, Breaker: &registry.Breaker{
			Failures: 3, Cooldown: registry.Duration(500 * time.Millisecond), MaxCooldown: registry.Duration(time.Second)}}})
	obs := &flowEvents{}
	p := e.start(Options{Observer: obs})
	const n = 10
	for i := range n {
		e.publish(&Event{ID: fmt.Sprintf("c%d", i), Topic: "t", Data: json.RawMessage(`{}`)})
	}
	if !waitFor(5*time.Second, func() bool { return p.Circuit("cb").State == CircuitOpen }) {
		t.Fatalf("circuit %+v, want open", p.Circuit("cb"))
	}
	c := p.Circuit("cb")
	if c.Failures != 3 || c.Since.IsZero() || c.RetryAt.IsZero() || c.FailingSince.IsZero() {
		t.Errorf("open circuit %+v", c)
	}
	if got := s.count(); got != 3 {
		t.Errorf("%d requests before the circuit opened, want 3", got)
	}
	time.Sleep(350 * time.Millisecond)
	if got := s.count(); got != 3 {
		t.Errorf("%d requests during the cool-down, want none after the 3rd", got)
	}
	// The first probe fails: open again, for twice the cool-down.
	s.waitCount(t, 4, 3*time.Second)
	if !waitFor(time.Second, func() bool { return p.Circuit("cb").State == CircuitOpen }) {
		t.Fatalf("circuit after a failed probe %+v", p.Circuit("cb"))
	}
	down.Store(false)
	s.waitCount(t, 5, 3*time.Second)
	if !waitFor(3*time.Second, func() bool { return p.Circuit("cb").State == CircuitClosed }) {
		t.Fatalf("circuit after a successful probe %+v", p.Circuit("cb"))
	}
	reqs := s.requests()
	if gap := reqs[3].At.Sub(reqs[2].At); gap < 450*time.Millisecond {
		t.Errorf("first probe %v after the circuit opened, want ≥ 500ms", gap)
	}
	if gap := reqs[4].At.Sub(reqs[3].At); gap < 900*time.Millisecond {
		t.Errorf("second probe %v after the first, want ≥ 1s (doubled cool-down)", gap)
	}
	attempts := 0
	for i := range n {
		rec := e.waitRecord(fmt.Sprintf("cb.c%d", i), 5*time.Second, statusIs(StatusSucceeded))
		attempts += len(rec.Attempts)
	}
	if got := s.count(); attempts != got || got != n+4 {
		t.Errorf("%d attempts recorded, %d requests; want %d of each (4 failures, %d successes)", attempts, got, n+4, n)
	}
	want := []string{"closed>open", "open>half_open", "half_open>open", "open>half_open", "half_open>closed"}
	if got := obs.of("cb"); !slices.Equal(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}
	if c := p.Circuit("cb"); c.Failures != 0 || !c.FailingSince.IsZero() {
		t.Errorf("closed circuit %+v", c)
	}
	// "Failing since" was stored when the circuit opened, and removed at
	// the success.
	kv, err := e.eng.JetStream().KeyValue(e.ctx, engine.BucketFlow)
	if err != nil {
		t.Fatalf("bucket %s: %v", engine.BucketFlow, err)
	}
	if en, err := kv.Get(e.ctx, "cb"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("failing since of a closed circuit: %v, %v", en, err)
	}
}

// "Failing since" survives a restart: a subscription that failed before it
// is disabled once disable_after has passed since its first failure, not
// since the first failure after the restart.
func TestFailingSinceSurvivesRestart(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusInternalServerError) })
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "ps", Topics: []string{"*"}, URL: s.URL, MaxAttempts: 100,
		RetrySchedule: []registry.Duration{registry.Duration(100 * time.Millisecond)},
		FlowControl: registry.FlowControl{DisableAfter: registry.Duration(3 * time.Second), Breaker: &registry.Breaker{
			Failures: 1, Cooldown: registry.Duration(100 * time.Millisecond), MaxCooldown: registry.Duration(200 * time.Millisecond)}}})
	p1 := e.start(Options{})
	e.publish(&Event{ID: "p1", Topic: "t", Data: json.RawMessage(`{}`)})
	if !waitFor(5*time.Second, func() bool { return p1.Circuit("ps").State != CircuitClosed }) {
		t.Fatalf("circuit %+v, want open", p1.Circuit("ps"))
	}
	since := p1.Circuit("ps").FailingSince
	e.stopPipeline(p1)
	kv, err := e.eng.JetStream().KeyValue(e.ctx, engine.BucketFlow)
	if err != nil {
		t.Fatalf("bucket %s: %v", engine.BucketFlow, err)
	}
	en, err := kv.Get(e.ctx, "ps")
	if err != nil {
		t.Fatalf("stored failing since: %v", err)
	}
	if stored, err := time.Parse(time.RFC3339Nano, string(en.Value())); err != nil || !stored.Equal(since) {
		t.Errorf("stored failing since %s, want %s", en.Value(), since)
	}
	time.Sleep(time.Until(since.Add(3 * time.Second)))

	restarted := time.Now()
	e.start(Options{})
	if !waitFor(5*time.Second, func() bool { sub, _ := e.reg.Subscription("ps"); return !sub.Dest.Enabled }) {
		t.Fatal("the subscription was not disabled after the restart")
	}
	if took := time.Since(restarted); took > 2*time.Second {
		t.Errorf("disabled %v after the restart: the failing time before it did not count", took)
	}
	sub, _ := e.reg.Subscription("ps")
	if !strings.Contains(sub.Def.DisabledReason, since.Format(time.RFC3339)) {
		t.Errorf("reason %q does not name the first failure %s", sub.Def.DisabledReason, since)
	}
}

// A subscription failing without a success for its disable_after is
// disabled, and hookgate.subscription.disabled reaches its subscribers.
func TestAutoDisable(t *testing.T) {
	dead := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusBadGateway) })
	watcher := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "dead", Name: "dead one", Topics: []string{"t"}, URL: dead.URL, MaxAttempts: 100,
		RetrySchedule: []registry.Duration{registry.Duration(100 * time.Millisecond)},
		FlowControl: registry.FlowControl{DisableAfter: registry.Duration(time.Second), Breaker: &registry.Breaker{
			Failures: 2, Cooldown: registry.Duration(200 * time.Millisecond), MaxCooldown: registry.Duration(400 * time.Millisecond)}}})
	e.subscribe(registry.Subscription{ID: "watch", Topics: []string{registry.TopicSubscriptionDisabled}, URL: watcher.URL})
	p := e.start(Options{})
	e.publish(&Event{ID: "d1", Topic: "t", Data: json.RawMessage(`{}`)})
	reqs := watcher.waitCount(t, 1, 10*time.Second)
	var body struct {
		Type string `json:"type"`
		Data struct {
			SubscriptionID string    `json:"subscription_id"`
			Name           string    `json:"name"`
			Reason         string    `json:"reason"`
			LastFailureAt  time.Time `json:"last_failure_at"`
		} `json:"data"`
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatalf("event body %s: %v", reqs[0].Body, err)
	}
	if body.Type != registry.TopicSubscriptionDisabled || body.Data.SubscriptionID != "dead" || body.Data.Name != "dead one" ||
		!strings.Contains(body.Data.Reason, "disable_after") || body.Data.LastFailureAt.IsZero() {
		t.Errorf("disabled event %s", reqs[0].Body)
	}
	sub, ok := e.reg.Subscription("dead")
	if !ok || sub.Dest.Enabled || !strings.Contains(sub.Def.DisabledReason, "disable_after") {
		t.Fatalf("subscription after disable_after: enabled %v, reason %q", sub.Dest.Enabled, sub.Def.DisabledReason)
	}
	if got := dead.count(); got < 2 {
		t.Errorf("%d attempts before the subscription was disabled", got)
	}
	if n := watcher.count(); n != 1 {
		t.Errorf("%d disabled events, want 1", n)
	}
	// Enabled again, it starts afresh: closed, with a new disable_after.
	if c := p.Circuit("dead"); c.State != CircuitClosed || !c.FailingSince.IsZero() {
		t.Errorf("circuit of the disabled subscription %+v", c)
	}
	if err := e.reg.SetSubscriptionEnabled(e.ctx, "dead", true, ""); err != nil {
		t.Fatal(err)
	}
	before := dead.count()
	e.publish(&Event{ID: "d2", Topic: "t", Data: json.RawMessage(`{}`)})
	dead.waitCount(t, before+1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if sub, _ := e.reg.Subscription("dead"); !sub.Dest.Enabled {
		t.Errorf("disabled again at its first failure after being enabled: %q", sub.Def.DisabledReason)
	}
}

// A 429 with Retry-After is honoured like a 503, and counts as a failure
// of the destination's health.
func TestTooManyRequestsRetryAfter(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "tm", Topics: []string{"*"}, URL: s.URL,
		RetrySchedule: []registry.Duration{registry.Duration(10 * time.Millisecond)}})
	p := e.start(Options{})
	e.publish(&Event{ID: "evt_tm", Topic: "t", Data: json.RawMessage(`{}`)})
	e.waitRecord("tm.evt_tm", 5*time.Second, func(r *Record) bool { return len(r.Attempts) == 1 })
	if c := p.Circuit("tm"); c.Failures != 1 || c.State != CircuitClosed {
		t.Errorf("circuit after a 429 %+v, want closed with 1 failure", c)
	}
	rec := e.waitRecord("tm.evt_tm", 5*time.Second, statusIs(StatusSucceeded))
	reqs := s.requests()
	if len(reqs) != 2 || rec.Attempts[0].StatusCode != 429 {
		t.Fatalf("%d requests, record %+v", len(reqs), rec)
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After 1, want ≥ 1s", gap)
	}
	if c := p.Circuit("tm"); c.Failures != 0 || c.State != CircuitClosed {
		t.Errorf("circuit after a success %+v", c)
	}
}

// A workflow target failing for its disable_after is not disabled (it has
// no enable flag): its circuit stays open, probed at the maximum cool-down.
func TestTargetFailingForDisableAfterStaysOpen(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusBadGateway) })
	e := newEnv(t)
	// A target makes as many attempts as its schedule has waits, plus one.
	schedule := slices.Repeat([]registry.Duration{registry.Duration(50 * time.Millisecond)}, 50)
	wf, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "wfd", Targets: []registry.Target{{
		URL: s.URL, RetrySchedule: schedule,
		FlowControl: registry.FlowControl{DisableAfter: registry.Duration(time.Second), Breaker: &registry.Breaker{
			Failures: 1, Cooldown: registry.Duration(100 * time.Millisecond), MaxCooldown: registry.Duration(3 * time.Second)}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	id := wf.Targets[0].ID
	p := e.start(Options{})
	e.publish(&Event{ID: "w1", Workflow: "wfd", Data: json.RawMessage(`{}`)})
	// Probes at 100ms, 200ms, 400ms, 800ms: past 1s the next failure holds
	// the circuit open for the maximum cool-down (3s).
	if !waitFor(5*time.Second, func() bool {
		c := p.Circuit(id)
		return c.State == CircuitOpen && c.RetryAt.Sub(c.Since) >= 2900*time.Millisecond
	}) {
		t.Fatalf("circuit %+v, want open for the maximum cool-down", p.Circuit(id))
	}
	n := s.count()
	time.Sleep(time.Second)
	if got := s.count(); got != n {
		t.Errorf("%d attempts during the maximum cool-down", got-n)
	}
	if cw, ok := e.reg.Workflow("wfd"); !ok || !cw.Targets[0].Enabled {
		t.Error("the workflow target was disabled")
	}
	rec := e.waitRecord(id+".w1", time.Second, statusIs(StatusPending))
	if len(rec.Attempts) != n {
		t.Errorf("%d attempts recorded, %d requests", len(rec.Attempts), n)
	}
}

// A rate-limited destination answering 429 has its rate halved (down to a
// sixteenth), and each success gives back one halving.
func TestTooManyRequestsHalvesRate(t *testing.T) {
	var throttle atomic.Bool
	throttle.Store(true)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if throttle.Load() {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "hr", Topics: []string{"*"}, URL: s.URL, MaxAttempts: 100,
		RetrySchedule: []registry.Duration{registry.Duration(10 * time.Millisecond)},
		FlowControl:   registry.FlowControl{RateLimit: "100/s", MaxInFlight: 1, Breaker: &registry.Breaker{Off: true}}})
	p := e.start(Options{})
	slow := func() int {
		p.destMu.Lock()
		defer p.destMu.Unlock()
		if f := p.flows["hr"]; f != nil {
			return f.slow
		}
		return -1
	}
	e.publish(&Event{ID: "h1", Topic: "t", Data: json.RawMessage(`{}`)})
	if !waitFor(5*time.Second, func() bool { return slow() == maxSlow }) {
		t.Fatalf("halvings %d after 429s, want %d", slow(), maxSlow)
	}
	// At 100/16 per second, requests are at least 160ms apart.
	s.waitCount(t, maxSlow+3, 5*time.Second)
	reqs := s.requests()
	if gap := reqs[maxSlow+2].At.Sub(reqs[maxSlow+1].At); gap < 140*time.Millisecond {
		t.Errorf("requests %v apart at a sixteenth of 100/s", gap)
	}
	throttle.Store(false)
	e.waitRecord("hr.h1", 5*time.Second, statusIs(StatusSucceeded))
	for i := range maxSlow {
		e.publish(&Event{ID: fmt.Sprintf("h%d", i+2), Topic: "t", Data: json.RawMessage(`{}`)})
	}
	if !waitFor(5*time.Second, func() bool { return slow() <= 0 }) {
		t.Errorf("halvings %d after successes, want 0", slow())
	}
}

// The deliveries parked for an open circuit come back spread from the end
// of its cool-down (openPace), not all together: a backlog coming back at
// once would take the partition's consumer from every other destination in
// it, at every cool-down's end and every deferDelay while a probe is out.
func TestOpenCircuitBacklogComesBackSpread(t *testing.T) {
	down := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "down", Topics: []string{"*"}, URL: down.URL,
		FlowControl: registry.FlowControl{Breaker: &registry.Breaker{
			Failures: 1, Cooldown: registry.Duration(time.Second), MaxCooldown: registry.Duration(time.Second)}}})
	obs := &flowEvents{}
	e.start(Options{Observer: obs})
	const backlog = 3000
	for range backlog {
		e.publish(&Event{Topic: "t", Data: json.RawMessage(`{}`)})
	}
	if !waitFor(20*time.Second, func() bool { return e.pipe.deferred.Load() >= backlog-10 }) {
		t.Fatalf("only %d of %d deferred (%d attempts)", e.pipe.deferred.Load(), backlog, down.count())
	}
	if tr := obs.of("down"); len(tr) == 0 || tr[0] != CircuitClosed+">"+CircuitOpen {
		t.Fatalf("circuit transitions %v, want it opened", tr)
	}
	// Deferrals counted per 100 ms over 3 cool-downs: the backlog comes
	// back at openPace (100 a window), a little more with the probes'.
	const window = 100 * time.Millisecond
	most, last := uint64(0), e.pipe.deferred.Load()
	for range 30 {
		time.Sleep(window)
		n := e.pipe.deferred.Load()
		most, last = max(most, n-last), n
	}
	t.Logf("at most %d deferrals in %v (openPace %d/s); %d attempts", most, window, openPace, down.count())
	if seen, n := obs.deferred.Load(), e.pipe.deferred.Load(); seen < int64(backlog)-10 || seen > int64(n) {
		t.Errorf("the observer saw %d deferrals of %d", seen, n)
	}
	if limit := uint64(3 * openPace * window / time.Second); most > limit {
		t.Fatalf("%d deferrals in %v (limit %d): the parked backlog came back together", most, window, limit)
	}
}
