package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// outcomes records attempt outcomes per destination (an Observer).
type outcomes struct {
	mu       sync.Mutex
	outcomes map[string][]string
}

func (o *outcomes) Attempted(d *destination.Destination, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.outcomes == nil {
		o.outcomes = map[string][]string{}
	}
	o.outcomes[d.ID] = append(o.outcomes[d.ID], outcome)
}

func (o *outcomes) of(id string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.outcomes[id])
}

// closer closes a channel once.
type closer struct {
	ch   chan struct{}
	once sync.Once
}

func newCloser(t *testing.T) *closer {
	c := &closer{ch: make(chan struct{})}
	t.Cleanup(c.close)
	return c
}

// blockingSink is a sink that answers every request 200 after bound, or
// as soon as release is closed.
func blockingSink(t *testing.T, release *closer, bound time.Duration) *sink {
	return newSink(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		block(r, release.ch, bound)
		w.WriteHeader(http.StatusOK)
	})
}

// firstBlocks is a sink's reply that holds the first request until release
// is closed (at most 10 s) and answers 200 to every one.
func firstBlocks(release *closer) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			block(r, release.ch, 10*time.Second)
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (c *closer) close() { c.once.Do(func() { close(c.ch) }) }

func TestPublish(t *testing.T) {
	e := newEnv(t)
	e.pipe = e.newPipeline(Options{}) // publishing needs no consumer
	ev := &Event{Topic: "document.deleted", Data: json.RawMessage(`{"RecordID": "2QDTWAW4499"}`), Tenant: "ZZ1"}
	dup, err := e.pipe.Publish(e.ctx, ev)
	if err != nil || dup {
		t.Fatalf("Publish = %v, %v", dup, err)
	}
	if !strings.HasPrefix(ev.ID, "evt_") || ev.Time.IsZero() || time.Since(ev.Time) > time.Minute {
		t.Errorf("id %q and time %v not assigned", ev.ID, ev.Time)
	}
	// The same id again is a no-op, whatever it carries.
	dup, err = e.pipe.Publish(e.ctx, &Event{ID: ev.ID, Topic: "other", Data: json.RawMessage(`{}`)})
	if err != nil || !dup {
		t.Errorf("republish = %v, %v; want duplicate", dup, err)
	}
	got, err := e.pipe.Event(e.ctx, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != "document.deleted" || string(got.Data) != `{"RecordID": "2QDTWAW4499"}` || got.Tenant != "ZZ1" || !got.Time.Equal(ev.Time) {
		t.Errorf("read back %+v", got)
	}
	// A given id and time are kept.
	at := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	ev2 := &Event{ID: "evt_given", Topic: "t", Time: at}
	if dup, err := e.pipe.Publish(e.ctx, ev2); err != nil || dup {
		t.Fatal(dup, err)
	}
	if got, err := e.pipe.Event(e.ctx, "evt_given"); err != nil || !got.Time.Equal(at) || ev2.ID != "evt_given" {
		t.Errorf("given id/time: %+v %v", got, err)
	}
	for _, id := range []string{"evt_missing", "a.b", "", "x>"} {
		if _, err := e.pipe.Event(e.ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Event(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestDestinations(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.pipe = New(e.eng, e.reg, testGuard().Client(), zap.New(core), Options{}) // never started
	url := "http://127.0.0.1:9/"
	e.subscribe(registry.Subscription{ID: "docs", Topics: []string{"document.*"}, URL: url})
	e.subscribe(registry.Subscription{ID: "off", Topics: []string{"document.deleted"}, URL: url})
	if err := e.reg.SetSubscriptionEnabled(e.ctx, "off", false, "test"); err != nil {
		t.Fatal(err)
	}
	e.subscribe(registry.Subscription{ID: "tenant", Topics: []string{"*"}, URL: url, Include: registry.Predicates{`tenant == "ZZ1"`}})
	e.subscribe(registry.Subscription{ID: "noskip", Topics: []string{"document.deleted"}, URL: url, Exclude: registry.Predicates{`data?.RecordID == "SKIP"`}})
	e.subscribe(registry.Subscription{ID: "badinc", Topics: []string{"*"}, URL: url, Include: registry.Predicates{`data.profile.email == "x"`}})
	e.subscribe(registry.Subscription{ID: "users", Topics: []string{"user.created", "user.deleted"}, URL: url})
	prov, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "prov", Targets: []registry.Target{{URL: url}, {URL: url + "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	provTargets := []string{prov.Targets[0].ID, prov.Targets[1].ID}
	slices.Sort(provTargets)
	if _, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "passthrough"}); err != nil {
		t.Fatal(err)
	}

	ids := func(ds []*destination.Destination) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name string
		ev   Event
		want []string
	}{
		{"topic, tenant and data match", Event{Topic: "document.deleted", Tenant: "ZZ1", Data: json.RawMessage(`{"RecordID":"A"}`)},
			[]string{"docs", "noskip", "tenant"}},
		{"excluded by data", Event{Topic: "document.deleted", Tenant: "ZZ1", Data: json.RawMessage(`{"RecordID":"SKIP"}`)},
			[]string{"docs", "tenant"}},
		{"other tenant", Event{Topic: "document.deleted", Tenant: "XX", Data: json.RawMessage(`{"RecordID":"A"}`)},
			[]string{"docs", "noskip"}},
		{"prefix is not a match", Event{Topic: "documents.x", Tenant: "XX"}, nil},
		{"exact topic", Event{Topic: "user.created"}, []string{"users"}},
		{"no data", Event{Topic: "document.created"}, []string{"docs"}},
		{"data not an object", Event{Topic: "document.created", Data: json.RawMessage(`[1]`)}, []string{"docs"}},
		{"workflow targets", Event{Workflow: "prov", Data: json.RawMessage(`x`)}, provTargets},
		{"workflow without targets", Event{Workflow: "passthrough"}, nil},
		{"unknown workflow", Event{Workflow: "nope", Topic: "document.deleted"}, nil},
	}
	for _, tc := range tests {
		tc.ev.ID = "evt_1"
		if got := ids(e.pipe.Destinations(&tc.ev)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: destinations %v, want %v", tc.name, got, tc.want)
		}
	}
	// "badinc"'s include fails at run time on every event above (no
	// data.profile): it counts as not matched, so nothing goes there; it
	// matches when the data has the field.
	ev := &Event{ID: "e", Topic: "x", Data: json.RawMessage(`{"profile":{"email":"x"}}`)}
	if got := ids(e.pipe.Destinations(ev)); !slices.Equal(got, []string{"badinc"}) {
		t.Errorf("include evaluating: %v", got)
	}
	// An exclude that fails at run time counts as not matched (the event is
	// not excluded), as test-predicates reports it.
	e.subscribe(registry.Subscription{ID: "badexc", Topics: []string{"y"}, URL: url, Exclude: registry.Predicates{`data.profile.email == "x"`}})
	logs.TakeAll()
	if got := ids(e.pipe.Destinations(&Event{ID: "e", Topic: "y", Data: json.RawMessage(`{}`)})); !slices.Equal(got, []string{"badexc"}) {
		t.Errorf("failing exclude: %v", got)
	}
	// The warnings say what happened to the event.
	delivered := map[any]any{}
	for _, l := range logs.TakeAll() {
		delivered[l.ContextMap()["subscription"]] = l.ContextMap()["delivered"]
	}
	if len(delivered) != 2 || delivered["badexc"] != true || delivered["badinc"] != false {
		t.Errorf("failing predicates logged delivered=%v", delivered)
	}
	fe := FilterEvent(&Event{ID: "e", Topic: "t", Tenant: "x", User: "u", Data: json.RawMessage(`{"a":1}`)})
	if fe.ID != "e" || fe.Topic != "t" || fe.Tenant != "x" || fe.User != "u" || fe.Data.(map[string]any)["a"] != 1.0 {
		t.Errorf("FilterEvent = %+v", fe)
	}
}

func TestDeliverSubscription(t *testing.T) {
	s := newSink(t, nil)
	e := newEnv(t)
	cs := e.subscribe(registry.Subscription{ID: "s1", Topics: []string{"user.*"}, URL: s.URL + "/in",
		Headers: map[string]string{"X-Env": "test"}})
	obs := &outcomes{}
	e.start(Options{Observer: obs})

	e.publish(&Event{ID: "evt_other", Topic: "group.created", Data: json.RawMessage(`{}`)})
	ev := &Event{ID: "evt_full", Topic: "user.created", Data: json.RawMessage(`{"username": "demo", "remainingSeats": 5}`),
		Tenant: "parallelworks", Traceparent: testTraceparent}
	e.publish(ev)
	r := s.waitCount(t, 1, 5*time.Second)[0]
	if r.Path != "/in" || r.Header.Get("X-Env") != "test" || r.Header.Get("Webhook-Id") != "evt_full" ||
		r.Header.Get("Traceparent") != testTraceparent || r.Header.Get("User-Agent") != UserAgent {
		t.Errorf("request %s %v", r.Path, r.Header)
	}
	if err := signature.VerifyStandard(cs.Dest.Keys, r.Header, r.Body, 0, time.Now()); err != nil {
		t.Errorf("signature: %v", err)
	}
	var body struct {
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Type != "user.created" || body.Data["username"] != "demo" || !body.Timestamp.Equal(ev.Time) {
		t.Errorf("body %s (%v)", r.Body, err)
	}
	rec := e.waitRecord("s1.evt_full", 5*time.Second, statusIs(StatusSucceeded))
	if rec.EventID != "evt_full" || rec.SubscriptionID != "s1" || rec.WorkflowID != "" || rec.Destination != "s1" ||
		rec.Reason != "" || rec.NextAttemptAt != nil || rec.UpdatedAt.IsZero() {
		t.Errorf("record %+v", rec)
	}
	if len(rec.Attempts) != 1 || rec.Attempts[0].StatusCode != 200 || rec.Attempts[0].Error != "" || rec.Attempts[0].At.IsZero() {
		t.Errorf("attempts %+v", rec.Attempts)
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.count(); n != 1 {
		t.Errorf("%d requests, want exactly one", n)
	}
	if _, err := e.pipe.Record(e.ctx, "s1.evt_other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a non-matching event has a record: %v", err)
	}
	if _, err := e.pipe.Record(e.ctx, "bad key*"); !errors.Is(err, ErrNotFound) {
		t.Errorf("invalid record id: %v", err)
	}
	if got := obs.of("s1"); !slices.Equal(got, []string{StatusSucceeded}) {
		t.Errorf("observer saw %v", got)
	}
}

func TestDeliverWorkflowTargets(t *testing.T) {
	s := newSink(t, nil)
	e := newEnv(t)
	prov, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "prov", Targets: []registry.Target{
		{URL: s.URL + "/raw", Headers: map[string]string{"X-T": "1"}},
		{URL: s.URL + "/std", Envelope: "standard", Method: "PUT"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.start(Options{})
	data := "{\"eventType\" : \"groupcreated\",\n \"n\": 12345678901234567891}\n"
	e.publish(&Event{ID: "evt_wf", Workflow: "prov", Data: json.RawMessage(data)})
	reqs := s.waitCount(t, 2, 5*time.Second)
	for _, r := range reqs {
		switch r.Path {
		case "/raw":
			if string(r.Body) != data || r.Method != http.MethodPost || r.Header.Get("X-T") != "1" {
				t.Errorf("raw target got %s %q", r.Method, r.Body)
			}
		case "/std":
			var body map[string]any
			if err := json.Unmarshal(r.Body, &body); err != nil || body["type"] != "prov" || r.Method != http.MethodPut {
				t.Errorf("standard target got %s %s", r.Method, r.Body)
			}
		default:
			t.Errorf("request to %s", r.Path)
		}
		if _, ok := r.Header["Webhook-Signature"]; ok {
			t.Error("unsigned target got a signature")
		}
	}
	for _, id := range []string{prov.Targets[0].ID + ".evt_wf", prov.Targets[1].ID + ".evt_wf"} {
		rec := e.waitRecord(id, 5*time.Second, statusIs(StatusSucceeded))
		if rec.WorkflowID != "prov" || rec.SubscriptionID != "" {
			t.Errorf("record %+v", rec)
		}
	}
}

func TestDeliveriesQuery(t *testing.T) {
	ok := newSink(t, nil)
	bad := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusInternalServerError) })
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "s1", Topics: []string{"t"}, URL: ok.URL})
	e.subscribe(registry.Subscription{ID: "s2", Topics: []string{"t"}, URL: bad.URL, MaxAttempts: 1})
	cw, _, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "w", Targets: []registry.Target{{URL: ok.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	wfRec := cw.Targets[0].ID + ".e4"
	e.start(Options{})
	if recs, next, err := e.pipe.Deliveries(e.ctx, Query{}); err != nil || len(recs) != 0 || next != "" {
		t.Fatalf("empty log: %v %q %v", recs, next, err)
	}
	for _, id := range []string{"e1", "e2", "e3"} {
		e.publish(&Event{ID: id, Topic: "t", Data: json.RawMessage(`{}`)})
	}
	e.publish(&Event{ID: "e4", Workflow: "w", Data: json.RawMessage(`{}`)})
	for _, id := range []string{"s1.e1", "s1.e2", "s1.e3", wfRec} {
		e.waitRecord(id, 5*time.Second, statusIs(StatusSucceeded))
	}
	for _, id := range []string{"s2.e1", "s2.e2", "s2.e3"} {
		rec := e.waitRecord(id, 5*time.Second, statusIs(StatusFailed))
		if rec.Reason != "gave up after 1 attempts" || len(rec.Attempts) != 1 {
			t.Errorf("record %+v", rec)
		}
	}

	all := []string{"s1.e1", "s1.e2", "s1.e3", "s2.e1", "s2.e2", "s2.e3", wfRec}
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, all},
		{"subscription", Query{Subscription: "s1"}, all[:3]},
		{"subscription and status", Query{Subscription: "s2", Status: StatusFailed}, all[3:6]},
		{"status succeeded", Query{Status: StatusSucceeded}, []string{"s1.e1", "s1.e2", "s1.e3", wfRec}},
		{"status pending", Query{Status: StatusPending}, nil},
		{"event", Query{Event: "e1"}, []string{"s1.e1", "s2.e1"}},
		{"subscription and event", Query{Subscription: "s1", Event: "e2"}, []string{"s1.e2"}},
		{"workflow", Query{Workflow: "w"}, []string{wfRec}},
		{"unknown subscription", Query{Subscription: "nope"}, nil},
		{"unknown event", Query{Event: "nope"}, nil},
		{"exact page", Query{Limit: 7}, all},
	}
	for _, tc := range tests {
		recs, next, err := e.pipe.Deliveries(e.ctx, tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
		}
		slices.Sort(got) // listed in the order of their last change
		if !slices.Equal(got, tc.want) || next != "" {
			t.Errorf("%s: %v (next %q), want %v", tc.name, got, next, tc.want)
		}
	}

	// Paging: pages of 3 with a cursor, ending with "".
	var got []string
	var pages []int
	q := Query{Limit: 3}
	for range 10 {
		recs, next, err := e.pipe.Deliveries(e.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(recs))
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		q.After = next
	}
	slices.Sort(got)
	if !slices.Equal(got, all) || !slices.Equal(pages, []int{3, 3, 1}) {
		t.Errorf("paged %v in pages %v", got, pages)
	}
	// Paging with a filter.
	recs, next, err := e.pipe.Deliveries(e.ctx, Query{Subscription: "s1", Limit: 2})
	if err != nil || len(recs) != 2 || next == "" {
		t.Errorf("filtered page: %d records, next %q, %v", len(recs), next, err)
	}
	recs2, next, _ := e.pipe.Deliveries(e.ctx, Query{Subscription: "s1", Limit: 2, After: next})
	if len(recs2) != 1 || next != "" || recs2[0].ID == recs[0].ID || recs2[0].ID == recs[1].ID {
		t.Errorf("second filtered page: %v %q", recs2, next)
	}
	if _, _, err := e.pipe.Deliveries(e.ctx, Query{After: "s1.e1"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("foreign cursor: %v", err)
	}
}

func TestRetriesThenFailedThenReplay(t *testing.T) {
	// Requests 1-5 fail, then the subscriber recovers.
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 5 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("boom"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	e := newEnv(t)
	// The circuit breaker, off here, would hold the 6th attempt for its
	// cool-down (flow_test.go tests it).
	e.subscribe(registry.Subscription{ID: "s", Topics: []string{"*"}, URL: s.URL, MaxAttempts: 3,
		RetrySchedule: []registry.Duration{registry.Duration(50 * time.Millisecond), registry.Duration(150 * time.Millisecond)},
		FlowControl:   registry.FlowControl{Breaker: &registry.Breaker{Off: true}}})
	obs := &outcomes{}
	e.start(Options{Observer: obs})
	e.publish(&Event{ID: "evt_r", Topic: "t", Data: json.RawMessage(`{}`)})

	rec := e.waitRecord("s.evt_r", 5*time.Second, statusIs(StatusFailed))
	if len(rec.Attempts) != 3 || rec.Reason != "gave up after 3 attempts" || rec.NextAttemptAt != nil {
		t.Fatalf("failed record %+v", rec)
	}
	for _, a := range rec.Attempts {
		if a.StatusCode != 500 || a.Error != "Internal Server Error" || a.Response != "boom" {
			t.Errorf("attempt %+v", a)
		}
	}
	reqs := s.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	// The schedule is followed (and its last wait would repeat).
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 50*time.Millisecond {
		t.Errorf("first retry after %v, want ≥ 50ms", gap)
	}
	if gap := reqs[2].At.Sub(reqs[1].At); gap < 150*time.Millisecond {
		t.Errorf("second retry after %v, want ≥ 150ms", gap)
	}
	for _, r := range reqs {
		if r.Header.Get("Webhook-Id") != "evt_r" {
			t.Errorf("retry with webhook-id %q", r.Header.Get("Webhook-Id"))
		}
	}
	if got := obs.of("s"); !slices.Equal(got, []string{"retrying", "retrying", StatusFailed}) {
		t.Errorf("observer saw %v", got)
	}

	// A manual retry gets a fresh budget of 3: requests 4 and 5 fail, the
	// 6th (the third of the new budget) succeeds.
	rec, err := e.pipe.Retry(e.ctx, "s.evt_r")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusPending || rec.Replays != 1 || rec.ReplayBase != 3 || rec.Reason != "" {
		t.Errorf("record after Retry %+v", rec)
	}
	rec = e.waitRecord("s.evt_r", 5*time.Second, statusIs(StatusSucceeded))
	if len(rec.Attempts) != 6 || rec.Attempts[5].StatusCode != 204 || rec.Replays != 1 {
		t.Errorf("replayed record: %d attempts %+v", len(rec.Attempts), rec)
	}
	// A succeeded delivery can be replayed too.
	if _, err := e.pipe.Retry(e.ctx, "s.evt_r"); err != nil {
		t.Fatal(err)
	}
	rec = e.waitRecord("s.evt_r", 5*time.Second, func(r *Record) bool { return r.Status == StatusSucceeded && r.Replays == 2 })
	if len(rec.Attempts) != 7 || s.count() != 7 {
		t.Errorf("second replay: %d attempts, %d requests", len(rec.Attempts), s.count())
	}

	if _, err := e.pipe.Retry(e.ctx, "s.evt_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retry(unknown) = %v", err)
	}
	if err := e.reg.DeleteSubscription(e.ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pipe.Retry(e.ctx, "s.evt_r"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retry(deleted destination) = %v", err)
	}
}

func TestGoneDisablesSubscription(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusGone) })
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "g", Topics: []string{"*"}, URL: s.URL,
		RetrySchedule: []registry.Duration{registry.Duration(10 * time.Millisecond)}})
	e.start(Options{})
	e.publish(&Event{ID: "evt_g", Topic: "t", Data: json.RawMessage(`{}`)})
	rec := e.waitRecord("g.evt_g", 5*time.Second, statusIs(StatusFailed))
	if len(rec.Attempts) != 1 || rec.Attempts[0].StatusCode != 410 || !strings.Contains(rec.Reason, "410") {
		t.Errorf("record %+v", rec)
	}
	sub, ok := e.reg.Subscription("g")
	if !ok || sub.Dest.Enabled || !strings.Contains(sub.Def.DisabledReason, "410") {
		t.Fatalf("subscription after 410: enabled %v, reason %q", sub.Dest.Enabled, sub.Def.DisabledReason)
	}
	// No new deliveries go to it.
	e.publish(&Event{ID: "evt_g2", Topic: "t", Data: json.RawMessage(`{}`)})
	time.Sleep(300 * time.Millisecond)
	if n := s.count(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if _, err := e.pipe.Record(e.ctx, "g.evt_g2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a disabled subscription got a delivery: %v", err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "ra", Topics: []string{"*"}, URL: s.URL,
		RetrySchedule: []registry.Duration{registry.Duration(10 * time.Millisecond)}})
	e.start(Options{})
	e.publish(&Event{ID: "evt_ra", Topic: "t", Data: json.RawMessage(`{}`)})
	pending := e.waitRecord("ra.evt_ra", 5*time.Second, func(r *Record) bool { return len(r.Attempts) == 1 })
	if pending.Status == StatusPending {
		if pending.NextAttemptAt == nil || pending.NextAttemptAt.Sub(pending.Attempts[0].At) < 900*time.Millisecond {
			t.Errorf("next attempt at %v after an attempt at %v, want ~1s later", pending.NextAttemptAt, pending.Attempts[0].At)
		}
	}
	rec := e.waitRecord("ra.evt_ra", 5*time.Second, statusIs(StatusSucceeded))
	reqs := s.requests()
	if len(reqs) != 2 || len(rec.Attempts) != 2 || rec.Attempts[0].StatusCode != 503 {
		t.Fatalf("%d requests, record %+v", len(reqs), rec)
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried %v after a Retry-After of 1s", gap)
	}
}

