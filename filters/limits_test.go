package filters

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCompileBounds: sources over the compile-time bounds are refused with a
// *LimitError naming the bound, before expr's parser sees them (the 520,000
// parentheses of issue #8 overflowed its stack).
func TestCompileBounds(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("(", n) + "true" + strings.Repeat(")", n) }
	tests := []struct {
		name, src, limit string
	}{
		{"parentheses of issue #8", deep(520_000), "expression_length"},
		{"parentheses just over the depth", deep(MaxExprDepth + 1), "expression_depth"},
		{"unbalanced openers", strings.Repeat("[", MaxExprDepth+1), "expression_depth"},
		{"mixed brackets", strings.Repeat("{a: [(", MaxExprDepth/3+1) + "1", "expression_depth"},
		{"length", "true" + strings.Repeat(" ", MaxExprLength), "expression_length"},
		{"nodes", strings.Repeat("1+", MaxExprNodes) + "1 == 2", "expression_nodes"},
		{"unary chain", strings.Repeat("!", MaxExprLength-4) + "true", "expression_nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for kind, compile := range compilers {
				err := compile(tt.src)
				if err == nil {
					t.Fatalf("%s: compiled", kind)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("%s: %T %v, want *Error", kind, err, err)
				}
				le := AsLimit(err)
				if tt.limit == "expression_nodes" {
					// expr reports the node bound itself, as a syntax error.
					if !strings.Contains(err.Error(), "maximum allowed nodes") {
						t.Fatalf("%s: %.200v, want the node bound", kind, err)
					}
					continue
				}
				if le == nil || le.Limit != tt.limit {
					t.Fatalf("%s: %.200v, want bound %s", kind, err, tt.limit)
				}
			}
		})
	}
}

// compilers compiles a source as each kind of expression.
var compilers = map[string]func(string) error{
	KindFilter: func(s string) error { _, err := CompileRequestPredicate(s); return err },
	KindPredicate: func(s string) error {
		_, err := CompileEventPredicate(s)
		return err
	},
	KindEnvelope: func(s string) error { _, err := CompileEnvelope(s); return err },
}

// TestCompileBoundsAllow: brackets in strings and comments do not count, and
// the deepest nesting allowed compiles.
func TestCompileBoundsAllow(t *testing.T) {
	for _, src := range []string{
		strings.Repeat("(", MaxExprDepth) + "true" + strings.Repeat(")", MaxExprDepth),
		`"` + strings.Repeat("(", 1000) + `" != ""`,
		"`" + strings.Repeat("[{", 1000) + "` != ''",
		"true /* " + strings.Repeat("(", 1000) + " */",
	} {
		if _, err := CompileRequestPredicate(src); err != nil {
			t.Errorf("%.40q: %v", src, err)
		}
	}
	// The error points at the first bracket over the bound.
	_, err := CompileRequestPredicate("true &&\n  " + strings.Repeat("(", MaxExprDepth+1) + "true" + strings.Repeat(")", MaxExprDepth+1))
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Column != 3+MaxExprDepth {
		t.Fatalf("error %#v, want line 2 column %d", err, 3+MaxExprDepth)
	}
}

