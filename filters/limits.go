package filters

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"
	"github.com/expr-lang/expr/vm/runtime"
)

// Bounds on what an expression may make the gateway compute. Expressions
// come from API clients (subscription include/exclude/envelope, workflow
// filter and target envelopes) as well as from the configuration, so every
// one of them is compiled and evaluated within these bounds. They are
// constants: an expression that needs more is not a webhook filter.
const (
	// MaxExprLength is the longest expression source accepted, in bytes.
	MaxExprLength = 16 << 10
	// MaxExprDepth is the deepest nesting of brackets ((), [], {})
	// accepted. It is checked with expr's own lexer before the source goes
	// to expr's recursive-descent parser, whose recursion it bounds.
	MaxExprDepth = 64
	// MaxExprNodes is the largest syntax tree accepted (expr.MaxNodes).
	MaxExprNodes = 4096
	// MaxEvalSteps bounds the iterations of every closure (the predicate
	// of all, any, map, filter, reduce, ...) of one evaluation, nested
	// loops included.
	MaxEvalSteps = 1_000_000
	// MaxEvalTime bounds the time of one evaluation. It is checked every 16
	// closure iterations, so the work between two checks is 16 iterations of
	// the innermost loop (each linear at most in the size of the input).
	MaxEvalTime = 100 * time.Millisecond
	// MaxEvalMemory bounds, in bytes, what one evaluation may build:
	// strings count their length and arrays and maps 16 bytes an element;
	// values read from the input are not counted until an operation copies
	// them. The results of +, of every function and of ranges, array and
	// map literals all count, and functions whose result can be much larger
	// than their arguments (repeat, replace, join, toJSON, string, flatten)
	// check the size before they build it.
	MaxEvalMemory = 16 << 20
	// MaxEnvelopeBytes bounds what an envelope expression adds to the data
	// it wraps: its JSON may be at most EnvelopeInput.DataSize plus this
	// many bytes (the built-in "standard" and "raw" envelopes are bounded
	// by the event itself). Every preset, and any shape that carries the
	// data once, fits.
	MaxEnvelopeBytes = 2 << 20
)

// elemBytes is what an array or map element counts for MaxEvalMemory.
const elemBytes = 16

// LimitError reports that an expression went over one of the bounds above.
// It is the Err of the [*Error] returned by compilation or evaluation, so
// callers detect it with errors.As and answer a client error naming Limit.
type LimitError struct {
	// Limit names the bound: "expression_length", "expression_depth",
	// "expression_nodes", "eval_steps", "eval_time", "eval_memory" or
	// "envelope_size".
	Limit string
	// Max is the bound's value (bytes, levels, nodes, steps, nanoseconds).
	Max int64
}

// Error implements error.
func (e *LimitError) Error() string {
	switch e.Limit {
	case "eval_time":
		return fmt.Sprintf("%s bound exceeded (max %s)", e.Limit, time.Duration(e.Max))
	}
	return fmt.Sprintf("%s bound exceeded (max %d)", e.Limit, e.Max)
}

// AsLimit returns the *LimitError in err's chain, or nil.
func AsLimit(err error) *LimitError {
	if err == nil {
		return nil // without errors.As, whose target would be allocated
	}
	var le *LimitError
	if errors.As(err, &le) {
		return le
	}
	return nil
}

var (
	errSteps  = &LimitError{Limit: "eval_steps", Max: MaxEvalSteps}
	errTime   = &LimitError{Limit: "eval_time", Max: int64(MaxEvalTime)}
	errMemory = &LimitError{Limit: "eval_memory", Max: MaxEvalMemory}
	// errEnvelope is the jsonWriter's signal; marshalLimit returns a
	// *LimitError with the limit that applied.
	errEnvelope = &LimitError{Limit: "envelope_size", Max: MaxEnvelopeBytes}
)

