package delivery

// The dispatcher: each destination's slots, its waiting list in memory, its
// pace, and the deferral of what does not fit, between a partition's
// consumer and the attempts (attempt.go).

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// destQueue is one destination's place in the dispatcher: its deliveries in
// flight and waiting, and what it has shown of its pace.
type destQueue struct {
	inFlight int
	waiting  []jetstream.Msg
	// room is signalled when a delivery leaves waiting (see holdForRoom).
	room chan struct{}
	// created, lastDone and rate (attempts ended a second, measured over
	// windows of rateWindow, the last weighing most; 0 until one has passed) say whether the
	// destination drains its deliveries fast (see draining). windowStart
	// and windowDone measure the current window.
	created     time.Time
	lastDone    time.Time
	rate        float64
	windowStart time.Time
	windowDone  int
	// held is how long a delivery holds a slot (an attempt and its
	// bookkeeping), averaged over the last ones: slots per held bounds
	// the pace the destination can have (see limitedRate).
	held time.Duration
	// deferredTo is when the last delivery deferred for want of room
	// comes back: the next one comes back a delivery's time (at the
	// destination's pace) after it (see deferFor).
	deferredTo time.Time
}

// deferFor is, under destMu, how long a delivery that finds no room for it
// goes back to the stream: until from at the earliest, and a delivery's
// time at pace (deliveries a second) after the one deferred before it, at
// most spread after from. A backlog deferred together thus comes back about
// as fast as the destination can take it, not all at once: the server
// redelivers before it delivers anything new, so a backlog coming back
// together would take the whole consumer each time, and every other
// destination of the partition would wait behind it.
func (q *destQueue) deferFor(now, from time.Time, pace float64, spread time.Duration) time.Duration {
	at := from
	if q.deferredTo.After(at) {
		at = q.deferredTo
	}
	if limit := from.Add(spread); at.After(limit) {
		at = limit
	}
	q.deferredTo = at.Add(time.Duration(float64(time.Second) / pace))
	return at.Sub(now)
}

// pace is, under destMu, how fast the deliveries deferred for a busy
// destination come back (see deferFor): a little faster than it ends
// attempts, so that a hiccup leaves it something waiting rather than idle,
// and at least fastRate: a pace measured in a stall (a collection, a busy
// machine) must not leave the destination idle behind its own backlog for
// long, and a destination that fast holds up its consumer instead of being
// deferred.
func (q *destQueue) pace(slots int) float64 {
	return max(q.limitedRate(slots)*1.25, fastRate)
}

// unused reports, under destMu, that the queue holds nothing: no attempt in
// flight, none waiting, none deferred still to come back at the pace it set.
func (q *destQueue) unused(now time.Time) bool {
	return q.inFlight == 0 && len(q.waiting) == 0 && !q.deferredTo.After(now)
}

func newDestQueue(now time.Time) *destQueue {
	return &destQueue{room: make(chan struct{}, 1), created: now}
}