// A slow target does not stall the others: with PerDestination 1, a
// destination that holds its request leaves the workers to the others.
func TestPerDestinationCap(t *testing.T) {
	release := newCloser(t)
	slow := blockingSink(t, release, 10*time.Second)
	fast := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "slow", Topics: []string{"slow"}, URL: slow.URL, Timeout: registry.Duration(15 * time.Second)})
	e.subscribe(registry.Subscription{ID: "fast", Topics: []string{"fast"}, URL: fast.URL})
	e.start(Options{PerDestination: 1, Concurrency: 4})
	for _, id := range []string{"s1", "s2", "s3"} {
		e.publish(&Event{ID: id, Topic: "slow", Data: json.RawMessage(`{}`)})
	}
	slow.waitCount(t, 1, 5*time.Second)
	start := time.Now()
	e.publish(&Event{ID: "f1", Topic: "fast", Data: json.RawMessage(`{}`)})
	fast.waitCount(t, 1, 3*time.Second)
	e.waitRecord("fast.f1", 3*time.Second, statusIs(StatusSucceeded))
	t.Logf("fast destination served in %v while the slow one holds its request", time.Since(start))
	time.Sleep(300 * time.Millisecond)
	if n := slow.count(); n != 1 {
		t.Errorf("slow destination got %d requests at once, want 1 (the cap)", n)
	}
	release.close()
	slow.waitCount(t, 3, 10*time.Second)
	for _, id := range []string{"slow.s1", "slow.s2", "slow.s3"} {
		rec := e.waitRecord(id, 10*time.Second, statusIs(StatusSucceeded))
		if len(rec.Attempts) != 1 {
			t.Errorf("%s: %d attempts; a busy destination's wait is not an attempt", id, len(rec.Attempts))
		}
	}
	if m := slow.maxIn.Load(); m != 1 {
		t.Errorf("slow destination saw %d concurrent requests, want 1", m)
	}
}

