package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Timings of the config watches.
//
// A KV watch is an ordered push consumer: when the node holding it is lost,
// the client library notices only after two missed idle heartbeats (10s),
// and when it cannot recreate the consumer it closes the watch's channel.
// So the registry also follows the bucket's subjects with a plain
// subscription, which the cluster routes to every node: a write seen there
// that the watch does not deliver in time (the stream's last revision is
// read to tell), or a reconnect of the connection, re-establishes the watch
// from the revision after the last one applied, within about a quarter of a
// second.
const (
	// watchRetryMin and watchRetryMax bound the backoff between attempts
	// to watch a bucket again after its watch ended.
	watchRetryMin = 50 * time.Millisecond
	watchRetryMax = time.Second
	// hintDelay is how long after a write is seen on the bucket's subjects
	// the registry checks that its watch is not behind the stream. When it
	// is, the watch has catchUp more to deliver the stream's last revision
	// if it delivered nothing since the write was seen (a watch that is
	// still working through a burst of writes gets lagging each time it
	// applies something) before it is re-established.
	hintDelay = 100 * time.Millisecond
	catchUp   = 100 * time.Millisecond
	lagging   = 300 * time.Millisecond
	// reconnectPoll is how often the connection's reconnect count is read:
	// after a reconnect, the watch is re-established at once (the node that
	// held it may be gone, and writes made meanwhile were not seen).
	reconnectPoll = 50 * time.Millisecond
	// probeTimeout bounds one read of the stream's last revision.
	probeTimeout = 500 * time.Millisecond
)

// change is a KV entry decoded and compiled, ready to install.
type change struct {
	key   string // KV key
	id    string // resource id: the key, or the topic name
	rev   uint64
	del   bool
	value any   // *CompiledWorkflow, keyState, *CompiledTopic or *CompiledSubscription
	err   error // set when the entry does not read or compile: not served
}

// bucket is one watched KV bucket: decode runs in parallel on an initial
// load, install runs in revision order with r.mu held.
type bucket struct {
	kv      jetstream.KeyValue
	decode  func(jetstream.KeyValueEntry) change
	install func(*txn, change)
}

func (r *Registry) buckets() []*bucket {
	return []*bucket{
		{r.eng.Workflows, r.decodeWorkflow, (*txn).installWorkflow},
		{r.eng.Keys, r.decodeKey, (*txn).installKey},
		{r.eng.Topics, r.decodeTopic, (*txn).installTopic},
		{r.eng.Subscriptions, r.decodeSubscription, (*txn).installSubscription},
	}
}

// Start watches the buckets and returns once their current content is
// loaded (or ctx ends). The watches then follow every change until Stop,
// and are re-established whenever they end (a NATS node lost, a leader
// change, a reconnect).
func (r *Registry) Start(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	bs := r.buckets()
	ready := make(chan string, len(bs))
	for _, b := range bs {
		r.done.Add(1)
		go r.follow(wctx, b, ready)
	}
	for range bs {
		select {
		case <-ready:
		case <-ctx.Done():
			cancel()
			r.done.Wait()
			return fmt.Errorf("loading resources: %w", ctx.Err())
		}
	}
	return nil
}

// applied returns the last revision of bucket the index holds.
func (r *Registry) applied(bucket string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.revisions[bucket]
}

