package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// draft2020 is the $schema of inferred schemas.
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// sampleBase is the base URL under which inferred schemas are compiled.
const sampleBase = "inline:///sample.schema.json"

// Limits on samples. Compiling a JSON Schema with jsonschema/v5 costs time
// that grows faster than linearly with the number of subschemas (quadratic
// for 2020-12) and with nesting depth (a 400-level sample takes tens of
// seconds), so samples beyond these limits are refused rather than stalling
// configuration loading. Real webhook payloads are far below them.
const (
	// MaxSampleDepth is the deepest nesting of objects and arrays a sample
	// may have.
	MaxSampleDepth = 32
	// MaxSampleNodes is the largest number of subschemas a sample may infer
	// (one per distinct field path, array items merged).
	MaxSampleNodes = 4000
)

// errSampleTooLarge is wrapped by FromSample errors for samples beyond
// MaxSampleDepth or MaxSampleNodes.
var errSampleTooLarge = errors.New("sample too large")

// FromSample infers a contract from a sample JSON document. The inferred
// contract is a JSON Schema 2020-12 document (see [Contract.JSONSchema]); it
// is compiled like any other schema, so what is exported is exactly what
// validates.
//
// Inference rules:
//   - every field present in the sample must, when present in a payload,
//     have the sample's JSON type: string, boolean, number, object or array;
//   - numbers always infer "number", never "integer": a sample value of 1
//     also accepts 1.5, because one sample cannot tell whether a field is
//     integral;
//   - objects recurse; fields not in the sample are allowed (no
//     additionalProperties: false);
//   - arrays take the union of their element types: object elements have
//     their properties merged, mixed element types give a type list
//     (e.g. ["number", "string"]), and an empty array accepts any items;
//   - null in the sample accepts any type (the sample says nothing about it);
//   - strict makes every sample field required, at every object level. For
//     objects inside arrays, the fields present in every element object are
//     required, so the sample itself always satisfies its own contract.
//
// The root may be any JSON value. The sample must be valid JSON, otherwise
// the error gives the line, column and byte offset of the problem. Samples
// nested deeper than [MaxSampleDepth] or inferring more than
// [MaxSampleNodes] subschemas are refused.
func FromSample(sample []byte, strict bool) (*Contract, error) {
	if err := checkJSON(sample); err != nil {
		return nil, fmt.Errorf("sample is not valid JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(sample))
	dec.UseNumber() // types only; also accepts numbers too large for float64
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("sample is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("sample is not valid JSON: data after the top-level value")
	}

	b := builder{nodes: 1}
	var root shape
	if err := b.add(&root, v, 0); err != nil {
		return nil, err
	}
	doc := root.schema(strict)
	doc["$schema"] = draft2020

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep field names such as "a<b" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding inferred schema: %w", err)
	}
	raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	sch, err := compile(sampleBase, raw, false)
	if err != nil {
		return nil, fmt.Errorf("compiling inferred schema: %w", err)
	}
	return &Contract{sch: sch, doc: raw, sample: newSampleNode(&root, strict)}, nil
}

// JSON types tracked by inference, as a bit set.
const (
	tArray = 1 << iota
	tBoolean
	tNumber
	tObject
	tString
)

// typeNames lists the JSON Schema type names in a fixed order (matching the
// bits above) so that generated schemas are deterministic.
var typeNames = [...]string{"array", "boolean", "number", "object", "string"}

// shape accumulates what the sample says about one location: the union of
// the values seen there.
type shape struct {
	any   bool // a null was seen: any value is accepted
	types uint8

	// objects
	props    map[string]*shape
	required map[string]bool // keys present in every object seen so far
	seenObj  bool

	// arrays; nil when no element has been seen
	items *shape
}

// builder enforces the sample limits while shapes are built.
type builder struct {
	nodes int // shapes created so far
}

// newShape returns a new shape, counting it against MaxSampleNodes.
func (b *builder) newShape() (*shape, error) {
	b.nodes++
	if b.nodes > MaxSampleNodes {
		return nil, fmt.Errorf("%w: it would infer more than %d subschemas", errSampleTooLarge, MaxSampleNodes)
	}
	return &shape{}, nil
}

// add merges value v (decoded with UseNumber), found at nesting depth
// depth, into s.
func (b *builder) add(s *shape, v any, depth int) error {
	switch v.(type) {
	case []any, map[string]any:
		if depth >= MaxSampleDepth {
			return fmt.Errorf("%w: nested deeper than %d levels", errSampleTooLarge, MaxSampleDepth)
		}
	}
	switch v := v.(type) {
	case nil:
		s.any = true
	case bool:
		s.types |= tBoolean
	case json.Number, float64:
		s.types |= tNumber
	case string:
		s.types |= tString
	case []any:
		s.types |= tArray
		for _, e := range v {
			if s.items == nil {
				items, err := b.newShape()
				if err != nil {
					return err
				}
				s.items = items
			}
			if err := b.add(s.items, e, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		s.types |= tObject
		if s.props == nil {
			s.props = make(map[string]*shape, len(v))
		}
		for k, e := range v {
			p := s.props[k]
			if p == nil {
				var err error
				if p, err = b.newShape(); err != nil {
					return err
				}
				s.props[k] = p
			}
			if err := b.add(p, e, depth+1); err != nil {
				return err
			}
		}
		if !s.seenObj {
			s.seenObj = true
			s.required = make(map[string]bool, len(v))
			for k := range v {
				s.required[k] = true
			}
		} else {
			for k := range s.required {
				if _, ok := v[k]; !ok {
					delete(s.required, k)
				}
			}
		}
	}
	return nil
}

// schema returns the JSON Schema for s.
func (s *shape) schema(strict bool) map[string]any {
	out := map[string]any{}
	if s.any || s.types == 0 {
		return out
	}
	var types []string
	for i, name := range typeNames {
		if s.types&(1<<i) != 0 {
			types = append(types, name)
		}
	}
	if len(types) == 1 {
		out["type"] = types[0]
	} else {
		out["type"] = types
	}

	if s.types&tArray != 0 && s.items != nil {
		if items := s.items.schema(strict); len(items) > 0 {
			out["items"] = items
		}
	}
	if s.types&tObject != 0 && len(s.props) > 0 {
		props := make(map[string]any, len(s.props))
		for k, p := range s.props {
			props[k] = p.schema(strict)
		}
		out["properties"] = props
		if strict && len(s.required) > 0 {
			out["required"] = sortedKeys(s.required)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