func TestQueueDepth(t *testing.T) {
	release := newCloser(t)
	s := blockingSink(t, release, 10*time.Second)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "q", Topics: []string{"*"}, URL: s.URL})
	e.start(Options{})
	if d, err := e.pipe.QueueDepth(e.ctx); err != nil || d != 0 {
		t.Fatalf("idle depth %d, %v", d, err)
	}
	for _, id := range []string{"q1", "q2", "q3"} {
		e.publish(&Event{ID: id, Topic: "t", Data: json.RawMessage(`{}`)})
	}
	var depth uint64
	if !waitFor(5*time.Second, func() bool { depth, _ = e.pipe.QueueDepth(e.ctx); return depth == 3 }) {
		t.Fatalf("depth %d with three deliveries in flight, want 3", depth)
	}
	release.close()
	if !waitFor(5*time.Second, func() bool { depth, _ = e.pipe.QueueDepth(e.ctx); return depth == 0 }) {
		t.Errorf("depth %d after the deliveries, want 0", depth)
	}
}

// Messages that reach the delivery queue for a destination that is gone or
// disabled end failed without a request; unreadable ones are dropped.
func TestDeliverUnavailableDestination(t *testing.T) {
	s := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "off", Topics: []string{"*"}, URL: s.URL})
	if err := e.reg.SetSubscriptionEnabled(e.ctx, "off", false, "manual"); err != nil {
		t.Fatal(err)
	}
	e.start(Options{})
	js := e.eng.JetStream()
	// The event is stored (no subscription matches its topic), then
	// deliveries of it are queued as a fan-out would.
	ev := &Event{ID: "evt_x", Topic: "nobody", Time: time.Now().UTC(), Data: json.RawMessage(`{}`)}
	e.publish(ev)
	_, seq, err := e.pipe.eventAt(e.ctx, "evt_x")
	if err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"gone", "off"} {
		m := ev.message(engine.PartitionSubject(engine.SubjectQueue, Partition(dest)))
		m.Header.Set(hdrDest, dest)
		m.Header.Set(hdrEventSeq, strconv.FormatUint(seq, 10))
		if _, err := js.PublishMsg(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []func(*nats.Msg){
		func(m *nats.Msg) { m.Header.Del(hdrEventSeq) },
		func(m *nats.Msg) { m.Header.Del(hdrDest) },
		func(m *nats.Msg) { m.Header.Set(hdrTime, "yesterday") },
	} {
		m := ev.message(engine.PartitionSubject(engine.SubjectQueue, 3))
		m.Header.Set(hdrDest, "junk")
		m.Header.Set(hdrEventSeq, strconv.FormatUint(seq, 10))
		junk(m)
		if _, err := js.PublishMsg(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if rec := e.waitRecord("gone.evt_x", 5*time.Second, statusIs(StatusFailed)); rec.Reason != "destination no longer exists" || len(rec.Attempts) != 0 {
		t.Errorf("gone: %+v", rec)
	}
	if rec := e.waitRecord("off.evt_x", 5*time.Second, statusIs(StatusFailed)); rec.Reason != "subscription disabled" || rec.SubscriptionID != "off" {
		t.Errorf("off: %+v", rec)
	}
	if !waitFor(5*time.Second, func() bool { d, _ := e.pipe.QueueDepth(e.ctx); return d == 0 }) {
		t.Error("queue not empty")
	}
	if s.count() != 0 {
		t.Errorf("%d requests to a disabled subscription", s.count())
	}
}

// Events published while no pipeline runs are delivered by the next one;
// a replay queued meanwhile too.
func TestStopAndRestart(t *testing.T) {
	s := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "r", Topics: []string{"*"}, URL: s.URL})
	first := e.start(Options{})
	e.publish(&Event{ID: "evt_1", Topic: "t", Data: json.RawMessage(`{}`)})
	e.waitRecord("r.evt_1", 5*time.Second, statusIs(StatusSucceeded))

	start := time.Now()
	e.stopPipeline(first)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Stop of an idle pipeline took %v", took)
	}
	e.publish(&Event{ID: "evt_2", Topic: "t", Data: json.RawMessage(`{}`)})
	rec, err := e.pipe.Retry(e.ctx, "r.evt_1")
	if err != nil || rec.Status != StatusPending {
		t.Fatalf("Retry while stopped: %+v %v", rec, err)
	}
	if _, err := e.pipe.Retry(e.ctx, "r.evt_1"); !errors.Is(err, ErrNotReplayable) {
		t.Errorf("Retry of a pending delivery = %v, want ErrNotReplayable", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := s.count(); n != 1 {
		t.Fatalf("%d requests while stopped", n)
	}

	e.start(Options{})
	s.waitCount(t, 3, 5*time.Second)
	e.waitRecord("r.evt_2", 5*time.Second, statusIs(StatusSucceeded))
	rec = e.waitRecord("r.evt_1", 5*time.Second, statusIs(StatusSucceeded))
	if rec.Replays != 1 || len(rec.Attempts) != 2 {
		t.Errorf("replayed record %+v", rec)
	}
}

// Stop lets an attempt in flight finish (within its grace) and records it.
func TestStopWaitsForAttempt(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(400 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "w", Topics: []string{"*"}, URL: s.URL})
	p := e.start(Options{})
	e.publish(&Event{ID: "evt_w", Topic: "t", Data: json.RawMessage(`{}`)})
	reqs := s.waitCount(t, 1, 5*time.Second)
	e.stopPipeline(p)
	if took := time.Since(reqs[0].At); took < 350*time.Millisecond || took > 2500*time.Millisecond {
		t.Errorf("Stop returned %v after the request started, want after the 400ms attempt", took)
	}
	rec, err := p.Record(e.ctx, "w.evt_w")
	if err != nil || rec.Status != StatusSucceeded || len(rec.Attempts) != 1 {
		t.Errorf("record after Stop: %+v %v", rec, err)
	}
}

// An attempt still running when Stop's grace ends is cancelled, not counted,
// and handed back at once: the next pipeline delivers it without waiting for
// the ack deadline.
func TestStopCancelsLongAttempt(t *testing.T) {
	release := newCloser(t)
	s := newSink(t, firstBlocks(release))
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "l", Topics: []string{"*"}, URL: s.URL, Timeout: registry.Duration(20 * time.Second)})
	p := e.start(Options{})
	e.publish(&Event{ID: "evt_l", Topic: "t", Data: json.RawMessage(`{}`)})
	s.waitCount(t, 1, 5*time.Second)
	start := time.Now()
	e.stopPipeline(p)
	if took := time.Since(start); took < stopGrace-200*time.Millisecond || took > stopGrace+3*time.Second {
		t.Errorf("Stop took %v, want about its %v grace", took, stopGrace)
	}
	if rec, err := p.Record(e.ctx, "l.evt_l"); err == nil && len(rec.Attempts) != 0 {
		t.Errorf("a cancelled attempt was recorded: %+v", rec)
	}
	restart := time.Now()
	e.start(Options{})
	s.waitCount(t, 2, 5*time.Second)
	rec := e.waitRecord("l.evt_l", 5*time.Second, statusIs(StatusSucceeded))
	if len(rec.Attempts) != 1 {
		t.Errorf("record %+v", rec)
	}
	t.Logf("redelivered %v after the restart", time.Since(restart))
}

