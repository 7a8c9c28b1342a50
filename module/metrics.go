package module

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/delivery/destination"
	"github.com/hookgate/hookgate/ingress"
)

// Collectors are package-level and registered into every configuration's
// metrics registry.
var (
	ingressRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookgate", Subsystem: "ingress", Name: "requests_total",
		Help: "Incoming webhook requests by workflow and outcome.",
	}, []string{"workflow", "outcome"})
	validationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookgate", Subsystem: "ingress", Name: "validation_failures_total",
		Help: "Incoming webhooks refused by their workflow's contract.",
	}, []string{"workflow"})
	deliveryAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "attempts_total",
		Help: "Delivery attempts by kind of destination and outcome (succeeded, retrying, failed).",
	}, []string{"kind", "outcome"})
	attemptDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "attempt_duration_seconds",
		Help:    "Duration of delivery attempts.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"kind"})
	circuitOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "circuit_open",
		Help: "Destinations whose circuit breaker is open or half-open on this instance, by kind of destination.",
	}, []string{"kind"})
	rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "rate_limited_total",
		Help: "Waits of deliveries for their destination's rate limit (a delivery parked, or a parked one found still early), by kind of destination.",
	}, []string{"kind"})
	deferredDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "deferred_total",
		Help: "Deliveries that found no room (their destination busy, or its circuit open) and went back to the stream for a while, not an attempt, by kind of destination.",
	}, []string{"kind"})
	fallbackRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookgate", Subsystem: "ingress", Name: "fallback_total",
		Help: "Passthrough requests the app did not take, by workflow, reason (status_502|503|504: the app answered it; error_502|503|504: the proxy failed, app down or timed out) and result (queued for the fallback, or failed to be stored).",
	}, []string{"workflow", "reason", "result"})
	queueDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "queue_depth",
		Help: "Deliveries waiting or in flight.",
	}, readQueueDepth)
	orderedHeldBack = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "hookgate", Subsystem: "delivery", Name: "ordered_held_back",
		Help: "Deliveries of ordered destinations waiting, un-attempted, behind an earlier delivery of their key (as indexed by this instance).",
	}, readOrderedHeldBack)
)

var queuePipeline atomic.Pointer[delivery.Pipeline]

func readQueueDepth() float64 {
	p := queuePipeline.Load()
	if p == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := p.QueueDepth(ctx)
	if err != nil {
		return 0
	}
	return float64(n)
}

func readOrderedHeldBack() float64 {
	p := queuePipeline.Load()
	if p == nil {
		return 0
	}
	return float64(p.OrderHeldBack())
}

// metrics records hookgate's measurements.
type metrics struct{}

// registerMetrics registers the collectors into reg (nil-safe).
func registerMetrics(reg *prometheus.Registry) *metrics {
	if reg != nil {
		for _, c := range []prometheus.Collector{ingressRequests, validationFailures, deliveryAttempts, attemptDuration, circuitOpen, rateLimited, deferredDeliveries, fallbackRequests, queueDepth, orderedHeldBack} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err)
				}
			}
		}
	}
	return &metrics{}
}

// request counts an incoming webhook request.
func (m *metrics) request(workflow, outcome string) {
	requestCounter(workflow, outcome).Inc()
	if outcome == ingress.OutcomeInvalid {
		validationFailures.WithLabelValues(workflow).Inc()
	}
}

// requestLabels are the label values of a child of ingressRequests.
type requestLabels struct{ workflow, outcome string }

// requestChildren holds the children of ingressRequests already resolved
// (requestLabels: prometheus.Counter), so that counting a request does not
// hash and look up its label values again. The children of a vector are
// never deleted, and the vector keeps them all anyway: this adds an entry
// per child, no more.
var requestChildren sync.Map

// requestCounter returns the child of ingressRequests for a workflow and
// an outcome.
func requestCounter(workflow, outcome string) prometheus.Counter {
	k := requestLabels{workflow, outcome}
	if c, ok := requestChildren.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := ingressRequests.WithLabelValues(workflow, outcome)
	requestChildren.Store(k, c)
	return c
}

// fallback counts a passthrough request the app did not take.
func (m *metrics) fallback(workflow, reason, result string) {
	fallbackRequests.WithLabelValues(workflow, reason, result).Inc()
}

// destKind is the kind label of a destination: "subscription", "workflow"
// (a target) or "fallback" (a passthrough workflow's fallback).
func destKind(dest *destination.Destination) string {
	if dest.IsFallback() {
		return "fallback"
	}
	if dest.WorkflowID != "" {
		return "workflow"
	}
	return "subscription"
}

// Attempted implements delivery.Observer.
func (m *metrics) Attempted(dest *destination.Destination, outcome string, took time.Duration) {
	kind := destKind(dest)
	deliveryAttempts.WithLabelValues(kind, outcome).Inc()
	attemptDuration.WithLabelValues(kind).Observe(took.Seconds())
}

// CircuitChanged implements delivery.FlowObserver: the gauge counts the
// circuits not closed.
func (m *metrics) CircuitChanged(dest *destination.Destination, from, to string) {
	switch {
	case from == delivery.CircuitClosed:
		circuitOpen.WithLabelValues(destKind(dest)).Inc()
	case to == delivery.CircuitClosed:
		circuitOpen.WithLabelValues(destKind(dest)).Dec()
	}
}

// RateLimited implements delivery.FlowObserver.
func (m *metrics) RateLimited(dest *destination.Destination) {
	rateLimited.WithLabelValues(destKind(dest)).Inc()
}

// Deferred implements delivery.FlowObserver.
func (m *metrics) Deferred(dest *destination.Destination) {
	deferredDeliveries.WithLabelValues(destKind(dest)).Inc()
}

func (m *metrics) watchQueue(p *delivery.Pipeline) { queuePipeline.Store(p) }

var (
	_ delivery.Observer     = (*metrics)(nil)
	_ delivery.FlowObserver = (*metrics)(nil)
)
