package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/hookgate/hookgate/delivery/destination"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/registry"
)

// Flow control per destination: a token bucket for its rate limit, its
// bound on attempts in flight, and a circuit breaker. The state lives in the
// memory of each instance (several instances sharing an engine each pace
// and break on their own); only "failing since", which decides the
// auto-disable, is kept in the engine (the KV bucket hookgate_flow) so that
// it survives a restart. It is written when the failures reach the breaker's
// threshold (the circuit opens) and removed at the next success.

// maxSlow bounds the halvings of a rate limit after 429 answers (1/16).
const maxSlow = 4

// Circuit breaker states.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half_open"
)

// Circuit is the state of a destination's circuit breaker on this instance.
type Circuit struct {
	// State is "closed", "open" or "half_open".
	State string `json:"state"`
	// Since is when the circuit entered State (zero: never left closed).
	Since time.Time `json:"since,omitzero"`
	// Failures counts the consecutive failures.
	Failures int `json:"failures"`
	// RetryAt is when an open circuit lets its next probe through.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// FailingSince is the first failure since the last success.
	FailingSince time.Time `json:"failing_since,omitzero"`
}

// FlowObserver, when the pipeline's Observer implements it, is told about
// circuit transitions and rate-limited waits (metrics).
type FlowObserver interface {
	// CircuitChanged is called when a destination's circuit goes from one
	// state to another.
	CircuitChanged(dest *destination.Destination, from, to string)
	// RateLimited is called when a delivery waits for its destination's
	// rate limit.
	RateLimited(dest *destination.Destination)
	// Deferred is called when a delivery finds no room for it (its
	// destination busy, or its circuit open) and goes back to the stream
	// for a while; that is not an attempt.
	Deferred(dest *destination.Destination)
}

// flowState is a destination's flow control state, under Pipeline.destMu.
type flowState struct {
	// Token bucket. slow halves the rate that many times: a destination
	// answering 429 is slowed down (at most maxSlow halvings), and each
	// 2xx gives back one halving.
	tokens float64
	filled time.Time
	slow   int

	// Circuit breaker.
	state     string
	since     time.Time
	failures  int
	cooldown  time.Duration
	openUntil time.Time
	probing   bool

	// Health: the first failure since the last success (zero when
	// healthy), and whether it was read from and written to the engine.
	failingSince time.Time
	lastFailure  time.Time
	loaded       bool
	persisted    bool
	disabled     bool

	timer   *time.Timer
	timerAt time.Time
	// dest is the destination as of the last transition, to report its
	// circuit ended when the state is forgotten.
	dest *destination.Destination
}

// flowOf returns the flow state of a destination, under destMu.
func (p *Pipeline) flowOf(id string) *flowState {
	f := p.flows[id]
	if f == nil {
		f = &flowState{state: CircuitClosed}
		p.flows[id] = f
	}
	return f
}

// limitOf is the bound on attempts in flight to dest.
func (p *Pipeline) limitOf(dest *destination.Destination) int {
	if dest != nil && dest.Flow.MaxInFlight > 0 {
		return dest.Flow.MaxInFlight
	}
	return p.opts.PerDestination
}

// admit decides, under destMu, whether one more attempt may start now. When
// not, wait says when to look again (0: when the probe in flight ends).
// limited reports a wait for the rate limit.
func (p *Pipeline) admit(dest *destination.Destination, now time.Time) (ok bool, wait time.Duration, limited bool) {
	if dest == nil {
		return true, 0, false // it fails when attempted: nothing to pace
	}
	f := p.flows[dest.ID]
	if f == nil {
		if dest.Flow.Rate == 0 {
			return true, 0, false // closed and unlimited: no state kept
		}
		f = p.flowOf(dest.ID)
	}
	probe := false
	switch f.state {
	case CircuitOpen:
		if now.Before(f.openUntil) {
			return false, f.openUntil.Sub(now), false
		}
		probe = true
	case CircuitHalfOpen:
		if f.probing {
			return false, 0, false
		}
		probe = true
	}
	if r := dest.Flow.Rate; r > 0 {
		r /= float64(int(1) << f.slow)
		burst := max(1, float64(dest.Flow.Burst)/float64(int(1)<<f.slow))
		if f.filled.IsZero() {
			f.tokens = burst
		} else {
			f.tokens = min(burst, f.tokens+now.Sub(f.filled).Seconds()*r)
		}
		f.filled = now
		if f.tokens < 1 {
			return false, max(time.Millisecond, time.Duration((1-f.tokens)/r*float64(time.Second))), true
		}
		f.tokens--
	}
	if probe {
		p.setState(dest, f, CircuitHalfOpen, now)
		f.probing = true
	}
	return true, 0, false
}

