package filters

import (
	"errors"
	"strings"
)

// Names of the built-in envelope specs.
const (
	// EnvelopeStandard is the default envelope: {type, timestamp, data}.
	EnvelopeStandard = "standard"
	// EnvelopeRaw delivers the event data alone.
	EnvelopeRaw = "raw"
)

// Presets are the named envelopes shipped with hookgate, as the expr source
// they compile from; a subscription's envelope may name one of them instead
// of giving an expression. They also serve as examples of envelope
// expressions (see the package documentation for merge and rfc3339):
//
//   - "standard": {type, timestamp, data}, the default. Built by a fast path
//     equivalent to this expression (its keys come out in the order type,
//     timestamp, data).
//   - "raw": the event data alone (JSON null when there is none). Also a
//     fast path.
//   - "activate": the ACTIVATE organization webhook shape,
//     {type, webhook: {id, organization, name}, payload}.
//   - "orangelogic": the Orange Logic webhook body,
//     {EventId, Topic, EventDateUtc, Data, Tenant, UserId}.
//   - "orchestry": the Orchestry payload (tenantId, requestId, ...) with the
//     subscription secret added as the "Secret" property when the
//     subscription has one; data that is not an object is wrapped as
//     {data, Secret}. Orchestry also sends the secret as a header: that is
//     the subscription's custom headers, not the envelope.
//
// Entries may be added before any call to [CompileEnvelope] (for instance in
// an init function); the map must not be modified concurrently with it.
var Presets = map[string]string{
	EnvelopeStandard: `{type: event.topic, timestamp: rfc3339(event.time), data: event.data}`,
	EnvelopeRaw:      `event.data`,
	"activate": `{
	type: event.topic,
	webhook: {id: subscription.id, organization: event.tenant, name: subscription.name},
	payload: event.data
}`,
	"orangelogic": `{
	EventId: event.id,
	Topic: event.topic,
	EventDateUtc: rfc3339(event.time),
	Data: event.data,
	Tenant: event.tenant,
	UserId: event.user
}`,
	"orchestry": `subscription.secret == "" ? event.data : (
	type(event.data) == "map"
		? merge(event.data, {Secret: subscription.secret})
		: {data: event.data, Secret: subscription.secret}
)`,
}

type envelopeKind uint8

const (
	envStandard envelopeKind = iota
	envRaw
	envExpr
)

// Envelope builds a delivery body from an event and its subscription. It is
// immutable and safe for concurrent use.
type Envelope struct {
	spec string
	kind envelopeKind
	p    *program
}

// CompileEnvelope compiles an envelope spec:
//
//   - "" or "standard": {"type": topic, "timestamp": event time as RFC 3339
//     with nanoseconds in UTC, "data": data};
//   - "raw": the data alone;
//   - the name of another entry of [Presets] ("activate", "orangelogic",
//     "orchestry"): that preset's expression;
//   - anything else: an expr expression over [EnvelopeInput] whose result is
//     marshalled to JSON.
//
// Names are matched exactly, ignoring surrounding white space. A compile
// error is returned as an [*Error] naming the spec and the position.
func CompileEnvelope(spec string) (*Envelope, error) {
	name := strings.TrimSpace(spec)
	switch name {
	case "", EnvelopeStandard:
		if spec == "" {
			spec = EnvelopeStandard
		}
		return &Envelope{spec: spec, kind: envStandard}, nil
	case EnvelopeRaw:
		return &Envelope{spec: spec, kind: envRaw}, nil
	}
	src, label := spec, spec
	if preset, ok := Presets[name]; ok {
		src, label = preset, name
	}
	p, err := compile(KindEnvelope, label, src, envelopeEnv{})
	if err != nil {
		return nil, err
	}
	return &Envelope{spec: spec, kind: envExpr, p: p}, nil
}

// Build evaluates the envelope for in and returns the JSON body. Objects
// built by expressions have their keys sorted; HTML characters (<, >, &) are
// not escaped; the output is otherwise what encoding/json produces. An
// evaluation or marshalling error is returned as an [*Error]; an expression
// envelope whose output would be over in.DataSize + MaxEnvelopeBytes, or
// whose evaluation
// goes over a bound of limits.go, fails with an [*Error] wrapping a
// [*LimitError].
func (e *Envelope) Build(in *EnvelopeInput) ([]byte, error) {
	if in == nil {
		return nil, &Error{Kind: KindEnvelope, Expr: e.label(), Line: 1, Column: 1,
			Message: "no input", Err: errNoInput}
	}
	var b []byte
	var err error
	switch e.kind {
	case envStandard:
		b, err = marshalStandard(in.Event.Topic, in.Event.Time, in.Event.Data)
	case envRaw:
		b, err = marshal(in.Event.Data)
	default:
		var v any
		if v, err = e.p.run(in); err != nil {
			return nil, err // already an *Error
		}
		b, err = marshalLimit(v, MaxEnvelopeBytes+max(in.DataSize, 0))
	}
	if err != nil {
		return nil, &Error{Kind: KindEnvelope, Expr: e.label(), Line: 1, Column: 1,
			Message: err.Error(), Err: err}
	}
	return b, nil
}

var errNoInput = errors.New("no input")

func (e *Envelope) label() string {
	if e.p != nil {
		return e.p.src
	}
	return e.spec
}

// Raw reports whether the envelope is "raw" (the body is the event data).
func (e *Envelope) Raw() bool { return e.kind == envRaw }

// String returns the spec as given ("standard" for "").
func (e *Envelope) String() string { return e.spec }
