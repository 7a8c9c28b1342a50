package schema

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// sampleNode validates a value against the schema inferred from a sample,
// without the general JSON Schema engine: the same rules and the same
// messages as the compiled inferred schema (a differential test and fuzz
// target hold them equal), and no allocation when the value is valid. It is
// the request-path validator of sample contracts.
type sampleNode struct {
	types    uint8 // accepted JSON types (t* bits); 0 accepts any value
	expected string
	props    []sampleProp // sorted by name; none that accepts any value
	required []string     // sorted, strict contracts only
	items    *sampleNode
}

// newSampleNode mirrors shape.schema.
func newSampleNode(s *shape, strict bool) *sampleNode {
	n := &sampleNode{}
	if s.any || s.types == 0 {
		return n
	}
	n.types = s.types
	var names []string
	for i, name := range typeNames {
		if s.types&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	n.expected = strings.Join(names, " or ")
	if s.types&tArray != 0 && s.items != nil {
		if items := newSampleNode(s.items, strict); items.types != 0 || len(items.props) > 0 {
			n.items = items
		}
	}
	if s.types&tObject != 0 && len(s.props) > 0 {
		for _, k := range slices.Sorted(maps.Keys(s.props)) {
			if p := newSampleNode(s.props[k], strict); p.types != 0 {
				n.props = append(n.props, sampleProp{k, p})
			}
		}
		if strict && len(s.required) > 0 {
			n.required = sortedKeys(s.required)
		}
	}
	return n
}

// sampleProp is a property an object's value is checked for.
type sampleProp struct {
	name string
	node *sampleNode
}

// walker carries the path of the value being validated (reused across
// levels: no allocation per property) and the errors found.
type walker struct {
	path []token
	errs []Error
}

type token struct {
	key    string
	index  int
	isItem bool
}

// fail records an error at the current path.
func (w *walker) fail(msg string) {
	var b strings.Builder
	for _, t := range w.path {
		b.WriteByte('/')
		if t.isItem {
			b.WriteString(strconv.Itoa(t.index))
		} else {
			b.WriteString(escapeToken(t.key))
		}
	}
	w.errs = append(w.errs, Error{Path: b.String(), Message: msg})
}

var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapeToken(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return tokenEscaper.Replace(s)
}

// typeOf returns the t* bit and JSON type name of a decoded value.
func typeOf(v any) (uint8, string) {
	switch v.(type) {
	case nil:
		return 0, "null"
	case bool:
		return tBoolean, "boolean"
	case float64, json.Number, float32, int, int64:
		return tNumber, "number"
	case string:
		return tString, "string"
	case []any:
		return tArray, "array"
	case map[string]any:
		return tObject, "object"
	}
	return 0, ""
}

// validate records the errors of v, found at w.path.
func (n *sampleNode) validate(v any, w *walker) {
	if n.types == 0 {
		return
	}
	bit, name := typeOf(v)
	if name == "" {
		w.fail("not a JSON value")
		return
	}
	if n.types&bit == 0 {
		w.fail("expected " + n.expected + ", but got " + name)
		return
	}
	switch v := v.(type) {
	case map[string]any:
		var missing []string
		for _, k := range n.required {
			if _, ok := v[k]; !ok {
				missing = append(missing, quote(k))
			}
		}
		if len(missing) > 0 {
			w.fail("missing properties: " + strings.Join(missing, ", "))
		}
		for _, p := range n.props {
			if pv, ok := v[p.name]; ok {
				w.path = append(w.path, token{key: p.name})
				p.node.validate(pv, w)
				w.path = w.path[:len(w.path)-1]
			}
		}
	case []any:
		if n.items != nil {
			for i, e := range v {
				w.path = append(w.path, token{index: i, isItem: true})
				n.items.validate(e, w)
				w.path = w.path[:len(w.path)-1]
			}
		}
	}
}

// quote quotes a property name the way the JSON Schema library does in its
// messages, so both validators say the same.
func quote(s string) string {
	s = strconv.Quote(s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}
