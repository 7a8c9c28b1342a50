package filters

import (
	"strings"
	"testing"
	"time"
)

// FuzzExpression compiles any source as a workflow filter, a subscription
// predicate and an envelope, and evaluates what compiles against a small
// payload: nothing may panic, and no evaluation may outlast its bounds
// (MaxEvalTime, with room for a loaded machine and the race detector).
func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		`body.eventType in ["groupcreated", "sharepointcreated"]`,
		`body?.user?.id == "x" && len(body.list) > 0`,
		`any(body.list, # in body.list)`,
		`let r = 1..700; all(r, all(r, all(r, true)))`,
		`len(reduce(1..64, #acc + #acc, "xx")) > 0`,
		`len(repeat(repeat("x", 1000), 1000)) > 0`,
		`topic startsWith "document." && tenant == "ZZ1"`,
		`{a: event.data, b: merge(event.data, {x: 1})}`,
		`toJSON(map(1..10, {i: #}))`,
		strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100),
		strings.Repeat("[", 70),
	} {
		f.Add(s)
	}
	for _, preset := range Presets {
		f.Add(preset)
	}
	body := map[string]any{
		"eventType": "groupcreated",
		"user":      map[string]any{"id": "x"},
		"list":      []any{1.0, "two", nil, true, map[string]any{"k": "v"}},
		"s":         "abc",
	}
	data := map[string]any{"k": "v", "n": 2.0}
	f.Fuzz(func(t *testing.T, src string) {
		deadline := 20 * MaxEvalTime
		if p, err := CompileRequestPredicate(src); err == nil {
			start := time.Now()
			_, _ = p.Match(&Request{Body: body, Headers: map[string]string{"x": "y"}, Method: "POST"})
			if d := time.Since(start); d > deadline {
				t.Fatalf("filter took %s", d)
			}
		}
		if p, err := CompileEventPredicate(src); err == nil {
			start := time.Now()
			_, _ = p.Match(&Event{ID: "1", Topic: "t", Data: data, Time: time.Unix(0, 0)})
			if d := time.Since(start); d > deadline {
				t.Fatalf("predicate took %s", d)
			}
		}
		if e, err := CompileEnvelope(src); err == nil {
			start := time.Now()
			b, err := e.Build(&EnvelopeInput{Event: Event{ID: "1", Topic: "t", Data: data, Time: time.Unix(0, 0)}})
			if d := time.Since(start); d > deadline {
				t.Fatalf("envelope took %s", d)
			}
			if err == nil && !e.Raw() && e.kind == envExpr && len(b) > MaxEnvelopeBytes {
				t.Fatalf("envelope of %d bytes", len(b))
			}
		}
	})
}
