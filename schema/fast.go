package schema

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hookgate/hookgate/internal/jsonvalue"
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
	// names maps each name of props and required to its place in them
	// (-1 when not there): validateDoc finds an object's members with it.
	names map[string]nameIndex
}

// nameIndex is where a member name is in a sampleNode's props and required.
type nameIndex struct{ prop, required int32 }

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
	if len(n.props)+len(n.required) > 0 {
		n.names = make(map[string]nameIndex, len(n.props)+len(n.required))
		for i, p := range n.props {
			n.names[p.name] = nameIndex{prop: int32(i), required: -1}
		}
		for i, k := range n.required {
			x, ok := n.names[k]
			if !ok {
				x.prop = -1
			}
			x.required = int32(i)
			n.names[k] = x
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

// walkers keeps walkers' path stacks between validations.
var walkers = sync.Pool{New: func() any { return &walker{path: make([]token, 0, 8)} }}

// newWalker returns an empty walker from the pool; release it when its
// errors have been taken.
func newWalker() *walker { return walkers.Get().(*walker) }

func (w *walker) release() {
	clear(w.path[:cap(w.path)])
	w.path, w.errs = w.path[:0], nil
	if cap(w.path) <= 64 {
		walkers.Put(w)
	}
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

// ValidatesDocs reports whether ValidateDoc validates parsed documents:
// whether c is a sample contract.
func (c *Contract) ValidatesDocs() bool { return c.sample != nil }

// ValidateDoc validates the root of a parsed document exactly as Validate
// validates the decoded value (doc.Value(jsonvalue.Root)), errors
// included, without building that value, when the contract can: a sample
// contract. ok is false for any other contract, and nothing was checked:
// validate the decoded value then.
func (c *Contract) ValidateDoc(doc *jsonvalue.Doc) (errs []Error, ok bool) {
	if c.sample == nil {
		return nil, false
	}
	w := docWalkers.Get().(*docWalker)
	w.root = c.sample
	c.sample.validateDoc(doc, jsonvalue.Root, w)
	errs = w.errs
	w.root, w.steps, w.errs = nil, w.steps[:0], nil
	if cap(w.steps) <= 64 {
		docWalkers.Put(w)
	}
	if len(errs) == 0 {
		return nil, true
	}
	return sortErrors(errs), true
}

// docWalker is the walker of validateDoc. Its path holds no pointer (so
// stepping down writes no pointer): each step is the place of a property
// in its node's props, or an array index (-1-index); fail finds the names
// from the root.
type docWalker struct {
	root  *sampleNode
	steps []int32
	errs  []Error
}

var docWalkers = sync.Pool{New: func() any { return &docWalker{steps: make([]int32, 0, 8)} }}

// fail records an error at the current path.
func (w *docWalker) fail(msg string) {
	var b strings.Builder
	n := w.root
	for _, s := range w.steps {
		b.WriteByte('/')
		if s < 0 {
			b.WriteString(strconv.Itoa(int(-1 - s)))
			n = n.items
			continue
		}
		p := n.props[s]
		b.WriteString(escapeToken(p.name))
		n = p.node
	}
	w.errs = append(w.errs, Error{Path: b.String(), Message: msg})
}

// kindType is typeOf for a node of a parsed document.
func kindType(k jsonvalue.Kind) (uint8, string) {
	switch k {
	case jsonvalue.False, jsonvalue.True:
		return tBoolean, "boolean"
	case jsonvalue.Number:
		return tNumber, "number"
	case jsonvalue.String:
		return tString, "string"
	case jsonvalue.Array:
		return tArray, "array"
	case jsonvalue.Object:
		return tObject, "object"
	}
	return 0, "null"
}

// validateDoc is validate on node r of doc.
func (n *sampleNode) validateDoc(doc *jsonvalue.Doc, r jsonvalue.Ref, w *docWalker) {
	if n.types == 0 {
		return
	}
	kind := doc.Kind(r)
	bit, name := kindType(kind)
	if n.types&bit == 0 {
		w.fail("expected " + n.expected + ", but got " + name)
		return
	}
	switch kind {
	case jsonvalue.Object:
		if n.names == nil {
			return
		}
		// One pass over the members: each one named by the contract is
		// found in names and noted, the last of duplicates winning, as in
		// a decoded map.
		var propBuf [32]jsonvalue.Ref // Root, never a member, is "absent"
		var reqBuf [32]bool
		found, present := propBuf[:], reqBuf[:]
		if len(n.props) > len(propBuf) {
			found = make([]jsonvalue.Ref, len(n.props))
		}
		if len(n.required) > len(reqBuf) {
			present = make([]bool, len(n.required))
		}
		c := doc.First(r)
		for range doc.Len(r) {
			if x, ok := n.names[doc.Key(c)]; ok {
				if x.prop >= 0 {
					found[x.prop] = c
				}
				if x.required >= 0 {
					present[x.required] = true
				}
			}
			c = doc.Next(c)
		}
		var missing []string
		for i, k := range n.required {
			if !present[i] {
				missing = append(missing, quote(k))
			}
		}
		if len(missing) > 0 {
			w.fail("missing properties: " + strings.Join(missing, ", "))
		}
		for i, p := range n.props {
			if m := found[i]; m != jsonvalue.Root {
				w.steps = append(w.steps, int32(i))
				p.node.validateDoc(doc, m, w)
				w.steps = w.steps[:len(w.steps)-1]
			}
		}
	case jsonvalue.Array:
		if n.items != nil {
			c := doc.First(r)
			for i := range doc.Len(r) {
				w.steps = append(w.steps, int32(-1-i))
				n.items.validateDoc(doc, c, w)
				w.steps = w.steps[:len(w.steps)-1]
				c = doc.Next(c)
			}
		}
	}
}