// setState moves a circuit to state, under destMu; the transition is logged
// and observed.
func (p *Pipeline) setState(dest *destination.Destination, f *flowState, state string, now time.Time) {
	from := f.state
	if from == state {
		return
	}
	f.state, f.since, f.dest = state, now, dest
	switch state {
	case CircuitOpen:
		if from == CircuitClosed {
			p.log.Warn("circuit open: deliveries to the destination wait",
				zap.String("destination", dest.ID), zap.Int("failures", f.failures), zap.Duration("cooldown", f.cooldown))
		} else {
			p.log.Debug("circuit probe failed", zap.String("destination", dest.ID), zap.Duration("cooldown", f.cooldown))
		}
	case CircuitClosed:
		p.log.Info("circuit closed: the destination answers again", zap.String("destination", dest.ID))
	}
	if o, ok := p.opts.Observer.(FlowObserver); ok {
		o.CircuitChanged(dest, from, state)
	}
}

// arm makes sure resume runs for the destination within wait, under destMu:
// one timer per destination, moved earlier when needed, no polling.
func (p *Pipeline) arm(id string, wait time.Duration) {
	f := p.flowOf(id)
	at := time.Now().Add(wait)
	if f.timer != nil {
		if !at.Before(f.timerAt) {
			return
		}
		f.timer.Stop()
	}
	f.timerAt = at
	f.timer = time.AfterFunc(wait, func() { p.resume(id) })
}

// resume starts the waiting deliveries of a destination that its flow
// control lets through now, and arms its timer for the rest.
func (p *Pipeline) resume(id string) {
	dest, _ := p.reg.Destination(id)
	var start []jetstream.Msg
	p.destMu.Lock()
	f := p.flows[id]
	if f != nil {
		f.timer = nil
	}
	q := p.dests[id]
	if q == nil || p.ctx.Err() != nil {
		p.destMu.Unlock()
		return
	}
	now := time.Now()
	limit := p.limitOf(dest)
	for len(q.waiting) > 0 && q.inFlight < limit {
		ok, wait, limited := p.admit(dest, now)
		if !ok {
			if wait > 0 {
				p.arm(id, wait)
			}
			if limited {
				p.rateLimited(dest)
			}
			break
		}
		m := q.waiting[0]
		q.waiting[0] = nil
		q.waiting = q.waiting[1:]
		q.left()
		q.inFlight++
		p.wg.Add(1) // under destMu: Stop empties the lists under it before waiting
		start = append(start, m)
	}
	p.destMu.Unlock()
	for _, m := range start {
		select {
		case p.sem <- struct{}{}:
			go p.work(id, m)
		case <-p.ctx.Done():
			sendBack(m)
			p.release(id)
			p.wg.Done()
		}
	}
}

func (p *Pipeline) deferredOne(dest *destination.Destination) {
	p.deferred.Add(1)
	if o, ok := p.opts.Observer.(FlowObserver); ok && dest != nil {
		o.Deferred(dest)
	}
}

func (p *Pipeline) rateLimited(dest *destination.Destination) {
	if o, ok := p.opts.Observer.(FlowObserver); ok && dest != nil {
		o.RateLimited(dest)
	}
}

// circuitOpen reports, under destMu, whether the destination's circuit is
// open (or half open, a probe in flight): its deliveries are not to wait
// for room in memory.
func (p *Pipeline) circuitOpen(id string) bool {
	f := p.flows[id]
	return f != nil && f.state != CircuitClosed
}

// parkedFrom says, under destMu, whether the destination's circuit is open
// (or half open, a probe in flight), and then the earliest time its
// deliveries deferred meanwhile should come back: the end of the cool-down,
// at least deferDelay from now.
func (p *Pipeline) parkedFrom(id string, now time.Time) (time.Time, bool) {
	f := p.flows[id]
	if f == nil || f.state == CircuitClosed {
		return time.Time{}, false
	}
	at := now.Add(deferDelay)
	if f.state == CircuitOpen && f.openUntil.After(at) {
		at = f.openUntil
	}
	return at, true
}

// healthFailure reports whether an attempt's outcome says the destination
// is unwell: a transport error or timeout, 408, 429 or a 5xx. Other 4xx are
// answers about the delivery, not the destination's health; an error before
// any request was made (an envelope failing on the event) is neither.
func healthFailure(res *Result) (failure, counts bool) {
	switch {
	case res.Err != nil:
		return true, res.Duration > 0
	case res.StatusCode >= 500, res.StatusCode == http.StatusTooManyRequests, res.StatusCode == http.StatusRequestTimeout:
		return true, true
	}
	return false, true
}

