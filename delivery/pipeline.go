package delivery

import (
	"context"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
)

// Consumer names on the engine's streams. Their number is fixed: one fan-out
// consumer, and per partition one consumer of direct events and one of the
// queue; destinations share them (see engine.Partitions).
const (
	ConsumerFanout = "hookgate-fanout"
	// ConsumerDirectPrefix + partition consumes the partition's direct events.
	ConsumerDirectPrefix = "hookgate-direct-"
	// ConsumerQueuePrefix + partition consumes the partition's queue.
	ConsumerQueuePrefix = "hookgate-queue-"
)

// partitionMaxAckPending bounds the messages of a partition's consumer that
// are in flight, waiting in memory for their destination, or waiting less
// than parkAfter (a retry or a deferral): a wait of parkAfter or more is
// parked outside the partition (park.go), so that a failing destination,
// however many deliveries it has, does not hold up the partition's others.
// A variable for the tests.
var partitionMaxAckPending = 50000

// Defaults of Options.
const (
	DefaultConcurrency    = 128
	DefaultPerDestination = 64
	maxRetryAfter         = 24 * time.Hour
	ackWait               = 30 * time.Second
)

// ErrNotFound is returned for an event or delivery that does not exist.
var ErrNotFound = errors.New("not found")

// Observer is told about the pipeline's work (metrics).
type Observer interface {
	// Attempted is called after every HTTP attempt with its outcome:
	// "succeeded", "retrying" or "failed".
	Attempted(dest *destination.Destination, outcome string, took time.Duration)
}

// Options tune the pipeline.
type Options struct {
	// Concurrency bounds the HTTP attempts in flight. Default: 128.
	Concurrency int
	// PerDestination bounds the attempts in flight to one destination, so a
	// slow target cannot take every worker; a destination's max_in_flight
	// overrides it. Default: 64.
	PerDestination int
	// Observer receives attempt outcomes; may be nil.
	Observer Observer
}

// Pipeline publishes events, fans them out and delivers them.
type Pipeline struct {
	eng    *engine.Engine
	reg    *registry.Registry
	sender *Sender
	log    *zap.Logger
	opts   Options

	consMu   sync.Mutex
	consumed []jetstream.ConsumeContext
	stopped  bool
	fanQueue chan jetstream.Msg
	sem      chan struct{}

	// dests holds, per destination, the attempts in flight and the
	// deliveries waiting for one of its PerDestination slots.
	destMu sync.Mutex
	dests  map[string]*destQueue
	// flows holds, per destination, its rate limit's tokens, its circuit
	// breaker and its health (flow.go), under destMu.
	flows map[string]*flowState

	// attempts counts the attempts made on messages waiting for a retry,
	// by stream and sequence; an entry leaves when its message is acked or
	// terminated. Messages redelivered without an entry (after a restart, or
	// on another instance) read their count from the delivery log.
	attemptsMu sync.Mutex
	attempts   map[msgKey]int

	// records takes delivery log entries to the writer (writeRecords);
	// recordsClosed, under recordsMu, says the writer has ended.
	records       chan *pendingEntry
	recordsMu     sync.RWMutex
	recordsClosed bool

	// recoverUpTo is, per stream, the last sequence when a partition
	// consumer had to be created over existing messages: their deliveries
	// are checked against the log before an attempt.
	recoverUpTo map[string]uint64

	// order is the gate of ordered destinations (order.go).
	order orderState

	// workDone counts the work done: events published, attempts made.
	workDone atomic.Uint64
	// deferred counts the deliveries sent back to the stream for want of
	// room at their destination.
	deferred atomic.Uint64

	ctx      context.Context
	cancel   context.CancelFunc
	quit     chan struct{} // closed when Stop begins
	stopOnce sync.Once
	wg       sync.WaitGroup
}

type msgKey struct {
	stream string
	seq    uint64
}

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

