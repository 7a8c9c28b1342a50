// Package jsonvalue decodes a JSON document into the generic Go values of
// encoding/json (map[string]any, []any, string, float64, bool, nil), faster
// and with fewer allocations than json.Unmarshal into an any: one pass, no
// reflection, no separate validation pass. It is the request path's decoder;
// a differential fuzz target holds it equal to encoding/json.
//
// Where the time goes, and what it does about it:
//   - Strings without escapes (nearly all of them, and nearly every object
//     key) are substrings of one copy of the document made up front, not an
//     allocation each. A decoded value that is kept therefore keeps the
//     whole document's copy alive: callers hold decoded values for a
//     request, not longer.
//   - The members of an object and the elements of an array are gathered
//     on a stack shared by the whole document, then the map or slice is
//     made at its final size: no growing and rehashing of maps.
//   - Integers of up to 15 digits are converted without strconv (exactly:
//     they are below 2^53).
//   - The plain bytes of strings are skipped 8 at a time, white space by a
//     table lookup.
//
// Parse (doc.go) runs the same scanner into a flat, pooled list of nodes,
// for callers that need only part of a document.
package jsonvalue

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting, as encoding/json does.
const MaxDepth = 10000

// SyntaxError is a malformed document.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset) }

type decoder struct {
	data  []byte
	src   string // a copy of data: the substrings of the decoded strings
	pos   int
	depth int
	// members and elems are the stacks of the objects and arrays being
	// decoded (reused between documents through stacks).
	members []member
	elems   []any
}

type member struct {
	key   string
	value any
}

// maxPooledStack bounds the stacks kept for the next document, so that one
// huge document does not keep its stacks' memory.
const maxPooledStack = 4096

var stacks = sync.Pool{New: func() any { return new(decoder) }}

// Decode parses exactly one JSON value (surrounded by optional white space).
func Decode(data []byte) (any, error) {
	d := stacks.Get().(*decoder)
	d.data, d.src, d.pos, d.depth = data, string(data), 0, 0
	v, err := d.document()
	// A container clears its part of the stack when it is made, so only
	// an error leaves values there: those decoded before it.
	clear(d.members)
	clear(d.elems)
	d.members, d.elems = d.members[:0], d.elems[:0]
	if cap(d.members) > maxPooledStack {
		d.members = nil
	}
	if cap(d.elems) > maxPooledStack {
		d.elems = nil
	}
	d.data, d.src = nil, ""
	stacks.Put(d)
	return v, err
}

func (d *decoder) document() (any, error) {
	d.skipSpace()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.errorf("invalid character %s after top-level value", d.quoteChar())
	}
	return v, nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Offset: d.pos}
}

func (d *decoder) quoteChar() string {
	if d.pos >= len(d.data) {
		return "EOF"
	}
	c := d.data[d.pos]
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	if c < 0x20 || c >= utf8.RuneSelf {
		return fmt.Sprintf("%q", c)
	}
	return "'" + string(c) + "'"
}

func (d *decoder) skipSpace() {
	i, data := d.pos, d.data
	for i < len(data) && class[data[i]]&space != 0 {
		i++
	}
	d.pos = i
}

// Byte classes of the scanner's loops, looked up rather than compared.
const (
	space   = 1 << iota // ' ', '\t', '\n', '\r'
	special             // in a string: '"', '\\', a control character or a non-ASCII byte
)

// plainASCII returns the index of the first 8-byte word of data from i
// that holds a special byte (see class), or of the last incomplete word:
// the bytes before it are plain ASCII, none of '"', '\\' or a control
// character. It tests 8 bytes at a time.
func plainASCII(data []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(data); i += 8 {
		x := binary.LittleEndian.Uint64(data[i:])
		quote := x ^ (ones * '"')
		backslash := x ^ (ones * '\\')
		// A byte is zero in v when (v - 0x01) & ^v has its high bit; a
		// byte is under 0x20 when (x - 0x20) & ^x has it; a non-ASCII
		// byte has it itself.
		special := ((quote - ones) & ^quote) | ((backslash - ones) & ^backslash) | ((x - ones*0x20) & ^x) | x
		if special&highs != 0 {
			return i
		}
	}
	return i
}

