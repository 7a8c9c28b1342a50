package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testCluster is a real 3-node JetStream cluster on 127.0.0.1 ephemeral ports.
type testCluster struct {
	servers []*server.Server
	urls    []string
	addrs   []string // client and route listeners, to check they are released
}

// freePorts reserves n distinct free ports on 127.0.0.1 and releases them.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	ls := make([]net.Listener, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startCluster starts n clustered JetStream servers and waits until a meta
// leader is elected and every peer is current. A free port may be taken
// between picking and binding it: the whole start is then tried again.
func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := tryStartCluster(t, n)
		if err == nil {
			t.Cleanup(func() { checkReleased(t, c.addrs) }) // runs after shutdown
			t.Cleanup(c.shutdown)
			return c
		}
		lastErr = err
		t.Logf("starting cluster (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("starting a %d-node cluster: %v", n, lastErr)
	return nil
}

func tryStartCluster(t *testing.T, n int) (*testCluster, error) {
	ports := freePorts(t, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &testCluster{}
	for i := range n {
		opts := &server.Options{
			ServerName:         fmt.Sprintf("n%d", i+1),
			Host:               "127.0.0.1",
			Port:               -1,
			NoSigs:             true,
			NoLog:              true,
			JetStream:          true,
			StoreDir:           t.TempDir(),
			JetStreamMaxMemory: 32 << 20,
			JetStreamMaxStore:  1 << 30,
			Cluster: server.ClusterOpts{
				Name: "hg",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			c.shutdown()
			return nil, err
		}
		c.servers = append(c.servers, srv)
		go srv.Start()
	}
	for _, srv := range c.servers {
		if !srv.ReadyForConnections(10 * time.Second) {
			c.shutdown()
			return nil, fmt.Errorf("server %s not ready for connections", srv.Name())
		}
		c.urls = append(c.urls, srv.ClientURL())
		c.addrs = append(c.addrs, srv.Addr().String(), srv.ClusterAddr().String())
	}
	for _, u := range c.urls {
		if !strings.HasPrefix(u, "nats://127.0.0.1:") {
			c.shutdown()
			return nil, fmt.Errorf("server listens on %s, want 127.0.0.1", u)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c.ready(n) {
			return c, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.shutdown()
	return nil, errors.New("no JetStream meta leader with all peers current within 30s")
}

// checkReleased asserts that nothing listens on addrs any more.
func checkReleased(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still in use after shutdown: %v", a, err)
			continue
		}
		l.Close()
	}
}

func (c *testCluster) leader() *server.Server {
	for _, s := range c.servers {
		if s.Running() && s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

func (c *testCluster) ready(peers int) bool {
	l := c.leader()
	if l == nil || len(l.JetStreamClusterPeers()) != peers {
		return false
	}
	for _, s := range c.servers {
		if s.Running() && (!s.JetStreamEnabled() || !s.JetStreamIsCurrent()) {
			return false
		}
	}
	return true
}

func (c *testCluster) shutdown() {
	for _, s := range c.servers {
		s.Shutdown()
	}
	for _, s := range c.servers {
		s.WaitForShutdown()
	}
}

func (c *testCluster) byName(name string) *server.Server {
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

func openCluster(t *testing.T, ctx context.Context, c *testCluster) (*Engine, error) {
	e, err := Open(ctx, Config{
		URLs:           c.urls,
		Replicas:       3,
		ConnectTimeout: 5 * time.Second,
		CreateTimeout:  30 * time.Second,
	}, nil)
	if e != nil {
		t.Cleanup(func() { _ = e.Close() })
	}
	return e, err
}

// eventually retries f every 100ms until it succeeds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < d {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = f(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, d, err)
}

// checkReplicated asserts that every bucket and stream has 3 replicas, a
// leader and two peers.
func checkReplicated(t *testing.T, e *Engine) {
	t.Helper()
	names := []string{
		"KV_" + BucketWorkflows, "KV_" + BucketKeys, "KV_" + BucketTopics,
		"KV_" + BucketSubscriptions, "KV_" + BucketDeliveries,
		StreamEvents, StreamDeliveries,
	}
	for _, name := range names {
		eventually(t, 10*time.Second, "stream "+name+" replicated", func(ctx context.Context) error {
			s, err := e.JetStream().Stream(ctx, name)
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			if info.Config.Replicas != 3 {
				return fmt.Errorf("config replicas %d", info.Config.Replicas)
			}
			if info.Cluster == nil || info.Cluster.Name != "hg" || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				return fmt.Errorf("cluster info %+v", info.Cluster)
			}
			return nil
		})
	}
}

func TestClusterReplicatedAndSurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster")
	}
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	e, err := openCluster(t, ctx, c)
	if err != nil {
		t.Fatalf("Open on the cluster: %v", err)
	}
	if e.Server() != nil {
		t.Error("cluster engine has an embedded server")
	}
	checkReplicated(t, e)

	if _, err := e.Workflows.Put(ctx, "wf1", []byte("v1")); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	if ent, err := e.Workflows.Get(ctx, "wf1"); err != nil || string(ent.Value()) != "v1" {
		t.Fatalf("kv get: %v, %v", ent, err)
	}
	ack, err := e.JetStream().PublishMsg(ctx, eventMsg("ev1", "one"))
	if err != nil || ack.Duplicate || ack.Stream != StreamEvents {
		t.Fatalf("publish: ack %+v, err %v", ack, err)
	}

	// Lose the node leading the events stream: the worst case, a new
	// leader has to be elected from the replicas.
	info, err := e.EventStream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.byName(info.Cluster.Leader)
	if victim == nil {
		t.Fatalf("events stream leader %q is not a cluster node", info.Cluster.Leader)
	}
	t.Logf("shutting down %s (events leader; meta leader: %v; engine connected to %s)",
		victim.Name(), victim.JetStreamIsLeader(), e.Conn().ConnectedUrl())
	lost := time.Now()
	victim.Shutdown()
	victim.WaitForShutdown()

	eventually(t, 10*time.Second, "kv get after node loss", func(ctx context.Context) error {
		ent, err := e.Workflows.Get(ctx, "wf1")
		if err != nil {
			return err
		}
		if string(ent.Value()) != "v1" {
			return fmt.Errorf("value %q", ent.Value())
		}
		return nil
	})
	eventually(t, 10*time.Second, "kv put after node loss", func(ctx context.Context) error {
		_, err := e.Workflows.Put(ctx, "wf2", []byte("v2"))
		return err
	})
	if ent, err := e.Workflows.Get(ctx, "wf2"); err != nil || string(ent.Value()) != "v2" {
		t.Fatalf("kv get of the new value: %v, %v", ent, err)
	}
	eventually(t, 10*time.Second, "publish after node loss", func(ctx context.Context) error {
		ack, err := e.JetStream().PublishMsg(ctx, eventMsg("ev2", "two"))
		if err != nil {
			return err
		}
		if ack.Duplicate {
			return errors.New("new event reported duplicate")
		}
		return nil
	})
	// The dedupe state was replicated along with the event.
	eventually(t, 10*time.Second, "re-publish after node loss", func(ctx context.Context) error {
		ack, err := e.JetStream().PublishMsg(ctx, eventMsg("ev1", "one again"))
		if err != nil {
			return err
		}
		if !ack.Duplicate {
			return fmt.Errorf("re-published event not reported duplicate: %+v", ack)
		}
		return nil
	})
	msg, err := e.EventStream.GetLastMsgForSubject(ctx, SubjectEvents+".ev1")
	if err != nil || string(msg.Data) != "one" {
		t.Fatalf("event after node loss: %v, %v", msg, err)
	}
	t.Logf("writes and reads served again %s after losing %s", time.Since(lost).Round(time.Millisecond), victim.Name())
}

func TestClusterConcurrentOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster")
	}
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	const n = 2
	engines := make([]*Engine, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			e, err := Open(ctx, Config{URLs: c.urls, Replicas: 3, ConnectTimeout: 5 * time.Second, CreateTimeout: 30 * time.Second}, nil)
			engines[i], errs[i] = e, err
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	for _, e := range engines {
		if e != nil {
			t.Cleanup(func() { _ = e.Close() })
		}
	}
	t.Logf("two racing Opens took %s", time.Since(began).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
	}
	checkReplicated(t, engines[0])

	// Both engines see the same state.
	if _, err := engines[0].Topics.Put(ctx, "orders", []byte("t")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "value written by one engine read by the other", func(ctx context.Context) error {
		ent, err := engines[1].Topics.Get(ctx, "orders")
		if err != nil {
			return err
		}
		if string(ent.Value()) != "t" {
			return fmt.Errorf("value %q", ent.Value())
		}
		return nil
	})
	if _, err := engines[0].JetStream().PublishMsg(ctx, eventMsg("e1", "x")); err != nil {
		t.Fatal(err)
	}
	ack, err := engines[1].JetStream().PublishMsg(ctx, eventMsg("e1", "x"))
	if err != nil || !ack.Duplicate {
		t.Fatalf("publish of the same id through the other engine: ack %+v, err %v", ack, err)
	}
	// Another instance starting later just finds everything in place.
	e3, err := openCluster(t, ctx, c)
	if err != nil {
		t.Fatalf("third Open: %v", err)
	}
	if ent, err := e3.Topics.Get(ctx, "orders"); err != nil || string(ent.Value()) != "t" {
		t.Fatalf("third engine reads %v, %v", ent, err)
	}
}