// TestEvalBounds: each expensive expression of issue #8 stops at its bound
// with a *LimitError, quickly.
func TestEvalBounds(t *testing.T) {
	arr := func(n, off int) []any {
		a := make([]any, n)
		for i := range a {
			a[i] = float64(i + off)
		}
		return a
	}
	dag := "let a0 = ['x', 'x']; " // 2^60 leaves in 60 levels of shared arrays
	for i := 1; i <= 60; i++ {
		dag += fmt.Sprintf("let a%d = [a%d, a%d]; ", i, i-1, i-1)
	}
	tests := []struct {
		name, src string
		body      any
		limit     string
	}{
		{"nested iteration over ranges", `let r = 1..700; all(r, all(r, all(r, true)))`, nil, "eval_steps eval_time"},
		{"quadratic membership", `any(body.a, # in body.b)`, map[string]any{"a": arr(20_000, 0), "b": arr(20_000, 1e6)}, "eval_time"},
		{"string doubling in reduce", `len(reduce(1..64, #acc + #acc, "xxxxxxxx")) > 0`, nil, "eval_memory"},
		{"string doubling in lets", "let s0 = 'xxxxxxxxxxxxxxxx'; " + doublings(40) + " len(s40) > 0", nil, "eval_memory"},
		{"string doubling of the body", "let s0 = body.s; " + doublings(40) + " len(s40) > 0", map[string]any{"s": "xxxxxxxx"}, "eval_memory"},
		{"array doubling", `len(reduce(1..64, concat(#acc, #acc), [1])) > 0`, nil, "eval_memory eval_time"},
		{"nested repeat", `len(repeat(repeat("x", 100000), 100000)) > 0`, nil, "eval_memory"},
		{"replace amplification", `len(replace(replace(repeat("x", 4000), "", repeat("y", 4000)), "", "zz")) > 0`, nil, "eval_memory"},
		{"join amplification", `len(join(map(1..1000, "x"), repeat("y", 100000))) > 0`, nil, "eval_memory"},
		{"toJSON of shared arrays", dag + "len(toJSON(a60)) > 0", nil, "eval_memory"},
		{"string of shared arrays", dag + "len(string(a60)) > 0", nil, "eval_memory"},
		{"flatten of shared arrays", dag + "len(flatten(a60)) > 0", nil, "eval_memory"},
		{"big range", `len(1..100000000) > 0`, nil, "eval_memory"},
		{"map over a range", `len(map(1..2000000, #)) > 0`, nil, "eval_memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileRequestPredicate(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			ok, err := p.Match(&Request{Body: tt.body})
			elapsed := time.Since(start)
			if ok || err == nil {
				t.Fatalf("matched %v, err %v", ok, err)
			}
			// expr's own memory counter reports a plain error: both it and
			// ours bound the same thing.
			le := AsLimit(err)
			if le == nil && !(strings.Contains(tt.limit, "eval_memory") && strings.Contains(err.Error(), "memory budget exceeded")) {
				t.Fatalf("err %v, want bound %s", err, tt.limit)
			}
			if le != nil && !slices.Contains(strings.Fields(tt.limit), le.Limit) {
				t.Fatalf("err %v, want bound %s", err, tt.limit)
			}
			// Generous: the race detector slows the copies down tenfold.
			if elapsed > 5*time.Second {
				t.Errorf("took %s", elapsed)
			}
		})
	}
}

// doublings returns `let s1 = s0 + s0; ... let sN = sN-1 + sN-1;`.
func doublings(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "let s%d = s%d + s%d; ", i, i-1, i-1)
	}
	return b.String()
}

