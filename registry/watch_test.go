package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/engine"
)

// A watch whose connection is dropped, or whose consumer is deleted on the
// server, is re-established: the next change is seen within 1s, with one
// warning per outage and one note on recovery.
func TestWatchReestablished(t *testing.T) {
	srv := startNATS(t)
	ctx := testCtx(t)
	open := func() *engine.Engine {
		eng, err := engine.Open(ctx, engine.Config{URLs: []string{srv.ClientURL()}, CreateTimeout: 15 * time.Second}, nil)
		if err != nil {
			t.Fatalf("engine.Open: %v", err)
		}
		t.Cleanup(func() { _ = eng.Close() })
		return eng
	}
	engA := open()
	core, logs := observer.New(zapcore.InfoLevel)
	a := startRegistry(t, engA, zap.New(core))
	b := startRegistry(t, open(), nil)
	n := 0
	check := func(what string) {
		t.Helper()
		n++
		id := fmt.Sprintf("s%d", n)
		start := time.Now()
		if _, err := b.CreateSubscription(ctx, Subscription{ID: id, Name: id, Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
			t.Fatal(err)
		}
		written := time.Since(start)
		if _, ok := b.Subscription(id); !ok {
			t.Errorf("%s: B does not read its own write", what)
		}
		if !waitFor(time.Second-written, func() bool { _, ok := a.Subscription(id); return ok }) {
			t.Fatalf("%s: change not seen within 1s", what)
		}
		t.Logf("%s: written (and read back on B) in %v, seen on A after %v", what,
			written.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	check("healthy")

	// The connection drops and comes back.
	if err := engA.Conn().ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	check("after a reconnect")
	// A reconnect re-establishes every watch (the node that held it may be
	// gone): wait for the subscriptions bucket's, so that its consumer is
	// among those deleted next.
	rewatched := func() bool {
		for _, e := range logs.All() {
			if e.Message == "config watch re-established" && e.ContextMap()["bucket"] == engine.BucketSubscriptions {
				return true
			}
		}
		return false
	}
	if !waitFor(2*time.Second, rewatched) {
		t.Fatalf("the watch was not re-established after a reconnect: %v", logs.All())
	}

	// Every consumer of the subscriptions bucket is deleted on the server:
	// A's watch gets nothing more.
	s, err := engA.JetStream().Stream(ctx, "KV_"+engine.BucketSubscriptions)
	if err != nil {
		t.Fatal(err)
	}
	names := s.ConsumerNames(ctx)
	deleted := 0
	for name := range names.Name() {
		if err := s.DeleteConsumer(ctx, name); err == nil {
			deleted++
		}
	}
	if deleted < 2 {
		t.Fatalf("deleted %d consumers, want the watches of A and B", deleted)
	}
	check("after the consumers were deleted")
	check("once more")

	warns, infos := 0, 0
	for _, e := range logs.All() {
		switch {
		case e.Level == zapcore.WarnLevel && strings.HasPrefix(e.Message, "config watch interrupted"):
			warns++
		case e.Level == zapcore.InfoLevel && e.Message == "config watch re-established":
			infos++
		}
		if e.ContextMap()["bucket"] == nil {
			t.Errorf("log %q names no bucket", e.Message)
		}
	}
	for _, e := range logs.All() {
		t.Logf("A logged %s %q %v", e.Level, e.Message, e.ContextMap())
	}
	if warns == 0 || warns != infos {
		t.Errorf("%d warnings and %d recoveries logged, want as many, at least one: %v", warns, infos, logs.All())
	}
}

// A revision removed from the stream before a stalled watch delivered it
// does not keep the watch "behind" for ever: once re-established and caught
// up, the watch counts it as applied, and later writes that fail (seen on
// the subjects, never stored) do not interrupt it again.
func TestWatchSkipsRemovedRevision(t *testing.T) {
	srv := startNATS(t)
	ctx := testCtx(t)
	eng, err := engine.Open(ctx, engine.Config{URLs: []string{srv.ClientURL()}, CreateTimeout: 15 * time.Second}, nil)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	core, logs := observer.New(zapcore.WarnLevel)
	r := startRegistry(t, eng, zap.New(core))
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "other", Name: "other", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	bucket := eng.Subscriptions.Bucket()
	s, err := eng.JetStream().Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	// The watch is silently dead; a revision is stored and removed before
	// the watch is found behind.
	for name := range s.ConsumerNames(ctx).Name() {
		_ = s.DeleteConsumer(ctx, name)
	}
	rev, err := eng.Subscriptions.Put(ctx, "gone", []byte(`{"id":"gone","name":"gone","topics":["*"],"url":"http://127.0.0.1:9/"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket+".gone")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool { return r.applied(bucket) == rev }) {
		t.Fatalf("applied revision %d, want %d", r.applied(bucket), rev)
	}
	warned := logs.Len()
	// A write that fails is seen on the subjects but never stored.
	if _, err := eng.Subscriptions.Update(ctx, "other", []byte(`{}`), rev+100); err == nil {
		t.Fatal("update with a wrong revision succeeded")
	}
	time.Sleep(hintDelay + catchUp + 200*time.Millisecond)
	if n := logs.Len(); n != warned {
		t.Errorf("the watch was interrupted again: %v", logs.All()[warned:])
	}
	if _, ok := r.Subscription("gone"); ok {
		t.Error("a removed revision was applied")
	}
}

// closableKV hands out watchers whose channel a test can close, as the
// client library closes it when the watch's subscription ends.
type closableKV struct {
	jetstream.KeyValue
	mu       sync.Mutex
	watchers []*closableWatcher
	resumed  int // watches started with options (ResumeFromRevision)
}

type closableWatcher struct {
	jetstream.KeyWatcher
	ch   chan jetstream.KeyValueEntry
	stop chan struct{}
}

func (w *closableWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.ch }

func (kv *closableKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := kv.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	w := &closableWatcher{KeyWatcher: inner, ch: make(chan jetstream.KeyValueEntry), stop: make(chan struct{})}
	go func() {
		defer close(w.ch)
		for {
			select {
			case e, ok := <-inner.Updates():
				if !ok {
					return
				}
				select {
				case w.ch <- e:
				case <-w.stop:
					return
				}
			case <-w.stop:
				return
			}
		}
	}()
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.watchers = append(kv.watchers, w)
	if len(opts) > 0 {
		kv.resumed++
	}
	return w, nil
}

// closeLatest closes the channel of the latest watcher.
func (kv *closableKV) closeLatest() {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	close(kv.watchers[len(kv.watchers)-1].stop)
}

// When the watcher's channel closes, the watch is started again from the
// revision after the last applied one; nothing is missed, nothing applied
// twice, and the outage is logged once, its end too.
func TestWatchClosedReestablished(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	core, logs := observer.New(zapcore.InfoLevel)
	r := New(eng, testGuard(), zap.New(core))
	kv := &closableKV{KeyValue: eng.Subscriptions}
	followSubscriptions(t, r, kv, r.decodeSubscription)

	put := func(id string) { putSubscription(t, ctx, eng.Subscriptions, id) }
	put("s1")
	if !waitFor(time.Second, func() bool { _, ok := r.Subscription("s1"); return ok }) {
		t.Fatal("s1 not applied")
	}
	changes := 0
	for range 2 {
		kv.closeLatest()
		put(fmt.Sprintf("s%d", 2+changes))
		changes++
		id := fmt.Sprintf("s%d", 1+changes)
		if !waitFor(time.Second, func() bool { _, ok := r.Subscription(id); return ok }) {
			t.Fatalf("%s, written after the watch closed, not applied within 1s", id)
		}
	}
	if kv.resumed != 2 {
		t.Errorf("%d watches resumed from a revision, want 2", kv.resumed)
	}
	if got, want := r.applied(kv.Bucket()), uint64(3); got != want {
		t.Errorf("applied revision %d, want %d", got, want)
	}
	var warns, infos int
	for _, e := range logs.All() {
		switch e.Level {
		case zapcore.WarnLevel:
			warns++
			if err, _ := e.ContextMap()["error"].(string); err != errWatchClosed.Error() {
				t.Errorf("warning for %q, want %q", err, errWatchClosed)
			}
		case zapcore.InfoLevel:
			infos++
		}
	}
	if warns != 2 || infos != 2 {
		t.Errorf("%d warnings and %d recoveries logged, want 2 and 2: %v", warns, infos, logs.All())
	}
}

// A watch that lags behind a burst of writes but keeps applying them is
// not taken for a stalled one.
func TestWatchLaggingNotInterrupted(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	core, logs := observer.New(zapcore.WarnLevel)
	r := New(eng, testGuard(), zap.New(core))
	slow := func(e jetstream.KeyValueEntry) change {
		time.Sleep(40 * time.Millisecond) // a watch about 10 × catchUp behind
		return r.decodeSubscription(e)
	}
	followSubscriptions(t, r, eng.Subscriptions, slow)

	const n = 80
	for i := range n {
		putSubscription(t, ctx, eng.Subscriptions, fmt.Sprintf("s%02d", i))
	}
	if !waitFor(10*time.Second, func() bool { return r.applied(eng.Subscriptions.Bucket()) == n }) {
		t.Fatalf("applied %d of %d revisions", r.applied(eng.Subscriptions.Bucket()), n)
	}
	if logs.Len() != 0 {
		t.Errorf("a lagging watch was interrupted: %v", logs.All())
	}
}

// hangingStatus is a bucket whose status reads hang until their context
// ends, as a request to a node that just stopped can.
type hangingStatus struct {
	jetstream.KeyValue
	reads chan struct{}
}

func (h *hangingStatus) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	select {
	case h.reads <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// A probe of the stream's last revision that hangs (up to probeTimeout, a
// node going away) does not hold up the watch: the entries that come
// meanwhile are applied at once.
func TestWatchAppliesWhileProbeHangs(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	r := New(eng, testGuard(), nil)
	kv := &hangingStatus{KeyValue: eng.Subscriptions, reads: make(chan struct{}, 1)}
	followSubscriptions(t, r, kv, r.decodeSubscription)

	put := func(id string) time.Time {
		putSubscription(t, ctx, eng.Subscriptions, id)
		return time.Now()
	}
	put("first") // its hint arms a probe, whose read hangs
	select {
	case <-kv.reads:
	case <-time.After(5 * time.Second):
		t.Fatal("no probe read the stream's last revision after a write")
	}
	at := put("second")
	if !waitFor(probeTimeout/2, func() bool { _, ok := r.Subscription("second"); return ok }) {
		t.Fatalf("an entry written while a probe hangs was not applied within %v", probeTimeout/2)
	}
	t.Logf("applied %v after the write, a probe hanging", time.Since(at).Round(time.Millisecond))
}

// failingStatus is a bucket whose status reads fail at once, as they can
// while the stream has no leader.
type failingStatus struct{ jetstream.KeyValue }

func (failingStatus) Status(context.Context) (jetstream.KeyValueStatus, error) {
	return nil, errors.New("no stream leader")
}

// A watch whose consumer is gone (with a stream leader that stopped) is
// re-established when a write is seen and nothing is applied after it,
// even while the stream cannot be read to compare revisions.
func TestWatchReestablishedWhileStreamUnreadable(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	core, logs := observer.New(zapcore.WarnLevel)
	r := New(eng, testGuard(), zap.New(core))
	followSubscriptions(t, r, failingStatus{eng.Subscriptions}, r.decodeSubscription)

	// The watch's consumer goes away on the server: the watch gets nothing
	// more, and says nothing.
	s, err := eng.JetStream().Stream(ctx, "KV_"+engine.BucketSubscriptions)
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for name := range s.ConsumerNames(ctx).Name() {
		if err := s.DeleteConsumer(ctx, name); err == nil {
			deleted++
		}
	}
	if deleted == 0 {
		t.Fatal("no watch consumer to delete")
	}
	putSubscription(t, ctx, eng.Subscriptions, "later")
	at := time.Now()
	if !waitFor(time.Second, func() bool { _, ok := r.Subscription("later"); return ok }) {
		t.Fatalf("a change written after the watch's consumer went away was not seen within 1s: %v", logs.All())
	}
	t.Logf("seen %v after the write; logged %v", time.Since(at).Round(time.Millisecond), logs.All())
}

// A new leader of a bucket's stream (a cluster after a node loss) has the
// watch established again at once: its consumer may have gone with the old
// leader, and no write need come first to find it stalled.
func TestWatchReestablishedOnLeaderElection(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	core, logs := observer.New(zapcore.InfoLevel)
	r := startRegistry(t, eng, zap.New(core))

	// The watch's consumer goes away, silently, as with its node.
	s, err := eng.JetStream().Stream(ctx, "KV_"+engine.BucketSubscriptions)
	if err != nil {
		t.Fatal(err)
	}
	for name := range s.ConsumerNames(ctx).Name() {
		_ = s.DeleteConsumer(ctx, name)
	}
	// The advisory a new leader publishes (a single server elects none:
	// it is published here as a cluster's would be).
	if err := eng.Conn().Publish(leaderElected+"KV_"+engine.BucketSubscriptions, []byte(`{"type":"io.nats.jetstream.advisory.v1.stream_leader_elected"}`)); err != nil {
		t.Fatal(err)
	}
	rewatched := func() bool {
		for _, e := range logs.All() {
			if e.Message == "config watch re-established" && e.ContextMap()["bucket"] == engine.BucketSubscriptions {
				return true
			}
		}
		return false
	}
	if !waitFor(time.Second, rewatched) {
		t.Fatalf("the watch was not established again after its stream's leader election: %v", logs.All())
	}
	at := time.Now()
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "after", Name: "after", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("a subscription created after the election applied in %v", time.Since(at).Round(time.Millisecond))
	for _, e := range logs.All() {
		if e.Level == zapcore.WarnLevel && e.ContextMap()["error"] != errElected.Error() {
			t.Errorf("logged %q %v, want the election named as the reason", e.Message, e.ContextMap())
		}
	}
}

// followSubscriptions runs r's watch of the subscriptions bucket through kv
// (the engine's bucket, or one standing in for it) and decode until the
// test ends; it returns once the bucket's values are applied.
func followSubscriptions(t *testing.T, r *Registry, kv jetstream.KeyValue, decode func(jetstream.KeyValueEntry) change) {
	t.Helper()
	b := &bucket{kv: kv, decode: decode, install: (*txn).installSubscription}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	r.done.Add(1)
	go r.follow(ctx, b, ready)
	t.Cleanup(func() { cancel(); r.done.Wait() })
	<-ready
}

// putSubscription stores a subscription with id in kv, as the API would.
func putSubscription(t *testing.T, ctx context.Context, kv jetstream.KeyValue, id string) {
	t.Helper()
	doc := fmt.Sprintf(`{"id":%q,"name":%q,"topics":["*"],"url":"http://127.0.0.1:9/"}`, id, id)
	if _, err := kv.Put(ctx, id, []byte(doc)); err != nil {
		t.Fatal(err)
	}
}