// follow keeps the index in step with one bucket until ctx ends: it watches
// the bucket, and when the watch ends or stalls, watches it again from the
// revision after the last one applied, with backoff. ready receives the
// bucket's name once its initial content is loaded.
func (r *Registry) follow(ctx context.Context, b *bucket, ready chan<- string) {
	defer r.done.Done()
	name := b.kv.Bucket()
	log := r.log.With(zap.String("bucket", name))

	// Every write to the bucket is also published on its subjects: seeing
	// one is the hint to check that the watch delivers it.
	hints := make(chan struct{}, 1)
	// A new leader of the bucket's stream (in a cluster, after a node
	// loss) means the watch's consumer may be gone with the old one:
	// the watch is established again at once, not when a write finds it
	// stalled.
	elected := make(chan struct{}, 1)
	if nc := r.eng.Conn(); nc != nil {
		signal := func(ch chan struct{}) nats.MsgHandler {
			return func(*nats.Msg) {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
		sub, err := nc.Subscribe("$KV."+name+".>", signal(hints))
		if err != nil {
			log.Warn("not following the bucket's writes: a stalled watch is found by its heartbeats only", zap.Error(err))
		} else {
			defer func() { _ = sub.Unsubscribe() }()
		}
		if sub, err := nc.Subscribe(leaderElected+"KV_"+name, signal(elected)); err != nil {
			log.Warn("not following the leader elections of the bucket's stream", zap.Error(err))
		} else {
			defer func() { _ = sub.Unsubscribe() }()
		}
	}

	loaded := false
	var outage time.Time // when the current outage began; zero when healthy
	var floor uint64     // a revision the stream had when the watch was found behind
	delay := watchRetryMin
	for {
		var opts []jetstream.WatchOpt
		if loaded {
			opts = append(opts, jetstream.ResumeFromRevision(r.applied(name)+1))
		}
		r.waitConnected(ctx)
		w, err := r.startWatch(ctx, b.kv, opts)
		if err == nil {
			err = r.consume(ctx, b, w, hints, elected, func() {
				// The watch delivered every revision up to floor that
				// still exists: the others were removed from the stream.
				r.raiseApplied(name, floor)
				floor = 0
				if !loaded {
					loaded = true
					ready <- name
				}
				if !outage.IsZero() {
					log.Info("config watch re-established",
						zap.Duration("outage", time.Since(outage)), zap.Uint64("revision", r.applied(name)))
					outage = time.Time{}
				}
				delay = watchRetryMin
			})
			stopWatcher(w)
		}
		if ctx.Err() != nil {
			return
		}
		if se, ok := err.(*stallError); ok {
			floor = se.stored
		}
		if outage.IsZero() {
			outage = time.Now()
			log.Warn("config watch interrupted: watching again from the last applied revision",
				zap.Uint64("revision", r.applied(name)), zap.Error(err))
		}
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, watchRetryMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-elected: // the stream has a leader again: try now
		}
	}
}

// watchStart bounds how long establishing a watch may take: a request
// sent as the connection went down can wait for its answer far longer.
const watchStart = time.Second

var errWatchStart = errors.New("establishing the watch took too long")

// startWatch watches every key of kv. It gives up after watchStart, or at
// once when the connection is re-established meanwhile (the request may
// have gone with the old one); a watch established after that is stopped.
func (r *Registry) startWatch(ctx context.Context, kv jetstream.KeyValue, opts []jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	type result struct {
		w   jetstream.KeyWatcher
		err error
	}
	ch := make(chan result, 1)
	go func() {
		w, err := kv.WatchAll(ctx, opts...)
		ch <- result{w, err}
	}()
	reconnects := r.reconnects()
	t := time.NewTimer(watchStart)
	defer t.Stop()
	tick := time.NewTicker(reconnectPoll)
	defer tick.Stop()
	err := errWatchStart
wait:
	for {
		select {
		case res := <-ch:
			return res.w, res.err
		case <-t.C:
			break wait
		case <-tick.C:
			if r.reconnects() != reconnects {
				err = errReconnected
				break wait
			}
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	go func() {
		if res := <-ch; res.w != nil {
			stopWatcher(res.w)
		}
	}()
	return nil, err
}

// waitConnected returns once the engine's connection is up (or ctx ends):
// a watch requested while it is down may wait long for its answer.
func (r *Registry) waitConnected(ctx context.Context) {
	nc := r.eng.Conn()
	if nc == nil {
		return
	}
	for !nc.IsConnected() && !nc.IsClosed() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconnectPoll):
		}
	}
}

// stopWatcher unsubscribes w, and drains its channel so that a delivery
// blocked on it lets the subscription close. Both run beside the caller:
// unsubscribing deletes the watch's consumer on the server, a request that
// waits out its timeout when the consumer's node is gone, and the watch
// must be established again meanwhile.
func stopWatcher(w jetstream.KeyWatcher) {
	go func() {
		for range w.Updates() {
		}
	}()
	go func() { _ = w.Stop() }()
}

var (
	errWatchClosed = errors.New("watch closed")
	errReconnected = errors.New("the connection to NATS was re-established")
	errElected     = errors.New("the bucket's stream has a new leader")
)

// leaderElected prefixes the subject of the advisory a stream's new leader
// publishes (then the stream's name).
const leaderElected = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."

// stallError is a watch that did not deliver a revision the stream holds.
type stallError struct{ stored, applied uint64 }

func (e *stallError) Error() string {
	return fmt.Sprintf("watch stalled: revision %d is stored, %d applied", e.stored, e.applied)
}

// raiseApplied records that every revision of bucket up to rev is applied,
// when a watch that started after rev was stored caught up without it.
func (r *Registry) raiseApplied(bucket string, rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev > r.revisions[bucket] {
		r.revisions[bucket] = rev
		r.begin().commit() // wakes waitApplied
	}
}

