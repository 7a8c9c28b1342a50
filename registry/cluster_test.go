package registry

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookgate/hookgate/engine"
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