var class = func() (c [256]uint8) {
	for _, b := range []byte(" \t\n\r") {
		c[b] |= space
	}
	for b := range 256 {
		if b == '"' || b == '\\' || b < 0x20 || b >= utf8.RuneSelf {
			c[b] |= special
		}
	}
	return c
}()

func (d *decoder) value() (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of JSON input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.string()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, d.errorf("invalid character %s looking for beginning of value", d.quoteChar())
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		for i := 0; i < len(lit); i++ {
			if d.pos >= len(d.data) {
				return d.errorf("unexpected end of JSON input")
			}
			if d.data[d.pos] != lit[i] {
				return d.errorf("invalid character %s in literal %s", d.quoteChar(), lit)
			}
			d.pos++
		}
	}
	d.pos += len(lit)
	return nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return d.errorf("exceeded max depth")
	}
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // {
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return make(map[string]any), nil
	}
	base := len(d.members)
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of JSON input")
		}
		if d.data[d.pos] != '"' {
			return nil, d.errorf("invalid character %s looking for beginning of object key string", d.quoteChar())
		}
		key, err := d.string()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of JSON input")
		}
		if d.data[d.pos] != ':' {
			return nil, d.errorf("invalid character %s after object key", d.quoteChar())
		}
		d.pos++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.members = append(d.members, member{key, v})
		if done, err := d.separator('}', "object key:value pair"); done || err != nil {
			if err != nil {
				return nil, err
			}
			ms := d.members[base:]
			m := make(map[string]any, len(ms))
			for _, kv := range ms {
				m[kv.key] = kv.value // in document order: the last duplicate wins
			}
			clear(ms)
			d.members = d.members[:base]
			return m, nil
		}
	}
}

// separator reads the ',' between two members or elements, or the closing
// byte, which ends the container: done is true then.
func (d *decoder) separator(closing byte, after string) (done bool, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, d.errorf("unexpected end of JSON input")
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipSpace()
		return false, nil
	case closing:
		d.pos++
		d.depth--
		return true, nil
	}
	return false, d.errorf("invalid character %s after %s", d.quoteChar(), after)
}

func (d *decoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // [
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return []any{}, nil
	}
	base := len(d.elems)
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.elems = append(d.elems, v)
		if done, err := d.separator(']', "array element"); done || err != nil {
			if err != nil {
				return nil, err
			}
			es := d.elems[base:]
			a := make([]any, len(es))
			copy(a, es)
			clear(es)
			d.elems = d.elems[:base]
			return a, nil
		}
	}
}

// string decodes a string starting at the opening quote. Invalid UTF-8 is
// replaced by U+FFFD, as encoding/json does.
func (d *decoder) string() (string, error) {
	raw, start, end, s, err := d.scanString()
	if raw {
		return d.src[start:end], nil
	}
	return s, err
}