// left notes, under destMu, that a delivery left the waiting list.
func (q *destQueue) left() {
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// done notes, under destMu, that an attempt ended at now. The pace is the
// count of attempts ended over at least rateWindow: an average of the gaps
// between them would read a destination that ends its attempts in pairs
// (two slots started together) as twice as fast as it is.
func (q *destQueue) done(now time.Time, held time.Duration) {
	q.lastDone = now
	if held > 0 {
		if q.held == 0 {
			q.held = held
		} else {
			q.held = (3*q.held + held) / 4
		}
	}
	if q.windowStart.IsZero() {
		q.windowStart = now
		return
	}
	q.windowDone++
	if elapsed := now.Sub(q.windowStart); elapsed >= rateWindow {
		// Averaged with the windows before (each weighs half as much as
		// the next), so that one window of a stall (a collection, a busy
		// machine) does not read a fast destination as a slow one.
		r := float64(q.windowDone) / elapsed.Seconds()
		if q.rate == 0 {
			q.rate = r
		} else {
			q.rate = (q.rate + r) / 2
		}
		q.windowStart, q.windowDone = now, 0
	}
}

// draining reports, under destMu, whether the destination ends attempts
// often enough that a delivery finding its waiting list full gets a place
// sooner by waiting for it than by going back to the stream: faster than
// the list's capacity per deferDelay (deferred deliveries come back
// together after deferDelay, so deferring caps a destination at about that
// rate), and at least fastRate attempts a second, so that the deliveries
// of other destinations behind it in the consumer wait little. A
// destination whose pace is not measured yet counts as draining for
// holdIdle after its first delivery.
func (q *destQueue) draining(now time.Time, capacity, slots int) bool {
	if q.rate == 0 {
		return now.Sub(q.created) < holdIdle
	}
	rate := q.limitedRate(slots)
	return now.Sub(q.lastDone) < holdIdle && rate >= fastRate && float64(capacity)/rate < deferDelay.Seconds()
}

// limitedRate is the destination's measured pace, at most what its slots
// allow at the time each delivery holds one (Little's law): attempts that
// end in a bunch after a stall (a collection, a busy machine) read as a
// burst of pace over one window, but each of them still held its slot as
// long as before.
func (q *destQueue) limitedRate(slots int) float64 {
	if q.held <= 0 {
		return q.rate
	}
	return min(q.rate, float64(slots)/q.held.Seconds())
}

// waitingPerSlot × PerDestination deliveries may wait in memory for a busy
// destination. One more, for a destination that is draining fast, holds up
// its consumer for up to holdIdle at a time until there is room (the
// back-pressure that lets a fast destination take a burst at its own
// pace); for one that is not, it is deferred (back to the stream for
// deferDelay at least, spread at its pace: see deferFor), so that a slow
// destination holds up only itself. The deliveries deferred for an open
// circuit come back from the end of its cool-down at openPace, at most
// maxOpenSpread later: the first is the probe, and those that find the
// circuit still open go back again.
const (
	waitingPerSlot = 4
	deferDelay     = 2 * time.Second
	maxDeferDelay  = 30 * time.Minute
	openPace       = 1000 // deliveries a second
	maxOpenSpread  = 2 * time.Minute
	holdIdle       = 200 * time.Millisecond
	fastRate       = 50 // attempts ended a second
	rateWindow     = 100 * time.Millisecond
)

// dispatch runs a delivery when its destination has a free slot and parks it
// in the destination's waiting list otherwise, so that a slow destination
// holds up only itself. Waiting here for a global worker slot holds up the
// consumer, which is the back-pressure wanted.
func (p *Pipeline) dispatch(m jetstream.Msg) {
	dest := m.Headers().Get(hdrDest)
	d, _ := p.reg.Destination(dest)
	if d != nil && d.Flow.Ordered {
		var ok bool
		if m, ok = p.orderAdmit(d, m); !ok {
			return
		}
	}
	now := time.Now()
	var held time.Time // when this delivery began to wait for room
	p.destMu.Lock()
	for {
		if p.ctx.Err() != nil {
			p.destMu.Unlock()
			return
		}
		q := p.dests[dest]
		if q == nil {
			q = newDestQueue(now)
			p.dests[dest] = q
		}
		// A delivery waits when the destination is busy, when others wait
		// before it, or when its flow control (rate limit, open circuit)
		// holds it back; waiting is not an attempt.
		limited := false
		ok := q.inFlight < p.limitOf(d) && len(q.waiting) == 0
		if ok {
			var wait time.Duration
			if ok, wait, limited = p.admit(d, now); !ok && wait > 0 {
				p.arm(dest, wait)
			}
		}
		if ok {
			q.inFlight++
			break
		}
		if limited {
			p.rateLimited(d)
		}
		capacity := p.opts.PerDestination * waitingPerSlot
		if len(q.waiting) < capacity {
			q.waiting = append(q.waiting, m)
			p.destMu.Unlock()
			return
		}
		if !limited && !p.circuitOpen(dest) && q.draining(now, capacity+p.limitOf(d), p.limitOf(d)) && (held.IsZero() || now.Sub(held) < deferDelay) {
			// Busy but fast: wait for room, holding up this consumer
			// (one delivery at most deferDelay in all).
			if held.IsZero() {
				held = now
			}
			room := q.room
			p.destMu.Unlock()
			if !p.holdForRoom(room) {
				sendBack(m) // stopping: back to the stream, not an attempt
				return
			}
			now = time.Now()
			p.destMu.Lock()
			continue
		}
		var wait time.Duration
		if from, open := p.parkedFrom(dest, now); open {
			wait = q.deferFor(now, from, openPace, maxOpenSpread)
		} else {
			wait = q.deferFor(now, now.Add(deferDelay), q.pace(p.limitOf(d)), maxDeferDelay)
		}
		p.destMu.Unlock()
		// The destination is saturated: the delivery goes back to the
		// stream for a while (parked, for a second or more), which is not
		// an attempt.
		p.deferredOne(d)
		if wait >= parkAfter && d != nil && !d.Flow.Ordered && p.park(m, p.knownAttempts(m), wait) {
			return
		}
		p.keepCount(m)
		_ = m.NakWithDelay(wait)
		return
	}
	p.destMu.Unlock()
	select {
	case p.sem <- struct{}{}:
	case <-p.ctx.Done():
		p.release(dest)
		return
	}
	p.wg.Add(1)
	go p.work(dest, m)
}

// holdForRoom waits until room is signalled or holdIdle passes; false when
// the pipeline stops meanwhile.
func (p *Pipeline) holdForRoom(room <-chan struct{}) bool {
	t := time.NewTimer(holdIdle)
	defer t.Stop()
	select {
	case <-room:
	case <-t.C:
	case <-p.quit:
		return false
	}
	return true
}

// work delivers m, then the deliveries waiting for the same destination, on
// one worker slot.
func (p *Pipeline) work(dest string, m jetstream.Msg) {
	defer p.wg.Done()
	defer func() { <-p.sem }()
	for m != nil {
		start := time.Now()
		p.deliverOne(m)
		m = p.next(dest, time.Since(start))
	}
}

// next returns the destination's next waiting delivery when its flow
// control lets it through now, or releases its slot (arming the timer that
// resumes the waiting ones).
func (p *Pipeline) next(dest string, held time.Duration) jetstream.Msg {
	d, _ := p.reg.Destination(dest)
	p.destMu.Lock()
	defer p.destMu.Unlock()
	q := p.dests[dest]
	now := time.Now()
	q.done(now, held)
	if len(q.waiting) > 0 && p.ctx.Err() == nil && q.inFlight <= p.limitOf(d) {
		ok, wait, limited := p.admit(d, now)
		if ok {
			m := q.waiting[0]
			q.waiting[0] = nil
			q.waiting = q.waiting[1:]
			q.left()
			return m
		}
		if wait > 0 {
			p.arm(dest, wait)
		}
		if limited {
			p.rateLimited(d)
		}
	}
	q.inFlight--
	if q.unused(now) {
		delete(p.dests, dest)
	}
	return nil
}

// touchWaiting tells the server, every third of the ack wait, that the
// deliveries waiting in memory for their destination are being worked on, so
// that they are not redelivered meanwhile.
func (p *Pipeline) touchWaiting() {
	defer p.wg.Done()
	t := time.NewTicker(ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		p.destMu.Lock()
		var all []jetstream.Msg
		var idle []string
		now := time.Now()
		for id, q := range p.dests {
			if q.unused(now) {
				delete(p.dests, id) // its deferred deliveries are back
				continue
			}
			all = append(all, q.waiting...)
			if len(q.waiting) > 0 && q.inFlight == 0 {
				if f := p.flows[id]; f == nil || (f.timer == nil && !f.probing) {
					idle = append(idle, id)
				}
			}
		}
		p.destMu.Unlock()
		for _, m := range all {
			_ = m.InProgress()
		}
		// A safety net: waiting deliveries with nothing in flight and no
		// timer are started (none is expected).
		for _, id := range idle {
			p.resume(id)
		}
		p.pruneFlows()
	}
}

func (p *Pipeline) release(dest string) {
	p.destMu.Lock()
	defer p.destMu.Unlock()
	if q := p.dests[dest]; q != nil {
		q.inFlight--
		if q.unused(time.Now()) {
			delete(p.dests, dest)
		}
	}
}