// New returns a pipeline; Start runs its consumers.
func New(eng *engine.Engine, reg *registry.Registry, client *http.Client, log *zap.Logger, opts Options) *Pipeline {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.PerDestination <= 0 {
		opts.PerDestination = DefaultPerDestination
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pipeline{
		eng: eng, reg: reg, log: log, opts: opts,
		sender:      &Sender{Client: client},
		sem:         make(chan struct{}, opts.Concurrency),
		dests:       map[string]*destQueue{},
		flows:       map[string]*flowState{},
		attempts:    map[msgKey]int{},
		recoverUpTo: map[string]uint64{},
		ctx:         ctx, cancel: cancel,
		quit:    make(chan struct{}),
		records: make(chan *pendingEntry, maxBatch),
	}
	go p.writeRecords()
	return p
}

// WorkDone is a count that grows with the pipeline's work (events
// published, delivery attempts made): it stays the same while the pipeline
// is idle.
func (p *Pipeline) WorkDone() uint64 { return p.workDone.Load() }

// Sender returns the pipeline's HTTP sender (for direct test deliveries).
func (p *Pipeline) Sender() *Sender { return p.sender }

// consumerSpec is one of the pipeline's durable consumers.
type consumerSpec struct {
	stream, name, filter, description string
	maxAckPending                     int
}

func (p *Pipeline) consumerSpecs() []consumerSpec {
	specs := []consumerSpec{{
		stream: engine.StreamEvents, name: ConsumerFanout, filter: engine.SubjectFanout,
		description: "hookgate fan-out of events to destinations", maxAckPending: 8192,
	}}
	for i := range engine.Partitions {
		specs = append(specs,
			consumerSpec{
				stream: engine.StreamEvents, name: fmt.Sprintf("%s%d", ConsumerDirectPrefix, i),
				filter:      engine.PartitionSubject(engine.SubjectDirect, i),
				description: fmt.Sprintf("hookgate deliveries of direct events, partition %d", i), maxAckPending: partitionMaxAckPending,
			},
			consumerSpec{
				stream: engine.StreamQueue, name: fmt.Sprintf("%s%d", ConsumerQueuePrefix, i),
				filter:      engine.PartitionSubject(engine.SubjectQueue, i),
				description: fmt.Sprintf("hookgate queued deliveries, partition %d", i), maxAckPending: partitionMaxAckPending,
			})
	}
	return append(specs, parkSpecs()...)
}

// Start creates (or finds) the durable consumers and starts fanning out and
// delivering. Consumers are never removed: across restarts each resumes where
// it stopped, so nothing delivered is sent again.
func (p *Pipeline) Start(ctx context.Context) error {
	specs := p.consumerSpecs()
	consumers := make([]jetstream.Consumer, len(specs))
	for i, spec := range specs {
		cons, err := p.ensureConsumer(ctx, spec)
		if err != nil {
			return err // nothing runs yet: Start may be called again
		}
		consumers[i] = cons
	}
	p.fanQueue = make(chan jetstream.Msg, 1024)
	for range 8 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for m := range p.fanQueue {
				p.fanOut(m)
			}
		}()
	}
	p.wg.Add(1)
	go p.touchWaiting()
	onErr := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if p.ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Warn("consumer error", zap.Error(err))
		}
	})
	enqueue := func(m jetstream.Msg) {
		select {
		case p.fanQueue <- m:
		case <-p.ctx.Done():
		}
	}
	for i, spec := range specs {
		handler, pull := p.dispatch, p.opts.PerDestination*4
		switch {
		case spec.name == ConsumerFanout:
			handler, pull = enqueue, 1024
		case strings.HasPrefix(spec.name, ConsumerParkPrefix):
			handler, pull = p.unpark, 1024
		}
		cc, err := consumers[i].Consume(p.stopping(handler), onErr, jetstream.PullMaxMessages(pull))
		if err != nil {
			return fmt.Errorf("consumer %s: %w", spec.name, err) // Stop cleans up
		}
		p.consMu.Lock()
		p.consumed = append(p.consumed, cc)
		p.consMu.Unlock()
	}
	return nil
}