// observe records an attempt's outcome in the destination's circuit and
// health, and acts on it: opening or closing the circuit, waking the
// waiting deliveries, disabling a subscription failing for too long.
func (p *Pipeline) observe(dest *destination.Destination, res *Result) {
	failure, counts := healthFailure(res)
	if !counts {
		return
	}
	select {
	case <-p.quit:
		return // stopping: the flow state is being dropped
	default:
	}
	now := time.Now().UTC()
	fl := dest.Flow
	p.destMu.Lock()
	f := p.flows[dest.ID]
	if f == nil && !failure {
		p.destMu.Unlock()
		return // closed and healthy: nothing to remember
	}
	if f == nil {
		f = p.flowOf(dest.ID)
	}
	wake, load, persist, unpersist, disable := false, false, false, false, false
	var failingSince time.Time
	if res.StatusCode == http.StatusTooManyRequests && fl.Rate > 0 && f.slow < maxSlow {
		f.slow++
		p.log.Debug("destination answered 429: its rate is halved", zap.String("destination", dest.ID),
			zap.Float64("rate_per_second", fl.Rate/float64(int(1)<<f.slow)))
	}
	if res.Success() && f.slow > 0 {
		f.slow--
	}
	if !failure {
		f.failures, f.cooldown, f.probing = 0, 0, false
		unpersist = f.persisted
		f.failingSince, f.persisted, f.disabled = time.Time{}, false, false
		wake = f.state != CircuitClosed
		p.setState(dest, f, CircuitClosed, now)
	} else {
		f.failures++
		f.lastFailure = now
		if f.failingSince.IsZero() {
			f.failingSince = now
			load = !f.loaded
			f.loaded = true
		}
		if f.failures >= fl.Failures && !f.persisted {
			persist, f.persisted = true, true // with the breaker off too
		}
		expired := now.Sub(f.failingSince) >= fl.DisableAfter
		if !fl.BreakerOff {
			switch {
			case f.state == CircuitHalfOpen:
				f.probing = false
				f.cooldown = min(f.cooldown*2, fl.MaxCooldown)
				f.openUntil = now.Add(f.cooldown)
				p.setState(dest, f, CircuitOpen, now)
				wake = true // arms the timer of the next probe
			case f.state == CircuitClosed && f.failures >= fl.Failures:
				f.cooldown = fl.Cooldown
				f.openUntil = now.Add(f.cooldown)
				p.setState(dest, f, CircuitOpen, now)
			}
			if expired && f.state == CircuitOpen && f.cooldown < fl.MaxCooldown {
				// Failing for disable_after: a workflow target (or a
				// subscription that cannot be disabled) is probed at
				// the longest cool-down from now on.
				f.cooldown = fl.MaxCooldown
				f.openUntil = now.Add(f.cooldown)
			}
		}
		if expired && dest.SubscriptionID != "" && !f.disabled {
			f.disabled, disable = true, true
		}
		failingSince = f.failingSince
	}
	p.destMu.Unlock()
	if load {
		p.loadFailingSince(dest.ID)
	}
	if persist {
		p.storeFailingSince(dest.ID, failingSince)
	}
	if unpersist {
		p.clearFailingSince(dest.ID)
	}
	if disable {
		p.autoDisable(dest, failingSince, now)
	}
	if wake {
		p.resume(dest.ID)
	}
}

// Circuit returns the state of a destination's circuit breaker on this
// instance.
func (p *Pipeline) Circuit(id string) Circuit {
	p.destMu.Lock()
	defer p.destMu.Unlock()
	f := p.flows[id]
	if f == nil {
		return Circuit{State: CircuitClosed}
	}
	c := Circuit{State: f.state, Since: f.since, Failures: f.failures, FailingSince: f.failingSince}
	if f.state == CircuitOpen {
		c.RetryAt = f.openUntil
	}
	return c
}

// pruneFlows forgets the flow state of destinations that no longer exist
// or have nothing to remember (closed, healthy, nothing waiting, a full
// token bucket), so that the map follows the failing destinations only.
func (p *Pipeline) pruneFlows() {
	now := time.Now()
	p.destMu.Lock()
	defer p.destMu.Unlock()
	for id, f := range p.flows {
		dest, ok := p.reg.Destination(id)
		if _, busy := p.dests[id]; busy || f.timer != nil {
			continue
		}
		full := !ok || dest.Flow.Rate == 0 || now.Sub(f.filled).Seconds()*dest.Flow.Rate >= float64(dest.Flow.Burst)
		if !ok || (f.state == CircuitClosed && f.failingSince.IsZero() && f.slow == 0 && full) {
			p.forgetFlow(id, f)
		}
	}
}