// consume applies w's entries until ctx ends, the watch closes or it is
// found behind the stream. The initial values, up to the nil entry, are
// compiled in parallel and applied as one change; synced runs then.
func (r *Registry) consume(ctx context.Context, b *bucket, w jetstream.KeyWatcher, hints, elected <-chan struct{}, synced func()) error {
	name := b.kv.Bucket()
	var (
		initial  []jetstream.KeyValueEntry
		loaded   bool
		probe    <-chan time.Time   // armed by a hint or a reconnect
		probing  <-chan probeResult // the probe's read, while it runs
		deadline <-chan time.Time   // armed when the stream is ahead of the index
		target   uint64             // the stream's last revision, when armed
		progress uint64             // the revision applied when armed
		hinted   uint64             // the revision applied when the probe was armed
	)
	reconnects := r.reconnects()
	tick := time.NewTicker(reconnectPoll)
	defer tick.Stop()
	suspect := func() {
		if loaded && probe == nil && probing == nil && deadline == nil {
			probe, hinted = time.After(hintDelay), r.applied(name)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errWatchClosed
			}
			switch {
			case e == nil && !loaded:
				loaded = true
				r.applyEntries(b, initial)
				initial = nil
				synced()
			case e == nil:
			case !loaded:
				initial = append(initial, e)
			default:
				r.applyEntries(b, []jetstream.KeyValueEntry{e})
				if deadline != nil && e.Revision() >= target {
					deadline = nil
				}
			}
		case <-hints:
			suspect()
		case <-elected:
			// (Disconnected, the reconnect re-establishes the watch.)
			if nc := r.eng.Conn(); loaded && (nc == nil || nc.IsConnected()) {
				return errElected
			}
		case <-tick.C:
			if n := r.reconnects(); n != reconnects && loaded {
				return errReconnected
			}
		case <-probe:
			// The read runs beside the loop: during a node loss it can
			// take up to probeTimeout, and the loop must still see a
			// reconnect and the watch's entries meanwhile.
			probe = nil
			ch := make(chan probeResult, 1)
			go func() {
				last, err := lastRevision(ctx, b.kv)
				ch <- probeResult{last, err}
			}()
			probing = ch
		case res := <-probing:
			probing = nil
			last, err := res.last, res.err
			switch {
			case err != nil && r.applied(name) == hinted:
				// A write was seen, nothing was applied since, and the
				// stream cannot be read: its leader may be gone, and the
				// watch's consumer with it. Watching again costs little
				// and finds out; waiting for the stream to answer could
				// take longer than a change may.
				return fmt.Errorf("a write was seen, nothing applied since, and the stream's last revision is unreadable: %w", err)
			case err != nil:
				// The watch applies entries: it is alive.
			case last > r.applied(name):
				wait := catchUp
				if r.applied(name) > hinted {
					wait = lagging
				}
				target, progress, deadline = last, r.applied(name), time.After(wait)
			}
		case <-deadline:
			// A watch that applied something since is lagging behind a
			// burst of writes, not stalled: it gets more time.
			if applied := r.applied(name); applied > progress {
				progress, deadline = applied, time.After(lagging)
				continue
			}
			return &stallError{stored: target, applied: r.applied(name)}
		}
	}
}

// probeResult is the outcome of a probe's read of the stream's last
// revision.
type probeResult struct {
	last uint64
	err  error
}

// reconnects returns how many times the engine's connection reconnected.
func (r *Registry) reconnects() uint64 {
	if nc := r.eng.Conn(); nc != nil {
		return nc.Stats().Reconnects
	}
	return 0
}

// lastRevision returns the last revision stored in kv.
func lastRevision(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return 0, errors.New("bucket status without stream info")
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// applyEntries decodes and compiles entries (in parallel when there are
// several, at most GOMAXPROCS at once), then installs them in order as one
// change. Entries at or below the last applied revision (seen again on a
// watch re-established from an older revision) are skipped.
func (r *Registry) applyEntries(b *bucket, entries []jetstream.KeyValueEntry) {
	name := b.kv.Bucket()
	from := r.applied(name)
	changes := make([]change, len(entries))
	workers := min(runtime.GOMAXPROCS(0), len(entries))
	if workers <= 1 {
		for i, e := range entries {
			if e.Revision() > from {
				changes[i] = b.decode(e)
			}
		}
	} else {
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					changes[i] = b.decode(entries[i])
				}
			})
		}
		for i, e := range entries {
			if e.Revision() > from {
				next <- i
			}
		}
		close(next)
		wg.Wait()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.begin()
	for _, c := range changes {
		if c.rev == 0 || c.rev <= r.revisions[name] {
			continue
		}
		b.install(t, c)
		r.revisions[name] = c.rev
	}
	t.commit()
}

func isDelete(e jetstream.KeyValueEntry) bool {
	return e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
}

func (r *Registry) decodeWorkflow(e jetstream.KeyValueEntry) change {
	c := change{key: e.Key(), id: e.Key(), rev: e.Revision(), del: isDelete(e)}
	if c.del {
		return c
	}
	var w Workflow
	if err := json.Unmarshal(e.Value(), &w); err != nil {
		c.err = fmt.Errorf("unreadable: %w", err)
		return c
	}
	if w.ID != c.key {
		c.err = fmt.Errorf("id %q under key %q", w.ID, c.key)
		return c
	}
	w.Source = SourceAPI
	if c.value, c.err = r.compileStored(w, e.Value()); c.err != nil {
		c.value = nil
	}
	return c
}