// checkSource bounds the source before expr parses it: its length, and the
// nesting of brackets as expr's lexer (iterative, unlike the parser) sees
// them, so that brackets inside strings or comments are not counted. The
// returned error is an [*Error] located at the offending bracket.
func checkSource(kind, name, src string) error {
	if len(src) > MaxExprLength {
		if len(name) > 64 {
			name = name[:64] + "…" // not the whole of a hostile source in every log line
		}
		return &Error{Kind: kind, Expr: name, Line: 1, Column: 1,
			Message: fmt.Sprintf("expression is %d bytes, over the expression_length bound of %d", len(src), MaxExprLength),
			Err:     &LimitError{Limit: "expression_length", Max: MaxExprLength}}
	}
	tokens, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		return newError(kind, name, err) // the parser would report the same
	}
	depth := 0
	for _, t := range tokens {
		if t.Kind != lexer.Bracket {
			continue
		}
		switch t.Value {
		case "(", "[", "{":
			depth++
			if depth > MaxExprDepth {
				line, col := position(src, t.From)
				return &Error{Kind: kind, Expr: name, Line: line, Column: col,
					Message: fmt.Sprintf("brackets nested deeper than the expression_depth bound of %d", MaxExprDepth),
					Err:     &LimitError{Limit: "expression_depth", Max: MaxExprDepth}}
			}
		default:
			depth--
		}
	}
	return nil
}

// position returns the 1-based line and column (in characters) of byte
// offset off of src.
func position(src string, off int) (line, col int) {
	off = min(max(off, 0), len(src))
	before := src[:off]
	line = 1 + strings.Count(before, "\n")
	if i := strings.LastIndexByte(before, '\n'); i >= 0 {
		before = before[i+1:]
	}
	return line, 1 + utf8.RuneCountInString(before)
}

// meter counts what one evaluation spends. Each pooled machine has one,
// reset before every run; the instrumented program reaches it through the
// environment wrapper (see metered).
type meter struct {
	steps int
	mem   int
	start time.Time
}

func (m *meter) reset() {
	m.steps, m.mem = 0, 0
	m.start = time.Now()
}

// step is called at every closure iteration.
func (m *meter) step() error {
	m.steps++
	if m.steps > MaxEvalSteps {
		return errSteps
	}
	// The clock is read every 16 steps: between two readings are 16
	// iterations of the innermost loop.
	if m.steps%16 == 0 && time.Since(m.start) > MaxEvalTime {
		return errTime
	}
	return nil
}

// grow counts n more bytes.
func (m *meter) grow(n int) error {
	m.mem += n
	if m.mem > MaxEvalMemory || n < 0 {
		return errMemory
	}
	return nil
}

// metered is implemented by the environment wrappers the programs run in.
type metered interface{ meter() *meter }

// The environment wrappers: expr sees the fields of the embedded
// environment (promoted), and the instrumentation reaches the meter through
// $env. The meter field is unexported, so expressions cannot see it.
type (
	requestEnv struct {
		*Request
		m *meter
	}
	eventEnv struct {
		*Event
		m *meter
	}
	envelopeEnv struct {
		*EnvelopeInput
		m *meter
	}
)

func (e *requestEnv) meter() *meter  { return e.m }
func (e *eventEnv) meter() *meter    { return e.m }
func (e *envelopeEnv) meter() *meter { return e.m }

// Names of the instrumentation functions the patch inserts. An expression
// that calls them itself only spends its own budget.
const (
	stepFn  = "hookgate_step"
	countFn = "hookgate_count"
	tmpVar  = "hookgate_value"
)

// meterOf returns the meter of the environment an instrumentation call got.
func meterOf(env any) (*meter, error) {
	if e, ok := env.(metered); ok && e.meter() != nil {
		return e.meter(), nil
	}
	return nil, fmt.Errorf("%s and %s take $env", stepFn, countFn)
}

// stepFunc implements hookgate_step($env): one closure iteration.
func stepFunc(params ...any) (any, error) {
	m, err := meterOf(params[0])
	if err != nil {
		return nil, err
	}
	if err := m.step(); err != nil {
		return nil, err
	}
	return true, nil
}

// countFunc implements hookgate_count($env, v): v's shallow size counts
// toward the memory bound.
func countFunc(params ...any) (any, error) {
	m, err := meterOf(params[0])
	if err != nil {
		return nil, err
	}
	if err := m.grow(shallowSize(params[1])); err != nil {
		return nil, err
	}
	return true, nil
}

