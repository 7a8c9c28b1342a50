package filters

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Kinds of expression, as they appear in error messages.
const (
	// KindFilter labels errors of workflow filters (RequestPredicate).
	KindFilter = "filter"
	// KindPredicate labels errors of subscription predicates (EventPredicate).
	KindPredicate = "predicate"
	// KindEnvelope labels errors of envelopes.
	KindEnvelope = "envelope"
)

// Error is the error returned when an expression does not compile, or fails
// while it is evaluated. Its text names the expression and the position, e.g.
//
//	filter "body.x ==": unexpected token EOF (1:9)
type Error struct {
	// Kind is KindFilter, KindPredicate or KindEnvelope.
	Kind string
	// Expr is the expression as given (the preset name for a named envelope).
	Expr string
	// Line and Column locate the error in Expr, both 1-based. An error that
	// concerns the whole expression (such as a non-boolean predicate) is
	// located at 1:1.
	Line, Column int
	// Message is expr's description of the problem.
	Message string
	// Snippet is the offending line with a caret under the column, prefixed
	// by newlines and " | " (empty when expr gave none). It is not part of
	// Error() and is meant for API responses and CLIs.
	Snippet string
	// Err is the underlying error (a *file.Error from expr for compile and
	// evaluation errors).
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s %q: %s (%d:%d)", e.Kind, e.Expr, e.Message, e.Line, e.Column)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// newError wraps an error from expr with the expression it concerns.
func newError(kind, src string, err error) *Error {
	e := &Error{Kind: kind, Expr: src, Line: 1, Column: 1, Message: err.Error(), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		e.Message = fe.Message
		e.Snippet = fe.Snippet
		if fe.Line > 0 {
			e.Line, e.Column = fe.Line, fe.Column+1
		}
	}
	return e
}

// program is a compiled expression with what is needed to report its errors.
type program struct {
	kind string
	src  string // as reported in errors
	prog *vm.Program
}

// machine is what one evaluation needs: an expr virtual machine (its
// stacks), the meter of the evaluation and the environment wrappers that
// carry it. A vm.Program is immutable and shared; a machine is not, hence
// the pool.
type machine struct {
	vm  vm.VM
	m   meter
	req requestEnv
	// reqCopy is the Request a request predicate runs on (runRequest):
	// a copy, so that the caller's Request does not escape.
	reqCopy Request
	ev      eventEnv
	env     envelopeEnv
}

var machinePool = sync.Pool{New: func() any {
	mc := new(machine)
	mc.vm.MemoryBudget = MaxEvalMemory / elemBytes
	mc.req.m, mc.ev.m, mc.env.m = &mc.m, &mc.m, &mc.m
	return mc
}}

// compile compiles src against env (one of the environment wrappers) with
// the package functions and the bounds of limits.go.
func compile(kind, name, src string, env any, opts ...expr.Option) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Kind: kind, Expr: name, Line: 1, Column: 1, Message: "empty expression", Err: errEmpty}
	}
	if err := checkSource(kind, name, src); err != nil {
		return nil, err
	}
	all := make([]expr.Option, 0, len(opts)+1+len(functions)+len(limitOptions))
	all = append(all, expr.Env(env))
	all = append(all, opts...)
	all = append(all, functions...)
	all = append(all, limitOptions...)
	p, err := expr.Compile(src, all...)
	if err != nil {
		return nil, newError(kind, name, err)
	}
	return &program{kind: kind, src: name, prog: p}, nil
}

var errEmpty = errors.New("empty expression")

// run evaluates the program against env (a *Request, *Event or
// *EnvelopeInput, as the program was compiled for), within the bounds of
// limits.go.
func (p *program) run(env any) (any, error) {
	mc := machinePool.Get().(*machine)
	var wrapped any
	switch e := env.(type) {
	case *Request:
		mc.req.Request = e
		wrapped = &mc.req
	case *Event:
		mc.ev.Event = e
		wrapped = &mc.ev
	case *EnvelopeInput:
		mc.env.EnvelopeInput = e
		wrapped = &mc.env
	default:
		wrapped = env
	}
	mc.m.reset()
	out, err := mc.vm.Run(p.prog, wrapped)
	// Drop references to the environment (request bodies can be large)
	// before the machine goes back to the pool.
	clear(mc.vm.Stack[:cap(mc.vm.Stack)])
	clear(mc.vm.Variables)
	mc.req.Request, mc.ev.Event, mc.env.EnvelopeInput = nil, nil, nil
	machinePool.Put(mc)
	if err != nil {
		return nil, newError(p.kind, p.src, err)
	}
	return out, nil
}

// runRequest is run on a copy of r, which does not escape: a caller may
// keep its Request on its stack.
func (p *program) runRequest(r *Request) (any, error) {
	mc := machinePool.Get().(*machine)
	mc.reqCopy = *r
	mc.req.Request = &mc.reqCopy
	mc.m.reset()
	out, err := mc.vm.Run(p.prog, &mc.req)
	clear(mc.vm.Stack[:cap(mc.vm.Stack)])
	clear(mc.vm.Variables)
	mc.req.Request, mc.reqCopy = nil, Request{}
	machinePool.Put(mc)
	if err != nil {
		return nil, newError(p.kind, p.src, err)
	}
	return out, nil
}

// runBool evaluates a predicate: a result other than a bool is an error.
func (p *program) runBool(env any) (bool, error) {
	return p.asBool(p.run(env))
}

// asBool is the verdict of a predicate that returned out, err.
func (p *program) asBool(out any, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, &Error{Kind: p.kind, Expr: p.src, Line: 1, Column: 1,
			Message: fmt.Sprintf("expected bool, but got %T", out)}
	}
	return b, nil
}

// functions are the helper functions available to every expression.
var functions = []expr.Option{
	expr.Function("merge", mergeFunc, new(func(map[string]any, map[string]any) map[string]any)),
	expr.Function("rfc3339", rfc3339Func, new(func(time.Time) string)),
}

// mergeFunc implements merge(a, b): a new map holding a's entries overridden
// by b's. nil counts as an empty map; any map with string keys is accepted.
func mergeFunc(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, fmt.Errorf("merge: expected 2 arguments, got %d", len(params))
	}
	n := 0
	for _, p := range params {
		l, err := mapLen(p)
		if err != nil {
			return nil, err
		}
		n += l
	}
	out := make(map[string]any, n)
	for _, p := range params {
		switch m := p.(type) {
		case nil:
		case map[string]any:
			for k, v := range m {
				out[k] = v
			}
		default:
			it := reflect.ValueOf(p).MapRange()
			for it.Next() {
				out[it.Key().String()] = it.Value().Interface()
			}
		}
	}
	return out, nil
}

// mapLen returns the length of a map with string keys, 0 for nil, or an
// error for anything else.
func mapLen(p any) (int, error) {
	switch m := p.(type) {
	case nil:
		return 0, nil
	case map[string]any:
		return len(m), nil
	}
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return 0, fmt.Errorf("merge: expected maps with string keys, got %T", p)
	}
	return v.Len(), nil
}

// rfc3339Func implements rfc3339(t).
func rfc3339Func(params ...any) (any, error) {
	if len(params) != 1 {
		return nil, fmt.Errorf("rfc3339: expected 1 argument, got %d", len(params))
	}
	switch t := params[0].(type) {
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano), nil
	case *time.Time:
		if t != nil {
			return t.UTC().Format(time.RFC3339Nano), nil
		}
	}
	return nil, fmt.Errorf("rfc3339: expected a time, got %T", params[0])
}
