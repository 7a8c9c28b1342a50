package delivery

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
)

// delivery is one message being delivered: the event, where it goes, and
// where it stands.
type delivery struct {
	m        jetstream.Msg
	key      msgKey
	ev       *Event
	evSeq    uint64
	destID   string
	replay   int
	made     int // attempts made in this replay before this one
	subID    string
	workflow string
}

func (d *delivery) id() string { return recordID(d.destID, d.ev.ID) }

// deliverOne makes one attempt of a delivery message and decides what
// follows: done, retry later, or failed.
func (p *Pipeline) deliverOne(m jetstream.Msg) {
	p.workDone.Add(1)
	observed := false
	defer func() {
		if !observed {
			p.probeEnded(m.Headers().Get(hdrDest))
		}
	}()
	d, ok := p.open(m)
	if !ok {
		return
	}
	dest, found := p.reg.Destination(d.destID)
	if !found {
		p.logNotAttempted(d, "destination no longer exists")
		p.finish(d, StatusFailed, "destination no longer exists", nil)
		return
	}
	d.subID, d.workflow = dest.SubscriptionID, dest.WorkflowID
	if !dest.Enabled {
		p.logNotAttempted(d, "subscription disabled")
		p.finish(d, StatusFailed, "subscription disabled", nil)
		return
	}
	stopProgress := keepInProgress(m, dest.Timeout)
	res := p.sender.Attempt(p.ctx, dest, d.ev)
	stopProgress()
	if p.ctx.Err() != nil && res.Err != nil {
		sendBack(m) // shutting down: not an attempt; redelivered within sendBackDelay elsewhere, or at once after a restart
		return
	}
	p.observe(dest, res)
	observed = true

	at := &Attempt{At: time.Now().UTC().Add(-res.Duration), StatusCode: res.StatusCode, DurationMS: res.Duration.Milliseconds(), Response: string(res.Body), RequestHeaders: res.RequestHeader}
	if res.Err != nil {
		at.Error = res.Err.Error()
	} else if !res.Success() {
		at.Error = http.StatusText(res.StatusCode)
	}
	made := d.made + 1
	outcome := ""
	switch {
	case res.Success():
		outcome = StatusSucceeded
		p.finish(d, StatusSucceeded, "", at)
	case res.StatusCode == http.StatusGone && dest.SubscriptionID != "":
		outcome = StatusFailed
		reason := "the subscriber answered 410 Gone: subscription disabled"
		if err := p.reg.SetSubscriptionEnabled(p.ctx, dest.SubscriptionID, false, reason); err != nil && !errors.Is(err, registry.ErrReadOnly) {
			p.log.Warn("disabling subscription after 410 failed", zap.String("subscription", dest.SubscriptionID), zap.Error(err))
		}
		p.log.Info("subscription disabled: 410 Gone", zap.String("subscription", dest.SubscriptionID))
		p.finish(d, StatusFailed, reason, at)
	case made >= dest.MaxAttempts:
		outcome = StatusFailed
		p.finish(d, StatusFailed, fmt.Sprintf("gave up after %d attempts", made), at)
	default:
		outcome = "retrying"
		wait := res.RetryAfter
		if wait <= 0 {
			wait = dest.RetryDelay(made)
		}
		wait = min(wait, maxRetryAfter)
		next := time.Now().Add(wait).UTC()
		if err := p.writeRecord(p.ctx, d, StatusPending, "", at, &next); err != nil {
			_ = m.NakWithDelay(wait)
			return
		}
		// A wait of a second or more is parked, out of the partition's
		// consumer (park.go); an ordered destination's stays in order.
		if wait < parkAfter || dest.Flow.Ordered || !p.park(m, made, wait) {
			p.setCount(d.key, made)
			_ = m.NakWithDelay(wait)
		}
	}
	if p.opts.Observer != nil {
		p.opts.Observer.Attempted(dest, outcome, res.Duration)
	}
	p.logAttempt(d, res, made, outcome)
}