// A destination that is down, with thousands of deliveries waiting for
// their retries, holds up no other destination: each has its own consumer.
func TestDeadDestinationDoesNotStallOthers(t *testing.T) {
	dead := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	healthy := newSink(t, nil)
	e := newEnv(t)
	// The circuit breaker is off: every delivery is tried once and waits
	// for its retry, the worst case for the queue.
	e.subscribe(registry.Subscription{ID: "dead", Topics: []string{"down.*"}, URL: dead.URL,
		RetrySchedule: []registry.Duration{registry.Duration(time.Hour)},
		FlowControl:   registry.FlowControl{Breaker: &registry.Breaker{Off: true}}})
	e.subscribe(registry.Subscription{ID: "healthy", Topics: []string{"up.*"}, URL: healthy.URL})
	e.start(Options{Concurrency: 16, PerDestination: 8})
	const backlog = 2000
	for i := range backlog {
		e.publish(&Event{ID: fmt.Sprintf("down_%d", i), Topic: "down.x", Data: json.RawMessage(`{}`)})
	}
	// Every dead delivery has been tried once and now waits an hour.
	if !waitFor(30*time.Second, func() bool { return dead.count() >= backlog }) {
		t.Fatalf("dead destination tried %d of %d", dead.count(), backlog)
	}
	start := time.Now()
	for i := range 20 {
		e.publish(&Event{ID: fmt.Sprintf("up_%d", i), Topic: "up.x", Data: json.RawMessage(`{}`)})
	}
	healthy.waitCount(t, 20, 5*time.Second)
	t.Logf("healthy destination served in %s with %d deliveries waiting on the dead one", time.Since(start), backlog)
}

