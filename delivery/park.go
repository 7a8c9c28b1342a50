package delivery

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
)

// Parking. A delivery that must wait (a retry not yet due, or a delivery
// deferred for a busy destination or an open circuit) used to go back to
// its partition's consumer with a delay. A message waiting so counts toward
// the consumer's bound on messages in flight (maxAckPending): a destination
// failing long enough, with enough deliveries, held up every other
// destination of its partition. Now a delivery that waits parkAfter or
// longer is parked instead: a copy goes to a parking subject of the queue
// stream (one per class of wait, each with its own consumer), and the
// partition's message is acked. When the copy is due, its parking consumer
// queues it again in the destination's partition. Only parked deliveries
// wait on the parking consumers' bounds, never a partition's.
//
// A parked copy is the queued-delivery message (the event, its destination
// and its sequence in the event stream) with how many attempts the delivery
// made (or a mark that its log says), and when it is due.
const (
	// parkAfter is the shortest wait that parks a delivery; shorter ones
	// wait in the partition's consumer.
	parkAfter = time.Second
	// parkMaxAckPending bounds the parked deliveries of one class read
	// ahead by its consumer (each waits there until due). More parked
	// deliveries wait in the stream and are read as room frees: a class
	// being served in order of parking, they are due later anyway.
	parkMaxAckPending = 100000
	// parkAckWait is the parking consumers' ack wait: a parked delivery is
	// handled at once (sent back until due, or queued again), so one
	// that was sent to a consumer as it stopped is taken again soon.
	parkAckWait = 5 * time.Second
	// ConsumerParkPrefix + class consumes a class of parked deliveries.
	ConsumerParkPrefix = "hookgate-park-"
)

// parkClasses are the upper bounds of the waits of each parking class but
// the last (waits of an hour or more). Within a class, deliveries are read
// in the order they were parked, which is about the order they are due.
var parkClasses = [...]time.Duration{10 * time.Second, time.Minute, 10 * time.Minute, time.Hour}

// parkClassCount is the number of parking classes.
const parkClassCount = len(parkClasses) + 1

// parkSettle bounds how long Stop waits for the parking consumers to take
// the copies parked by this pipeline (see awaitParkedTaken).
const parkSettle = time.Second

// Header names of parked deliveries.
const (
	// hdrAttempts is the number of attempts a parked delivery made.
	hdrAttempts = "Hookgate-Attempts"
	// hdrDue is when a parked delivery is due, in Unix nanoseconds.
	hdrDue = "Hookgate-Due"
)

// parkClass is the class of a wait.
func parkClass(wait time.Duration) int {
	for i, bound := range parkClasses {
		if wait < bound {
			return i
		}
	}
	return len(parkClasses)
}

// parkSubject is the subject of a parking class in the queue stream.
func parkSubject(class int) string {
	return engine.SubjectQueue + ".park" + strconv.Itoa(class)
}

// parkSpecs are the parking consumers.
func parkSpecs() []consumerSpec {
	specs := make([]consumerSpec, 0, parkClassCount)
	for class := range parkClassCount {
		upTo := "an hour or more"
		if class < len(parkClasses) {
			upTo = "under " + parkClasses[class].String()
		}
		specs = append(specs, consumerSpec{
			stream: engine.StreamQueue, name: ConsumerParkPrefix + strconv.Itoa(class), filter: parkSubject(class),
			description:   "hookgate parked deliveries waiting " + upTo,
			maxAckPending: parkMaxAckPending, ackWait: parkAckWait, parkClass: class,
		})
	}
	return specs
}

