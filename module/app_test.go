package module

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/registry"
)

// Deliveries wait for Caddy's servers to listen: events can be published
// at once, but no attempt is made before listening is closed.
func TestDeliveriesWaitForListening(t *testing.T) {
	s := newSink(t)
	rt, err := openRuntime(engine.Config{StorageDir: t.TempDir()}, testenv.LoopbackGuard().Allow(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Destruct() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := rt.reg.CreateSubscription(ctx, registry.Subscription{ID: "s", Name: "s", Topics: []string{"t"}, URL: s.URL}); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	rt.startPipeline(0, 0, nil, listening)
	if _, err := rt.pipe.Publish(ctx, &delivery.Event{Topic: "t", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(s.received()); n != 0 {
		t.Fatalf("%d deliveries before the servers listen", n)
	}
	close(listening)
	waitFor(t, "the delivery once listening", 5*time.Second, func() bool { return len(s.received()) == 1 })
}
