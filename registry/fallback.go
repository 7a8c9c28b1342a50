package registry

import (
	"github.com/hookgate/hookgate/delivery/destination"
	"net/http"
	"net/url"
	"strings"

	"github.com/hookgate/hookgate/filters"
)

// FallbackTargetID is the target id of a workflow's fallback in its
// destination id: "wf=<workflow>=fallback".
const FallbackTargetID = "fallback"

// Fallback is where a passthrough workflow (one without targets) stores the
// requests the app behind did not take (it was down, timed out, or answered
// 502, 503 or 504): the sender is answered 202 queued, and the request is
// delivered to the fallback later, with retries and the circuit breaker.
type Fallback struct {
	// URL is the base URL the stored requests go to: each is sent to this
	// URL joined with the path and query the request was passed on with
	// (the workflow URL without the key), e.g. http://127.0.0.1:3000 +
	// /hooks/orders?x=1. http or https; no query or fragment. Required.
	URL string `json:"url"`
	// Timeout of one attempt. Default: 10s; at most 5m.
	Timeout Duration `json:"timeout,omitempty"`
	// RetrySchedule lists the waits before each retry (at most 99, each at
	// most 24h). Default: exponential backoff with jitter, 5 retries.
	RetrySchedule []Duration `json:"retry_schedule,omitempty"`
	// FlowControl paces the fallback deliveries: rate_limit, max_in_flight,
	// breaker and disable_after, as for a target.
	FlowControl
}

// FallbackDestinationID is the destination id of a workflow's fallback.
func FallbackDestinationID(workflow string) string {
	return TargetDestinationID(workflow, FallbackTargetID)
}

// compileFallback checks a workflow's fallback and builds its destination.
// The method, headers and body of each delivery are the stored request's.
func compileFallback(w *Workflow, guard URLChecker) (*destination.Destination, error) {
	f := w.Fallback
	if len(w.Targets) > 0 {
		return nil, invalid("fallback", "a workflow with targets queues every event already: fallback is for passthrough workflows (no targets)")
	}
	if f.URL == "" {
		return nil, invalid("fallback.url", "required")
	}
	u, err := url.Parse(f.URL)
	if err != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(f.URL, "?") {
		return nil, invalid("fallback.url", "must be an http(s) base URL without query or fragment")
	}
	if guard != nil {
		if err := guard.CheckURL(f.URL); err != nil {
			return nil, invalid("fallback.url", "%v", err)
		}
	}
	if err := checkMax("fallback.timeout", f.Timeout, MaxTimeout); err != nil {
		return nil, err
	}
	if err := checkSchedule("fallback.retry_schedule", f.RetrySchedule); err != nil {
		return nil, err
	}
	flow, err := compileFlow("fallback.", f.FlowControl)
	if err != nil {
		return nil, err
	}
	d := &destination.Destination{
		Fallback:    true,
		ID:          FallbackDestinationID(w.ID),
		WorkflowID:  w.ID,
		URL:         strings.TrimSuffix(f.URL, "/"),
		Method:      http.MethodPost, // the stored request's method is used
		Timeout:     f.Timeout.Std(),
		MaxAttempts: DefaultMaxAttempts,
		PassBody:    true,
		Enabled:     true,
		Flow:        flow,
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.Envelope, err = filters.CompileEnvelope(filters.EnvelopeRaw); err != nil {
		return nil, invalid("fallback", "%v", err)
	}
	if len(f.RetrySchedule) > 0 {
		for _, s := range f.RetrySchedule {
			d.Schedule = append(d.Schedule, s.Std())
		}
		d.MaxAttempts = len(d.Schedule) + 1
	}
	return d, nil
}