// shallowSize is what a value built by an operation counts: a string its
// length, an array or map 16 bytes an element.
func shallowSize(v any) int {
	switch x := v.(type) {
	case nil, bool, int, float64:
		return 0
	case string:
		return len(x)
	case []any:
		return len(x) * elemBytes
	case map[string]any:
		return len(x) * elemBytes
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.Len()
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len() * elemBytes
	}
	return 0
}

// deepSize returns the size of v with everything it references (a value
// shared n times counts n times, as a serialisation would write it), or
// more than limit as soon as it gets there: its cost is bounded by limit
// whatever the shape of v.
func deepSize(v any, limit int) int {
	n := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if n > limit {
			return
		}
		if depth > maxDepth {
			n = limit + 1
			return
		}
		switch x := v.(type) {
		case nil, bool, int, float64:
			n += 8
		case string:
			n += len(x)
		case []any:
			n += len(x) * elemBytes
			for _, e := range x {
				if walk(e, depth+1); n > limit {
					return
				}
			}
		case map[string]any:
			n += len(x) * elemBytes
			for k, e := range x {
				n += len(k)
				if walk(e, depth+1); n > limit {
					return
				}
			}
		default:
			rv := reflect.ValueOf(v)
			switch rv.Kind() {
			case reflect.Slice, reflect.Array:
				n += rv.Len() * elemBytes
				for i := 0; i < rv.Len() && n <= limit; i++ {
					walk(rv.Index(i).Interface(), depth+1)
				}
			case reflect.Map:
				n += rv.Len() * elemBytes
				it := rv.MapRange()
				for it.Next() && n <= limit {
					walk(it.Key().Interface(), depth+1)
					walk(it.Value().Interface(), depth+1)
				}
			case reflect.String:
				n += rv.Len()
			default:
				n += 8
			}
		}
	}
	walk(v, 0)
	return n
}

// instrument is the expr patch that makes programs count what they spend:
//
//   - the body of every closure becomes `hookgate_step($env); body`;
//   - every +, function call and builtin whose result may be a string, an
//     array or a map becomes
//     `let hookgate_value = node; hookgate_count($env, hookgate_value); hookgate_value`,
//     which keeps the node's type, so compile-time type checks are as before.
//
// ast.Walk visits children first, so the nodes it inserts are not visited.
type instrument struct{}

// Visit implements ast.Visitor.
func (instrument) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		n.Node = &ast.SequenceNode{Nodes: []ast.Node{
			&ast.CallNode{Callee: &ast.IdentifierNode{Value: stepFn},
				Arguments: []ast.Node{&ast.IdentifierNode{Value: "$env"}}},
			n.Node,
		}}
	case *ast.BinaryNode:
		if n.Operator == "+" && mayGrow(n) {
			*node = counted(n)
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && (id.Value == stepFn || id.Value == countFn) {
			return
		}
		if mayGrow(n) {
			*node = counted(n)
		}
	case *ast.BuiltinNode:
		if mayGrow(n) {
			*node = counted(n)
		}
	}
}

