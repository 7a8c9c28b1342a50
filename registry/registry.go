package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
)

// keyState is a workflow's current and previous key hashes.
type keyState struct {
	current       [32]byte
	previous      *[32]byte
	previousUntil time.Time
}

// snapshot is an immutable view of every resource; readers load it without
// locks, writers replace it.
type snapshot struct {
	workflows     map[string]*CompiledWorkflow
	keys          map[string]keyState
	topics        map[string]*CompiledTopic
	subscriptions map[string]*CompiledSubscription
	destinations  map[string]*Destination
}

// Registry is the in-memory index of resources, fed by KV watches, and the
// writer of API-managed resources.
type Registry struct {
	eng   *engine.Engine
	guard URLChecker
	log   *zap.Logger

	mu         sync.Mutex
	apiWF      map[string]*CompiledWorkflow
	confWF     map[string]configEntry[*CompiledWorkflow]
	keys       map[string]keyState
	apiTopics  map[string]*CompiledTopic
	confTopics map[string]configEntry[*CompiledTopic]
	apiSubs    map[string]*CompiledSubscription
	confSubs   map[string]configEntry[*CompiledSubscription]
	revisions  map[string]uint64 // bucket -> last applied revision
	changed    chan struct{}     // closed and replaced on every apply
	fresh      sync.Map          // workflow id -> freshWorkflow (store.go)

	snap   atomic.Pointer[snapshot]
	cancel context.CancelFunc
	done   sync.WaitGroup
}

type configEntry[T any] struct {
	owner uint64
	value T
}

var ownerSeq atomic.Uint64

// New returns a registry over eng's buckets; Start fills it.
func New(eng *engine.Engine, guard URLChecker, log *zap.Logger) *Registry {
	if log == nil {
		log = zap.NewNop()
	}
	r := &Registry{
		eng: eng, guard: guard, log: log,
		apiWF: map[string]*CompiledWorkflow{}, confWF: map[string]configEntry[*CompiledWorkflow]{},
		keys:      map[string]keyState{},
		apiTopics: map[string]*CompiledTopic{}, confTopics: map[string]configEntry[*CompiledTopic]{},
		apiSubs: map[string]*CompiledSubscription{}, confSubs: map[string]configEntry[*CompiledSubscription]{},
		revisions: map[string]uint64{},
		changed:   make(chan struct{}),
	}
	r.rebuild()
	return r
}

// Guard returns the URL checker resources are validated with.
func (r *Registry) Guard() URLChecker { return r.guard }

// Start watches the buckets and returns once their current content is
// loaded (or ctx ends).
func (r *Registry) Start(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	buckets := []struct {
		kv    jetstream.KeyValue
		apply func(jetstream.KeyValueEntry)
	}{
		{r.eng.Workflows, r.applyWorkflow},
		{r.eng.Keys, r.applyKey},
		{r.eng.Topics, r.applyTopic},
		{r.eng.Subscriptions, r.applySubscription},
	}
	ready := make(chan error, len(buckets))
	for _, b := range buckets {
		w, err := b.kv.WatchAll(wctx)
		if err != nil {
			cancel()
			return fmt.Errorf("watching %s: %w", b.kv.Bucket(), err)
		}
		r.done.Add(1)
		go r.watch(wctx, w, b.kv.Bucket(), b.apply, ready)
	}
	for range buckets {
		select {
		case err := <-ready:
			if err != nil {
				cancel()
				return err
			}
		case <-ctx.Done():
			cancel()
			return fmt.Errorf("loading resources: %w", ctx.Err())
		}
	}
	return nil
}

func (r *Registry) watch(ctx context.Context, w jetstream.KeyWatcher, bucket string, apply func(jetstream.KeyValueEntry), ready chan<- error) {
	defer r.done.Done()
	defer func() { _ = w.Stop() }()
	signalled := false
	for {
		select {
		case <-ctx.Done():
			if !signalled {
				ready <- ctx.Err()
			}
			return
		case e, ok := <-w.Updates():
			if !ok {
				if !signalled {
					ready <- fmt.Errorf("watch of %s closed", bucket)
				}
				return
			}
			if e == nil {
				if !signalled {
					signalled = true
					ready <- nil
				}
				continue
			}
			r.mu.Lock()
			apply(e)
			if e.Revision() > r.revisions[bucket] {
				r.revisions[bucket] = e.Revision()
			}
			r.rebuildLocked()
			r.mu.Unlock()
		}
	}
}

// Stop ends the watches.
func (r *Registry) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.done.Wait()
}

