package ingress

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Deduper remembers the idempotency values of passed-on requests, in the
// engine's idempotency bucket (engine.BucketIdempotency). Its memory is
// bounded by the window: every entry expires with the bucket's TTL, and the
// entries live in JetStream's file store, not in the process.
type Deduper struct {
	kv jetstream.KeyValue
}

// NewDeduper returns a deduper over the idempotency bucket.
func NewDeduper(kv jetstream.KeyValue) *Deduper { return &Deduper{kv: kv} }

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
