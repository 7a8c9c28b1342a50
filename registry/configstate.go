package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// A subscription declared in the Caddyfile cannot be written, but the
// gateway may still disable it (its subscriber answered 410 Gone). That
// state is kept in the subscriptions bucket under disabledPrefix + id, a key
// no subscription can have (ids hold no '.'), so that every instance sharing
// the engine, and a restart, see it. It names the definition it was made
// for: a configuration change to the subscription clears it.
const disabledPrefix = "disabled."

// configDisabled is the stored state of a disabled configuration
// subscription.
type configDisabled struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Definition is the fingerprint of the configuration the state was
	// made for (configFingerprint).
	Definition string `json:"definition"`
}

// configFingerprint identifies a configuration subscription's definition,
// secret left out (the hash is stored).
func configFingerprint(cs *CompiledSubscription) string {
	d := cs.Def
	d.Secret = ""
	b, _ := json.Marshal(d)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// disabledCopy is cs as served while disabled by the gateway.
func (cs *CompiledSubscription) disabledCopy(reason string) *CompiledSubscription {
	c := *cs
	off := false
	c.Def.Enabled, c.Def.DisabledReason = &off, reason
	dest := *cs.Dest
	dest.Enabled = false
	c.Dest = &dest
	return &c
}

// decodeConfigDisabled reads a disabled state entry of the subscriptions
// bucket.
func decodeConfigDisabled(e jetstream.KeyValueEntry) change {
	id := strings.TrimPrefix(e.Key(), disabledPrefix)
	c := change{key: e.Key(), id: id, rev: e.Revision(), del: isDelete(e)}
	if c.del {
		return c
	}
	var st configDisabled
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		c.err = fmt.Errorf("unreadable disabled state: %w", err)
		return c
	}
	c.value = st
	return c
}

// installConfigDisabled records or forgets the disabled state of
// configuration subscription c.id and serves it accordingly.
func (t *txn) installConfigDisabled(c change) {
	r := t.r
	if st, ok := c.value.(configDisabled); ok && !c.del && c.err == nil {
		r.confDisabled[c.id] = st
	} else {
		if c.err != nil {
			r.log.Warn("ignoring a subscription's disabled state", zap.String("key", c.key), zap.Error(c.err))
		}
		delete(r.confDisabled, c.id)
	}
	t.refreshSubscription(c.id)
}

// servedConfig returns the configuration subscription cs as it is served: a
// disabled copy while a disabled state made for its definition exists.
func (r *Registry) servedConfig(cs *CompiledSubscription) *CompiledSubscription {
	st, ok := r.confDisabled[cs.Def.ID]
	if !ok || st.Definition != configFingerprint(cs) {
		return cs
	}
	return cs.disabledCopy(st.Reason)
}

// setConfigEnabled writes (enabled false) or deletes (enabled true) the
// disabled state of configuration subscription id, and waits until this
// instance serves it.
func (r *Registry) setConfigEnabled(ctx context.Context, id string, enabled bool, reason string) error {
	r.mu.Lock()
	e, ok := r.confSubs[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	key := disabledPrefix + id
	kv := r.eng.Subscriptions
	var rev uint64
	if enabled {
		if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return kvError(err)
		}
		last, err := lastRevision(ctx, kv)
		if err != nil {
			return kvError(err)
		}
		rev = last
	} else {
		doc, _ := json.Marshal(configDisabled{Reason: reason, At: time.Now().UTC(), Definition: configFingerprint(e.value)})
		var err error
		if rev, err = kv.Put(ctx, key, doc); err != nil {
			return kvError(err)
		}
	}
	r.waitApplied(ctx, kv.Bucket(), rev)
	return nil
}
