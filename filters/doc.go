// Package filters compiles and evaluates the expr (github.com/expr-lang/expr)
// expressions of hookgate: the filter predicate of an incoming workflow, the
// include/exclude predicates of an outgoing subscription, and the envelope
// that shapes an outgoing delivery body.
//
// Every expression is compiled once, at configuration or API time, against a
// typed environment, so that a misspelt variable, a type mismatch or a
// non-boolean predicate is reported before any traffic flows. The compiled
// values are immutable and safe for concurrent use; evaluation reuses pooled
// virtual machines and never recompiles.
//
// # Environments
//
// A workflow filter ([CompileRequestPredicate]) sees a [Request]:
//
//	body      decoded JSON body (objects are map[string]any, numbers float64), nil when empty
//	headers   map of lower-case header name -> first value
//	query     map of query parameter -> first value
//	method    HTTP method
//	workflow  {id, name}
//
// A subscription predicate ([CompileEventPredicate]) sees an [Event]:
// id, topic, data, tenant, user, time.
//
// An envelope ([CompileEnvelope]) sees an [EnvelopeInput]:
// event {id, topic, data, tenant, user, time} and
// subscription {id, name, description, secret}.
//
// Examples:
//
//	body.eventType in ["groupcreated", "sharepointcreated"]
//	body?.user?.id == "d3c2ced5-6470-4be6-b655-9dd740be7135"
//	headers["x-github-event"] == "push" && query.env == "prod"
//	topic startsWith "document." && tenant == "ZZ1"
//
// A missing object key reads as nil (body.nope == nil is true), but member
// access on nil (body.user.id when body has no user), an ordering comparison
// with nil (body.count > 0 when count is missing) or any other runtime type
// mismatch is an evaluation error: Match then returns false and the error,
// which the caller counts as "not matched" and logs. Use the nil-safe
// operator and a default where a field is optional:
// body?.user?.id == "x", (body?.count ?? 0) > 0 (expr requires the
// parentheses around ??). A predicate whose value is nil does not match; one
// whose value is not a boolean at run time is an error.
//
// JSON numbers are float64 and compare with integer literals as expected:
// body.count == 3, len(body.user.businessPhones) == 0.
//
// # Functions
//
// Besides expr's built-ins (len, type, upper, now, date, ...), every
// expression may call:
//
//	merge(a, b)   a new map with the entries of map a, then those of map b
//	              (b wins on conflicts); nil counts as an empty map. Neither
//	              argument is modified.
//	rfc3339(t)    t (a time, such as event.time) in UTC as RFC 3339 with
//	              nanoseconds and a Z suffix, e.g. 2024-12-30T19:18:23.8711593Z
//
// # Bounds
//
// Expressions come from API clients as well as from the configuration, so
// what they may cost is bounded (see limits.go for the values): the source
// length and bracket nesting are checked before expr parses it, the syntax
// tree size by expr, and every evaluation runs with a budget of closure
// iterations, time and memory (strings, arrays and maps it builds). Over a
// bound, compilation or evaluation fails with an [*Error] wrapping a
// [*LimitError] that names the bound; an expression envelope's JSON is
// bounded too (MaxEnvelopeBytes).
//
// # Envelopes
//
// An envelope spec is "standard" (or empty), "raw", the name of one of the
// [Presets], or any expr expression over [EnvelopeInput] whose result is
// marshalled to JSON. See [Presets] for the shipped shapes (ACTIVATE,
// Orange Logic, Orchestry).
package filters
