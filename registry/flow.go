package registry

import (
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hookgate/hookgate/filters"
)

// Defaults and bounds of flow control (rate limit, concurrency, circuit
// breaker and auto-disable), per subscription or workflow target.
const (
	// MaxRatePerSecond bounds rate_limit (deliveries per second).
	MaxRatePerSecond = 100000
	// MinRatePerSecond is the slowest rate_limit: one delivery per hour.
	MinRatePerSecond = 1.0 / 3600
	// MaxInFlightCeiling bounds max_in_flight.
	MaxInFlightCeiling = 1024
	// DefaultBreakerFailures is how many consecutive failures open the
	// circuit.
	DefaultBreakerFailures = 5
	// MaxBreakerFailures bounds breaker.failures.
	MaxBreakerFailures = 1000
	// DefaultCooldown is the first wait of an open circuit before its probe.
	DefaultCooldown = 5 * time.Second
	// DefaultMaxCooldown caps the cool-down, which doubles at every failed
	// probe.
	DefaultMaxCooldown = 5 * time.Minute
	// MaxCooldown bounds breaker.cooldown and breaker.max_cooldown.
	MaxCooldown = time.Hour
	// DefaultDisableAfter is how long a subscription may fail without a
	// success before it is disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// MinDisableAfter is the shortest disable_after.
	MinDisableAfter = time.Second
	// MaxDisableAfter is the longest disable_after (30 days).
	MaxDisableAfter = 30 * 24 * time.Hour
)

// Breaker configures the circuit breaker of a destination. The breaker is on
// by default; a nil Breaker takes every default.
type Breaker struct {
	// Off turns the circuit breaker off.
	Off bool `json:"off,omitempty"`
	// Failures is how many consecutive failures (transport errors,
	// timeouts, 408, 429 and 5xx answers) open the circuit. Default: 5;
	// at most 1000.
	Failures int `json:"failures,omitempty"`
	// Cooldown is the wait of an open circuit before one probe attempt;
	// it doubles at every failed probe. Default: 5s; at most 1h.
	Cooldown Duration `json:"cooldown,omitempty"`
	// MaxCooldown caps the cool-down. Default: 5m (or Cooldown when that
	// is longer); at most 1h.
	MaxCooldown Duration `json:"max_cooldown,omitempty"`
}

// FlowControl paces the deliveries of a subscription or a workflow target.
type FlowControl struct {
	// RateLimit bounds the deliveries per second or per minute, e.g.
	// "50/s", "300/m" (also "/h"). Default: none.
	RateLimit string `json:"rate_limit,omitempty"`
	// MaxInFlight bounds the attempts in flight to the destination; it
	// overrides the global per_destination. At most 1024.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Breaker configures the circuit breaker (on by default).
	Breaker *Breaker `json:"breaker,omitempty"`
	// DisableAfter disables a subscription that has failed this long
	// without a success (a workflow target stays open at the breaker's
	// maximum cool-down instead). Default: 120h; from 1s to 720h.
	DisableAfter Duration `json:"disable_after,omitempty"`
	// Ordered delivers the events one at a time, in the order they were
	// accepted: an event is attempted only after the one before it (of
	// the same OrderKey) succeeded or failed for good. Default: off.
	Ordered bool `json:"ordered,omitempty"`
	// OrderKey, with Ordered, is an expr expression over the event (as in
	// a subscription predicate: id, topic, data, tenant, user, time) whose
	// value, a string or a number, splits the ordering: events with the
	// same key are delivered in order, one at a time, and a failing event
	// holds up only its key. Default: none (all the events of the
	// destination are one key). An event whose key fails to evaluate or
	// is not a string or a number goes with the key "".
	OrderKey string `json:"order_key,omitempty"`
}

// ParseRate reads a rate limit "N/s", "N/m" or "N/h" (N a positive number)
// into deliveries per second.
func ParseRate(s string) (float64, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("%q: use N/s, N/m or N/h", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q: %q is not a positive number", s, n)
	}
	switch strings.TrimSpace(unit) {
	case "s":
	case "m":
		v /= 60
	case "h":
		v /= 3600
	default:
		return 0, fmt.Errorf("%q: the unit is s, m or h", s)
	}
	if v > MaxRatePerSecond {
		return 0, fmt.Errorf("%q is over the maximum of %d/s", s, MaxRatePerSecond)
	}
	if v < MinRatePerSecond*(1-1e-9) {
		return 0, fmt.Errorf("%q is under the minimum of 1/h", s)
	}
	return v, nil
}

