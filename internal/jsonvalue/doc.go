package jsonvalue

import (
	"sync"
	"unsafe"
)

// A Doc is a parsed JSON document kept as a flat list of nodes instead of a
// tree of maps and slices: parsing it allocates nothing but the strings
// that had to be decoded (escapes, invalid UTF-8); the node list is pooled
// and refers to the parsed bytes rather than copy them. Callers that need
// only some of a document (a validator that looks at types, a filter that
// reads a few members) walk the nodes and build Go values only for the
// parts they keep (Value). Parse accepts and refuses exactly what Decode
// does, with the same errors: both run the same scanner.

// Kind is the JSON type of a node.
type Kind uint8

// Kinds of nodes.
const (
	Null Kind = iota
	False
	True
	Number
	String
	Array
	Object
)

// Ref designates a node of a Doc. The root is Root; the children of an
// array or object are First(r), then Next of each.
type Ref int32

// Root is the document's top-level value.
const Root Ref = 0

// node is one value of a Doc. Containers are followed by their children
// (members of an object carry their key), and next is the index just past
// the whole subtree: the next sibling. A node holds no pointer (the node
// list is not scanned by the garbage collector, nor written with write
// barriers): strings are spans of the parsed bytes, or, when they had to
// be decoded (escapes, invalid UTF-8), indexes into Doc.strs.
type node struct {
	num    float64
	kind   Kind
	flags  uint8 // decodedStr, decodedKey
	n      int32 // members or elements of a container
	next   int32
	a, b   int32 // a string value: data[a:b], or strs[a] when decodedStr
	ka, kb int32 // a member key: data[ka:kb], or strs[ka] when decodedKey
}

const (
	decodedStr = 1 << iota
	decodedKey
)

// Doc is a parsed document. It is valid until Release, and its bytes must
// not change until then; the values Value returns stay valid after it.
type Doc struct {
	nodes []node
	strs  []string // the strings that had to be decoded
	src   string   // a copy of the bytes, made when Value builds a container
	dec   decoder
	d     *decoder // &dec while parsing
}

var docs = sync.Pool{New: func() any { return new(Doc) }}

// Parse parses exactly one JSON value (surrounded by optional white space),
// as Decode does, into a Doc. data must not change until the Doc is
// released: the Doc refers to it rather than copy it.
func Parse(data []byte) (*Doc, error) {
	doc := docs.Get().(*Doc)
	d := &doc.dec
	// The scanner reads the document through d.src too: here an alias of
	// data, never kept (Value copies what it returns).
	d.data, d.src, d.pos, d.depth = data, unsafe.String(unsafe.SliceData(data), len(data)), 0, 0
	doc.d = d
	d.skipSpace()
	err := doc.value(false)
	if err == nil {
		d.skipSpace()
		if d.pos != len(d.data) {
			err = d.errorf("invalid character %s after top-level value", d.quoteChar())
		}
	}
	if err != nil {
		doc.Release()
		return nil, err
	}
	return doc, nil
}

// Release returns the Doc's memory for the next Parse. The Doc must not be
// used after it.
func (doc *Doc) Release() {
	doc.dec.data, doc.dec.src, doc.d, doc.src = nil, "", nil, ""
	doc.nodes = doc.nodes[:0]
	if cap(doc.nodes) > maxPooledStack {
		doc.nodes = nil
	}
	clear(doc.strs)
	doc.strs = doc.strs[:0]
	if cap(doc.strs) > maxPooledStack {
		doc.strs = nil
	}
	docs.Put(doc)
}

// str reads the string at d.pos into a span of data or a decoded string:
// the a, b (or strs index) of a node, and whether it was decoded.
func (doc *Doc) str() (a, b int32, decoded bool, err error) {
	raw, start, end, s, err := doc.d.scanString()
	if err != nil {
		return 0, 0, false, err
	}
	if raw {
		return int32(start), int32(end), false, nil
	}
	doc.strs = append(doc.strs, s)
	return int32(len(doc.strs) - 1), 0, true, nil
}

// value appends the value at d.pos, and its children. In an object
// (member), the node was appended already, with its key.
func (doc *Doc) value(member bool) error {
	d := doc.d
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of JSON input")
	}
	if !member {
		doc.nodes = append(doc.nodes, node{})
	}
	i := len(doc.nodes) - 1
	nd := &doc.nodes[i]
	switch c := d.data[d.pos]; {
	case c == '{':
		nd.kind = Object
		return doc.object(i)
	case c == '[':
		nd.kind = Array
		return doc.array(i)
	case c == '"':
		a, b, decoded, err := doc.str()
		nd = &doc.nodes[i] // doc.str does not append nodes, but be plain about it
		nd.kind, nd.a, nd.b, nd.next = String, a, b, int32(len(doc.nodes))
		if decoded {
			nd.flags |= decodedStr
		}
		return err
	case c == 't':
		nd.kind, nd.next = True, int32(len(doc.nodes))
		return d.literal("true")
	case c == 'f':
		nd.kind, nd.next = False, int32(len(doc.nodes))
		return d.literal("false")
	case c == 'n':
		nd.kind, nd.next = Null, int32(len(doc.nodes))
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		f, err := d.float()
		nd.kind, nd.num = Number, f
		nd.next = int32(len(doc.nodes))
		return err
	}
	return d.errorf("invalid character %s looking for beginning of value", d.quoteChar())
}