// mayGrow reports whether node's value may be a string, an array or a map
// (its static type says so, or is unknown).
func mayGrow(node ast.Node) bool {
	t := node.Type()
	if t == nil {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

// counted wraps node so that its value counts toward the memory bound.
func counted(node ast.Node) ast.Node {
	return &ast.VariableDeclaratorNode{
		Name:  tmpVar,
		Value: node,
		Expr: &ast.SequenceNode{Nodes: []ast.Node{
			&ast.CallNode{Callee: &ast.IdentifierNode{Value: countFn}, Arguments: []ast.Node{
				&ast.IdentifierNode{Value: "$env"}, &ast.IdentifierNode{Value: tmpVar}}},
			&ast.IdentifierNode{Value: tmpVar},
		}},
	}
}

// limitOptions are the compile options that bound and instrument every
// expression.
var limitOptions = []expr.Option{
	expr.MaxNodes(MaxExprNodes),
	expr.Function(stepFn, stepFunc, new(func(any) bool)),
	expr.Function(countFn, countFunc, new(func(any, any) bool)),
	expr.Function("repeat", repeatFunc, new(func(string, int) string)),
	expr.Function("replace", replaceFunc,
		new(func(string, string, string) string), new(func(string, string, string, int) string)),
	expr.Function("join", joinFunc, new(func([]any) string), new(func([]any, string) string),
		new(func([]string) string), new(func([]string, string) string)),
	expr.Function("toJSON", deepChecked("toJSON"), new(func(any) string)),
	expr.Function("string", deepChecked("string"), new(func(any) string)),
	expr.Function("flatten", deepChecked("flatten"), new(func(any) []any)),
	expr.Patch(instrument{}),
}

// builtinFunc returns expr's implementation of a builtin as a plain
// function.
func builtinFunc(name string) func(args ...any) (any, error) {
	b := builtin.Builtins[builtin.Index[name]]
	switch {
	case b.Func != nil:
		return b.Func
	case b.Fast != nil:
		return func(args ...any) (any, error) {
			if len(args) != 1 {
				return nil, fmt.Errorf("%s: expected 1 argument, got %d", name, len(args))
			}
			return b.Fast(args[0]), nil
		}
	default:
		return func(args ...any) (any, error) {
			v, _, err := b.Safe(args...)
			return v, err
		}
	}
}

// deepChecked returns builtin name, refusing arguments whose deep size is
// over MaxEvalMemory: their output (a serialisation, a flattened array)
// would be at least as large, and a value built of shared references can
// be exponentially larger than the memory the evaluation counted.
func deepChecked(name string) func(args ...any) (any, error) {
	fn := builtinFunc(name)
	return func(args ...any) (any, error) {
		for _, a := range args {
			if deepSize(a, MaxEvalMemory) > MaxEvalMemory {
				return nil, errMemory
			}
		}
		return fn(args...)
	}
}

// repeatFunc is expr's repeat(s, n), refusing a result over MaxEvalMemory
// before building it.
func repeatFunc(args ...any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("repeat: expected 2 arguments, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("repeat: expected a string, got %T", args[0])
	}
	n := runtime.ToInt(args[1])
	if n < 0 {
		return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
	}
	if n > 0 && len(s) > MaxEvalMemory/n {
		return nil, errMemory
	}
	return strings.Repeat(s, n), nil
}

// replaceFunc is expr's replace(s, old, new[, n]), refusing a result over
// MaxEvalMemory before building it.
func replaceFunc(args ...any) (any, error) {
	if len(args) != 3 && len(args) != 4 {
		return nil, fmt.Errorf("invalid number of arguments for replace (expected 3 or 4, got %d)", len(args))
	}
	var str [3]string
	for i := range str {
		s, ok := args[i].(string)
		if !ok {
			return nil, fmt.Errorf("replace: expected strings, got %T", args[i])
		}
		str[i] = s
	}
	s, old, repl := str[0], str[1], str[2]
	n := -1
	if len(args) == 4 {
		n = runtime.ToInt(args[3])
	}
	if len(repl) > len(old) {
		count := strings.Count(s, old)
		if n >= 0 && n < count {
			count = n
		}
		if count > 0 && len(repl)-len(old) > (MaxEvalMemory-len(s))/count {
			return nil, errMemory
		}
	}
	return strings.Replace(s, old, repl, n), nil
}

// joinFunc is expr's join(array[, glue]), refusing a result over
// MaxEvalMemory before building it.
func joinFunc(args ...any) (any, error) {
	if len(args) != 1 && len(args) != 2 {
		return nil, fmt.Errorf("invalid number of arguments for join (expected 1 or 2, got %d)", len(args))
	}
	glue := ""
	if len(args) == 2 {
		g, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("join: expected a string glue, got %T", args[1])
		}
		glue = g
	}
	var elems []string
	switch a := args[0].(type) {
	case []string:
		elems = a
	case []any:
		elems = make([]string, len(a))
		for i, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("join: expected an array of strings, got %T in it", e)
			}
			elems[i] = s
		}
	default:
		return nil, fmt.Errorf("join: expected an array of strings, got %T", args[0])
	}
	size := 0
	for i, e := range elems {
		size += len(e)
		if i > 0 {
			size += len(glue)
		}
		if size > MaxEvalMemory {
			return nil, errMemory
		}
	}
	return strings.Join(elems, glue), nil
}