// ensureConsumer returns the durable consumer of spec, creating it when
// missing. A consumer created over a stream that already has messages
// (first start after an operator removed it) starts from the first one, and
// those deliveries are checked against the log before any attempt.
func (p *Pipeline) ensureConsumer(ctx context.Context, spec consumerSpec) (jetstream.Consumer, error) {
	js := p.eng.JetStream()
	cfg := jetstream.ConsumerConfig{
		Durable:       spec.name,
		Description:   spec.description,
		FilterSubject: spec.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: spec.maxAckPending,
		MaxDeliver:    -1,
	}
	cons, err := js.Consumer(ctx, spec.stream, spec.name)
	if err == nil {
		if _, err := js.UpdateConsumer(ctx, spec.stream, cfg); err != nil {
			p.log.Warn("updating consumer", zap.String("consumer", spec.name), zap.Error(err))
		}
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", spec.name, err)
	}
	stream := p.eng.EventStream
	if spec.stream == engine.StreamQueue {
		stream = p.eng.QueueStream
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(spec.filter))
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", spec.stream, err)
	}
	if n := info.State.Subjects[spec.filter]; n > 0 && spec.name != ConsumerFanout {
		p.log.Warn("a delivery consumer was missing over stored messages: each is checked against the delivery log before it is sent",
			zap.String("consumer", spec.name), zap.Uint64("messages", n))
		p.attemptsMu.Lock()
		p.recoverUpTo[spec.stream] = max(p.recoverUpTo[spec.stream], info.State.LastSeq)
		p.attemptsMu.Unlock()
	}
	cons, err = js.CreateOrUpdateConsumer(ctx, spec.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", spec.name, err)
	}
	return cons, nil
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
				_ = m.Nak() // stopping: back to the stream at once, not an attempt
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

// stopGrace bounds how long Stop lets attempts in flight finish before it
// cancels them (they are then redelivered, here or on another instance).
const stopGrace = 3 * time.Second

// Stop stops consuming, gives attempts in flight up to stopGrace to end,
// then cancels the rest. Messages not acknowledged are redelivered later (by
// this or another instance). It does not hang when the engine is unreachable.
func (p *Pipeline) Stop() {
	p.stopOnce.Do(p.stop)
}

func (p *Pipeline) stopConsumers() {
	p.consMu.Lock()
	all := p.consumed
	p.consumed, p.stopped = nil, true
	p.consMu.Unlock()
	// Drain, not Stop: the messages a consumer has already pulled into its
	// buffer reach the handler, which sends them back to the stream at
	// once (see stopping), instead of waiting for the ack wait to pass
	// before this or another instance may take them.
	for _, cc := range all {
		cc.Drain()
	}
	deadline := time.After(stopGrace)
	for _, cc := range all {
		select {
		case <-cc.Closed():
		case <-deadline:
			cc.Stop()
		}
	}
}

// stopping wraps a consumer's handler: once the pipeline stops, a message
// that still arrives (one drained from a consumer's buffer) is sent back
// to the stream at once. It is not an attempt.
func (p *Pipeline) stopping(handle func(jetstream.Msg)) func(jetstream.Msg) {
	return func(m jetstream.Msg) {
		select {
		case <-p.quit:
			_ = m.Nak()
		default:
			handle(m)
		}
	}
}

func (p *Pipeline) stop() {
	close(p.quit)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.stopConsumers()
	}()
	drained := make(chan struct{})
	go func() {
		<-stopped
		// No more messages come in: the fan-out workers finish the queue
		// and end, and deliveries waiting for their destination go back to
		// the stream at once.
		if p.fanQueue != nil {
			close(p.fanQueue)
		}
		p.destMu.Lock()
		for _, q := range p.dests {
			for _, m := range q.waiting {
				_ = m.Nak()
			}
			q.waiting = nil
		}
		for id, f := range p.flows {
			p.forgetFlow(id, f)
		}
		p.destMu.Unlock()
		p.wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(stopGrace):
	}
	p.cancel()
	<-drained
}

// QueueDepth is the number of deliveries waiting or in flight: the pending
// and unacknowledged messages of the pipeline's consumers. It costs one
// request per consumer (2×engine.Partitions+1), whatever the number of
// destinations or messages.
func (p *Pipeline) QueueDepth(ctx context.Context) (uint64, error) {
	var total uint64
	for _, spec := range p.consumerSpecs() {
		c, err := p.eng.JetStream().Consumer(ctx, spec.stream, spec.name)
		if err != nil {
			return 0, err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		total += ci.NumPending + uint64(ci.NumAckPending)
	}
	return total, nil
}