// open decodes a delivery message and finds where the delivery stands. It
// reports false when there is nothing to do: the message was unreadable, or
// the delivery had already finished (before a crash, or a repeated fan-out).
func (p *Pipeline) open(m jetstream.Msg) (*delivery, bool) {
	meta, err := m.Metadata()
	if err != nil {
		p.log.Error("delivery message without metadata dropped", zap.Error(err))
		_ = m.Term()
		return nil, false
	}
	h := m.Headers()
	d := &delivery{m: m, key: msgKey{meta.Stream, meta.Sequence.Stream}, destID: h.Get(hdrDest)}
	d.evSeq = meta.Sequence.Stream
	if meta.Stream == engine.StreamQueue {
		d.evSeq, err = strconv.ParseUint(h.Get(hdrEventSeq), 10, 64)
		if err != nil {
			p.log.Error("queued delivery without an event sequence dropped", zap.String("destination", d.destID))
			_ = m.Term()
			return nil, false
		}
	}
	if d.ev, err = p.eventOf(h, m.Data(), d.evSeq); err != nil || d.destID == "" {
		p.log.Error("unreadable delivery dropped", zap.String("destination", d.destID), zap.Error(err))
		_ = m.Term()
		return nil, false
	}
	d.replay, _ = strconv.Atoi(h.Get(hdrReplay))

	made, known := p.count(d.key)
	if !known {
		made, known = parkedAttempts(h, meta)
	}
	d.made = made
	if known || !p.mayHaveHistory(meta, h.Get(hdrRefanned) != "") {
		return d, true
	}
	// Redelivered without a count here: after a restart, on another
	// instance, or queued twice by a repeated fan-out. The log says
	// whether it finished and how many attempts it made.
	rec, err := p.state(p.ctx, d.evSeq, d.ev.ID, d.destID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		_ = m.NakWithDelay(time.Second)
		return nil, false
	}
	if rec != nil && rec.Replays == d.replay {
		switch rec.Status {
		case StatusSucceeded:
			p.forget(d.key)
			_ = m.Ack() // delivered before; its ack was lost
			return nil, false
		case StatusFailed:
			p.forget(d.key)
			_ = m.Term()
			return nil, false
		}
		d.made = len(rec.Attempts) - rec.ReplayBase
	}
	return d, true
}

// mayHaveHistory reports whether a message may have been attempted before
// without this process knowing.
func (p *Pipeline) mayHaveHistory(meta *jetstream.MsgMetadata, refanned bool) bool {
	if meta.NumDelivered > 1 || refanned {
		return true
	}
	p.attemptsMu.Lock()
	defer p.attemptsMu.Unlock()
	return meta.Sequence.Stream <= p.recoverUpTo[meta.Stream]
}

// finish records the final state of a delivery and removes it from the queue.
func (p *Pipeline) finish(d *delivery, status, reason string, at *Attempt) {
	if err := p.writeRecord(p.ctx, d, status, reason, at, nil); err != nil {
		// Not recorded: try again later rather than lose the outcome.
		_ = d.m.NakWithDelay(time.Second)
		return
	}
	p.forget(d.key)
	if status == StatusSucceeded {
		_ = d.m.Ack()
	} else {
		_ = d.m.Term()
	}
}

func (p *Pipeline) count(k msgKey) (int, bool) {
	p.attemptsMu.Lock()
	defer p.attemptsMu.Unlock()
	n, ok := p.attempts[k]
	return n, ok
}

func (p *Pipeline) setCount(k msgKey, n int) {
	p.attemptsMu.Lock()
	p.attempts[k] = n
	p.attemptsMu.Unlock()
}

// knownAttempts is the number of attempts the delivery of m made, as far
// as this process knows it, or -1 when only its log does.
func (p *Pipeline) knownAttempts(m jetstream.Msg) int {
	meta, err := m.Metadata()
	if err != nil {
		return -1
	}
	if n, ok := p.count(msgKey{meta.Stream, meta.Sequence.Stream}); ok {
		return n
	}
	if n, ok := parkedAttempts(m.Headers(), meta); ok {
		return n
	}
	if p.mayHaveHistory(meta, m.Headers().Get(hdrRefanned) != "") {
		return -1
	}
	return 0
}

// keepCount makes sure a deferred message's count is known when it comes back.
func (p *Pipeline) keepCount(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil || p.mayHaveHistory(meta, m.Headers().Get(hdrRefanned) != "") {
		return // its count is read from the log when it comes back
	}
	k := msgKey{meta.Stream, meta.Sequence.Stream}
	p.attemptsMu.Lock()
	if _, ok := p.attempts[k]; !ok {
		p.attempts[k] = 0
	}
	p.attemptsMu.Unlock()
}

func (p *Pipeline) forget(k msgKey) {
	p.attemptsMu.Lock()
	delete(p.attempts, k)
	p.attemptsMu.Unlock()
}

// keepInProgress extends the ack deadline while a long attempt runs.
func keepInProgress(m jetstream.Msg, timeout time.Duration) func() {
	if timeout < ackWait*2/3 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(done) }
}
