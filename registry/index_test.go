package registry

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCowMap(t *testing.T) {
	m := newCowMap[int]()
	b := m.batch()
	for i := range 1000 {
		b.set(fmt.Sprint(i), i)
	}
	if _, ok := m.get("1"); ok {
		t.Fatal("a change is visible before its commit")
	}
	if v, ok := b.get("1"); !ok || v != 1 {
		t.Fatalf("the batch does not see its own change: %v %v", v, ok)
	}
	b.commit()
	if m.len() != 1000 {
		t.Fatalf("len = %d", m.len())
	}
	before := *m.shards[m.shardOf("7")].Load()
	b = m.batch()
	b.del("7")
	b.del("no such key")
	b.set("1", -1)
	b.commit()
	if _, ok := m.get("7"); ok {
		t.Error("deleted key still there")
	}
	if v, _ := m.get("1"); v != -1 {
		t.Errorf("get(1) = %d", v)
	}
	if before["7"] != 7 {
		t.Error("a published shard was changed in place")
	}
	keys := m.sortedKeys()
	if len(keys) != 999 || !slices.IsSorted(keys) {
		t.Errorf("sortedKeys: %d keys, sorted %v", len(keys), slices.IsSorted(keys))
	}
	vals := m.sortedValues()
	if len(vals) != 999 || vals[0] != 0 || vals[1] != -1 {
		t.Errorf("sortedValues starts with %v", vals[:2])
	}
}

func TestIndexKeys(t *testing.T) {
	tests := []struct {
		patterns      []string
		exact, prefix []string
	}{
		{[]string{"a.b"}, []string{"a.b"}, nil},
		{[]string{"*"}, nil, []string{""}},
		{[]string{"a.*", "a.b.*", "a.*", "x", "x"}, []string{"x"}, []string{"a.", "a.b."}},
		{[]string{".*"}, nil, []string{"."}},
	}
	for _, tc := range tests {
		exact, prefix := indexKeys(tc.patterns)
		if !slices.Equal(exact, tc.exact) || !slices.Equal(prefix, tc.prefix) {
			t.Errorf("indexKeys(%q) = %q, %q; want %q, %q", tc.patterns, exact, prefix, tc.exact, tc.prefix)
		}
	}
}

// randomTopic returns a short name over a small alphabet, so that names,
// prefixes and dots collide often.
func randomTopic(rng *rand.Rand) string {
	const alphabet = "ab."
	b := make([]byte, 1+rng.IntN(5))
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func randomPatterns(rng *rand.Rand) []string {
	var ps []string
	for range 1 + rng.IntN(3) {
		switch rng.IntN(6) {
		case 0:
			ps = append(ps, "*")
		case 1, 2:
			ps = append(ps, randomTopic(rng)+".*")
		default:
			ps = append(ps, randomTopic(rng))
		}
	}
	return ps
}

// SubscriptionsForTopic agrees with TopicsMatch over every subscription,
// through random declarations, replacements and releases.
func TestSubscriptionsForTopicDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, uint64(len(t.Name()))))
	r := New(nil, nil, nil)
	var sets []*ConfigSet
	for round := range 60 {
		var subs []*CompiledSubscription
		for range rng.IntN(40) {
			id := fmt.Sprintf("s%03d", rng.IntN(200))
			cs, err := CompileSubscription(Subscription{ID: id, Name: id, Topics: randomPatterns(rng),
				URL: "http://127.0.0.1:9/", Source: SourceConfig}, "", nil)
			if err != nil {
				t.Fatalf("compiling: %v", err)
			}
			subs = append(subs, cs)
		}
		sets = append(sets, r.DeclareConfig(nil, nil, subs))
		if len(sets) > 3 && rng.IntN(2) == 0 {
			i := rng.IntN(len(sets))
			sets[i].Release()
			sets = slices.Delete(sets, i, i+1)
		}
		all := r.Subscriptions()
		for range 50 {
			topic := randomTopic(rng)
			if rng.IntN(10) == 0 {
				topic = "" // not a valid topic name, but the answer must still agree
			}
			var want []string
			for _, s := range all {
				if TopicsMatch(s.Def.Topics, topic) {
					want = append(want, s.Def.ID)
				}
			}
			var got []string
			for _, s := range r.SubscriptionsForTopic(topic) {
				got = append(got, s.Def.ID)
				if cur, _ := r.Subscription(s.Def.ID); cur != s {
					t.Fatalf("round %d: %s is not the served version", round, s.Def.ID)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: SubscriptionsForTopic(%q) = %v, want %v", round, topic, got, want)
			}
		}
	}
	for _, s := range sets {
		s.Release()
	}
	if n := r.byTopic.exact.len() + r.byTopic.prefix.len(); n != 0 {
		t.Errorf("%d index lists left after every release", n)
	}
}

