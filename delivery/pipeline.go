package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/registry"
)

// Consumer names on the engine's streams: one fan-out consumer, and one
// delivery consumer per destination (ConsumerDestPrefix + destination id), so
// that a destination that is down or slow, whose deliveries wait for their
// retries, holds up nobody else's.
const (
	ConsumerFanout     = "hookgate-fanout"
	ConsumerDestPrefix = "hookgate-dest-"
	// ConsumerDirectPrefix + destination id names the consumer of the
	// destination's direct events (events whose only destination it is).
	ConsumerDirectPrefix = "hookgate-direct-"
	// legacyConsumerDeliver was the single delivery consumer of earlier
	// versions; it is removed at start (its messages are kept).
	legacyConsumerDeliver = "hookgate-deliver"
)

// destMaxAckPending bounds the deliveries of one destination that are in
// flight or waiting for a retry.
const destMaxAckPending = 20000

const hdrReplay = "Hookgate-Replay"

// Defaults of Options.
const (
	DefaultConcurrency    = 128
	DefaultPerDestination = 64
	maxRetryAfter         = 24 * time.Hour
	ackWait               = 30 * time.Second
)

// Observer is told about the pipeline's work (metrics).
type Observer interface {
	// Attempted is called after every HTTP attempt with its outcome:
	// "succeeded", "retrying" or "failed".
	Attempted(dest *registry.Destination, outcome string, took time.Duration)
}

// Options tune the pipeline.
type Options struct {
	// Concurrency bounds the HTTP attempts in flight. Default: 128.
	Concurrency int
	// PerDestination bounds the attempts in flight to one destination, so a
	// slow target cannot take every worker. Default: 64.
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

	fanout   jetstream.ConsumeContext
	consMu   sync.Mutex
	consumed map[string][2]jetstream.ConsumeContext // destination id -> its queue and direct consumers
	ready    sync.Map                               // destination ids whose consumers exist (lock-free read)
	onErr    jetstream.PullConsumeOpt
	fanQueue chan jetstream.Msg
	sem      chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	quit     chan struct{} // closed when Stop begins
	wg       sync.WaitGroup
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
	return &Pipeline{
		eng: eng, reg: reg, log: log, opts: opts,
		sender: &Sender{Client: client},
		sem:    make(chan struct{}, opts.Concurrency),
		ctx:    ctx, cancel: cancel,
		quit: make(chan struct{}),
	}
}

// Sender returns the pipeline's HTTP sender (for direct test deliveries).
func (p *Pipeline) Sender() *Sender { return p.sender }

// Publish writes ev to the event stream and returns once JetStream has
// acknowledged it. duplicate is true when an event with the same id was
// accepted within the dedupe window (nothing new was written).
func (p *Pipeline) Publish(ctx context.Context, ev *Event) (duplicate bool, err error) {
	if ev.ID == "" {
		ev.ID = NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	// An event with exactly one destination now (a workflow with one
	// target, a topic with one subscriber: the common case) is stored as
	// its own delivery message and skips the fan-out hop.
	var m *nats.Msg
	if dests := p.Destinations(ev); len(dests) == 1 {
		// The destination's consumer exists before its first direct event:
		// even if the destination is removed at once, its events are then
		// consumed (and recorded as failed), never left behind.
		if _, ok := p.ready.Load(dests[0].ID); !ok {
			if err := p.consume(ctx, dests[0].ID); err != nil {
				return false, err
			}
		}
		m = ev.message(directSubject(dests[0].ID, ev.ID))
		m.Header.Set(hdrDest, dests[0].ID)
	} else {
		m = ev.message(eventSubject(ev.ID))
	}
	ack, err := p.eng.JetStream().PublishMsg(ctx, m, jetstream.WithMsgID(ev.ID))
	if err != nil {
		return false, fmt.Errorf("writing event: %w", err)
	}
	return ack.Duplicate, nil
}

// Start creates the durable consumers and starts fanning out and delivering.
func (p *Pipeline) Start(ctx context.Context) error {
	js := p.eng.JetStream()
	fc, err := js.CreateOrUpdateConsumer(ctx, engine.StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerFanout,
		Description:   "hookgate fan-out of events to destinations",
		FilterSubject: engine.SubjectEvents + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 8192,
		MaxDeliver:    -1,
		Replicas:      0,
	})
	if err != nil {
		return fmt.Errorf("fan-out consumer: %w", err)
	}
	if err := js.DeleteConsumer(ctx, engine.StreamDeliveries, legacyConsumerDeliver); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("removing the legacy delivery consumer: %w", err)
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
	onErr := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if p.ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Warn("consumer error", zap.Error(err))
		}
	})
	p.onErr = onErr
	enqueue := func(m jetstream.Msg) {
		select {
		case p.fanQueue <- m:
		case <-p.ctx.Done():
		}
	}
	if p.fanout, err = fc.Consume(enqueue, onErr, jetstream.PullMaxMessages(1024)); err != nil {
		return fmt.Errorf("fan-out consumer: %w", err)
	}
	p.consumed = map[string][2]jetstream.ConsumeContext{}
	changed := p.reg.Changed() // before reading the destinations: no change is missed
	if err := p.syncConsumers(ctx); err != nil {
		p.fanout.Stop()
		return err
	}
	p.wg.Add(1)
	go p.followRegistry(changed)
	return nil
}

