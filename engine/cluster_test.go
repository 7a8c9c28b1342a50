package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/internal/natstest"
	"sync"
	"testing"
	"time"
)

func openCluster(t *testing.T, ctx context.Context, c *natstest.Cluster) (*Engine, error) {
	e, err := Open(ctx, Config{
		URLs:           c.URLs,
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
		"KV_" + BucketSubscriptions, "KV_" + BucketEventIDs, "KV_" + BucketIdempotency, "KV_" + BucketFlow,
		StreamEvents, StreamQueue, StreamRecords,
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
	c := natstest.StartCluster(t, 3)
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
	victim := c.ByName(info.Cluster.Leader)
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
	msg, err := e.EventStream.GetMsg(ctx, ack.Sequence)
	if err != nil || string(msg.Data) != "one" {
		t.Fatalf("event after node loss: %v, %v", msg, err)
	}
	t.Logf("writes and reads served again %s after losing %s", time.Since(lost).Round(time.Millisecond), victim.Name())
}

func TestClusterConcurrentOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster")
	}
	c := natstest.StartCluster(t, 3)
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
			e, err := Open(ctx, Config{URLs: c.URLs, Replicas: 3, ConnectTimeout: 5 * time.Second, CreateTimeout: 30 * time.Second}, nil)
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
