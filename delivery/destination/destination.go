// Package destination holds what the delivery engine delivers to: a
// Destination (a subscription or a workflow target, compiled by the
// registry), its flow control and its retry schedule. It has no
// dependency on the registry, so that both the registry (which builds
// destinations) and the delivery engine (which uses them) import it.
package destination

import (
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/hookgate/hookgate/filters"
)

// Destination is where a delivery goes, in the form the delivery engine
// uses: built from a workflow target or a subscription.
type Destination struct {
	// ID identifies the destination in delivery records: the subscription
	// id, or "wf=<workflow>=<target id>" for a workflow target.
	ID string
	// WorkflowID is set for workflow targets.
	WorkflowID string
	// SubscriptionID is set for subscriptions.
	SubscriptionID string
	URL            string
	Method         string
	Headers        map[string]string
	Timeout        time.Duration
	// Schedule holds the waits before each retry; nil means exponential
	// backoff with jitter (Backoff).
	Schedule    []time.Duration
	MaxAttempts int
	Envelope    *filters.Envelope
	// PassBody sends the body exactly as received (workflow "raw").
	PassBody bool
	// Keys sign deliveries; several during a secret rotation.
	Keys [][]byte
	// HMAC, when set, signs with an HMAC-SHA256 of the body in one header
	// (with the first key) instead of webhook-signature.
	HMAC *HMAC
	// Secret is sent in clear by SecretHeader and SecretField: empty when
	// the subscription's secret was generated, not given.
	Secret       string
	SecretHeader string
	SecretField  string
	Subscription filters.Subscription
	Enabled      bool
	// Flow paces the deliveries: rate limit, concurrency, circuit breaker
	// and auto-disable.
	Flow Flow
	// Fallback marks a workflow's fallback: its deliveries are the stored
	// requests that the app behind did not take.
	Fallback bool
}

// IsFallback reports whether d is a workflow's fallback.
func (d *Destination) IsFallback() bool { return d.Fallback }

// RetryDelay returns the wait before retry number n (1-based), for a
// delivery that has made n attempts.
func (d *Destination) RetryDelay(n int) time.Duration {
	if len(d.Schedule) > 0 {
		return d.Schedule[min(n, len(d.Schedule))-1]
	}
	return Backoff(n)
}

// Backoff is the default retry schedule: 5s, 25s, 2m5s, ... (×5), capped at
// 1h, with ±20% jitter.
func Backoff(n int) time.Duration {
	base := 5 * time.Second * time.Duration(math.Pow(5, float64(min(n-1, 6))))
	base = min(base, time.Hour)
	jitter := 0.8 + 0.4*mrand.Float64()
	return time.Duration(float64(base) * jitter)
}

// Flow is the compiled flow control of a Destination.
type Flow struct {
	// Rate is the deliveries per second allowed (0: no limit).
	Rate float64
	// Burst is how many deliveries may go at once after a quiet period.
	Burst int
	// MaxInFlight overrides the pipeline's per-destination bound (0: the
	// pipeline's).
	MaxInFlight int
	// BreakerOff turns the circuit breaker off.
	BreakerOff bool
	// Failures, Cooldown and MaxCooldown configure the circuit breaker.
	Failures    int
	Cooldown    time.Duration
	MaxCooldown time.Duration
	// DisableAfter is how long the destination may fail without a
	// success before it is disabled (subscriptions) or held at the
	// maximum cool-down (workflow targets).
	DisableAfter time.Duration
	// Ordered delivers the events one at a time per key, in publish
	// order; OrderKey (nil: one key) computes the key of an event.
	Ordered  bool
	OrderKey *filters.EventKey
}

// HMAC signs a delivery with an HMAC-SHA256 of its body in one header,
// instead of the Standard Webhooks signature.
type HMAC struct {
	// Header carries the signature, e.g. x-ol-signature.
	Header string
	// Base64 encodes the HMAC in standard base64 (padded) instead of lower
	// case hex.
	Base64 bool
	// Prefix is written before the encoded HMAC, e.g. "sha256=".
	Prefix string
}
