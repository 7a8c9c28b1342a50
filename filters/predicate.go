package filters

import (
	"errors"
	"reflect"

	"github.com/expr-lang/expr"
)

// RequestPredicate is a compiled workflow filter: a boolean expr expression
// over a [Request]. It is immutable and safe for concurrent use.
type RequestPredicate struct {
	p    *program
	body *Selection // what it reads of body (body.go)
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
	if err := requireBool(p); err != nil {
		return nil, err
	}
	return &RequestPredicate{p: p, body: bodySelection(p.prog.Node())}, nil
}

// Match evaluates the filter against r. An evaluation error (member access
// on a missing value, a runtime type mismatch, ...) returns false and an
// [*Error]; the caller counts the request as not matched and logs the error.
// A nil predicate matches every request.
func (p *RequestPredicate) Match(r *Request) (bool, error) {
	if p == nil {
		return true, nil
	}
	return p.p.asBool(p.p.runRequest(r))
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
	if err := requireBool(p); err != nil {
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

// requireBool refuses a predicate whose result is not known to be boolean
// when it is compiled. expr.AsBool lets through an expression whose type is
// known only at run time (a bare field of the body, such as body.eventType,
// or x ?? false); such a predicate would fail on every request, so it is
// refused at load, with a hint to compare the value.
func requireBool(p *program) error {
	if t := p.prog.Node().Type(); t != nil && t.Kind() == reflect.Bool {
		return nil
	}
	return &Error{Kind: p.kind, Expr: p.src, Line: 1, Column: 1, Err: errNotBool,
		Message: "the result must be boolean, but its type is known only at run time: compare the value, e.g. (" + p.src + ") == true"}
}

var errNotBool = errors.New("predicate result is not boolean")