// An event published to a destination that is removed right away is still
// consumed and recorded (delivered, or failed as "destination no longer
// exists"): its consumer exists before its first event is stored.
func TestDestinationRemovedRightAfterPublish(t *testing.T) {
	s := newSink(t, nil)
	e := newEnv(t)
	e.start(Options{})
	for i := range 5 {
		id := fmt.Sprintf("brief%d", i)
		e.subscribe(registry.Subscription{ID: id, Topics: []string{id}, URL: s.URL})
		e.publish(&Event{ID: "evt_" + id, Topic: id, Data: json.RawMessage(`{}`)})
		if err := e.reg.DeleteSubscription(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		rec := e.waitRecord(id+".evt_"+id, 5*time.Second, func(r *Record) bool { return r.Status != StatusPending })
		if rec.Status == StatusFailed && rec.Reason != "destination no longer exists" {
			t.Errorf("%s: %+v", id, rec)
		}
	}
}

// Deliveries the stopping pipeline had pulled but not attempted (waiting
// for their destination's one slot, or still in the consumer's buffer) go
// back to the stream at once: the next pipeline delivers every one of them
// well before the ack wait (30 s) would have handed them back, on the same
// engine or after the engine restarted (a plain Nak was kept only in the
// server's memory: after a restart the deliveries waited out the ack wait).
func TestStopHandsBackWaitingDeliveries(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "same engine", true: "engine restarted"}[restart], func(t *testing.T) {
			testStopHandsBackWaitingDeliveries(t, restart)
		})
	}
}

