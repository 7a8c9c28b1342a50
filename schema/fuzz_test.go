package schema

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzFromSample checks that FromSample never panics and that, when it
// succeeds, the sample validates against its own contract, strict or not.
func FuzzFromSample(f *testing.F) {
	files, err := filepath.Glob("../examples/easylife/*.json")
	if err != nil || len(files) != 5 {
		f.Fatalf("EasyLife payloads: %v (%d files)", err, len(files))
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"a":1},{"a":null,"b":[[],[1,"x"]]},"s",null]`))
	f.Add([]byte(`{"":{"$ref":"#","a/b~c":[{"type":"x"}]}}`))
	f.Add([]byte(`1e400`))
	f.Add([]byte(`{"a":`))

	f.Fuzz(func(t *testing.T, sample []byte) {
		var v any
		decodable := json.Unmarshal(sample, &v) == nil
		for _, strict := range []bool{false, true} {
			c, err := FromSample(sample, strict)
			if err != nil {
				if json.Valid(sample) && !errors.Is(err, errSampleTooLarge) {
					t.Fatalf("FromSample(%q, %v) rejected valid JSON: %v", sample, strict, err)
				}
				continue
			}
			if !json.Valid(sample) {
				t.Fatalf("FromSample(%q, %v) accepted invalid JSON", sample, strict)
			}
			if !json.Valid(c.JSONSchema()) {
				t.Fatalf("JSONSchema() is not valid JSON: %s", c.JSONSchema())
			}
			if !decodable {
				continue // e.g. 1e400 does not fit a float64
			}
			if errs := c.Validate(v); errs != nil {
				t.Fatalf("sample %q (strict=%v) does not validate against its own contract: %v\nschema: %s", sample, strict, errs, c.JSONSchema())
			}
		}
	})
}

// FuzzSchemaCompile compiles any document as an inline JSON Schema (as the
// API does): nothing may panic, nothing may be fetched, a document over the
// bounds of limits.go is refused, and what compiles validates a few values
// without panicking.
func FuzzSchemaCompile(f *testing.F) {
	for _, s := range []string{
		`{"type":"object","properties":{"a":{"type":"string","format":"uri-template"}},"required":["a"]}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"x":{"$ref":"#/definitions/x"}},"$ref":"#/definitions/x"}`,
		`{"$schema":"http://json-schema.org/draft-04/schema#","type":["string","null"],"pattern":"^a+$"}`,
		`{"$dynamicAnchor":"n","anyOf":[{"$dynamicRef":"#n"},{"type":"integer"}]}`,
		`{"$ref":"http://example.com/schema.json"}`,
		`{"oneOf":[{"const":1},{"enum":[1,2]}],"not":{"multipleOf":0.5}}`,
		`{"items":{"prefixItems":[true,false]},"uniqueItems":true,"contains":{"minimum":3}}`,
		nestedProperties(70),
	} {
		f.Add([]byte(s))
	}
	values := []any{nil, true, 1.5, "a", []any{1.0, "x"}, map[string]any{"a": "b", "n": 3.0}}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := FromSchema(doc, "")
		if err != nil {
			return
		}
		if s, err := scan(doc); err != nil || s.bytes > MaxSchemaBytes || s.objects > MaxSchemaObjects {
			t.Fatalf("compiled a document over the bounds: %+v %v", s, err)
		}
		for _, v := range values {
			_ = c.Validate(v)
		}
	})
}
