package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/filters"
)

// Partition returns the delivery partition of a destination.
func Partition(destID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(destID))
	return int(h.Sum32() % engine.Partitions)
}

// ErrReservedID is returned for an event id of the form hookgate makes that
// names no stored event.
var ErrReservedID = errors.New("reserved event id")

// Publish writes ev to the event stream and returns once JetStream has
// acknowledged it. duplicate is true when an event with the same id was
// accepted within the dedupe window (nothing new was written).
//
// An event without an id gets one from its place in the stream (EventRef),
// set in ev.ID on return: it needs no dedupe entry and no index. An event
// with an id chosen by its publisher (or derived from an idempotency header)
// is deduplicated on it and indexed for the dedupe window.
func (p *Pipeline) Publish(ctx context.Context, ev *Event) (duplicate bool, err error) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	chosen := ev.ID != ""
	if epoch, seq, ok := ParseEventRef(ev.ID); ok && epoch == p.eng.EventEpoch {
		// An id this stream gave: the event is stored already (a retry of
		// the same publish), or never was and the id is not the
		// publisher's to choose.
		if _, err := p.eng.EventStream.GetMsg(ctx, seq); err == nil {
			return true, nil
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, fmt.Errorf("reading event %s: %w", ev.ID, err)
		}
		return false, fmt.Errorf("%w: %s names no stored event and is reserved for ids hookgate makes", ErrReservedID, ev.ID)
	}
	// An event with exactly one destination now (a workflow with one
	// target, a topic with one subscriber: the common case) is stored as
	// its own delivery message in the destination's partition and skips
	// the fan-out hop. An ordered destination's deliveries always go
	// through the fan-out (order.go).
	var m *nats.Msg
	dests := p.Destinations(ev)
	if len(dests) == 1 && !dests[0].Flow.Ordered {
		m = ev.message(engine.PartitionSubject(engine.SubjectDirect, Partition(dests[0].ID)))
		m.Header.Set(hdrDest, dests[0].ID)
	} else {
		m = ev.message(engine.SubjectFanout)
	}
	var opts []jetstream.PublishOpt
	if chosen {
		opts = append(opts, jetstream.WithMsgID(ev.ID))
	}
	ack, err := p.eng.JetStream().PublishMsg(ctx, m, opts...)
	if err != nil {
		return false, fmt.Errorf("writing event: %w", err)
	}
	if !chosen {
		ev.ID = EventRef(p.eng.EventEpoch, ack.Sequence)
		p.logAccepted(ev, len(dests))
		return false, nil
	}
	if !ack.Duplicate {
		// The index is written after the event: if it is lost, the event
		// is still delivered; only its lookup by this id fails.
		if _, err := p.eng.EventIDs.Put(ctx, ev.ID, []byte(strconv.FormatUint(ack.Sequence, 10))); err != nil {
			p.log.Warn("indexing an event id failed: the event is stored and delivered, but GET /events/{id} will not find it",
				zap.String("event", ev.ID), zap.Error(err))
		}
		p.logAccepted(ev, len(dests))
	}
	return ack.Duplicate, nil
}

// Destinations returns where ev goes now: the workflow's targets, or the
// enabled subscriptions whose topics and predicates match.
func (p *Pipeline) Destinations(ev *Event) []*destination.Destination {
	if ev.Workflow != "" {
		w, ok := p.reg.Workflow(ev.Workflow)
		if !ok {
			return nil
		}
		if ev.Request != nil {
			// A passthrough request the app did not take: to the fallback.
			if w.Fallback == nil {
				return nil
			}
			return []*destination.Destination{w.Fallback}
		}
		return w.Targets
	}
	var fe *filters.Event
	var out []*destination.Destination
	for _, s := range p.reg.SubscriptionsForTopic(ev.Topic) {
		if !s.Dest.Enabled {
			continue
		}
		if s.Include != nil || s.Exclude != nil {
			if fe == nil {
				fe = filterEvent(ev)
			}
			inc, exc, err := s.Predicates(fe)
			if err != nil {
				// A failing predicate counts as not matched: a failing
				// include keeps the event out, a failing exclude does not.
				p.log.Warn("subscription predicate failed: counted as not matched",
					zap.String("subscription", s.Def.ID), zap.String("event", ev.ID),
					zap.Bool("delivered", inc && !exc), zap.Error(err))
			}
			if !inc || exc {
				continue
			}
		}
		out = append(out, s.Dest)
	}
	return out
}

// filterEvent is the predicate environment of ev.
func filterEvent(ev *Event) *filters.Event {
	fe := &filters.Event{ID: ev.ID, Topic: ev.Topic, Tenant: ev.Tenant, User: ev.User, Time: ev.Time}
	if len(ev.Data) > 0 {
		_ = json.Unmarshal(ev.Data, &fe.Data)
	}
	return fe
}

// FilterEvent is the predicate environment of ev (for test-predicates).
func FilterEvent(ev *Event) *filters.Event { return filterEvent(ev) }

// fanOut queues one delivery per destination of the event, then acks it. A
// fan-out that runs again (the event was redelivered after a crash) marks
// what it queues, so that the attempt checks the delivery log first.
func (p *Pipeline) fanOut(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		p.log.Error("fan-out message without metadata dropped", zap.Error(err))
		_ = m.Term()
		return
	}
	ev, err := p.eventOf(m.Headers(), m.Data(), meta.Sequence.Stream)
	if err != nil {
		p.log.Error("unreadable event dropped from fan-out", zap.Error(err))
		_ = m.Term()
		return
	}
	js := p.eng.JetStream()
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	futures := make([]jetstream.PubAckFuture, 0, 8)
	for _, d := range p.Destinations(ev) {
		dm := ev.message(engine.PartitionSubject(engine.SubjectQueue, Partition(d.ID)))
		dm.Header.Set(hdrID, ev.ID)
		dm.Header.Set(hdrDest, d.ID)
		dm.Header.Set(hdrEventSeq, seq)
		if meta.NumDelivered > 1 {
			dm.Header.Set(hdrRefanned, "1")
		}
		f, err := js.PublishMsgAsync(dm)
		if err != nil {
			p.fanOutFailed(m, ev, err)
			return
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			p.fanOutFailed(m, ev, err)
			return
		case <-p.ctx.Done():
			_ = m.Nak()
			return
		}
	}
	_ = m.Ack()
}

func (p *Pipeline) fanOutFailed(m jetstream.Msg, ev *Event, err error) {
	if p.ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.log.Warn("queueing deliveries failed; the event will be fanned out again",
			zap.String("event", ev.ID), zap.Error(err))
	}
	_ = m.NakWithDelay(time.Second)
}

// eventOf decodes a stored event; one stored without an id gets its
// sequence-based id.
func (p *Pipeline) eventOf(h nats.Header, data []byte, seq uint64) (*Event, error) {
	ev, err := eventFromMessage(h, data)
	if err != nil {
		return nil, err
	}
	if ev.ID == "" {
		ev.ID = EventRef(p.eng.EventEpoch, seq)
	}
	return ev, nil
}