// sweepInterval is how often the delivery consumers are checked against the
// queue (orphaned deliveries, consumers of destinations that are gone).
var sweepInterval = 30 * time.Second

// followRegistry keeps one delivery consumer per destination as
// subscriptions and workflows come and go, and sweeps consumers of
// destinations that are gone once their queue is empty.
func (p *Pipeline) followRegistry(changed <-chan struct{}) {
	defer p.wg.Done()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-changed:
		case <-sweep.C:
		}
		changed = p.reg.Changed()
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		if err := p.syncConsumers(ctx); err != nil && p.ctx.Err() == nil {
			p.log.Warn("updating delivery consumers", zap.Error(err))
		}
		cancel()
		select { // coalesce bursts of changes
		case <-p.quit:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// syncConsumers consumes the queue of every current destination, and of
// every destination that still has a consumer (its deliveries then fail as
// "destination no longer exists" and the consumer is removed when empty).
func (p *Pipeline) syncConsumers(ctx context.Context) error {
	js := p.eng.JetStream()
	want := map[string]bool{}
	for _, id := range p.reg.DestinationIDs() {
		want[id] = true
	}
	existing := map[string]bool{}
	names := p.eng.QueueStream.ConsumerNames(ctx)
	for name := range names.Name() {
		if id, ok := strings.CutPrefix(name, ConsumerDestPrefix); ok {
			existing[id] = true
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("listing delivery consumers: %w", err)
	}
	direct := p.eng.EventStream.ConsumerNames(ctx)
	for name := range direct.Name() {
		if id, ok := strings.CutPrefix(name, ConsumerDirectPrefix); ok {
			existing[id] = true
		}
	}
	if err := direct.Err(); err != nil {
		return fmt.Errorf("listing direct delivery consumers: %w", err)
	}
	// Queued deliveries whose destination never had a consumer here (it came
	// and went between two syncs, or they were queued by an older version).
	info, err := p.eng.QueueStream.Info(ctx, jetstream.WithSubjectFilter(engine.SubjectDeliveries+".>"))
	if err != nil {
		return fmt.Errorf("reading the delivery queue: %w", err)
	}
	queued := map[string]bool{}
	for subject, n := range info.State.Subjects {
		if id, ok := strings.CutPrefix(subject, engine.SubjectDeliveries+"."); ok && n > 0 {
			existing[id], queued[id] = true, true
		}
	}
	for id := range existing {
		if want[id] {
			continue
		}
		if !queued[id] && p.drained(ctx, engine.StreamDeliveries, ConsumerDestPrefix+id) && p.drained(ctx, engine.StreamEvents, ConsumerDirectPrefix+id) {
			p.unconsume(id)
			_ = js.DeleteConsumer(ctx, engine.StreamDeliveries, ConsumerDestPrefix+id)
			_ = js.DeleteConsumer(ctx, engine.StreamEvents, ConsumerDirectPrefix+id)
			continue
		}
		want[id] = true // drain it first
	}
	for id := range want {
		if err := p.consume(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// drained reports whether a consumer is absent or has nothing left to do.
func (p *Pipeline) drained(ctx context.Context, stream, name string) bool {
	c, err := p.eng.JetStream().Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// consume starts the two delivery consumers of destination id, once: its
// queue (fanned-out deliveries, replays) and its direct events. They share
// the destination's concurrency bound.
func (p *Pipeline) consume(ctx context.Context, id string) error {
	p.consMu.Lock()
	defer p.consMu.Unlock()
	if _, ok := p.consumed[id]; p.consumed == nil || ok || p.ctx.Err() != nil {
		return nil
	}
	js := p.eng.JetStream()
	handler := p.dispatcher()
	var ccs [2]jetstream.ConsumeContext
	for i, c := range []struct{ stream, name, filter string }{
		{engine.StreamDeliveries, ConsumerDestPrefix + id, engine.SubjectDeliveries + "." + id},
		{engine.StreamEvents, ConsumerDirectPrefix + id, engine.SubjectDirect + "." + id + ".*"},
	} {
		cons, err := js.CreateOrUpdateConsumer(ctx, c.stream, jetstream.ConsumerConfig{
			Durable:       c.name,
			Description:   "hookgate deliveries to " + id,
			FilterSubject: c.filter,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxAckPending: destMaxAckPending,
			MaxDeliver:    -1,
		})
		if err == nil {
			ccs[i], err = cons.Consume(handler, p.onErr, jetstream.PullMaxMessages(p.opts.PerDestination))
		}
		if err != nil {
			if ccs[0] != nil {
				ccs[0].Stop()
			}
			return fmt.Errorf("delivery consumer for %s: %w", id, err)
		}
	}
	p.consumed[id] = ccs
	p.ready.Store(id, true)
	return nil
}

func (p *Pipeline) unconsume(id string) {
	p.consMu.Lock()
	ccs := p.consumed[id]
	delete(p.consumed, id)
	p.ready.Delete(id)
	p.consMu.Unlock()
	for _, cc := range ccs {
		if cc != nil {
			cc.Stop()
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

func (p *Pipeline) stop() {
	close(p.quit)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.consMu.Lock()
		all := []jetstream.ConsumeContext{p.fanout}
		for _, ccs := range p.consumed {
			all = append(all, ccs[:]...)
		}
		p.consumed = nil // no new consumers from now on
		p.consMu.Unlock()
		for _, cc := range all {
			if cc != nil {
				cc.Stop()
				<-cc.Closed()
			}
		}
	}()
	drained := make(chan struct{})
	go func() {
		<-stopped
		// No more messages come in: the fan-out workers finish the queue
		// and end, so that the wait below sees the attempts only.
		if p.fanQueue != nil {
			close(p.fanQueue)
		}
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

// Destinations returns where ev goes now: the workflow's targets, or the
// enabled subscriptions whose topics and predicates match.
func (p *Pipeline) Destinations(ev *Event) []*registry.Destination {
	if ev.Workflow != "" {
		w, ok := p.reg.Workflow(ev.Workflow)
		if !ok {
			return nil
		}
		return w.Targets
	}
	var fe *filters.Event
	var out []*registry.Destination
	for _, s := range p.reg.Subscriptions() {
		if !s.Dest.Enabled || !s.MatchesTopic(ev.Topic) {
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

// fanOut queues one delivery per destination of the event, then acks it.
// Delivery messages carry a message id, so a fan-out repeated after a crash
// queues nothing twice.
func (p *Pipeline) fanOut(m jetstream.Msg) {
	ev, err := eventFromMessage(m.Headers(), m.Data())
	if err != nil {
		p.log.Error("unreadable event dropped from fan-out", zap.Error(err))
		_ = m.Term()
		return
	}
	js := p.eng.JetStream()
	for _, d := range p.Destinations(ev) {
		dm := ev.message(engine.SubjectDeliveries + "." + d.ID)
		dm.Header.Set(hdrDest, d.ID)
		if _, err := js.PublishMsg(p.ctx, dm, jetstream.WithMsgID(recordID(d.ID, ev.ID))); err != nil {
			if p.ctx.Err() == nil {
				p.log.Warn("queueing delivery failed; the event will be fanned out again",
					zap.String("event", ev.ID), zap.String("destination", d.ID), zap.Error(err))
			}
			_ = m.NakWithDelay(time.Second)
			return
		}
	}
	_ = m.Ack()
}

// dispatcher returns the message handler of one destination's consumer: it
// runs each delivery on a worker, at most PerDestination at once for the
// destination and Concurrency in all. Waiting here holds up this
// destination's consumer only.
func (p *Pipeline) dispatcher() jetstream.MessageHandler {
	mine := make(chan struct{}, p.opts.PerDestination)
	return func(m jetstream.Msg) {
		select {
		case mine <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			<-mine
			return
		}
		p.wg.Add(1)
		go func() {
			defer func() { <-p.sem; <-mine; p.wg.Done() }()
			p.deliverOne(m)
		}()
	}
}

func (p *Pipeline) deliverOne(m jetstream.Msg) {
	ev, err := eventFromMessage(m.Headers(), m.Data())
	if err != nil {
		p.log.Error("unreadable delivery dropped", zap.Error(err))
		_ = m.Term()
		return
	}
	destID := m.Headers().Get(hdrDest)
	replay, _ := strconv.Atoi(m.Headers().Get(hdrReplay))
	rid := recordID(destID, ev.ID)
	meta, _ := m.Metadata()

	var rec *Record
	if replay > 0 || (meta != nil && meta.NumDelivered > 1) {
		rec, err = p.Record(p.ctx, rid)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			_ = m.NakWithDelay(time.Second)
			return
		}
	}
	if rec == nil {
		rec = &Record{ID: rid, EventID: ev.ID, Destination: destID, Status: StatusPending, Attempts: []Attempt{}}
	}
	if rec.Status == StatusSucceeded && rec.Replays == replay {
		_ = m.Ack() // delivered before a crash; the ack was lost
		return
	}
	dest, ok := p.reg.Destination(destID)
	if !ok {
		p.finish(m, rec, StatusFailed, "destination no longer exists")
		return
	}
	rec.SubscriptionID, rec.WorkflowID = dest.SubscriptionID, dest.WorkflowID
	if !dest.Enabled {
		p.finish(m, rec, StatusFailed, "subscription disabled")
		return
	}
	stopProgress := keepInProgress(m, dest.Timeout)
	res := p.sender.Attempt(p.ctx, dest, ev)
	stopProgress()
	if p.ctx.Err() != nil && res.Err != nil {
		_ = m.Nak() // shutting down: not an attempt; redelivered at once elsewhere or after restart
		return
	}

	at := Attempt{At: time.Now().UTC().Add(-res.Duration), StatusCode: res.StatusCode, DurationMS: res.Duration.Milliseconds(), Response: string(res.Body)}
	if res.Err != nil {
		at.Error = res.Err.Error()
	} else if !res.Success() {
		at.Error = http.StatusText(res.StatusCode)
	}
	rec.Attempts = append(rec.Attempts, at)
	made := len(rec.Attempts) - rec.ReplayBase
	outcome := ""
	switch {
	case res.Success():
		outcome = StatusSucceeded
		p.finish(m, rec, StatusSucceeded, "")
	case res.StatusCode == http.StatusGone && dest.SubscriptionID != "":
		outcome = StatusFailed
		reason := "the subscriber answered 410 Gone: subscription disabled"
		if err := p.reg.SetSubscriptionEnabled(p.ctx, dest.SubscriptionID, false, reason); err != nil && !errors.Is(err, registry.ErrReadOnly) {
			p.log.Warn("disabling subscription after 410 failed", zap.String("subscription", dest.SubscriptionID), zap.Error(err))
		}
		p.log.Info("subscription disabled: 410 Gone", zap.String("subscription", dest.SubscriptionID))
		p.finish(m, rec, StatusFailed, reason)
	case made >= dest.MaxAttempts:
		outcome = StatusFailed
		p.finish(m, rec, StatusFailed, fmt.Sprintf("gave up after %d attempts", made))
	default:
		outcome = "retrying"
		wait := res.RetryAfter
		if wait <= 0 {
			wait = dest.RetryDelay(made)
		}
		wait = min(wait, maxRetryAfter)
		next := time.Now().Add(wait).UTC()
		rec.Status, rec.NextAttemptAt = StatusPending, &next
		_ = p.saveRecord(p.ctx, rec)
		_ = m.NakWithDelay(wait)
	}
	if p.opts.Observer != nil {
		p.opts.Observer.Attempted(dest, outcome, res.Duration)
	}
	if ce := p.log.Check(zap.DebugLevel, "delivery attempt"); ce != nil {
		ce.Write(zap.String("event", ev.ID), zap.String("destination", destID),
			zap.Int("status", res.StatusCode), zap.Int("attempt", made), zap.String("outcome", outcome))
	}
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

// finish records the final state of a delivery and removes it from the queue.
func (p *Pipeline) finish(m jetstream.Msg, rec *Record, status, reason string) {
	rec.Status, rec.Reason, rec.NextAttemptAt = status, reason, nil
	_ = p.saveRecord(p.ctx, rec)
	if status == StatusSucceeded {
		_ = m.Ack()
	} else {
		_ = m.Term()
	}
}

func (p *Pipeline) saveRecord(ctx context.Context, rec *Record) error {
	rec.UpdatedAt = time.Now().UTC()
	doc, _ := json.Marshal(rec)
	_, err := p.eng.Deliveries.Put(ctx, rec.ID, doc)
	if err != nil && ctx.Err() == nil {
		p.log.Warn("recording delivery attempt failed", zap.String("delivery", rec.ID), zap.Error(err))
	}
	return err
}

// Record returns a delivery record by id.
func (p *Pipeline) Record(ctx context.Context, id string) (*Record, error) {
	e, err := p.eng.Deliveries.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return nil, registry.ErrNotFound
		}
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Event reads an accepted event back by id.
func (p *Pipeline) Event(ctx context.Context, id string) (*Event, error) {
	if !registry.ValidID(id) {
		return nil, registry.ErrNotFound
	}
	raw, err := p.eng.EventStream.GetLastMsgForSubject(ctx, eventSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		raw, err = p.eng.EventStream.GetLastMsgForSubject(ctx, engine.SubjectDirect+".*."+id)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, registry.ErrNotFound
		}
		return nil, err
	}
	return eventFromMessage(raw.Header, raw.Data)
}

// Query selects delivery records.
type Query struct {
	Subscription string
	Workflow     string
	Event        string
	Status       string
	// Limit caps the page. Default: 100, at most 1000.
	Limit int
	// After is the id of the last record of the previous page.
	After string
}

// Deliveries lists the records matching q, ordered by id, and the cursor of
// the next page ("" when none).
func (p *Pipeline) Deliveries(ctx context.Context, q Query) ([]*Record, string, error) {
	filter := ">"
	switch {
	case q.Subscription != "" && q.Event != "":
		filter = recordID(q.Subscription, q.Event)
	case q.Subscription != "":
		filter = q.Subscription + ".*"
	case q.Event != "":
		filter = "*." + q.Event
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	lister, err := p.eng.Deliveries.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, "", err
	}
	var keys []string
	for k := range lister.Keys() {
		if q.After == "" || k > q.After {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	var out []*Record
	for i, k := range keys {
		rec, err := p.Record(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		if (q.Status != "" && rec.Status != q.Status) || (q.Workflow != "" && rec.WorkflowID != q.Workflow) {
			continue
		}
		out = append(out, rec)
		if len(out) == q.Limit {
			if i < len(keys)-1 {
				return out, k, nil
			}
			break
		}
	}
	return out, "", nil
}

// ErrNotReplayable is returned when a delivery is still pending.
var ErrNotReplayable = errors.New("delivery is still pending")

// Retry queues a finished delivery again (a manual replay); its attempt
// budget starts afresh.
func (p *Pipeline) Retry(ctx context.Context, id string) (*Record, error) {
	rec, err := p.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusPending {
		return nil, ErrNotReplayable
	}
	ev, err := p.Event(ctx, rec.EventID)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", rec.EventID, err)
	}
	if _, ok := p.reg.Destination(rec.Destination); !ok {
		return nil, fmt.Errorf("destination %s: %w", rec.Destination, registry.ErrNotFound)
	}
	rec.Replays++
	rec.ReplayBase = len(rec.Attempts)
	rec.Status, rec.Reason, rec.NextAttemptAt = StatusPending, "", nil
	if err := p.saveRecord(ctx, rec); err != nil {
		return nil, fmt.Errorf("recording retry: %w", err)
	}
	dm := ev.message(engine.SubjectDeliveries + "." + rec.Destination)
	dm.Header.Set(hdrDest, rec.Destination)
	dm.Header.Set(hdrReplay, strconv.Itoa(rec.Replays))
	if _, err := p.eng.JetStream().PublishMsg(ctx, dm, jetstream.WithMsgID(fmt.Sprintf("%s.r%d", id, rec.Replays))); err != nil {
		return nil, fmt.Errorf("queueing retry: %w", err)
	}
	return rec, nil
}

// QueueDepth is the number of deliveries waiting or in flight: the messages
// of the delivery work queue, and the direct events not yet delivered.
func (p *Pipeline) QueueDepth(ctx context.Context) (uint64, error) {
	info, err := p.eng.QueueStream.Info(ctx)
	if err != nil {
		return 0, err
	}
	total := info.State.Msgs
	p.consMu.Lock()
	ids := slices.Collect(maps.Keys(p.consumed))
	p.consMu.Unlock()
	for _, id := range ids {
		c, err := p.eng.JetStream().Consumer(ctx, engine.StreamEvents, ConsumerDirectPrefix+id)
		if err != nil {
			continue
		}
		if ci, err := c.Info(ctx); err == nil {
			total += ci.NumPending + uint64(ci.NumAckPending)
		}
	}
	return total, nil
}