func BenchmarkSubscriptionsForTopic(b *testing.B) {
	r := New(nil, nil, nil)
	var subs []*CompiledSubscription
	for i := range 10000 {
		id := fmt.Sprintf("s%05d", i)
		cs, err := CompileSubscription(Subscription{ID: id, Name: id, Topics: []string{fmt.Sprintf("topic.%d", i%1000), fmt.Sprintf("ns%d.*", i%50)},
			URL: "http://127.0.0.1:9/", Source: SourceConfig}, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, cs)
	}
	r.DeclareConfig(nil, nil, subs)
	b.ResetTimer()
	for i := range b.N {
		if n := len(r.SubscriptionsForTopic(fmt.Sprintf("topic.%d", i%1000))); n != 10 {
			b.Fatalf("%d matches, want 10", n)
		}
	}
}

// subList stays equal to a plainly sorted list through random small and
// large edits, its chunks sorted, non-empty and at most 2*chunkSize long.
func TestSubListDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	subs := map[string]*CompiledSubscription{}
	get := func(id string) *CompiledSubscription {
		if s, ok := subs[id]; ok {
			return s
		}
		s := &CompiledSubscription{Def: Subscription{ID: id}}
		subs[id] = s
		return s
	}
	var l *subList
	want := map[string]bool{}
	for round := range 300 {
		removed := map[string]bool{}
		var added []*CompiledSubscription
		ops := 1 + rng.IntN(4)
		if round%25 == 0 {
			ops = 500 // a large edit: the list is rebuilt
		}
		for range ops {
			id := fmt.Sprintf("s%04d", rng.IntN(2000))
			if want[id] && rng.IntN(3) == 0 {
				removed[id] = true
				delete(want, id)
				added = slices.DeleteFunc(added, func(s *CompiledSubscription) bool { return s.Def.ID == id })
			} else if !want[id] {
				want[id] = true
				added = append(added, get(id))
			}
		}
		prev := l
		var prevIDs []string
		if prev != nil {
			for _, s := range prev.appendTo(nil) {
				prevIDs = append(prevIDs, s.Def.ID)
			}
		}
		l = l.with(removed, added)
		var got []string
		for _, s := range l.appendTo(nil) {
			got = append(got, s.Def.ID)
		}
		wantIDs := slices.Sorted(maps.Keys(want))
		if !slices.Equal(got, wantIDs) || l.n != len(wantIDs) {
			t.Fatalf("round %d: list of %d (n=%d) differs from the %d expected", round, len(got), l.n, len(wantIDs))
		}
		for i, c := range l.chunks {
			if len(c) == 0 || len(c) > 2*chunkSize {
				t.Fatalf("round %d: chunk %d has %d entries", round, i, len(c))
			}
		}
		if prev != nil {
			var again []string
			for _, s := range prev.appendTo(nil) {
				again = append(again, s.Def.ID)
			}
			if !slices.Equal(again, prevIDs) {
				t.Fatalf("round %d: the previous list changed", round)
			}
		}
	}
	if len(l.chunks) < 2 {
		t.Errorf("%d chunks: the test never split one", len(l.chunks))
	}
}
