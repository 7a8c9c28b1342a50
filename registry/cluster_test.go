package registry

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/natstest"
)

// startNATS runs one nats-server with JetStream on 127.0.0.1, on a random
// port.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, ServerName: "registry-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// Two instances sharing one NATS server: what one writes, the other sees
// through its KV watches; a regenerated key is refused everywhere within a
// second.
func TestTwoInstances(t *testing.T) {
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
	engA, engB := open(), open()
	a := startRegistry(t, engA, nil)
	b := startRegistry(t, engB, nil)

	_, key, err := a.CreateWorkflow(ctx, Workflow{ID: "shared", Description: "from A"})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool {
		_, ok := b.Authenticate("shared", key, time.Now())
		return ok
	}) {
		t.Fatal("B does not accept the key created on A within 1s")
	}
	if w, ok := b.Workflow("shared"); !ok || w.Def.Description != "from A" {
		t.Errorf("B's view: %v %v", w, ok)
	}

	// Regenerate on A: B refuses the old key within one second.
	start := time.Now()
	newKey, err := a.Regenerate(ctx, "shared", 0)
	if err != nil {
		t.Fatal(err)
	}
	refused := waitFor(time.Second, func() bool {
		_, ok := b.Authenticate("shared", key, time.Now())
		return !ok
	})
	took := time.Since(start)
	if !refused || took >= time.Second {
		t.Fatalf("B still accepted the regenerated key after %v", took)
	}
	t.Logf("old key refused on B %v after the regeneration on A started", took)
	if _, ok := b.Authenticate("shared", newKey, time.Now()); !ok {
		t.Error("B refuses the new key")
	}

	// Subscriptions, topics and deletions travel the same way.
	if _, err := b.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutTopic(ctx, Topic{Name: "ns:topic"}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool {
		_, s := a.Subscription("s")
		_, tp := a.Topic("ns:topic")
		return s && tp
	}) {
		t.Error("A does not see B's subscription and topic")
	}
	if err := a.SetSubscriptionEnabled(ctx, "s", false, "because"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool { d, ok := b.Destination("s"); return ok && !d.Enabled }) {
		t.Error("B still delivers to a subscription A disabled")
	}
	if err := a.DeleteWorkflow(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool {
		_, ok := b.Authenticate("shared", newKey, time.Now())
		return !ok && !b.HasKey("shared")
	}) {
		t.Error("B still accepts a deleted workflow's key")
	}
	// A name taken on A is taken on B.
	if _, err := a.CreateSubscription(ctx, Subscription{ID: "s2", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err == nil {
		t.Error("A created a subscription with a name B uses")
	}
}

// clusterEngine opens an engine with R3 buckets connected to one node of
// c (the client learns the others from it).
func clusterEngine(t *testing.T, url string) *engine.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	eng, err := engine.Open(ctx, engine.Config{URLs: []string{url}, Replicas: 3,
		ConnectTimeout: 5 * time.Second, CreateTimeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatalf("engine.Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

// retryWrite retries a write until it succeeds (a stream may be electing a
// leader) and returns when it did; a conflict means an earlier attempt
// that timed out was stored.
func retryWrite(t *testing.T, what string, write func(context.Context) error) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := write(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrConflict) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crossChanges makes a change on each instance and checks that the other
// sees it within 1s of the write's acknowledgement.
func crossChanges(t *testing.T, a, b *Registry, tag string) {
	t.Helper()
	sub := "sub-" + tag
	done := retryWrite(t, "subscription on B", func(ctx context.Context) error {
		_, err := b.CreateSubscription(ctx, Subscription{ID: sub, Name: sub, Topics: []string{"*"}, URL: "http://127.0.0.1:9/"})
		return err
	})
	if _, ok := b.Subscription(sub); !ok {
		t.Errorf("%s: B does not read its own write", tag)
	}
	if !waitFor(time.Second, func() bool { _, ok := a.Subscription(sub); return ok }) {
		t.Errorf("%s: subscription created on B (acknowledged at %s) not seen on A within 1s; the watches' goroutines:\n%s",
			tag, done.Format("15:04:05.000"), watchStacks())
	} else {
		t.Logf("%s: subscription created on B seen on A %v after the write", tag, time.Since(done).Round(time.Millisecond))
	}

	wf := "wf-" + tag
	var key string
	done = retryWrite(t, "workflow on A", func(ctx context.Context) error {
		var err error
		_, key, err = a.CreateWorkflow(ctx, Workflow{ID: wf})
		if errors.Is(err, ErrConflict) { // stored by a timed-out attempt: give it a key again
			key, err = a.Regenerate(ctx, wf, 0)
		}
		return err
	})
	if !waitFor(time.Second, func() bool { _, ok := b.Authenticate(wf, key, time.Now()); return ok }) {
		t.Errorf("%s: workflow created on A not accepted on B within 1s", tag)
	} else {
		t.Logf("%s: workflow created on A accepted on B %v after the write", tag, time.Since(done).Round(time.Millisecond))
	}
}

// streamLeader returns the name of the node leading the stream of bucket.
func streamLeader(t *testing.T, eng *engine.Engine, bucket string) string {
	t.Helper()
	ctx := testCtx(t)
	s, err := eng.JetStream().Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream info of %s: %+v, %v", bucket, info, err)
	}
	return info.Cluster.Leader
}

// Two instances on two nodes of a 3-node cluster keep seeing each other's
// changes within 1s after a node stops: the node one of them is connected
// to, or a node neither is connected to that leads the config streams.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster")
	}
	tests := []struct {
		name string
		// pick returns the nodes A and B connect to and the node to stop.
		pick func(c *natstest.Cluster, leader string) (a, b, stop int)
	}{
		{"node of A stops", func(c *natstest.Cluster, leader string) (int, int, int) { return 0, 1, 0 }},
		{"stream leader stops", func(c *natstest.Cluster, leader string) (int, int, int) {
			var others []int
			stop := 0
			for i, s := range c.Servers {
				if s.Name() == leader {
					stop = i
				} else {
					others = append(others, i)
				}
			}
			return others[0], others[1], stop
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := natstest.StartCluster(t, 3)
			boot := clusterEngine(t, c.URLs[0]) // creates the buckets
			leader := streamLeader(t, boot, engine.BucketSubscriptions)
			ai, bi, stop := tc.pick(c, leader)
			t.Logf("A on %s, B on %s, stopping %s (subscriptions stream leader: %s)",
				c.Servers[ai].Name(), c.Servers[bi].Name(), c.Servers[stop].Name(), leader)
			core, logs := observer.New(zapcore.InfoLevel)
			engA := clusterEngine(t, c.URLs[ai])
			a := startRegistry(t, engA, zap.New(core))
			// When A's connection comes back after the stop, for the log.
			var reconnected atomic.Int64
			engA.Conn().SetReconnectHandler(func(*nats.Conn) { reconnected.CompareAndSwap(0, time.Now().UnixNano()) })
			b := startRegistry(t, clusterEngine(t, c.URLs[bi]), nil)
			_ = boot.Close()

			crossChanges(t, a, b, "before")
			stopped := time.Now()
			c.Servers[stop].Shutdown()
			c.Servers[stop].WaitForShutdown()
			crossChanges(t, a, b, "after")
			if at := reconnected.Load(); at != 0 {
				t.Logf("the stop began at %s; A's connection came back at %s", stopped.Format("15:04:05.000"), time.Unix(0, at).Format("15:04:05.000"))
			} else {
				t.Logf("A's connection did not reconnect (%v after the stop began)", time.Since(stopped).Round(time.Millisecond))
			}
			crossChanges(t, a, b, "again")
			for _, e := range logs.All() {
				t.Logf("A logged at %s %s %q %v", e.Time.Format("15:04:05.000"), e.Level, e.Message, e.ContextMap())
			}
		})
	}
}

// watchStacks returns the stacks of the goroutines in the registry's
// watch code, for a failure's report.
func watchStacks() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "registry.(*Registry).follow") || strings.Contains(g, "registry.(*Registry).consume") || strings.Contains(g, "registry.(*Registry).startWatch") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
