package ingress

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// IdempotencyBucket is the JetStream KV bucket that remembers, for the
// dedupe window, the idempotency header values of the requests passed on to
// the next handler (workflows without targets). Forwarded events are
// deduplicated by the event stream instead (Nats-Msg-Id).
const IdempotencyBucket = "hookgate_idempotency"

// Deduper remembers the idempotency values of passed-on requests. Its
// memory is bounded by the window: every entry expires with the bucket's
// TTL, and the entries live in JetStream's file store, not in the process.
type Deduper struct {
	kv jetstream.KeyValue
}

// OpenDeduper creates the idempotency bucket, or updates its TTL to window
// (a configuration reload may change it). It is idempotent and retried until
// ctx ends: two instances starting together on a fresh cluster race to
// create the same bucket.
func OpenDeduper(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int) (*Deduper, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      IdempotencyBucket,
		Description: "hookgate idempotency header values of passed-on webhooks (TTL = dedupe window)",
		History:     1,
		TTL:         window,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(tctx, cfg)
		cancel()
		if err == nil {
			return &Deduper{kv: kv}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("creating bucket %s: %w", IdempotencyBucket, err)
		case <-time.After(wait):
		}
	}
}

// Claim records id and reports whether it is new: false means a request
// with the same id was passed on within the window.
func (d *Deduper) Claim(ctx context.Context, id string) (bool, error) {
	_, err := d.kv.Create(ctx, id, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Release forgets id, so that a retry of a request the next handler failed
// to take (an error or a 5xx) is passed on again.
func (d *Deduper) Release(ctx context.Context, id string) error {
	return d.kv.Delete(ctx, id)
}