func testStopHandsBackWaitingDeliveries(t *testing.T, restart bool) {
	const events = 40
	release := newCloser(t)
	s := newSink(t, firstBlocks(release))
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "h", Topics: []string{"*"}, URL: s.URL})
	first := e.start(Options{PerDestination: 1})
	for i := range events {
		e.publish(&Event{ID: fmt.Sprintf("evt_h%02d", i), Topic: "t", Data: json.RawMessage(`{}`)})
	}
	s.waitCount(t, 1, 5*time.Second) // one attempt in flight, the rest held back
	stopped := make(chan struct{})
	go func() { defer close(stopped); e.stopPipeline(first) }()
	time.Sleep(100 * time.Millisecond)
	release.close() // the attempt in flight ends within Stop's grace
	<-stopped
	handedBack := time.Now()

	if restart {
		e.restartEngine()
	}
	e.start(Options{})
	for i := range events {
		e.waitRecord(fmt.Sprintf("h.evt_h%02d", i), 15*time.Second, statusIs(StatusSucceeded))
	}
	if took := time.Since(handedBack); took > 10*time.Second {
		t.Errorf("the held-back deliveries took %v after the restart: not handed back at Stop", took)
	}
	seen := map[string]int{}
	for _, r := range s.requests() {
		seen[r.Header.Get("Webhook-Id")]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if len(seen) != events {
		t.Errorf("%d distinct events delivered, want %d", len(seen), events)
	}
}

