package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Bounds on what compiling a contract may cost. JSON Schemas (and samples,
// which compile to one) come from API clients as well as from the
// configuration, and the compiler of github.com/santhosh-tekuri/jsonschema/v5
// is superlinear: every $ref looks its target up among all the subschemas,
// and under draft 2020-12 (the default when $schema is absent) every
// subschema lists all the others for dynamic anchors. So the documents are
// measured, in one linear scan, before the compiler sees them.
const (
	// MaxSchemaBytes bounds the document and the local files it references,
	// together.
	MaxSchemaBytes = 8 << 20
	// MaxSchemaDepth bounds the nesting of JSON objects and arrays in any
	// document (a nested "properties" level counts two).
	MaxSchemaDepth = 128
	// MaxSchemaObjects bounds the JSON objects (subschemas, at most) of the
	// documents together.
	MaxSchemaObjects = 50_000
	// MaxSchemaWork bounds the superlinear part of the compile cost,
	// estimated as objects × $refs, plus objects² for draft 2020-12
	// documents. It allows well over a second of compiling on a small
	// machine, and refuses the seconds to minutes that hostile shapes took.
	MaxSchemaWork = 30_000_000
)

// LimitError reports that a schema or sample went over one of the bounds
// above. It is in the chain of the error FromSchema and FromSample return.
type LimitError struct {
	// Limit names the bound: "schema_size", "schema_depth",
	// "schema_objects" or "schema_work".
	Limit string
	// Max is the bound's value.
	Max int64
	// Got is the measured value (at least, for schema_size: reading stops
	// past the bound).
	Got int64
}

// Error implements error.
func (e *LimitError) Error() string {
	msg := fmt.Sprintf("%s bound exceeded: %d, max %d", e.Limit, e.Got, e.Max)
	if e.Limit == "schema_work" {
		msg += ` (a draft 2020-12 schema costs the square of its subschema count to compile: declare "$schema": "http://json-schema.org/draft-07/schema#" if it needs no 2020-12 keyword, or split it)`
	}
	return msg
}

// checkSize refuses a document over MaxSchemaBytes before any other work.
func checkSize(doc []byte) error {
	if len(doc) > MaxSchemaBytes {
		return &LimitError{Limit: "schema_size", Max: MaxSchemaBytes, Got: int64(len(doc))}
	}
	return nil
}

// schemaStats is what the scan measures.
type schemaStats struct {
	bytes, objects, refs int64
	quadratic            bool // a draft 2020-12 document is among them
}

// budget accumulates the stats of the documents one compilation reads.
type budget struct{ total schemaStats }

// add scans doc (valid JSON), adds it to the totals and checks the bounds.
func (b *budget) add(doc []byte) error {
	s, err := scan(doc)
	if err != nil {
		return err
	}
	t := &b.total
	t.bytes += s.bytes
	t.objects += s.objects
	t.refs += s.refs
	t.quadratic = t.quadratic || s.quadratic
	switch {
	case t.bytes > MaxSchemaBytes:
		return &LimitError{Limit: "schema_size", Max: MaxSchemaBytes, Got: t.bytes}
	case t.objects > MaxSchemaObjects:
		return &LimitError{Limit: "schema_objects", Max: MaxSchemaObjects, Got: t.objects}
	}
	work := t.objects * t.refs
	if t.quadratic {
		work += t.objects * t.objects
	}
	if work > MaxSchemaWork {
		return &LimitError{Limit: "schema_work", Max: MaxSchemaWork, Got: work}
	}
	return nil
}

// bound measures doc, the document c is about to compile, and makes c's
// loader measure every file it reads, so that the compilation stays within
// the bounds. It is called before anything is added to c.
func bound(c *jsonschema.Compiler, doc []byte) error {
	b := new(budget)
	if err := b.add(doc); err != nil {
		return err
	}
	load := c.LoadURL
	c.LoadURL = func(s string) (io.ReadCloser, error) {
		rc, err := load(s)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, MaxSchemaBytes-b.total.bytes+1))
		if err != nil {
			return nil, fmt.Errorf("reference %q: %w", s, err)
		}
		if !json.Valid(data) {
			if int64(len(data)) > MaxSchemaBytes-b.total.bytes {
				return nil, &LimitError{Limit: "schema_size", Max: MaxSchemaBytes, Got: b.total.bytes + int64(len(data))}
			}
			return nil, fmt.Errorf("reference %q: not valid JSON", s)
		}
		if err := b.add(data); err != nil {
			return nil, fmt.Errorf("reference %q: %w", s, err)
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return nil
}

// scan measures a valid JSON document in one pass without decoding it:
// size, nesting depth (checked on the way), objects, $ref and $dynamicRef
// keys, and whether the root declares (or defaults to) draft 2020-12.
func scan(doc []byte) (schemaStats, error) {
	s := schemaStats{bytes: int64(len(doc))}
	depth := 0
	inString := false
	start := 0 // start of the current string
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
				// A key is a string followed by a colon.
				if j := skipSpace(doc, i+1); j < len(doc) && doc[j] == ':' {
					if k := doc[start:i]; string(k) == "$ref" || string(k) == "$dynamicRef" {
						s.refs++
					}
				}
			}
			continue
		}
		switch c {
		case '"':
			inString, start = true, i+1
		case '{', '[':
			if c == '{' {
				s.objects++
			}
			depth++
			if depth > MaxSchemaDepth {
				return s, &LimitError{Limit: "schema_depth", Max: MaxSchemaDepth, Got: int64(depth)}
			}
		case '}', ']':
			depth--
		}
	}
	s.quadratic = isDraft2020(doc)
	return s, nil
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	return i
}

// isDraft2020 reports whether the compiler will take doc as draft 2020-12:
// its root declares it, or declares no known earlier draft (2020-12 is the
// default of newCompiler).
func isDraft2020(doc []byte) bool {
	var root struct {
		Schema string `json:"$schema"`
	}
	if json.Unmarshal(doc, &root) != nil {
		return true // not an object: the default draft
	}
	for _, d := range []string{"draft-04", "draft-06", "draft-07", "draft/2019-09"} {
		if strings.Contains(root.Schema, d) {
			return false
		}
	}
	return true
}
