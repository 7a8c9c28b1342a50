// Package jsonvalue decodes a JSON document into the generic Go values of
// encoding/json (map[string]any, []any, string, float64, bool, nil), faster
// and with fewer allocations than json.Unmarshal into an any: one pass, no
// reflection, no separate validation pass. It is the request path's decoder;
// a differential fuzz target holds it equal to encoding/json.
package jsonvalue

import (
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
	pos   int
	depth int
	keys  *keyCache
}

// keyCache remembers recent object keys, so the keys every payload of a
// workflow repeats are not allocated again for each request. It is bounded
// (a slot per hash bucket, replaced on collision): hostile keys cannot grow
// it.
type keyCache [512]string

var keyCaches = sync.Pool{New: func() any { return new(keyCache) }}

// Decode parses exactly one JSON value (surrounded by optional white space).
func Decode(data []byte) (any, error) {
	d := decoder{data: data, keys: keyCaches.Get().(*keyCache)}
	defer keyCaches.Put(d.keys)
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
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

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
	m := make(map[string]any)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of JSON input")
		}
		if d.data[d.pos] != '"' {
			return nil, d.errorf("invalid character %s looking for beginning of object key string", d.quoteChar())
		}
		key, err := d.key()
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
		m[key] = v
		if done, err := d.separator('}', "object key:value pair"); done || err != nil {
			return m, err
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
	a := make([]any, 0, 4)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if done, err := d.separator(']', "array element"); done || err != nil {
			return a, err
		}
	}
}

// key decodes an object key: through the key cache when it has no escapes.
func (d *decoder) key() (string, error) {
	start := d.pos + 1
	var h uint32 = 2166136261
	for i := start; i < len(d.data); i++ {
		c := d.data[i]
		if c == '"' {
			raw := d.data[start:i]
			if !utf8.Valid(raw) {
				break
			}
			slot := &d.keys[h%uint32(len(d.keys))]
			if *slot != string(raw) {
				*slot = string(raw)
			}
			d.pos = i + 1
			return *slot, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return d.string()
}

// string decodes a string starting at the opening quote. Invalid UTF-8 is
// replaced by U+FFFD, as encoding/json does.
func (d *decoder) string() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	// Fast path: no escapes, valid ASCII/UTF-8.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			s := d.data[start:d.pos]
			d.pos++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return string([]rune(string(s))), nil // replace invalid bytes
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.pos++
	}
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
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of JSON input")
	}
	switch c := d.data[d.pos]; {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	default:
		return nil, d.errorf("invalid character %s in numeric literal", d.quoteChar())
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of JSON input")
		}
		if c := d.data[d.pos]; c < '0' || c > '9' {
			return nil, d.errorf("invalid character %s after decimal point in numeric literal", d.quoteChar())
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
			return nil, d.errorf("unexpected end of JSON input")
		}
		if c := d.data[d.pos]; c < '0' || c > '9' {
			return nil, d.errorf("invalid character %s in exponent of numeric literal", d.quoteChar())
		}
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	}
	f, err := strconv.ParseFloat(string(d.data[start:d.pos]), 64)
	if err != nil {
		// Out of float64 range: encoding/json refuses it too.
		return nil, &SyntaxError{Msg: "number " + string(d.data[start:d.pos]) + " out of range", Offset: start}
	}
	return f, nil
}
