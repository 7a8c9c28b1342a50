package registry

import (
	"context"
	"errors"
	"github.com/hookgate/hookgate/delivery/destination"
	"maps"
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

// Kinds of resources, as Broken names them.
const (
	KindWorkflow     = "workflow"
	KindTopic        = "topic"
	KindSubscription = "subscription"
)

// Registry is the in-memory index of resources, fed by KV watches, and the
// writer of API-managed resources.
//
// The index the request path reads (workflows, keys, destinations, topics,
// subscriptions and the topic index) is made of copy-on-write shards: reads
// take no lock, and a change copies only the shards it touches. Changes are
// serialised by mu, which also guards the sources they are computed from:
// the API resources (from the KV watches) and the configuration ones.
type Registry struct {
	eng   *engine.Engine
	guard URLChecker
	log   *zap.Logger

	mu         sync.Mutex
	apiWF      map[string]*CompiledWorkflow
	confWF     map[string]configEntry[*CompiledWorkflow]
	apiTopics  map[string]*CompiledTopic
	confTopics map[string]configEntry[*CompiledTopic]
	apiSubs    map[string]*CompiledSubscription
	confSubs   map[string]configEntry[*CompiledSubscription]
	// confDisabled holds the disabled states of configuration
	// subscriptions, by id (configstate.go).
	confDisabled map[string]configDisabled
	subNames     map[string]map[string]struct{} // name -> ids of served subscriptions
	broken       map[string]map[string]string   // kind -> id -> error
	revisions    map[string]uint64              // bucket -> last applied revision
	changed      chan struct{}                  // closed and replaced on every change
	fresh        sync.Map                       // workflow id -> freshWorkflow (store.go)

	workflows     *cowMap[*CompiledWorkflow]
	keys          *cowMap[keyState]
	topics        *cowMap[*CompiledTopic]
	subscriptions *cowMap[*CompiledSubscription]
	destinations  *cowMap[*destination.Destination]
	byTopic       *topicIndex

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
		apiTopics: map[string]*CompiledTopic{}, confTopics: map[string]configEntry[*CompiledTopic]{},
		apiSubs: map[string]*CompiledSubscription{}, confSubs: map[string]configEntry[*CompiledSubscription]{},
		confDisabled: map[string]configDisabled{},
		subNames:     map[string]map[string]struct{}{},
		broken:       map[string]map[string]string{KindWorkflow: {}, KindTopic: {}, KindSubscription: {}},
		revisions:    map[string]uint64{},
		changed:      make(chan struct{}),

		workflows:     newCowMap[*CompiledWorkflow](),
		keys:          newCowMap[keyState](),
		topics:        newCowMap[*CompiledTopic](),
		subscriptions: newCowMap[*CompiledSubscription](),
		destinations:  newCowMap[*destination.Destination](),
		byTopic:       newTopicIndex(),
	}
	t := r.begin()
	for name := range builtinTopics {
		t.refreshTopic(name)
	}
	t.commit()
	return r
}

// Guard returns the URL checker resources are validated with.
func (r *Registry) Guard() URLChecker { return r.guard }

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