// scanString reads a string starting at the opening quote. When raw is
// true the string is d.data[start:end] as is (no escapes, valid UTF-8): a
// substring of d.src, no allocation; otherwise it is s.
func (d *decoder) scanString() (raw bool, start, end int, s string, err error) {
	d.pos++ // opening quote
	start = d.pos
	// Fast path: no escapes: a substring of the document, when it is valid
	// UTF-8.
	ascii := true
	i := d.pos
	for ; i < len(d.data); i++ {
		i = plainASCII(d.data, i) // the bulk of a string
		for i < len(d.data) && class[d.data[i]]&special == 0 {
			i++
		}
		if i == len(d.data) {
			break
		}
		c := d.data[i]
		if c == '"' {
			d.pos = i + 1
			if ascii || utf8.ValidString(d.src[start:i]) {
				return true, start, i, "", nil
			}
			return false, 0, 0, string([]rune(d.src[start:i])), nil // replace invalid bytes
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	d.pos = i
	s, err = d.escapedString(start)
	return false, 0, 0, s, err
}

// escapedString decodes the rest of a string that has escapes (or a
// control character) from d.pos, start being its first byte.
func (d *decoder) escapedString(start int) (string, error) {
	buf := make([]byte, 0, d.pos-start+16)
	buf = append(buf, d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			if utf8.Valid(buf) {
				return string(buf), nil
			}
			return string([]rune(string(buf))), nil
		case c < 0x20:
			return "", d.errorf("invalid character %s in string literal", d.quoteChar())
		case c == '\\':
			d.pos++
			if d.pos >= len(d.data) {
				return "", d.errorf("unexpected end of JSON input")
			}
			switch e := d.data[d.pos]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
				d.pos++
			case 'b':
				buf = append(buf, '\b')
				d.pos++
			case 'f':
				buf = append(buf, '\f')
				d.pos++
			case 'n':
				buf = append(buf, '\n')
				d.pos++
			case 'r':
				buf = append(buf, '\r')
				d.pos++
			case 't':
				buf = append(buf, '\t')
				d.pos++
			case 'u':
				d.pos++
				r, ok := d.hex4()
				if !ok {
					return "", d.errorf("invalid character %s in \\u hexadecimal character escape", d.quoteChar())
				}
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						save := d.pos
						d.pos += 2
						if lo, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
								r2 = dec
							} else {
								d.pos = save // not a pair: decode the second escape on its own
							}
						} else {
							return "", d.errorf("invalid character %s in \\u hexadecimal character escape", d.quoteChar())
						}
					}
					r = r2
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", d.errorf("invalid character %s in string escape code", d.quoteChar())
			}
		default:
			buf = append(buf, c)
			d.pos++
		}
	}
	return "", d.errorf("unexpected end of JSON input")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		for d.pos < len(d.data) && isHex(d.data[d.pos]) {
			d.pos++
		}
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := d.data[d.pos]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
		d.pos++
	}
	return r, true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number decodes an RFC 8259 number into a float64.
func (d *decoder) number() (any, error) {
	f, err := d.float()
	if err != nil {
		return nil, err
	}
	return f, nil
}

// float decodes an RFC 8259 number.
func (d *decoder) float() (float64, error) {
	start := d.pos
	if f, ok := d.smallInt(); ok {
		return f, nil
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return 0, d.errorf("unexpected end of JSON input")
	}
	switch c := d.data[d.pos]; {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	default:
		return 0, d.errorf("invalid character %s in numeric literal", d.quoteChar())
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.pos >= len(d.data) {
			return 0, d.errorf("unexpected end of JSON input")
		}
		if c := d.data[d.pos]; c < '0' || c > '9' {
			return 0, d.errorf("invalid character %s after decimal point in numeric literal", d.quoteChar())
		}
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, d.errorf("unexpected end of JSON input")
		}
		if c := d.data[d.pos]; c < '0' || c > '9' {
			return 0, d.errorf("invalid character %s in exponent of numeric literal", d.quoteChar())
		}
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	}
	f, err := strconv.ParseFloat(d.src[start:d.pos], 64)
	if err != nil {
		// Out of float64 range: encoding/json refuses it too.
		return 0, &SyntaxError{Msg: "number " + string(d.data[start:d.pos]) + " out of range", Offset: start}
	}
	return f, nil
}

// smallInt decodes, and steps over, a number that is an integer of at most
// 15 digits without a leading zero (or a lone 0), not followed by a
// fraction or an exponent: exactly the float64 strconv.ParseFloat gives,
// as such integers are below 2^53. Anything else is left to number (ok is
// false and the position does not move).
func (d *decoder) smallInt() (float64, bool) {
	i := d.pos
	neg := d.data[i] == '-'
	if neg {
		i++
	}
	start := i
	var n uint64
	for ; i < len(d.data) && i-start <= 15; i++ {
		c := d.data[i]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	digits := i - start
	if digits == 0 || digits > 15 || (digits > 1 && d.data[start] == '0') {
		return 0, false
	}
	if i < len(d.data) {
		if c := d.data[i]; c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9') {
			return 0, false
		}
	}
	d.pos = i
	f := float64(n)
	if neg {
		f = -f
	}
	return f, true
}