// waitApplied blocks until the watch of bucket has applied revision rev, so
// that a write through the API is visible to the next request.
func (r *Registry) waitApplied(ctx context.Context, bucket string, rev uint64) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		r.mu.Lock()
		applied, ch := r.revisions[bucket], r.changed
		r.mu.Unlock()
		if applied >= rev {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// waitUntil blocks (at most 2s) until cond holds for the current snapshot.
func (r *Registry) waitUntil(ctx context.Context, cond func(*snapshot) bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond(r.snap.Load()) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func isDelete(e jetstream.KeyValueEntry) bool {
	return e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
}

func (r *Registry) applyWorkflow(e jetstream.KeyValueEntry) {
	if isDelete(e) {
		delete(r.apiWF, e.Key())
		return
	}
	var w Workflow
	if err := json.Unmarshal(e.Value(), &w); err != nil {
		r.log.Error("stored workflow is unreadable", zap.String("workflow", e.Key()), zap.Error(err))
		return
	}
	w.Source = SourceAPI
	cw, err := r.compileStored(w, e.Value())
	if err != nil {
		r.log.Error("stored workflow does not compile", zap.String("workflow", e.Key()), zap.Error(err))
		return
	}
	if c := cw.Contract; c != nil && c.FallbackReason() != "" {
		r.log.Info("workflow contract is validated by the JSON Schema engine, not the fast validator",
			zap.String("workflow", w.ID), zap.String("reason", c.FallbackReason()))
	}
	r.apiWF[w.ID] = cw
}

func (r *Registry) applyKey(e jetstream.KeyValueEntry) {
	if isDelete(e) {
		delete(r.keys, e.Key())
		return
	}
	var rec keyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		r.log.Error("stored key record is unreadable", zap.String("workflow", e.Key()), zap.Error(err))
		return
	}
	cur, ok := parseHash(rec.Hash)
	if !ok {
		r.log.Error("stored key hash is malformed", zap.String("workflow", e.Key()))
		return
	}
	ks := keyState{current: cur}
	if prev, ok := parseHash(rec.PreviousHash); ok {
		ks.previous, ks.previousUntil = &prev, rec.PreviousUntil
	}
	r.keys[e.Key()] = ks
}

func (r *Registry) applyTopic(e jetstream.KeyValueEntry) {
	name, err := decodeTopicKey(e.Key())
	if err != nil {
		return
	}
	if isDelete(e) {
		delete(r.apiTopics, name)
		return
	}
	var t Topic
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		r.log.Error("stored topic is unreadable", zap.String("topic", name), zap.Error(err))
		return
	}
	t.Source = SourceAPI
	ct, err := CompileTopic(t)
	if err != nil {
		r.log.Error("stored topic does not compile", zap.String("topic", name), zap.Error(err))
		return
	}
	r.apiTopics[name] = ct
}

func (r *Registry) applySubscription(e jetstream.KeyValueEntry) {
	if isDelete(e) {
		delete(r.apiSubs, e.Key())
		return
	}
	var st storedSubscription
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		r.log.Error("stored subscription is unreadable", zap.String("subscription", e.Key()), zap.Error(err))
		return
	}
	s := st.Subscription
	s.Secret = st.Secret
	s.Source = SourceAPI
	prev := ""
	if st.PreviousSecret != "" && time.Now().Before(st.PreviousUntil) {
		prev = st.PreviousSecret
	}
	cs, err := CompileSubscription(s, prev, r.guard)
	if err != nil {
		r.log.Error("stored subscription does not compile", zap.String("subscription", e.Key()), zap.Error(err))
		return
	}
	if prev != "" {
		cs.previousUntil = st.PreviousUntil
		r.scheduleRebuild(st.PreviousUntil)
	}
	r.apiSubs[s.ID] = cs
}

// scheduleRebuild recompiles API subscriptions at t, so that a rotated-away
// secret stops signing when its grace period ends. Only subscriptions whose
// own grace period has ended are recompiled: another one rotated with a
// longer grace keeps its previous secret.
func (r *Registry) scheduleRebuild(t time.Time) {
	time.AfterFunc(time.Until(t)+time.Millisecond, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		now := time.Now()
		for id, cs := range r.apiSubs {
			if len(cs.Dest.Keys) > 1 && !now.Before(cs.previousUntil) {
				if ncs, err := CompileSubscription(cs.Def, "", r.guard); err == nil {
					r.apiSubs[id] = ncs
				}
			}
		}
		r.rebuildLocked()
	})
}

func (r *Registry) rebuild() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rebuildLocked()
}

// rebuildLocked publishes a new snapshot; configuration entries win over API
// entries with the same id (the API refuses to create those).
func (r *Registry) rebuildLocked() {
	s := &snapshot{
		workflows:     make(map[string]*CompiledWorkflow, len(r.apiWF)+len(r.confWF)),
		keys:          maps.Clone(r.keys),
		topics:        make(map[string]*CompiledTopic, len(r.apiTopics)+len(r.confTopics)),
		subscriptions: make(map[string]*CompiledSubscription, len(r.apiSubs)+len(r.confSubs)),
		destinations:  map[string]*Destination{},
	}
	maps.Copy(s.workflows, r.apiWF)
	for id, e := range r.confWF {
		s.workflows[id] = e.value
	}
	maps.Copy(s.topics, r.apiTopics)
	for id, e := range r.confTopics {
		s.topics[id] = e.value
	}
	maps.Copy(s.subscriptions, r.apiSubs)
	for id, e := range r.confSubs {
		s.subscriptions[id] = e.value
	}
	for _, w := range s.workflows {
		for _, d := range w.Targets {
			s.destinations[d.ID] = d
		}
	}
	for _, sub := range s.subscriptions {
		s.destinations[sub.Dest.ID] = sub.Dest
	}
	r.snap.Store(s)
	close(r.changed)
	r.changed = make(chan struct{})
}

