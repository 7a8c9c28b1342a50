package module

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/natstest"
)

// TestClusterMode: the app connects to a real 3-node JetStream cluster with
// `replicas 3`, creates its buckets and streams with three replicas, and
// keeps accepting and delivering webhooks after a node is shut down.
func TestClusterMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := natstest.StartCluster(t, 3)
	target := newSink(t)
	startCaddy(t, t.TempDir(), fmt.Sprintf(`
		nats %s {
			replicas 3
			connect_timeout 5s
		}`, strings.Join(c.URLs, " ")), fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow clustered {
			sample ../examples/easylife/groupcreated.json
			key %s
			forward %s/in
		}
	}
	respond "app" 200
`, pinnedKey, target.URL))
	// Leave cluster mode before the cluster shuts down (cleanups run last-in first-out).
	t.Cleanup(func() { startCaddy(t, t.TempDir(), "", `respond "idle" 200`) })
	rts := pooled()
	if len(rts) != 1 || rts[0].eng.Server() != nil {
		t.Fatalf("want one cluster-mode engine, got %d", len(rts))
	}
	js := rts[0].eng.JetStream()
	for _, name := range []string{engine.StreamEvents, engine.StreamQueue, engine.StreamRecords, "KV_" + engine.BucketKeys, "KV_" + engine.BucketEventIDs} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := js.Stream(ctx, name)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", name, err)
		}
		info, err := s.Info(ctx)
		cancel()
		if err != nil || info.Config.Replicas != 3 {
			t.Fatalf("%s: replicas %d, err %v", name, info.Config.Replicas, err)
		}
	}

	send := func() string {
		var id string
		waitFor(t, "webhook accepted", 15*time.Second, func() bool {
			status, body := call(t, "POST", base+"/hooks/clustered/"+pinnedKey, easylife(t, "groupcreated"))
			if status != 202 {
				return false
			}
			id = body["id"].(string)
			return true
		})
		return id
	}
	delivered := func(id string) func() bool {
		return func() bool {
			for _, r := range target.received() {
				if r.Header.Get("Webhook-Id") == id {
					return true
				}
			}
			return false
		}
	}
	first := send()
	waitFor(t, "first delivery", 10*time.Second, delivered(first))

	victim := c.Servers[0]
	victim.Shutdown()
	victim.WaitForShutdown()
	second := send()
	waitFor(t, "delivery after a node loss", 20*time.Second, delivered(second))
}
