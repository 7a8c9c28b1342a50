package filters

import "time"

// WorkflowInfo identifies the workflow a request came in on. It is
// `workflow` in a workflow filter.
type WorkflowInfo struct {
	ID   string `expr:"id"`
	Name string `expr:"name"`
}

// Request is the environment of an incoming-webhook predicate (a workflow
// filter).
type Request struct {
	// Body is the decoded JSON body (encoding/json into any, so objects are
	// map[string]any and numbers float64); nil when the body is empty.
	Body any `expr:"body"`
	// Headers maps lower-case header names to their first value.
	Headers map[string]string `expr:"headers"`
	// Query maps each query parameter to its first value.
	Query map[string]string `expr:"query"`
	// Method is the HTTP method.
	Method string `expr:"method"`
	// Workflow is the workflow the request came in on.
	Workflow WorkflowInfo `expr:"workflow"`
}

// Event is the environment of a subscription predicate, and `event` in an
// envelope.
type Event struct {
	// ID is the event id (unique; deliveries are deduplicated on it).
	ID string `expr:"id"`
	// Topic is the topic the event was published on, e.g. "document.deleted".
	Topic string `expr:"topic"`
	// Data is the published payload, decoded JSON (map[string]any, []any,
	// float64, string, bool or nil). A json.RawMessage is delivered as is by
	// the "standard" and "raw" envelopes, but predicates and custom
	// envelopes cannot look inside it.
	Data any `expr:"data"`
	// Tenant is the optional tenant (Orange Logic "Tenant", ACTIVATE
	// organization).
	Tenant string `expr:"tenant"`
	// User is the optional id of the user who caused the event.
	User string `expr:"user"`
	// Time is when the event was accepted.
	Time time.Time `expr:"time"`
}

// Subscription is `subscription` in an envelope: the subscription a delivery
// is made for.
type Subscription struct {
	// ID is the subscription id.
	ID string `expr:"id"`
	// Name is the unique subscription name.
	Name string `expr:"name"`
	// Description is the free-text description.
	Description string `expr:"description"`
	// Secret is the subscription secret ("" when none). Only envelopes that
	// must carry it in the body (Orchestry) should use it.
	Secret string `expr:"secret"`
}

// EnvelopeInput is the environment of an envelope expression.
type EnvelopeInput struct {
	// Event is the event being delivered.
	Event Event `expr:"event"`
	// Subscription is the subscription it is delivered to.
	Subscription Subscription `expr:"subscription"`
	// DataSize is the size in bytes of the event data as received (0 when
	// unknown). An expression envelope may build at most MaxEnvelopeBytes
	// more than it. Expressions do not see it.
	DataSize int `expr:"-"`
}