// --- reads (lock-free) ---

// Workflow returns a compiled workflow by id.
func (r *Registry) Workflow(id string) (*CompiledWorkflow, bool) {
	w, ok := r.snap.Load().workflows[id]
	return w, ok
}

// Workflows returns every workflow, sorted by id.
func (r *Registry) Workflows() []*CompiledWorkflow {
	return sortedValues(r.snap.Load().workflows)
}

// Topic returns a compiled topic by name.
func (r *Registry) Topic(name string) (*CompiledTopic, bool) {
	t, ok := r.snap.Load().topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (r *Registry) Topics() []*CompiledTopic { return sortedValues(r.snap.Load().topics) }

// Subscription returns a compiled subscription by id.
func (r *Registry) Subscription(id string) (*CompiledSubscription, bool) {
	s, ok := r.snap.Load().subscriptions[id]
	return s, ok
}

// Subscriptions returns every subscription, sorted by id.
func (r *Registry) Subscriptions() []*CompiledSubscription {
	return sortedValues(r.snap.Load().subscriptions)
}

// DestinationIDs returns the ids of every current destination.
func (r *Registry) DestinationIDs() []string {
	return slices.Sorted(maps.Keys(r.snap.Load().destinations))
}

// Changed returns a channel closed at the next change of the resources.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Destination returns a delivery destination by id.
func (r *Registry) Destination(id string) (*Destination, bool) {
	d, ok := r.snap.Load().destinations[id]
	return d, ok
}

func sortedValues[T any](m map[string]T) []T {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// dummyHash is compared against when a workflow is unknown, so that unknown
// workflows and wrong keys take the same time.
var dummyHash = HashKey("hookgate: no such workflow")

// Authenticate returns the workflow id when key is its current key, or its
// previous key within the grace period. Unknown, disabled and keyless
// workflows are refused exactly like a wrong key.
func (r *Registry) Authenticate(id, key string, now time.Time) (*CompiledWorkflow, bool) {
	s := r.snap.Load()
	h := HashKey(key)
	w, ok := s.workflows[id]
	var want *[32]byte
	ks, hasKey := s.keys[id]
	switch {
	case ok && w.fixedHash != nil:
		want = w.fixedHash
	case ok && hasKey:
		want = &ks.current
	default:
		equalHash(&h, &dummyHash)
		return nil, false
	}
	match := equalHash(&h, want)
	if !match && w.fixedHash == nil && ks.previous != nil && now.Before(ks.previousUntil) {
		match = equalHash(&h, ks.previous)
	}
	if !match || !w.Def.IsEnabled() {
		return nil, false
	}
	return w, true
}

// HasKey reports whether the workflow has a key (pinned or generated).
func (r *Registry) HasKey(id string) bool {
	s := r.snap.Load()
	if w, ok := s.workflows[id]; ok && w.fixedHash != nil {
		return true
	}
	_, ok := s.keys[id]
	return ok
}

// --- configuration resources ---

// ConfigSet holds the resources one Caddy configuration declares. Release
// removes them, unless a newer configuration declared the same ids since.
type ConfigSet struct {
	r     *Registry
	owner uint64
}

// DeclareConfig replaces the configuration-declared resources of the same
// ids with these ones. They must be compiled already.
func (r *Registry) DeclareConfig(workflows []*CompiledWorkflow, topics []*CompiledTopic, subs []*CompiledSubscription) *ConfigSet {
	owner := ownerSeq.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range workflows {
		r.confWF[w.Def.ID] = configEntry[*CompiledWorkflow]{owner, w}
	}
	for _, t := range topics {
		r.confTopics[t.Def.Name] = configEntry[*CompiledTopic]{owner, t}
	}
	for _, s := range subs {
		r.confSubs[s.Def.ID] = configEntry[*CompiledSubscription]{owner, s}
	}
	r.rebuildLocked()
	return &ConfigSet{r: r, owner: owner}
}

// Release removes the set's resources still owned by it.
func (c *ConfigSet) Release() {
	if c == nil {
		return
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	maps.DeleteFunc(r.confWF, func(_ string, e configEntry[*CompiledWorkflow]) bool { return e.owner == c.owner })
	maps.DeleteFunc(r.confTopics, func(_ string, e configEntry[*CompiledTopic]) bool { return e.owner == c.owner })
	maps.DeleteFunc(r.confSubs, func(_ string, e configEntry[*CompiledSubscription]) bool { return e.owner == c.owner })
	r.rebuildLocked()
}

func (r *Registry) isConfigWorkflow(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.confWF[id]
	return ok
}

func (r *Registry) isConfigTopic(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.confTopics[name]
	return ok
}

func (r *Registry) isConfigSubscription(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.confSubs[id]
	return ok
}

// kvError maps JetStream KV errors to registry errors.
func kvError(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return ErrNotFound
	case errors.Is(err, jetstream.ErrKeyExists):
		return ErrConflict
	}
	return err
}