func (t *txn) installWorkflow(c change) {
	r := t.r
	if c.del || c.err != nil {
		delete(r.apiWF, c.id)
	} else {
		cw := c.value.(*CompiledWorkflow)
		r.apiWF[c.id] = cw
		if ct := cw.Contract; ct != nil && ct.FallbackReason() != "" {
			r.log.Info("workflow contract is validated by the JSON Schema engine, not the fast validator",
				zap.String("workflow", c.id), zap.String("reason", ct.FallbackReason()))
		}
	}
	r.setBroken(KindWorkflow, c.id, c.err)
	t.refreshWorkflow(c.id)
}

func (r *Registry) decodeKey(e jetstream.KeyValueEntry) change {
	c := change{key: e.Key(), id: e.Key(), rev: e.Revision(), del: isDelete(e)}
	if c.del {
		return c
	}
	var rec keyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		c.err = fmt.Errorf("unreadable: %w", err)
		return c
	}
	cur, ok := parseHash(rec.Hash)
	if !ok {
		c.err = errors.New("malformed hash")
		return c
	}
	ks := keyState{current: cur}
	if prev, ok := parseHash(rec.PreviousHash); ok {
		ks.previous, ks.previousUntil = &prev, rec.PreviousUntil
	}
	c.value = ks
	return c
}

// installKey removes the key of a workflow whose key record is broken: its
// requests are refused until a new key is generated.
func (t *txn) installKey(c change) {
	switch {
	case c.err != nil:
		t.r.log.Error("stored key record is broken: the workflow's key is refused",
			zap.String("workflow", c.id), zap.Error(c.err))
		t.keys.del(c.id)
	case c.del:
		t.keys.del(c.id)
	default:
		t.keys.set(c.id, c.value.(keyState))
	}
}

func (r *Registry) decodeTopic(e jetstream.KeyValueEntry) change {
	c := change{key: e.Key(), id: e.Key(), rev: e.Revision(), del: isDelete(e)}
	name, err := decodeTopicKey(e.Key())
	if err != nil {
		c.err = fmt.Errorf("undecodable key: %w", err)
		return c
	}
	c.id = name
	if c.del {
		return c
	}
	var tp Topic
	if err := json.Unmarshal(e.Value(), &tp); err != nil {
		c.err = fmt.Errorf("unreadable: %w", err)
		return c
	}
	if tp.Name != name {
		c.err = fmt.Errorf("name %q under key %q", tp.Name, c.key)
		return c
	}
	tp.Source = SourceAPI
	if c.value, c.err = CompileTopic(tp); c.err != nil {
		c.value = nil
	}
	return c
}

func (t *txn) installTopic(c change) {
	r := t.r
	if c.del || c.err != nil {
		delete(r.apiTopics, c.id)
	} else {
		r.apiTopics[c.id] = c.value.(*CompiledTopic)
	}
	r.setBroken(KindTopic, c.id, c.err)
	t.refreshTopic(c.id)
}

func (r *Registry) decodeSubscription(e jetstream.KeyValueEntry) change {
	if strings.HasPrefix(e.Key(), disabledPrefix) {
		return decodeConfigDisabled(e)
	}
	c := change{key: e.Key(), id: e.Key(), rev: e.Revision(), del: isDelete(e)}
	if c.del {
		return c
	}
	var st storedSubscription
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		c.err = fmt.Errorf("unreadable: %w", err)
		return c
	}
	s := st.Subscription
	if s.ID != c.key {
		c.err = fmt.Errorf("id %q under key %q", s.ID, c.key)
		return c
	}
	s.Secret, s.SecretGenerated = st.Secret, st.SecretGenerated
	s.Source = SourceAPI
	prev := ""
	if st.PreviousSecret != "" && time.Now().Before(st.PreviousUntil) {
		prev = st.PreviousSecret
	}
	cs, err := CompileSubscription(s, prev, r.guard)
	if err != nil {
		c.err = err
		return c
	}
	if prev != "" {
		cs.previousUntil = st.PreviousUntil
	}
	c.value = cs
	return c
}

func (t *txn) installSubscription(c change) {
	if strings.HasPrefix(c.key, disabledPrefix) {
		t.installConfigDisabled(c)
		return
	}
	r := t.r
	if c.del || c.err != nil {
		delete(r.apiSubs, c.id)
	} else {
		cs := c.value.(*CompiledSubscription)
		r.apiSubs[c.id] = cs
		if !cs.previousUntil.IsZero() {
			r.scheduleExpiry(c.id, cs.previousUntil)
		}
	}
	r.setBroken(KindSubscription, c.id, c.err)
	t.refreshSubscription(c.id)
}
