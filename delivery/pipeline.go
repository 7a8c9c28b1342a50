package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery/destination"
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

	consMu sync.Mutex
	// consumed are the delivery consumers (fan-out and partitions),
	// parkedConsumed the parking ones: Stop drains these last.
	consumed       []jetstream.ConsumeContext
	parkedConsumed []jetstream.ConsumeContext
	// parkedUpTo and parkSeen are, per parking class, the stream sequence
	// of the last copy this pipeline parked and the highest one its
	// parking consumer handed to unpark: Stop waits for the one to reach
	// the other before it drains the parking consumers.
	parkedUpTo, parkSeen [parkClassCount]atomic.Uint64
	fanQueue             chan jetstream.Msg
	sem                  chan struct{}

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

// The pull requests of the pipeline's consumers: how long each waits on the
// server, and how often the server says it is still there. nats.go's
// Consume can miss sending its next pull request when its handler drains
// the buffer while the previous request is still being sent (it skips
// sending while one is in progress, and nothing asks again once the buffer
// is empty): the consumer then stalls, with messages pending on the server
// and no request for them, until the client notices two heartbeats missing
// and asks again. With nats.go's defaults (30 s expiry, 15 s heartbeat)
// that was a 30 s stall of a whole partition, seen on a loaded machine
// (TestSlowDestinationDoesNotHoldUpItsPartition); with these it is 2 s at
// most. An idle consumer costs a heartbeat a second and a new request every
// 5 s.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
)

// consumerSpec is one of the pipeline's durable consumers.
type consumerSpec struct {
	stream, name, filter, description string
	maxAckPending                     int
	// ackWait is the consumer's AckWait; 0 is ackWait.
	ackWait time.Duration
	// parkClass is the class of a parking consumer.
	parkClass int
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
		switch {
		case p.ctx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed):
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			// Recovered by a new pull request (see pullHeartbeat).
			p.log.Info("consumer stalled without a pull request; asked again", zap.Error(err))
		default:
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
		handler, pull := p.stopping(p.dispatch), p.opts.PerDestination*4
		switch {
		case spec.name == ConsumerFanout:
			handler, pull = p.stopping(enqueue), 1024
		case strings.HasPrefix(spec.name, ConsumerParkPrefix):
			// Parked deliveries are handled as usual while the pipeline
			// stops: only waited on or queued again, never attempted.
			handler, pull = p.unparker(spec.parkClass), 1024
		}
		cc, err := consumers[i].Consume(handler, onErr, jetstream.PullMaxMessages(pull),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
		if err != nil {
			return fmt.Errorf("consumer %s: %w", spec.name, err) // Stop cleans up
		}
		p.consMu.Lock()
		if strings.HasPrefix(spec.name, ConsumerParkPrefix) {
			p.parkedConsumed = append(p.parkedConsumed, cc)
		} else {
			p.consumed = append(p.consumed, cc)
		}
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
		AckWait:       cmp.Or(spec.ackWait, ackWait),
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

// stopGrace bounds how long Stop lets attempts in flight finish before it
// cancels them (they are then redelivered, here or on another instance).
const stopGrace = 3 * time.Second

// Stop stops consuming, gives attempts in flight up to stopGrace to end,
// then cancels the rest. Messages not acknowledged are redelivered later (by
// this or another instance). It does not hang when the engine is unreachable.
func (p *Pipeline) Stop() {
	p.stopOnce.Do(p.stop)
}

// stopConsumers drains the delivery consumers, or the parking ones.
func (p *Pipeline) stopConsumers(parking bool) {
	p.consMu.Lock()
	all := p.consumed
	if parking {
		all, p.parkedConsumed = p.parkedConsumed, nil
	} else {
		p.consumed = nil
	}
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

// sendBackDelay is how soon a message sent back by sendBack is due again.
// Long enough for the stopping consumer's subscription to be gone from the
// server by then (a message sent to it as it goes waits out the ack wait),
// short enough that another instance goes on almost at once.
const sendBackDelay = 200 * time.Millisecond

// sendBack returns m, taken but not attempted (the pipeline stops), to the
// stream, to be delivered again soon by another instance or at once after a
// restart. A plain Nak would queue m for redelivery only in the server's
// memory, at once (to the consumer still draining) and not after a restart:
// the consumer's stored state would still say m was delivered when it was,
// and m would wait out the consumer's ack wait (30 s for a partition). A Nak
// with a delay stores when m is due again, and that survives a restart.
func sendBack(m jetstream.Msg) {
	_ = m.NakWithDelay(sendBackDelay)
}

// stopping wraps a consumer's handler: once the pipeline stops, a message
// that still arrives (one drained from a consumer's buffer) is sent back
// to the stream (sendBack). It is not an attempt.
func (p *Pipeline) stopping(handle func(jetstream.Msg)) func(jetstream.Msg) {
	return func(m jetstream.Msg) {
		select {
		case <-p.quit:
			sendBack(m)
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
		p.stopConsumers(false)
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
				sendBack(m)
			}
			q.waiting = nil
		}
		for id, f := range p.flows {
			p.forgetFlow(id, f)
		}
		p.destMu.Unlock()
		p.wg.Wait()
		// The parking consumers stop last, once no attempt can park a
		// delivery any more, and once they have taken the copies parked
		// here: a copy sent to a consumer as its subscription goes would
		// wait out the ack wait, after a restart too.
		p.awaitParkedTaken(parkSettle)
		p.stopConsumers(true)
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