// waitUntil blocks (at most 2s) until cond holds.
func (r *Registry) waitUntil(ctx context.Context, cond func() bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// txn is one change of the index: the shards it touches are copied once
// and published together by commit. It is used with r.mu held.
type txn struct {
	r       *Registry
	wf      *cowBatch[*CompiledWorkflow]
	keys    *cowBatch[keyState]
	topics  *cowBatch[*CompiledTopic]
	subs    *cowBatch[*CompiledSubscription]
	dest    *cowBatch[*destination.Destination]
	byTopic *topicBatch
}

func (r *Registry) begin() *txn {
	return &txn{
		r: r, wf: r.workflows.batch(), keys: r.keys.batch(), topics: r.topics.batch(),
		subs: r.subscriptions.batch(), dest: r.destinations.batch(), byTopic: r.byTopic.batch(),
	}
}

// commit publishes the change and wakes the waiters of Changed.
func (t *txn) commit() {
	t.byTopic.commit()
	t.dest.commit()
	t.subs.commit()
	t.topics.commit()
	t.keys.commit()
	t.wf.commit()
	close(t.r.changed)
	t.r.changed = make(chan struct{})
}

// refreshWorkflow serves the configuration workflow id if there is one,
// else the API one, and their target destinations.
func (t *txn) refreshWorkflow(id string) {
	cur := t.r.apiWF[id]
	if e, ok := t.r.confWF[id]; ok {
		cur = e.value
	}
	old, _ := t.wf.get(id)
	if old == cur {
		return
	}
	if old != nil {
		for _, d := range old.Targets {
			t.dest.del(d.ID)
		}
		if old.Fallback != nil {
			t.dest.del(old.Fallback.ID)
		}
		t.wf.del(id)
	}
	if cur != nil {
		t.wf.set(id, cur)
		for _, d := range cur.Targets {
			t.dest.set(d.ID, d)
		}
		if cur.Fallback != nil {
			t.dest.set(cur.Fallback.ID, cur.Fallback)
		}
	}
}

func (t *txn) refreshTopic(name string) {
	cur := t.r.apiTopics[name]
	if e, ok := t.r.confTopics[name]; ok {
		cur = e.value
	}
	if cur == nil {
		cur = builtinTopics[name]
	}
	if cur == nil {
		t.topics.del(name)
	} else {
		t.topics.set(name, cur)
	}
}

// refreshSubscription serves the configuration subscription id if there is
// one, else the API one, in the topic index, the name index and the
// destinations.
func (t *txn) refreshSubscription(id string) {
	cur := t.r.apiSubs[id]
	if e, ok := t.r.confSubs[id]; ok {
		cur = t.r.servedConfig(e.value)
	}
	old, _ := t.subs.get(id)
	if old == cur {
		return
	}
	names := t.r.subNames
	if old != nil {
		t.byTopic.remove(old)
		t.dest.del(old.Dest.ID)
		t.subs.del(id)
		if ids := names[old.Def.Name]; ids != nil {
			delete(ids, id)
			if len(ids) == 0 {
				delete(names, old.Def.Name)
			}
		}
	}
	if cur != nil {
		t.byTopic.add(cur)
		t.dest.set(cur.Dest.ID, cur.Dest)
		t.subs.set(id, cur)
		if names[cur.Def.Name] == nil {
			names[cur.Def.Name] = map[string]struct{}{}
		}
		names[cur.Def.Name][id] = struct{}{}
	}
}

// scheduleExpiry recompiles API subscription id without its previous
// secret at t, so that a rotated-away secret stops signing when its grace
// period ends.
func (r *Registry) scheduleExpiry(id string, t time.Time) {
	time.AfterFunc(time.Until(t)+time.Millisecond, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		cs, ok := r.apiSubs[id]
		if !ok || len(cs.Dest.Keys) < 2 || time.Now().Before(cs.previousUntil) {
			return // changed since, or a later rotation with a longer grace
		}
		ncs, err := CompileSubscription(cs.Def, "", r.guard)
		if err != nil {
			return
		}
		r.apiSubs[id] = ncs
		tx := r.begin()
		tx.refreshSubscription(id)
		tx.commit()
	})
}

// setBroken records (err != nil) or clears why a stored resource is not
// served. It is logged once per stored version.
func (r *Registry) setBroken(kind, id string, err error) {
	if err == nil {
		delete(r.broken[kind], id)
		return
	}
	r.broken[kind][id] = err.Error()
	r.log.Error("stored "+kind+" is broken: not served", zap.String(kind, id), zap.Error(err))
}