// compileFlow checks f (fields named under prefix, "" or "targets[i].") and
// compiles it.
func compileFlow(prefix string, f FlowControl) (destination.Flow, error) {
	out := destination.Flow{
		Failures: DefaultBreakerFailures, Cooldown: DefaultCooldown,
		MaxCooldown: DefaultMaxCooldown, DisableAfter: DefaultDisableAfter,
	}
	if f.RateLimit != "" {
		r, err := ParseRate(f.RateLimit)
		if err != nil {
			return out, invalid(prefix+"rate_limit", "%v", err)
		}
		// A tenth of a second's worth may go at once, at least one.
		out.Rate, out.Burst = r, max(1, int(r/10))
	}
	if f.MaxInFlight < 0 || f.MaxInFlight > MaxInFlightCeiling {
		return out, invalid(prefix+"max_in_flight", "%d is not from 1 to %d", f.MaxInFlight, MaxInFlightCeiling)
	}
	out.MaxInFlight = f.MaxInFlight
	if b := f.Breaker; b != nil {
		out.BreakerOff = b.Off
		if b.Failures < 0 || b.Failures > MaxBreakerFailures {
			return out, invalid(prefix+"breaker.failures", "%d is not from 1 to %d", b.Failures, MaxBreakerFailures)
		}
		if b.Failures > 0 {
			out.Failures = b.Failures
		}
		if err := checkMax(prefix+"breaker.cooldown", b.Cooldown, MaxCooldown); err != nil {
			return out, err
		}
		if err := checkMax(prefix+"breaker.max_cooldown", b.MaxCooldown, MaxCooldown); err != nil {
			return out, err
		}
		if b.Cooldown > 0 {
			out.Cooldown = b.Cooldown.Std()
			out.MaxCooldown = max(out.MaxCooldown, out.Cooldown)
		}
		if b.MaxCooldown > 0 {
			if b.MaxCooldown.Std() < out.Cooldown {
				return out, invalid(prefix+"breaker.max_cooldown", "%s is shorter than the cooldown (%s)", b.MaxCooldown.Std(), out.Cooldown)
			}
			out.MaxCooldown = b.MaxCooldown.Std()
		}
	}
	if f.DisableAfter != 0 {
		if f.DisableAfter.Std() < MinDisableAfter || f.DisableAfter.Std() > MaxDisableAfter {
			return out, invalid(prefix+"disable_after", "%s is not from %s to %s", f.DisableAfter.Std(), MinDisableAfter, MaxDisableAfter)
		}
		out.DisableAfter = f.DisableAfter.Std()
	}
	if f.OrderKey != "" {
		if !f.Ordered {
			return out, invalid(prefix+"order_key", "is set but ordered is not")
		}
		k, err := filters.CompileEventKey(f.OrderKey)
		if err != nil {
			return out, invalid(prefix+"order_key", "%v", err)
		}
		out.OrderKey = k
	}
	out.Ordered = f.Ordered
	return out, nil
}

// Source of the built-in topics.
const SourceBuiltin = "builtin"

// TopicSubscriptionDisabled is the built-in topic of the events hookgate
// publishes when it disables a subscription that kept failing for its
// disable_after. Subscriptions may subscribe to it like to any topic.
const TopicSubscriptionDisabled = "hookgate.subscription.disabled"

// builtinTopics are always listed and read-only; a topic of the same name
// declared in the Caddyfile or the API takes precedence.
var builtinTopics = map[string]*CompiledTopic{
	TopicSubscriptionDisabled: {Def: Topic{
		Name:        TopicSubscriptionDisabled,
		Description: "hookgate disabled a subscription that kept failing: data {subscription_id, name, reason, last_failure_at, failing_since}",
		Source:      SourceBuiltin,
	}},
}
