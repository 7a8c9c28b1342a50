package filters

import "github.com/expr-lang/expr"

// RequestPredicate is a compiled workflow filter: a boolean expr expression
// over a [Request]. It is immutable and safe for concurrent use.
type RequestPredicate struct {
	p *program
}

// CompileRequestPredicate compiles a workflow filter. A syntax error, an
// unknown variable, a type mismatch or a result that is not boolean is
// returned as an [*Error] naming the expression and the position. An empty
// expression is an error too: a workflow without a filter has no predicate
// (a nil *RequestPredicate, which matches every request).
func CompileRequestPredicate(src string) (*RequestPredicate, error) {
	p, err := compile(KindFilter, src, src, requestEnv{}, expr.AsBool())
	if err != nil {
		return nil, err
	}
	return &RequestPredicate{p: p}, nil
}

// Match evaluates the filter against r. An evaluation error (member access
// on a missing value, a runtime type mismatch, ...) returns false and an
// [*Error]; the caller counts the request as not matched and logs the error.
// A nil predicate matches every request.
func (p *RequestPredicate) Match(r *Request) (bool, error) {
	if p == nil {
		return true, nil
	}
	return p.p.runBool(r)
}

// String returns the expression as given ("" for a nil predicate).
func (p *RequestPredicate) String() string {
	if p == nil {
		return ""
	}
	return p.p.src
}

// EventPredicate is a compiled subscription predicate (an include or exclude
// condition): a boolean expr expression over an [Event]. It is immutable and
// safe for concurrent use.
type EventPredicate struct {
	p *program
}

// CompileEventPredicate compiles a subscription predicate, with the same
// checks and errors as [CompileRequestPredicate]. An empty expression is an
// error: a subscription without an include (or exclude) condition has no
// predicate.
func CompileEventPredicate(src string) (*EventPredicate, error) {
	p, err := compile(KindPredicate, src, src, eventEnv{}, expr.AsBool())
	if err != nil {
		return nil, err
	}
	return &EventPredicate{p: p}, nil
}

// Match evaluates the predicate against e. An evaluation error returns false
// and an [*Error]; the caller counts the event as not matched and logs it.
//
// A nil predicate matches every event, which is the right reading of an
// absent include condition; code evaluating an exclude condition must skip a
// nil predicate rather than call Match on it.
func (p *EventPredicate) Match(e *Event) (bool, error) {
	if p == nil {
		return true, nil
	}
	return p.p.runBool(e)
}

// String returns the expression as given ("" for a nil predicate).
func (p *EventPredicate) String() string {
	if p == nil {
		return ""
	}
	return p.p.src
}
