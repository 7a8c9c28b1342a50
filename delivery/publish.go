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
//
// The index entry is written after the event's ack, and awaited: its value
// is the event's sequence, which only the ack tells, and GET /events/{id}
// right after the 2xx must find the event.
func (p *Pipeline) Publish(ctx context.Context, ev *Event) (duplicate bool, err error) {
	o, res, ok := p.prepare(ctx, ev)
	if !ok {
		return res.Duplicate, res.Err
	}
	ack, err := p.eng.JetStream().PublishMsg(ctx, o.msg, o.opts...)
	if err != nil {
		return false, fmt.Errorf("writing event: %w", err)
	}
	if p.stored(&o, ack) {
		_, err := p.eng.JetStream().PublishMsg(ctx, indexMessage(ev.ID, ack.Sequence))
		p.indexed(&o, err)
	}
	return ack.Duplicate, nil
}

// PublishResult is the outcome of one event of PublishBatch.
type PublishResult struct {
	// Duplicate is set when an event with the same id was accepted within
	// the dedupe window (earlier, or earlier in the same batch): nothing new
	// was written.
	Duplicate bool
	// Err is why the event is not known to be stored (it may have been, if
	// the ack was lost): nil when JetStream acknowledged it.
	Err error
}

// PublishBatch writes evs to the event stream, each with exactly the
// semantics of Publish, and returns once JetStream has answered every one:
// the results are in the order of evs. The events are published
// asynchronously, all in flight at once (within the JetStream context's
// window of pending acks), and their acks awaited together; then the index
// entries of the events with chosen ids, likewise. One event's failure does
// not stop the others: a publisher retrying the whole batch after a partial
// failure gets the stored events with chosen ids answered as duplicates
// (events without an id are stored again).
func (p *Pipeline) PublishBatch(ctx context.Context, evs []*Event) []PublishResult {
	res := make([]PublishResult, len(evs))
	out := make([]outgoing, len(evs))
	futures := make([]jetstream.PubAckFuture, len(evs))
	js := p.eng.JetStream()
	stall := jetstream.WithStallWait(stallWait(ctx))
	for i, ev := range evs {
		var ok bool
		if out[i], res[i], ok = p.prepare(ctx, ev); !ok {
			continue
		}
		f, err := js.PublishMsgAsync(out[i].msg, append(out[i].opts, stall)...)
		if err != nil {
			res[i].Err = fmt.Errorf("writing event: %w", err)
			continue
		}
		futures[i] = f
	}
	acks := make([]*jetstream.PubAck, len(evs))
	for i, f := range futures {
		if f == nil {
			continue
		}
		ack, err := awaitAck(ctx, f)
		if err != nil {
			res[i].Err = fmt.Errorf("writing event: %w", err)
			continue
		}
		acks[i], res[i].Duplicate = ack, ack.Duplicate
	}
	// The index entries of the stored events with chosen ids, all in
	// flight at once too.
	clear(futures)
	for i, ack := range acks {
		if ack == nil || !p.stored(&out[i], ack) {
			continue
		}
		f, err := js.PublishMsgAsync(indexMessage(evs[i].ID, ack.Sequence), stall)
		if err != nil {
			p.indexed(&out[i], err)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f != nil {
			_, err := awaitAck(ctx, f)
			p.indexed(&out[i], err)
		}
	}
	return res
}

// outgoing is an event ready for the stream.
type outgoing struct {
	ev     *Event
	chosen bool // the id is the publisher's: deduplicated and indexed
	dests  int  // the number of destinations, for the log
	msg    *nats.Msg
	opts   []jetstream.PublishOpt
}

// prepare readies ev for the stream: its time, its message and options.
// When ev needs no write, ok is false and res is the answer: an id this
// stream gave is a duplicate when the event is stored, or reserved.
func (p *Pipeline) prepare(ctx context.Context, ev *Event) (o outgoing, res PublishResult, ok bool) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if epoch, seq, ok := ParseEventRef(ev.ID); ok && epoch == p.eng.EventEpoch {
		// An id this stream gave: the event is stored already (a retry of
		// the same publish), or never was and the id is not the
		// publisher's to choose.
		if _, err := p.eng.EventStream.GetMsg(ctx, seq); err == nil {
			return o, PublishResult{Duplicate: true}, false
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return o, PublishResult{Err: fmt.Errorf("reading event %s: %w", ev.ID, err)}, false
		}
		return o, PublishResult{Err: fmt.Errorf("%w: %s names no stored event and is reserved for ids hookgate makes", ErrReservedID, ev.ID)}, false
	}
	o.ev, o.chosen = ev, ev.ID != ""
	// An event with exactly one destination now (a workflow with one
	// target, a topic with one subscriber: the common case) is stored as
	// its own delivery message in the destination's partition and skips
	// the fan-out hop. An ordered destination's deliveries always go
	// through the fan-out (order.go).
	dests := p.Destinations(ev)
	o.dests = len(dests)
	if len(dests) == 1 && !dests[0].Flow.Ordered {
		o.msg = ev.message(engine.PartitionSubject(engine.SubjectDirect, Partition(dests[0].ID)))
		o.msg.Header.Set(hdrDest, dests[0].ID)
	} else {
		o.msg = ev.message(engine.SubjectFanout)
	}
	if o.chosen {
		o.opts = []jetstream.PublishOpt{jetstream.WithMsgID(ev.ID)}
	}
	return o, PublishResult{}, true
}

// stored takes the ack of o's write. An event without an id gets its id
// from its place in the stream and is logged as accepted; it reports
// whether the event needs an index entry (a chosen id, not a duplicate),
// after which indexed logs it.
func (p *Pipeline) stored(o *outgoing, ack *jetstream.PubAck) (index bool) {
	p.workDone.Add(1)
	if !o.chosen {
		o.ev.ID = EventRef(p.eng.EventEpoch, ack.Sequence)
		p.logAccepted(o.ev, o.dests)
		return false
	}
	return !ack.Duplicate
}

// indexed takes the outcome of o's index write and logs the event as
// accepted. The index is written after the event: if it is lost, the event
// is still delivered; only its lookup by this id fails.
func (p *Pipeline) indexed(o *outgoing, err error) {
	if err != nil {
		p.log.Warn("indexing an event id failed: the event is stored and delivered, but GET /events/{id} will not find it",
			zap.String("event", o.ev.ID), zap.Error(err))
	}
	p.logAccepted(o.ev, o.dests)
}

// eventIDSubject is the subject prefix of the event-id index's keys: what
// a put to the EventIDs bucket publishes to (a bucket of this JetStream
// domain, not a mirror). Entries are published to it directly, so that a
// batch can put them asynchronously; Publish puts them the same way.
const eventIDSubject = "$KV." + engine.BucketEventIDs + "."

// indexMessage is the index entry of the event id stored at seq.
func indexMessage(id string, seq uint64) *nats.Msg {
	m := nats.NewMsg(eventIDSubject + id)
	m.Data = []byte(strconv.FormatUint(seq, 10))
	return m
}

// stallWait is how long an asynchronous publish may wait for room in the
// window of pending acks (the client's default is 200ms, short for a
// batch under load): until ctx's deadline, at most 10s.
func stallWait(ctx context.Context) time.Duration {
	const most = 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < most {
			return max(d, time.Millisecond)
		}
	}
	return most
}

// awaitAck waits for the ack of an asynchronous publish.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
		if _, err := awaitAck(p.ctx, f); err != nil {
			if p.ctx.Err() != nil {
				sendBack(m) // stopping: fanned out again (see sendBack)
			} else {
				p.fanOutFailed(m, ev, err)
			}
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
