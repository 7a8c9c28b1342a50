package ingress

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/testenv"
)

// The idempotency bucket: a value is new once within the window, until it
// is released; the bucket's TTL is the window, updated when the engine's
// limits are applied again (a reload).
func TestDeduper(t *testing.T) {
	eng := testenv.Engine(t)
	ctx := testenv.Context(t)
	d := NewDeduper(eng.Idempotency)
	steps := []struct {
		op   string
		id   string
		want bool
	}{
		{"claim", "a", true},
		{"claim", "a", false},
		{"claim", "b", true},
		{"release", "a", false},
		{"claim", "a", true},
		{"claim", "a", false},
		{"claim", "b", false},
	}
	for i, s := range steps {
		if s.op == "release" {
			if err := d.Release(ctx, s.id); err != nil {
				t.Fatalf("step %d: release: %v", i, err)
			}
			continue
		}
		got, err := d.Claim(ctx, s.id)
		if err != nil || got != s.want {
			t.Fatalf("step %d: claim %s = %v, %v; want %v", i, s.id, got, err, s.want)
		}
	}

	if err := eng.Apply(ctx, engine.Config{DedupeWindow: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	kv, err := eng.JetStream().KeyValue(ctx, engine.BucketIdempotency)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 2*time.Hour {
		t.Errorf("bucket TTL %v, want the new window 2h", st.TTL())
	}
	if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Storage != jetstream.FileStorage {
		t.Error("the bucket is not on file storage")
	}
}