// forgetFlow drops a destination's flow state, under destMu; an observer
// counting open circuits is told that this one ended (without a log line:
// the destination is gone, or the pipeline stops).
func (p *Pipeline) forgetFlow(id string, f *flowState) {
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if o, ok := p.opts.Observer.(FlowObserver); ok && f.state != CircuitClosed && f.dest != nil {
		o.CircuitChanged(f.dest, f.state, CircuitClosed)
	}
	delete(p.flows, id)
}

// subscriptionDisabled is the data of a hookgate.subscription.disabled
// event.
type subscriptionDisabled struct {
	SubscriptionID string    `json:"subscription_id"`
	Name           string    `json:"name"`
	Reason         string    `json:"reason"`
	LastFailureAt  time.Time `json:"last_failure_at"`
	FailingSince   time.Time `json:"failing_since"`
}

// autoDisable disables a subscription that failed without a success for its
// disable_after, and publishes hookgate.subscription.disabled. A
// subscription declared in the Caddyfile cannot be disabled: it stays open
// at the maximum cool-down, like a workflow target.
func (p *Pipeline) autoDisable(dest *destination.Destination, since, last time.Time) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	reason := "failing without a success since " + since.Format(time.RFC3339) + " (disable_after " + dest.Flow.DisableAfter.String() + "): subscription disabled"
	err := p.reg.SetSubscriptionEnabled(ctx, dest.SubscriptionID, false, reason)
	if errors.Is(err, registry.ErrReadOnly) {
		p.log.Warn("subscription failing for disable_after is declared in the Caddyfile: it stays enabled, probed at the longest cool-down",
			zap.String("destination", dest.ID), zap.Time("failing_since", since))
		return
	}
	if err != nil {
		p.log.Warn("disabling a failing subscription failed", zap.String("destination", dest.ID), zap.Error(err))
		p.destMu.Lock()
		if f := p.flows[dest.ID]; f != nil {
			f.disabled = false // tried again at the next failure
		}
		p.destMu.Unlock()
		return
	}
	p.log.Warn("subscription disabled: failing for disable_after", zap.String("destination", dest.ID),
		zap.Time("failing_since", since), zap.Duration("disable_after", dest.Flow.DisableAfter))
	// Enabled again, it starts afresh: a closed circuit, no failing time.
	// The deliveries waiting for it end now (as for any disabled
	// subscription).
	p.destMu.Lock()
	if f := p.flows[dest.ID]; f != nil {
		p.forgetFlow(dest.ID, f)
	}
	p.destMu.Unlock()
	p.clearFailingSince(dest.ID)
	p.resume(dest.ID)
	data, _ := json.Marshal(subscriptionDisabled{
		SubscriptionID: dest.SubscriptionID, Name: dest.Subscription.Name, Reason: reason,
		LastFailureAt: last, FailingSince: since,
	})
	ev := &Event{Topic: registry.TopicSubscriptionDisabled, Data: data}
	if _, err := p.Publish(ctx, ev); err != nil {
		p.log.Warn("publishing subscription disabled event failed", zap.String("destination", dest.ID), zap.Error(err))
	}
}

// loadFailingSince reads a destination's stored "failing since" after its
// first failure in this process: an earlier one (before a restart, or on
// another instance) counts.
func (p *Pipeline) loadFailingSince(id string) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	e, err := p.eng.Flow.Get(ctx, id)
	if err != nil {
		return // none stored (or unreadable: counted from now)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return
	}
	p.destMu.Lock()
	if f := p.flows[id]; f != nil && !f.failingSince.IsZero() && t.Before(f.failingSince) {
		f.failingSince, f.persisted = t, true
	}
	p.destMu.Unlock()
}

// storeFailingSince writes a destination's "failing since" when its circuit
// opens, keeping an earlier one written by another instance.
func (p *Pipeline) storeFailingSince(id string, t time.Time) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if _, err := p.eng.Flow.Create(ctx, id, []byte(t.UTC().Format(time.RFC3339Nano))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		p.log.Debug("storing failing since", zap.String("destination", id), zap.Error(err))
	}
}

// clearFailingSince removes a destination's "failing since" after a success.
func (p *Pipeline) clearFailingSince(id string) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if err := p.eng.Flow.Purge(ctx, id); err != nil {
		p.log.Debug("clearing failing since", zap.String("destination", id), zap.Error(err))
	}
}

// probeEnded is called after a delivery ends without an outcome for the
// destination's health (shutting down, the delivery already done, the
// destination gone or disabled): a probe it was lets another one through.
func (p *Pipeline) probeEnded(id string) {
	p.destMu.Lock()
	f := p.flows[id]
	ended := f != nil && f.probing
	if ended {
		f.probing = false
	}
	p.destMu.Unlock()
	if ended && p.ctx.Err() == nil {
		p.resume(id)
	}
}