// A destination that drains fast takes a burst far larger than its
// in-memory waiting list at its own pace: the deliveries that find the list
// full wait for room (holding up their consumer briefly) instead of all
// going back to the stream for deferDelay and coming back together, which
// held such a destination to a fraction of its pace: thousands of these
// 2,000 deliveries were deferred, again and again, and they took over 30 s.
func TestFastDestinationTakesABurst(t *testing.T) {
	const events = 2000
	s := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "burst", Topics: []string{"*"}, URL: s.URL})
	p := e.newPipeline(Options{PerDestination: 8})
	e.pipe = p
	// The backlog is in the stream before the pipeline starts.
	for range events {
		e.publish(&Event{Topic: "t", Data: json.RawMessage(`{}`)})
	}
	start := time.Now()
	if err := p.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	s.waitCount(t, events, 60*time.Second)
	t.Logf("%d events through a destination with 8 in flight and 32 waiting in %v, %d deferrals",
		events, time.Since(start), p.deferred.Load())
	// Without the hold, 10,354 deferrals for these 2,000 events; with it,
	// none on a quiet machine, a few hundred when a loaded one (the race
	// detector, other packages' tests) stalls the sink for a while.
	if n := p.deferred.Load(); n > events {
		t.Errorf("%d deliveries deferred for a destination that drains fast, want far fewer than %d", n, events)
	}
	if s.maxIn.Load() > 8 {
		t.Errorf("%d attempts in flight at once, want at most 8", s.maxIn.Load())
	}
}

// A slow destination (not draining fast) with a backlog does not hold up
// another destination of its own partition: its deliveries beyond the
// waiting list go back to the stream as before.
func TestSlowDestinationDoesNotHoldUpItsPartition(t *testing.T) {
	// Two subscription ids in the same partition.
	slowID, fastID := "slow", ""
	for i := 0; fastID == ""; i++ {
		if id := fmt.Sprintf("fast%d", i); Partition(id) == Partition(slowID) {
			fastID = id
		}
	}
	release := newCloser(t)
	slow := blockingSink(t, release, 100*time.Millisecond)
	fast := newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: slowID, Topics: []string{"slow.*"}, URL: slow.URL})
	e.subscribe(registry.Subscription{ID: fastID, Topics: []string{"fast.*"}, URL: fast.URL})
	e.start(Options{PerDestination: 2})
	const backlog = 300 // 100 ms each, 2 at a time: 15 s to drain
	for range backlog {
		e.publish(&Event{Topic: "slow.x", Data: json.RawMessage(`{}`)})
	}
	slow.waitCount(t, 4, 5*time.Second)
	start := time.Now()
	for range 20 {
		e.publish(&Event{Topic: "fast.x", Data: json.RawMessage(`{}`)})
	}
	if !waitFor(5*time.Second, func() bool { return fast.count() >= 20 }) {
		c, err := e.eng.JetStream().Consumer(e.ctx, engine.StreamEvents, fmt.Sprintf("%s%d", ConsumerDirectPrefix, Partition(fastID)))
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(e.ctx)
		}
		if err != nil {
			t.Fatalf("the fast destination got %d of 20 deliveries within 5s (slow: %d, deferred %d); consumer info: %v",
				fast.count(), slow.count(), e.pipe.deferred.Load(), err)
		}
		t.Fatalf("the fast destination got %d of 20 deliveries within 5s (slow: %d, deferred %d); consumer: delivered %d, ack floor %d, ack pending %d, redelivered %d, pending %d, waiting pulls %d",
			fast.count(), slow.count(), e.pipe.deferred.Load(), info.Delivered.Stream, info.AckFloor.Stream,
			info.NumAckPending, info.NumRedelivered, info.NumPending, info.NumWaiting)
	}
	t.Logf("the fast destination was served in %v behind %d slow deliveries", time.Since(start), backlog)
	if n := slow.count(); n >= backlog {
		t.Fatalf("the slow backlog drained (%d) before the check: the test proves nothing", n)
	}
}

// A slow destination's deferred deliveries come back at about its pace, not
// all together every deferDelay: a backlog of them would otherwise take the
// whole consumer each time it comes back (the server redelivers before it
// delivers anything new), and the other destinations of the partition would
// wait behind the churn. Deferring the backlog once is what it may cost.
func TestDeferredBacklogComesBackAtItsPace(t *testing.T) {
	release := newCloser(t)
	slow := blockingSink(t, release, 100*time.Millisecond)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "slow", Topics: []string{"slow.*"}, URL: slow.URL})
	e.start(Options{PerDestination: 2})
	const backlog = 1000 // 100 ms each, 2 at a time: 50 s to drain
	for range backlog {
		e.publish(&Event{Topic: "slow.x", Data: json.RawMessage(`{}`)})
	}
	// Every delivery that found no room was deferred once; after three
	// times deferDelay, a backlog coming back together would have been
	// deferred three or four times over.
	// (each delivery was taken, or deferred, once by now; a few wait in
	// memory)
	if !waitFor(60*time.Second, func() bool { return e.pipe.deferred.Load()+uint64(slow.count()) >= backlog-20 }) {
		t.Fatalf("only %d of the backlog deferred and %d delivered", e.pipe.deferred.Load(), slow.count())
	}
	first := e.pipe.deferred.Load()
	time.Sleep(3 * deferDelay)
	again := e.pipe.deferred.Load() - first
	delivered := slow.count()
	t.Logf("deferred %d, then %d more in %v; %d delivered", first, again, 3*deferDelay, delivered)
	// The backlog comes back at fastRate (the destination takes about 20
	// a second); what finds no room again goes back again.
	if limit := uint64(2 * fastRate * 3 * deferDelay / time.Second); again > limit {
		t.Fatalf("the backlog was deferred %d more times in %v (limit %d): it comes back faster than the destination takes it",
			again, 3*deferDelay, limit)
	}
	if delivered >= backlog {
		t.Fatalf("the backlog drained (%d): the test proves nothing", delivered)
	}
}

