package registry

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"
)

// shardCount is the number of shards of a cowMap: a change copies one
// shard, about 1/shardCount of the map.
const shardCount = 256

// cowMap is a map read without locks and changed by copying one shard:
// every shard is an immutable map behind an atomic pointer. Writers are
// serialised by the caller (Registry.mu) and go through a cowBatch.
type cowMap[V any] struct {
	seed   maphash.Seed
	shards [shardCount]atomic.Pointer[map[string]V]
}

func newCowMap[V any]() *cowMap[V] {
	m := &cowMap[V]{seed: maphash.MakeSeed()}
	for i := range m.shards {
		empty := map[string]V{}
		m.shards[i].Store(&empty)
	}
	return m
}

func (m *cowMap[V]) shardOf(k string) int {
	return int(maphash.String(m.seed, k) % shardCount)
}

// get returns the value of k; it takes no lock.
func (m *cowMap[V]) get(k string) (V, bool) {
	v, ok := (*m.shards[m.shardOf(k)].Load())[k]
	return v, ok
}

// len counts the entries: O(shardCount).
func (m *cowMap[V]) len() int {
	n := 0
	for i := range m.shards {
		n += len(*m.shards[i].Load())
	}
	return n
}

// sortedKeys returns every key, sorted: O(n log n).
func (m *cowMap[V]) sortedKeys() []string {
	keys := make([]string, 0, m.len())
	for i := range m.shards {
		for k := range *m.shards[i].Load() {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// sortedValues returns every value, sorted by key: O(n log n).
func (m *cowMap[V]) sortedValues() []V {
	type kv struct {
		k string
		v V
	}
	all := make([]kv, 0, m.len())
	for i := range m.shards {
		for k, v := range *m.shards[i].Load() {
			all = append(all, kv{k, v})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	out := make([]V, len(all))
	for i, e := range all {
		out[i] = e.v
	}
	return out
}

// cowBatch collects changes to a cowMap: each touched shard is copied once
// per batch, and the copies are published by commit.
type cowBatch[V any] struct {
	m     *cowMap[V]
	dirty map[int]map[string]V
}

func (m *cowMap[V]) batch() *cowBatch[V] {
	return &cowBatch[V]{m: m, dirty: map[int]map[string]V{}}
}

func (b *cowBatch[V]) shard(k string, write bool) map[string]V {
	i := b.m.shardOf(k)
	if s, ok := b.dirty[i]; ok {
		return s
	}
	cur := *b.m.shards[i].Load()
	if !write {
		return cur
	}
	s := make(map[string]V, len(cur)+1)
	for k, v := range cur {
		s[k] = v
	}
	b.dirty[i] = s
	return s
}

// get sees the batch's own changes.
func (b *cowBatch[V]) get(k string) (V, bool) {
	v, ok := b.shard(k, false)[k]
	return v, ok
}

func (b *cowBatch[V]) set(k string, v V) { b.shard(k, true)[k] = v }

func (b *cowBatch[V]) del(k string) {
	if _, ok := b.get(k); ok {
		delete(b.shard(k, true), k)
	}
}

// commit publishes the changed shards.
func (b *cowBatch[V]) commit() {
	for i, s := range b.dirty {
		b.m.shards[i].Store(&s)
	}
	clear(b.dirty)
}

// topicIndex finds the subscriptions whose topic patterns cover a topic.
// Exact names are keyed by the name; "prefix.*" patterns by the prefix
// with its dot ("a.b."), and "*" by the empty prefix.
type topicIndex struct {
	exact  *cowMap[*subList]
	prefix *cowMap[*subList]
}

func newTopicIndex() *topicIndex {
	return &topicIndex{exact: newCowMap[*subList](), prefix: newCowMap[*subList]()}
}

// indexKeys returns the distinct index entries of a subscription's
// patterns, as they are validated by CompileSubscription.
func indexKeys(patterns []string) (exact, prefix []string) {
	for _, p := range patterns {
		switch {
		case p == "*":
			prefix = append(prefix, "")
		case strings.HasSuffix(p, ".*"):
			prefix = append(prefix, p[:len(p)-1])
		default:
			exact = append(exact, p)
		}
	}
	slices.Sort(exact)
	slices.Sort(prefix)
	return slices.Compact(exact), slices.Compact(prefix)
}

// lookup returns the subscriptions matching topic, sorted by id: it reads
// the exact list of topic, the "*" list and the list of every prefix of
// topic that ends with a dot, so it costs O(len(topic)) lookups, plus
// O(matches) to copy one list, or O(matches log matches) to merge several.
func (ix *topicIndex) lookup(topic string) []*CompiledSubscription {
	var lists []*subList
	n := 0
	add := func(l *subList, ok bool) {
		if ok && l.n > 0 {
			lists = append(lists, l)
			n += l.n
		}
	}
	add(ix.exact.get(topic))
	add(ix.prefix.get(""))
	for i := 0; i < len(topic); i++ {
		if topic[i] == '.' {
			add(ix.prefix.get(topic[:i+1]))
		}
	}
	if len(lists) == 0 {
		return nil
	}
	out := make([]*CompiledSubscription, 0, n)
	for _, l := range lists {
		out = l.appendTo(out)
	}
	if len(lists) == 1 {
		return out
	}
	slices.SortFunc(out, compareSubs)
	// A subscription with several matching patterns is in several lists.
	return slices.CompactFunc(out, func(a, b *CompiledSubscription) bool { return a.Def.ID == b.Def.ID })
}

func compareSubs(a, b *CompiledSubscription) int { return strings.Compare(a.Def.ID, b.Def.ID) }

// chunkSize is the target length of a subList chunk; chunks grow to twice
// that before they are split.
const chunkSize = 64

// subList is an immutable list of subscriptions sorted by id, held in
// chunks so that adding or removing one copies the chunk directory and one
// chunk (O(n/chunkSize + chunkSize)) rather than the whole list.
type subList struct {
	chunks [][]*CompiledSubscription // each sorted, non-empty, in order
	n      int
}

func (l *subList) appendTo(out []*CompiledSubscription) []*CompiledSubscription {
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}

// chunkFor returns the index of the first chunk whose last id is >= id
// (len(chunks) when there is none).
func (l *subList) chunkFor(id string) int {
	i, _ := slices.BinarySearchFunc(l.chunks, id, func(c []*CompiledSubscription, id string) int {
		return strings.Compare(c[len(c)-1].Def.ID, id)
	})
	return i
}

// with returns the list without the removed ids and with added (which
// holds no id twice). Small edits are made chunk by chunk; large ones (an
// initial load) rebuild the list once.
func (l *subList) with(removed map[string]bool, added []*CompiledSubscription) *subList {
	if l == nil {
		l = &subList{}
	}
	if len(removed)+len(added) > len(l.chunks)+4 {
		return l.rebuilt(removed, added)
	}
	nl := &subList{chunks: slices.Clone(l.chunks), n: l.n}
	for id := range removed {
		nl.remove(id)
	}
	for _, s := range added {
		nl.insert(s)
	}
	return nl
}

func (l *subList) rebuilt(removed map[string]bool, added []*CompiledSubscription) *subList {
	all := make([]*CompiledSubscription, 0, l.n+len(added))
	for _, c := range l.chunks {
		for _, s := range c {
			if !removed[s.Def.ID] {
				all = append(all, s)
			}
		}
	}
	all = append(all, added...)
	slices.SortFunc(all, compareSubs)
	nl := &subList{n: len(all)}
	for len(all) > 0 {
		k := min(chunkSize, len(all))
		nl.chunks = append(nl.chunks, all[:k:k])
		all = all[k:]
	}
	return nl
}

// remove and insert change l.chunks, a copy of the directory the list owns;
// the chunks themselves are copied before they change.
func (l *subList) remove(id string) {
	i := l.chunkFor(id)
	if i == len(l.chunks) {
		return
	}
	c := l.chunks[i]
	j, found := slices.BinarySearchFunc(c, id, func(s *CompiledSubscription, id string) int {
		return strings.Compare(s.Def.ID, id)
	})
	if !found {
		return
	}
	l.n--
	if len(c) == 1 {
		l.chunks = slices.Delete(l.chunks, i, i+1)
		return
	}
	l.chunks[i] = slices.Delete(slices.Clone(c), j, j+1)
}

func (l *subList) insert(s *CompiledSubscription) {
	l.n++
	if len(l.chunks) == 0 {
		l.chunks = append(l.chunks, []*CompiledSubscription{s})
		return
	}
	i := min(l.chunkFor(s.Def.ID), len(l.chunks)-1)
	c := l.chunks[i]
	j, _ := slices.BinarySearchFunc(c, s, compareSubs)
	nc := make([]*CompiledSubscription, 0, len(c)+1)
	nc = append(append(append(nc, c[:j]...), s), c[j:]...)
	if len(nc) <= 2*chunkSize {
		l.chunks[i] = nc
		return
	}
	half := len(nc) / 2
	l.chunks[i] = nc[:half:half]
	l.chunks = slices.Insert(l.chunks, i+1, nc[half:])
}

// topicBatch collects the changes of one registry change to the index, so
// that a list touched many times (an initial load) is rebuilt once.
type topicBatch struct {
	ix     *topicIndex
	exact  *cowBatch[*subList]
	prefix *cowBatch[*subList]
	edits  map[listKey]*listEdit
}

type listKey struct {
	prefix bool
	key    string
}

// listEdit is what a batch removes from and adds to one list.
type listEdit struct {
	removed map[string]bool
	added   []*CompiledSubscription
}

func (ix *topicIndex) batch() *topicBatch {
	return &topicBatch{ix: ix, exact: ix.exact.batch(), prefix: ix.prefix.batch(), edits: map[listKey]*listEdit{}}
}

func (b *topicBatch) edit(k listKey) *listEdit {
	e, ok := b.edits[k]
	if !ok {
		e = &listEdit{removed: map[string]bool{}}
		b.edits[k] = e
	}
	return e
}

// remove takes a subscription out of the lists of its patterns.
func (b *topicBatch) remove(s *CompiledSubscription) {
	exact, prefix := indexKeys(s.Def.Topics)
	for _, k := range exact {
		b.removeFrom(listKey{false, k}, s.Def.ID)
	}
	for _, k := range prefix {
		b.removeFrom(listKey{true, k}, s.Def.ID)
	}
}

func (b *topicBatch) removeFrom(k listKey, id string) {
	e := b.edit(k)
	e.removed[id] = true
	e.added = slices.DeleteFunc(e.added, func(s *CompiledSubscription) bool { return s.Def.ID == id })
}

// add puts a subscription in the lists of its patterns; remove it first if
// an older version may be there.
func (b *topicBatch) add(s *CompiledSubscription) {
	exact, prefix := indexKeys(s.Def.Topics)
	for _, k := range exact {
		e := b.edit(listKey{false, k})
		e.added = append(e.added, s)
	}
	for _, k := range prefix {
		e := b.edit(listKey{true, k})
		e.added = append(e.added, s)
	}
}

// commit publishes every touched list.
func (b *topicBatch) commit() {
	for k, e := range b.edits {
		m := b.exact
		if k.prefix {
			m = b.prefix
		}
		cur, _ := m.get(k.key)
		next := cur.with(e.removed, e.added)
		if next.n == 0 {
			m.del(k.key)
		} else {
			m.set(k.key, next)
		}
	}
	clear(b.edits)
	b.exact.commit()
	b.prefix.commit()
}