// object parses the object whose node is i (as decoder.object does).
func (doc *Doc) object(i int) error {
	d := doc.d
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++ // {
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		doc.nodes[i].next = int32(len(doc.nodes))
		return nil
	}
	var n int32
	for {
		if d.pos >= len(d.data) {
			return d.errorf("unexpected end of JSON input")
		}
		if d.data[d.pos] != '"' {
			return d.errorf("invalid character %s looking for beginning of object key string", d.quoteChar())
		}
		ka, kb, decoded, err := doc.str()
		if err != nil {
			return err
		}
		nd := node{ka: ka, kb: kb}
		if decoded {
			nd.flags = decodedKey
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf("unexpected end of JSON input")
		}
		if d.data[d.pos] != ':' {
			return d.errorf("invalid character %s after object key", d.quoteChar())
		}
		d.pos++
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf("unexpected end of JSON input")
		}
		doc.nodes = append(doc.nodes, nd)
		if err := doc.value(true); err != nil {
			return err
		}
		n++
		if done, err := doc.separator(i, n, '}', "object key:value pair"); done {
			return err
		}
	}
}

// array parses the array whose node is i (as decoder.array does).
func (doc *Doc) array(i int) error {
	d := doc.d
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++ // [
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		doc.nodes[i].next = int32(len(doc.nodes))
		return nil
	}
	var n int32
	for {
		if err := doc.value(false); err != nil {
			return err
		}
		n++
		if done, err := doc.separator(i, n, ']', "array element"); done {
			return err
		}
	}
}

// separator reads what follows the n-th member or element of the
// container whose node is i: a comma, or its end, where the container's
// count and extent are recorded. done reports the end or an error.
func (doc *Doc) separator(i int, n int32, end byte, what string) (done bool, err error) {
	done, err = doc.d.separator(end, what)
	if done && err == nil {
		doc.nodes[i].n, doc.nodes[i].next = n, int32(len(doc.nodes))
	}
	return done || err != nil, err
}

// Kind returns the JSON type of r.
func (doc *Doc) Kind(r Ref) Kind { return doc.nodes[r].kind }

// Len returns the number of members of an object or elements of an array
// (duplicate keys counted), 0 for any other value.
func (doc *Doc) Len(r Ref) int { return int(doc.nodes[r].n) }

// First returns the first child of a non-empty container r. The children
// follow one another in document order: Next(c) is the one after c, for
// Len(r) children in all.
func (doc *Doc) First(r Ref) Ref { return r + 1 }

// Next returns the sibling after r, in its container.
func (doc *Doc) Next(r Ref) Ref { return Ref(doc.nodes[r].next) }

// Key returns the member key of r, a member of an object. The string
// shares the parsed bytes: it is valid until Release; copy it to keep it.
func (doc *Doc) Key(r Ref) string {
	nd := &doc.nodes[r]
	if nd.flags&decodedKey != 0 {
		return doc.strs[nd.ka]
	}
	return doc.span(nd.ka, nd.kb)
}

// span is data[a:b] as a string sharing its bytes.
func (doc *Doc) span(a, b int32) string {
	if a == b {
		return ""
	}
	return unsafe.String(&doc.dec.data[a], b-a)
}

// Lookup returns the member of object r named key: the last one, when the
// key is duplicated, as in the map Decode returns.
func (doc *Doc) Lookup(r Ref, key string) (Ref, bool) {
	found, ok := Ref(0), false
	c := r + 1
	for range doc.nodes[r].n {
		if doc.Key(c) == key {
			found, ok = c, true
		}
		c = Ref(doc.nodes[c].next)
	}
	return found, ok
}

// Value returns r as Decode returns it: map[string]any, []any, string,
// float64, bool or nil, newly made and independent of the Doc. Strings
// within a container are substrings of one copy of the document, as
// Decode's are.
func (doc *Doc) Value(r Ref) any {
	nd := &doc.nodes[r]
	switch nd.kind {
	case String:
		if nd.flags&decodedStr != 0 {
			return doc.strs[nd.a]
		}
		return string(doc.dec.data[nd.a:nd.b])
	case Array, Object:
		if doc.src == "" {
			doc.src = string(doc.dec.data)
		}
	}
	return doc.build(r)
}

// build is Value, with the strings taken from doc.src.
func (doc *Doc) build(r Ref) any {
	nd := &doc.nodes[r]
	switch nd.kind {
	case False:
		return false
	case True:
		return true
	case Number:
		return nd.num
	case String:
		if nd.flags&decodedStr != 0 {
			return doc.strs[nd.a]
		}
		return doc.src[nd.a:nd.b]
	case Array:
		a := make([]any, nd.n)
		c := r + 1
		for i := range a {
			a[i] = doc.build(c)
			c = Ref(doc.nodes[c].next)
		}
		return a
	case Object:
		m := make(map[string]any, nd.n)
		c := r + 1
		for range nd.n {
			k := &doc.nodes[c]
			var key string
			if k.flags&decodedKey != 0 {
				key = doc.strs[k.ka]
			} else {
				key = doc.src[k.ka:k.kb]
			}
			m[key] = doc.build(c) // in document order: the last duplicate wins
			c = Ref(k.next)
		}
		return m
	}
	return nil
}