// Deliveries deferred one after another are spread at the destination's
// pace (a quarter faster, fastRate at least), from deferDelay on, up to
// maxDeferDelay later;
// those of an open circuit from the end of its cool-down, at openPace.
func TestDeferSpread(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ms := time.Millisecond
	tests := []struct {
		name   string
		rate   float64       // measured, attempts a second (0: not yet)
		open   time.Duration // the circuit is open for that long (0: closed)
		n      int           // deliveries deferred at t0
		later  time.Duration // one more deferred then (0: none)
		want   []time.Duration
		capped time.Duration // instead of want: growing waits, the last this
	}{
		{name: "measured 80 a second: at 100 a second", rate: 80, n: 3, want: []time.Duration{2000 * ms, 2010 * ms, 2020 * ms}},
		{name: "measured 20 a second: at fastRate", rate: 20, n: 3, want: []time.Duration{2000 * ms, 2020 * ms, 2040 * ms}},
		{name: "not measured: at fastRate", n: 3, want: []time.Duration{2000 * ms, 2020 * ms, 2040 * ms}},
		{name: "a backlog is spread over maxDeferDelay at most", rate: 0.8, n: 100_000, capped: deferDelay + maxDeferDelay},
		{name: "after its deferred ones are back: deferDelay again", rate: 20, n: 3, later: 10 * time.Second, want: []time.Duration{2000 * ms, 2020 * ms, 2040 * ms, 2000 * ms}},
		{name: "open circuit: from the end of its cool-down at openPace", rate: 5000, open: 5 * time.Second, n: 3, want: []time.Duration{5000 * ms, 5001 * ms, 5002 * ms}},
		{name: "open circuit: a backlog over maxOpenSpread at most", open: 5 * time.Second, n: 200_000, capped: 5*time.Second + maxOpenSpread},
		{name: "open circuit ending now: deferDelay at least", open: time.Millisecond, n: 1, want: []time.Duration{deferDelay}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pipeline{flows: map[string]*flowState{}}
			if tc.open > 0 {
				p.flows["d"] = &flowState{state: CircuitOpen, openUntil: t0.Add(tc.open)}
			}
			q := newDestQueue(t0)
			q.rate = tc.rate
			deferAt := func(now time.Time) time.Duration {
				if from, open := p.parkedFrom("d", now); open {
					return q.deferFor(now, from, openPace, maxOpenSpread)
				}
				return q.deferFor(now, now.Add(deferDelay), q.pace(2), maxDeferDelay)
			}
			var got []time.Duration
			for range tc.n {
				got = append(got, deferAt(t0))
			}
			if tc.later > 0 {
				got = append(got, deferAt(t0.Add(tc.later)))
			}
			if tc.capped > 0 {
				for i, w := range got {
					if w < deferDelay || w > tc.capped || (i > 0 && w < got[i-1]) {
						t.Fatalf("wait %d is %v after %v: not within [deferDelay, %v] and growing", i, w, got[max(0, i-1)], tc.capped)
					}
				}
				if last := got[len(got)-1]; last != tc.capped {
					t.Fatalf("the last of %d deferred waits %v, want %v", tc.n, last, tc.capped)
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("waits %v, want %v", got, tc.want)
			}
		})
	}
}

// A destination's pace is the count of attempts it ends, not an average of
// the gaps between them: one that ends its attempts in pairs every 100 ms
// (two slots started together) is slow, whatever its short gaps say. And it
// is at most what its slots allow at the time each delivery holds one: a
// bunch of attempts ending together after a stall is not a burst of pace.
func TestDestinationPace(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ms := time.Millisecond
	bunched := append(append(pairs(100*ms, 5), every(ms, 612)[600:]...), 710*ms) // 12 ending within 12 ms after 600 ms
	tests := []struct {
		name     string
		ends     []time.Duration // when attempts end, after t0
		held     time.Duration   // how long each held its slot (0: not measured)
		at       time.Duration   // when a delivery finds the list full
		capacity int             // the list's places and slots; 10 when 0
		want     bool
	}{
		{"nothing ended, just created", nil, 0, 100 * ms, 0, true},
		{"nothing ended, created long ago", nil, 0, 300 * ms, 0, false},
		{"pairs every 100 ms: 20 a second", pairs(100*ms, 10), 0, 1010 * ms, 0, false},
		{"one every 5 ms: 200 a second", every(5*ms, 200), 0, 1001 * ms, 0, true},
		{"one every 5 ms, each held 10 ms on 2 slots: 200 a second", every(5*ms, 200), 10 * ms, 1001 * ms, 0, true},
		{"one every 5 ms, then quiet for holdIdle", every(5*ms, 200), 0, 1300 * ms, 0, false},
		{"pairs every 10 ms: 200 a second", pairs(10*ms, 100), 0, 1001 * ms, 0, true},
		{"200 a second, then one window of a stall", append(every(5*ms, 200), 1150*ms), 0, 1160 * ms, 0, true},
		{"200 a second, then stalled for good", append(every(5*ms, 200), 1150*ms, 1300*ms, 1450*ms, 1600*ms), 0, 1610 * ms, 0, false},
		{"60 a second, but the list takes longer than deferDelay", every(time.Second/60, 60), 0, 1001 * ms, 200, false},
		{"20 a second, then 12 ending together, held unknown: reads fast", bunched, 0, 715 * ms, 0, true},
		{"20 a second, then 12 ending together, each held 100 ms on 2 slots: slow", bunched, 100 * ms, 715 * ms, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newDestQueue(t0)
			for _, d := range tc.ends {
				q.done(t0.Add(d), tc.held)
			}
			capacity := tc.capacity
			if capacity == 0 {
				capacity = 10
			}
			if got := q.draining(t0.Add(tc.at), capacity, 2); got != tc.want {
				t.Errorf("draining = %v, want %v (rate %.1f a second, %.1f with its slots)", got, tc.want, q.rate, q.limitedRate(2))
			}
		})
	}
}

// pairs returns n pairs of attempt ends, one pair every gap.
func pairs(gap time.Duration, n int) []time.Duration {
	var out []time.Duration
	for i := 1; i <= n; i++ {
		out = append(out, time.Duration(i)*gap, time.Duration(i)*gap+50*time.Microsecond)
	}
	return out
}

// every returns n attempt ends, one every gap.
func every(gap time.Duration, n int) []time.Duration {
	var out []time.Duration
	for i := 1; i <= n; i++ {
		out = append(out, time.Duration(i)*gap)
	}
	return out
}