// park moves m, a delivery that must wait, out of its partition's consumer
// until wait has passed: a copy is written to its parking class, then m is
// acked. attempts is the number of attempts the delivery made, or -1 when
// only the delivery log knows it. It reports false when the copy could not
// be written: m is then the caller's, to wait in its consumer as before.
func (p *Pipeline) park(m jetstream.Msg, attempts int, wait time.Duration) bool {
	meta, err := m.Metadata()
	if err != nil {
		return false
	}
	h := make(nats.Header, len(m.Headers())+3)
	for k, v := range m.Headers() {
		h[k] = v
	}
	if meta.Stream == engine.StreamEvents {
		// A direct event is its own delivery message: its copy names it
		// by its sequence, as a queued delivery does.
		h.Set(hdrEventSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	}
	if attempts >= 0 {
		h.Set(hdrAttempts, strconv.Itoa(attempts))
	} else {
		h.Del(hdrAttempts)
		h.Set(hdrRefanned, "1") // its log says how many attempts it made
	}
	h.Set(hdrDue, strconv.FormatInt(time.Now().Add(wait).UnixNano(), 10))
	class := parkClass(wait)
	copied := &nats.Msg{Subject: parkSubject(class), Header: h, Data: m.Data()}
	// The same message parked twice (its ack was lost) is one copy.
	id := "park:" + meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
	ack, err := p.eng.JetStream().PublishMsg(p.ctx, copied, jetstream.WithMsgID(id))
	if err != nil {
		if p.ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Warn("parking a delivery failed; it waits in its partition", zap.String("destination", h.Get(hdrDest)), zap.Error(err))
		}
		return false
	}
	storeMax(&p.parkedUpTo[class], ack.Sequence)
	p.forget(msgKey{meta.Stream, meta.Sequence.Stream})
	_ = m.Ack()
	return true
}

// unparker is the handler of the parking consumer of class: unpark, which
// notes the copies it was handed.
func (p *Pipeline) unparker(class int) func(jetstream.Msg) {
	return func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			_ = m.Term()
			return
		}
		p.unpark(m, meta)
		storeMax(&p.parkSeen[class], meta.Sequence.Stream)
	}
}

// unpark takes a parked delivery from its parking consumer: one not yet due
// waits there until it is; one due is queued again in its destination's
// partition, with the attempts it made.
func (p *Pipeline) unpark(m jetstream.Msg, meta *jetstream.MsgMetadata) {
	due, err := strconv.ParseInt(m.Headers().Get(hdrDue), 10, 64)
	if err != nil {
		p.log.Error("parked delivery without a due time dropped", zap.String("destination", m.Headers().Get(hdrDest)))
		_ = m.Term()
		return
	}
	if wait := time.Until(time.Unix(0, due)); wait > 0 {
		_ = m.NakWithDelay(wait)
		return
	}
	h := make(nats.Header, len(m.Headers()))
	for k, v := range m.Headers() {
		h[k] = v
	}
	h.Del(hdrDue)
	queued := &nats.Msg{Subject: engine.PartitionSubject(engine.SubjectQueue, Partition(h.Get(hdrDest))), Header: h, Data: m.Data()}
	// Queued twice (this ack was lost) is one delivery message.
	id := "unpark:" + strconv.FormatUint(meta.Sequence.Stream, 10)
	if _, err := p.eng.JetStream().PublishMsg(p.ctx, queued, jetstream.WithMsgID(id)); err != nil {
		if p.ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Warn("queueing a parked delivery again failed; trying again", zap.String("destination", h.Get(hdrDest)), zap.Error(err))
		}
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// parkedAttempts is the number of attempts written on a delivery message
// that was parked, when this is its first delivery (a redelivered one may
// have made more since: its log says).
func parkedAttempts(h nats.Header, meta *jetstream.MsgMetadata) (int, bool) {
	v := h.Get(hdrAttempts)
	if v == "" || meta.NumDelivered > 1 {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}

// awaitParkedTaken waits, up to limit, until every parking consumer has
// handed unpark the last copy this pipeline parked in its class. A
// consumer's pull request stays open on the server until its subscription
// is gone: a copy parked just before Stop, sent to the consumer as it
// drains, would be lost to it and wait out parkAckWait, after a restart
// too. A class whose consumer has more parked copies in flight than
// parkMaxAckPending may not reach its last one: limit bounds the wait.
func (p *Pipeline) awaitParkedTaken(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for class := range parkClassCount {
		for p.parkSeen[class].Load() < p.parkedUpTo[class].Load() {
			if time.Now().After(deadline) || p.ctx.Err() != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// storeMax stores v in a if it is more than a holds.
func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}