// Broken returns the stored resources of a kind (KindWorkflow, KindTopic or
// KindSubscription) that do not read or compile any more, by id (the name
// for topics), with the reason. They are not served: a broken workflow
// answers like an unknown one, a broken subscription receives nothing.
func (r *Registry) Broken(kind string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.broken[kind])
}

func (r *Registry) isBroken(kind, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.broken[kind][id]
	return ok
}

// --- reads (lock-free) ---

// Workflow returns a compiled workflow by id.
func (r *Registry) Workflow(id string) (*CompiledWorkflow, bool) {
	return r.workflows.get(id)
}

// Workflows returns every workflow, sorted by id.
func (r *Registry) Workflows() []*CompiledWorkflow { return r.workflows.sortedValues() }

// Topic returns a compiled topic by name.
func (r *Registry) Topic(name string) (*CompiledTopic, bool) { return r.topics.get(name) }

// Topics returns every topic, sorted by name.
func (r *Registry) Topics() []*CompiledTopic { return r.topics.sortedValues() }

// Subscription returns a compiled subscription by id.
func (r *Registry) Subscription(id string) (*CompiledSubscription, bool) {
	return r.subscriptions.get(id)
}

// Subscriptions returns every subscription, sorted by id.
func (r *Registry) Subscriptions() []*CompiledSubscription {
	return r.subscriptions.sortedValues()
}

// SubscriptionsForTopic returns every subscription whose topic patterns
// cover topic (as TopicsMatch decides), enabled or not, sorted by id. It
// takes no lock and reads only the matching entries of a topic index: the
// exact name, "*", and the "prefix.*" patterns that are prefixes of topic.
func (r *Registry) SubscriptionsForTopic(topic string) []*CompiledSubscription {
	return r.byTopic.lookup(topic)
}

// DestinationIDs returns the ids of every current destination, sorted.
func (r *Registry) DestinationIDs() []string { return r.destinations.sortedKeys() }

// Changed returns a channel closed at the next change of the resources.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Destination returns a delivery destination by id.
func (r *Registry) Destination(id string) (*destination.Destination, bool) {
	return r.destinations.get(id)
}

// dummyHash is compared against when a workflow is unknown, so that unknown
// workflows and wrong keys take the same time.
var dummyHash = HashKey("hookgate: no such workflow")

// Authenticate returns the workflow id when key is its current key, or its
// previous key within the grace period. Unknown, disabled and keyless
// workflows are refused exactly like a wrong key.
func (r *Registry) Authenticate(id, key string, now time.Time) (*CompiledWorkflow, bool) {
	h := HashKey(key)
	w, ok := r.workflows.get(id)
	var want *[32]byte
	ks, hasKey := r.keys.get(id)
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
	if w, ok := r.workflows.get(id); ok && w.fixedHash != nil {
		return true
	}
	_, ok := r.keys.get(id)
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
	t := r.begin()
	for _, w := range workflows {
		r.confWF[w.Def.ID] = configEntry[*CompiledWorkflow]{owner, w}
		t.refreshWorkflow(w.Def.ID)
	}
	for _, tp := range topics {
		r.confTopics[tp.Def.Name] = configEntry[*CompiledTopic]{owner, tp}
		t.refreshTopic(tp.Def.Name)
	}
	for _, s := range subs {
		r.confSubs[s.Def.ID] = configEntry[*CompiledSubscription]{owner, s}
		t.refreshSubscription(s.Def.ID)
	}
	t.commit()
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
	t := r.begin()
	for id, e := range r.confWF {
		if e.owner == c.owner {
			delete(r.confWF, id)
			t.refreshWorkflow(id)
		}
	}
	for name, e := range r.confTopics {
		if e.owner == c.owner {
			delete(r.confTopics, name)
			t.refreshTopic(name)
		}
	}
	for id, e := range r.confSubs {
		if e.owner == c.owner {
			delete(r.confSubs, id)
			t.refreshSubscription(id)
		}
	}
	t.commit()
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
	return ok || builtinTopics[name] != nil
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