// TestEvalBoundsAllow: ordinary work well inside the bounds is unaffected,
// and the meter starts afresh at every evaluation of a pooled machine.
func TestEvalBoundsAllow(t *testing.T) {
	// Small enough to stay far from MaxEvalTime under the race detector on
	// a loaded machine.
	items := make([]any, 500)
	for i := range items {
		items[i] = map[string]any{"id": float64(i), "name": fmt.Sprint("n", i)}
	}
	r := &Request{Body: map[string]any{"items": items, "s": "abc"}}
	for _, src := range []string{
		`any(body.items, .id == 499)`,
		`count(body.items, .name startsWith "n1") == 111`,
		`len(join(map(body.items, .name), ",")) > 0`,
		`len(toJSON(body.items)) > 0`,
		`len(repeat(body.s, 100000)) == 300000`,
		`replace(body.s, "b", "bb") == "abbc"`,
		`let r = 1..30; all(r, all(r, # > 0))`,
		`reduce(1..1000, #acc + #, 0) == 500500`,
	} {
		p, err := CompileRequestPredicate(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for range 3 {
			if ok, err := p.Match(r); !ok || err != nil {
				t.Fatalf("%s: %v %v", src, ok, err)
			}
		}
	}
}

// TestEnvelopeBound: an envelope whose JSON is over MaxEnvelopeBytes fails
// with the envelope_size bound, even when it is built of shared references
// that count little for the evaluation.
func TestEnvelopeBound(t *testing.T) {
	for _, spec := range []string{
		`{a: repeat("x", 1000000), b: repeat("y", 1000000), c: repeat("z", 1000000)}`,
		`let a = repeat("x", 100000); let b = [a, a, a, a, a, a, a, a]; let c = [b, b, b, b]; {data: c}`,
	} {
		e, err := CompileEnvelope(spec)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Build(&EnvelopeInput{})
		if le := AsLimit(err); le == nil || le.Limit != "envelope_size" {
			t.Fatalf("%.40s: err %v, want envelope_size", spec, err)
		}
	}
	// Every preset fits around the largest event the API accepts, and
	// around a larger body of known size (a workflow's max_body may be up
	// to 64 MiB).
	for _, size := range []int{1 << 20, 5 << 20} {
		big := map[string]any{"blob": strings.Repeat("x", size)}
		for name := range Presets {
			e, err := CompileEnvelope(name)
			if err != nil {
				t.Fatal(err)
			}
			in := &EnvelopeInput{Event: Event{Data: big}, Subscription: Subscription{Secret: "s"}, DataSize: size + 12}
			if _, err := e.Build(in); err != nil {
				t.Errorf("%s around %d bytes: %v", name, size, err)
			}
		}
	}
	// Carrying the data twice is over the bound; the error gives the limit
	// that applied.
	e, err := CompileEnvelope(`{a: event.data, b: event.data}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Build(&EnvelopeInput{Event: Event{Data: strings.Repeat("x", 3<<20)}, DataSize: 3<<20 + 2})
	if le := AsLimit(err); le == nil || le.Max != MaxEnvelopeBytes+3<<20+2 {
		t.Fatalf("err %v, want envelope_size with the data size added", err)
	}
}

// TestBoundedBuiltins: the builtins replaced to check sizes first (repeat,
// replace, join, toJSON, string, flatten) take the arguments and give the
// results expr's own do.
func TestBoundedBuiltins(t *testing.T) {
	body := map[string]any{"list": []any{"x", "y"}, "n": 2.0, "s": "z", "nested": []any{[]any{1.0}, []any{2.0, 3.0}}}
	for _, src := range []string{
		`flatten([[1],[2]]) == [1,2]`,
		`len(flatten([1..3, 4..5])) == 5`,
		`len(flatten(1..3)) == 3`,
		`len(flatten(split("a,b", ","))) == 2`,
		`len(flatten(body.nested)) == 3`,
		`join(["a","b"], ",") == "a,b"`,
		`join(["a","b"]) == "ab"`,
		`join(split("a,b", ","), "-") == "a-b"`,
		`join(body.list, ",") == "x,y"`,
		`repeat("ab", 2) == "abab"`,
		`repeat(body.s, body.n) == "zz"`,
		`replace("aaa", "a", "b") == "bbb"`,
		`replace("aaa", "a", "b", 1) == "baa"`,
		`replace("aaa", "", "-") == "-a-a-a-"`,
		`toJSON({a: 1}) == "{\n  \"a\": 1\n}"`,
		`toJSON(split("a,b", ",")) != ""`,
		`string(1) == "1"`,
		`string(body.n) == "2"`,
		`upper(string(body.list)) == "[X Y]"`,
		`sort(split("b,a", ","))[0] == "a"`,
	} {
		p, err := CompileRequestPredicate(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if ok, err := p.Match(&Request{Body: body}); !ok || err != nil {
			t.Errorf("%s: %v %v", src, ok, err)
		}
	}
}
