// Package natstest starts real NATS JetStream servers on 127.0.0.1 for
// tests: a cluster of n nodes on ephemeral ports, shut down at cleanup.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a real JetStream cluster on 127.0.0.1 ephemeral ports.
type Cluster struct {
	Servers []*server.Server
	URLs    []string
	addrs   []string // client and route listeners, to check they are released
}

// FreePorts reserves n distinct free ports on 127.0.0.1 and releases them.
func FreePorts(t testing.TB, n int) []int {
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

// StartCluster starts n clustered JetStream servers and waits until a meta
// leader is elected and every peer is current. A free port may be taken
// between picking and binding it: the whole start is then tried again.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := tryStartCluster(t, n)
		if err == nil {
			t.Cleanup(func() { checkReleased(t, c.addrs) }) // runs after shutdown
			t.Cleanup(c.Shutdown)
			return c
		}
		lastErr = err
		t.Logf("starting cluster (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("starting a %d-node cluster: %v", n, lastErr)
	return nil
}

func tryStartCluster(t testing.TB, n int) (*Cluster, error) {
	ports := FreePorts(t, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
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
			c.Shutdown()
			return nil, err
		}
		c.Servers = append(c.Servers, srv)
		go srv.Start()
	}
	for _, srv := range c.Servers {
		if !srv.ReadyForConnections(10 * time.Second) {
			c.Shutdown()
			return nil, fmt.Errorf("server %s not ready for connections", srv.Name())
		}
		c.URLs = append(c.URLs, srv.ClientURL())
		c.addrs = append(c.addrs, srv.Addr().String(), srv.ClusterAddr().String())
	}
	for _, u := range c.URLs {
		if !strings.HasPrefix(u, "nats://127.0.0.1:") {
			c.Shutdown()
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
	c.Shutdown()
	return nil, errors.New("no JetStream meta leader with all peers current within 30s")
}

// checkReleased asserts that nothing listens on addrs any more.
func checkReleased(t testing.TB, addrs []string) {
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

func (c *Cluster) Leader() *server.Server {
	for _, s := range c.Servers {
		if s.Running() && s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

func (c *Cluster) ready(peers int) bool {
	l := c.Leader()
	if l == nil || len(l.JetStreamClusterPeers()) != peers {
		return false
	}
	for _, s := range c.Servers {
		if s.Running() && (!s.JetStreamEnabled() || !s.JetStreamIsCurrent()) {
			return false
		}
	}
	return true
}

func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	for _, s := range c.Servers {
		s.WaitForShutdown()
	}
}

func (c *Cluster) ByName(name string) *server.Server {
	for _, s := range c.Servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}
