package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/registry"
)

// TestPublishBatch publishes a batch of 500 events (half with chosen ids)
// plus a duplicate to one subscriber through the direct path, and ten
// events fanned out to two subscribers: every event arrives exactly once,
// every chosen id is found by Event, and the batch again is all duplicates.
func TestPublishBatch(t *testing.T) {
	one, two := newSink(t, nil), newSink(t, nil)
	e := newEnv(t)
	e.subscribe(registry.Subscription{ID: "one", Topics: []string{"batch.*", "multi"}, URL: one.URL + "/in"})
	e.subscribe(registry.Subscription{ID: "two", Topics: []string{"multi"}, URL: two.URL + "/in"})
	core, logs := observer.New(zapcore.InfoLevel)
	e.pipe = New(e.eng, e.reg, testGuard().Client(), zap.New(core), Options{})
	t.Cleanup(e.pipe.Stop)
	if err := e.pipe.Start(e.ctx); err != nil {
		t.Fatal(err)
	}

	const n = 500
	var evs []*Event
	for i := range n {
		ev := &Event{Topic: "batch.created", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if i%2 == 0 {
			ev.ID = fmt.Sprintf("chosen-%03d", i)
		}
		evs = append(evs, ev)
	}
	evs = append(evs, &Event{ID: "chosen-000", Topic: "batch.created", Data: json.RawMessage(`{"n":"again"}`)})
	for i := range 10 {
		evs = append(evs, &Event{ID: fmt.Sprintf("multi-%d", i), Topic: "multi", Data: json.RawMessage(`{}`)})
	}
	res := e.pipe.PublishBatch(e.ctx, evs)
	if len(res) != len(evs) {
		t.Fatalf("%d results for %d events", len(res), len(evs))
	}
	ids := map[string]bool{}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("event %d: %v", i, r.Err)
		}
		if want := i == n; r.Duplicate != want {
			t.Errorf("event %d (%s): duplicate %v, want %v", i, evs[i].ID, r.Duplicate, want)
		}
		if evs[i].ID == "" || evs[i].Time.IsZero() {
			t.Errorf("event %d: id %q, time %v", i, evs[i].ID, evs[i].Time)
		}
		if i != n {
			ids[evs[i].ID] = true
		}
	}
	if len(ids) != n+10 {
		t.Fatalf("%d distinct ids, want %d", len(ids), n+10)
	}

	// Each event arrives once, at its subscribers.
	got := map[string]int{}
	for _, r := range one.waitCount(t, n+10, 20*time.Second) {
		got[r.Header.Get("Webhook-Id")]++
	}
	two.waitCount(t, 10, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if one.count() != n+10 || two.count() != 10 {
		t.Errorf("sinks received %d and %d requests, want %d and 10", one.count(), two.count(), n+10)
	}
	for id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s received %d times", id, got[id])
		}
	}

	// Chosen ids are indexed; the events read back as published.
	for i, ev := range evs[:n] {
		got, err := e.pipe.Event(e.ctx, ev.ID)
		if err != nil {
			t.Fatalf("Event(%s): %v", ev.ID, err)
		}
		if string(got.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("Event(%s) data %s", ev.ID, got.Data)
		}
	}

	// One "event accepted" line per accepted event.
	if c := logs.FilterMessage("event accepted").Len(); c != n+10 {
		t.Errorf("%d accepted log lines, want %d", c, n+10)
	}

	// The batch again (as a client retries it): every event with a chosen
	// or stored id is a duplicate, and nothing more is delivered.
	var again []*Event
	for _, ev := range evs {
		again = append(again, &Event{ID: ev.ID, Topic: ev.Topic, Data: ev.Data})
	}
	for i, r := range e.pipe.PublishBatch(e.ctx, again) {
		if r.Err != nil || !r.Duplicate {
			t.Errorf("again, event %d (%s): %+v, want duplicate", i, again[i].ID, r)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if one.count() != n+10 || two.count() != 10 {
		t.Errorf("after the retry, sinks received %d and %d requests", one.count(), two.count())
	}
}

// TestPublishBatchPartial: an event that cannot be stored (an id reserved
// for ids hookgate makes) fails alone; the others are stored.
func TestPublishBatchPartial(t *testing.T) {
	e := newEnv(t)
	e.pipe = e.newPipeline(Options{}) // publishing needs no consumer
	reserved := EventRef(e.eng.EventEpoch, 1<<40)
	res := e.pipe.PublishBatch(e.ctx, []*Event{
		{ID: "first", Topic: "t"}, {ID: reserved, Topic: "t"}, {Topic: "t"},
	})
	if res[0].Err != nil || res[2].Err != nil || !errors.Is(res[1].Err, ErrReservedID) {
		t.Fatalf("results %+v", res)
	}
	if n := e.streamMsgs(); n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}
	if res := e.pipe.PublishBatch(e.ctx, nil); len(res) != 0 {
		t.Errorf("an empty batch: %+v", res)
	}
}

// streamMsgs is the number of messages in the event stream.
func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	info, err := e.eng.EventStream.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// benchPipeline is a pipeline that publishes (no consumer runs) to one
// subscriber of topic "bench".
func benchPipeline(b *testing.B) *Pipeline {
	b.Helper()
	ctx := testenv.Context(b)
	eng := testenv.Engine(b)
	reg := registry.New(eng, testGuard(), nil)
	if err := reg.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(reg.Stop)
	if _, err := reg.CreateSubscription(ctx, registry.Subscription{ID: "s", Name: "s", Topics: []string{"bench"}, URL: "http://127.0.0.1:9/"}); err != nil {
		b.Fatal(err)
	}
	p := New(eng, reg, testGuard().Client(), nil, Options{})
	b.Cleanup(p.Stop)
	return p
}

// BenchmarkPublish is one event per Publish, without and with a chosen id
// (which adds the event-id index write).
func BenchmarkPublish(b *testing.B) {
	for _, chosen := range []bool{false, true} {
		b.Run(fmt.Sprintf("chosen=%v", chosen), func(b *testing.B) {
			p := benchPipeline(b)
			data := json.RawMessage(`{"n":1}`)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				ev := &Event{Topic: "bench", Data: data}
				if chosen {
					i++
					ev.ID = "bench-" + fmt.Sprint(i)
				}
				if _, err := p.Publish(b.Context(), ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
		})
	}
}

// BenchmarkPublishBatch is 100 events per PublishBatch, without and with
// chosen ids.
func BenchmarkPublishBatch(b *testing.B) {
	const size = 100
	for _, chosen := range []bool{false, true} {
		b.Run(fmt.Sprintf("chosen=%v", chosen), func(b *testing.B) {
			p := benchPipeline(b)
			data := json.RawMessage(`{"n":1}`)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				evs := make([]*Event, size)
				for j := range evs {
					evs[j] = &Event{Topic: "bench", Data: data}
					if chosen {
						i++
						evs[j].ID = "bench-" + fmt.Sprint(i)
					}
				}
				for _, r := range p.PublishBatch(b.Context(), evs) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}
