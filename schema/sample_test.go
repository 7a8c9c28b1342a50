package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// decode decodes s the way the gateway does: plain json.Unmarshal into any.
func decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// check is one instance to validate and the exact errors expected (nil: valid).
type check struct {
	instance string
	want     []Error
}

func runChecks(t *testing.T, c *Contract, checks []check) {
	t.Helper()
	for _, ck := range checks {
		got := c.Validate(decode(t, ck.instance))
		if !reflect.DeepEqual(got, ck.want) {
			t.Errorf("Validate(%s)\n got: %#v\nwant: %#v\nschema: %s", ck.instance, got, ck.want, c.JSONSchema())
		}
	}
}

func TestFromSampleInference(t *testing.T) {
	tests := []struct {
		name   string
		sample string
		strict bool
		checks []check
	}{
		{
			name:   "scalar types",
			sample: `{"s":"x","n":1.5,"b":true}`,
			checks: []check{
				{`{"s":"y","n":2,"b":false}`, nil},
				{`{}`, nil}, // not strict: fields optional
				{`{"s":1,"n":"1","b":"true"}`, []Error{
					{"/b", "expected boolean, but got string"},
					{"/n", "expected number, but got string"},
					{"/s", "expected string, but got number"},
				}},
				{`{"s":null}`, []Error{{"/s", "expected string, but got null"}}},
			},
		},
		{
			name:   "integer in sample infers number",
			sample: `{"count":1}`,
			checks: []check{
				{`{"count":1.5}`, nil},
				{`{"count":-3}`, nil},
				{`{"count":1e300}`, nil},
				{`{"count":"1"}`, []Error{{"/count", "expected number, but got string"}}},
			},
		},
		{
			name:   "nested objects",
			sample: `{"user":{"id":"a","address":{"zip":"1234"}}}`,
			checks: []check{
				{`{"user":{"id":"b","address":{"zip":"9"}}}`, nil},
				{`{"user":{"address":{}}}`, nil},
				{`{"user":{"id":7,"address":{"zip":9}}}`, []Error{
					{"/user/address/zip", "expected string, but got number"},
					{"/user/id", "expected string, but got number"},
				}},
				{`{"user":"a"}`, []Error{{"/user", "expected object, but got string"}}},
			},
		},
		{
			name:   "extra fields allowed",
			sample: `{"a":"x","o":{"b":1}}`,
			checks: []check{
				{`{"a":"x","o":{"b":1,"c":[1]},"z":null}`, nil},
			},
		},
		{
			name:   "array of one type",
			sample: `{"tags":["a","b"]}`,
			checks: []check{
				{`{"tags":[]}`, nil},
				{`{"tags":["c"]}`, nil},
				{`{"tags":["c",2]}`, []Error{{"/tags/1", "expected string, but got number"}}},
				{`{"tags":"a"}`, []Error{{"/tags", "expected array, but got string"}}},
			},
		},
		{
			name:   "array union of element types",
			sample: `{"mix":[1,"a",true]}`,
			checks: []check{
				{`{"mix":["x",2,false]}`, nil},
				{`{"mix":[{}]}`, []Error{{"/mix/0", "expected boolean or number or string, but got object"}}},
			},
		},
		{
			name:   "array of objects merges properties",
			sample: `{"items":[{"a":"x"},{"b":1},{"a":"y","c":{"d":true}}]}`,
			checks: []check{
				{`{"items":[{"a":"z","b":2,"c":{"d":false}}]}`, nil},
				{`{"items":[{"a":1},{"b":"1"},{"c":{"d":"no"}}]}`, []Error{
					{"/items/0/a", "expected string, but got number"},
					{"/items/1/b", "expected number, but got string"},
					{"/items/2/c/d", "expected boolean, but got string"},
				}},
			},
		},
		{
			name:   "array mixing objects and scalars",
			sample: `[{"a":1},"s"]`,
			checks: []check{
				{`["t",{"a":2},{}]`, nil},
				{`[{"a":"x"},3]`, []Error{
					{"/0/a", "expected number, but got string"},
					{"/1", "expected object or string, but got number"},
				}},
			},
		},
		{
			name:   "nested arrays",
			sample: `{"m":[[1,2],[3]]}`,
			checks: []check{
				{`{"m":[[],[4.5]]}`, nil},
				{`{"m":[["x"]]}`, []Error{{"/m/0/0", "expected number, but got string"}}},
			},
		},
		{
			name:   "empty array accepts any items",
			sample: `{"phones":[]}`,
			checks: []check{
				{`{"phones":[1,"a",null,{},[]]}`, nil},
				{`{"phones":{}}`, []Error{{"/phones", "expected array, but got object"}}},
			},
		},
		{
			name:   "empty object",
			sample: `{"ext":{}}`,
			checks: []check{
				{`{"ext":{"anything":1}}`, nil},
				{`{"ext":[]}`, []Error{{"/ext", "expected object, but got array"}}},
			},
		},
		{
			name:   "null accepts any type",
			sample: `{"n":null,"arr":[null,1]}`,
			checks: []check{
				{`{"n":1,"arr":["x"]}`, nil},
				{`{"n":{"x":[1]},"arr":[{},null]}`, nil},
			},
		},
		{
			name:   "null merged with object in array",
			sample: `[{"a":{"b":1}},{"a":null}]`,
			checks: []check{
				{`[{"a":"anything"}]`, nil},
			},
		},
		{
			name:   "root scalar",
			sample: `"hello"`,
			checks: []check{
				{`"x"`, nil},
				{`1`, []Error{{"", "expected string, but got number"}}},
			},
		},
		{
			name:   "root null",
			sample: `null`,
			checks: []check{
				{`{"a":1}`, nil},
				{`3`, nil},
			},
		},
		{
			name:   "root array",
			sample: `[1]`,
			checks: []check{
				{`[2,3]`, nil},
				{`{}`, []Error{{"", "expected array, but got object"}}},
			},
		},
		{
			name:   "strict requires every field at every level",
			sample: `{"a":"x","o":{"b":1,"p":{"c":true}},"n":null}`,
			strict: true,
			checks: []check{
				{`{"a":"y","o":{"b":2,"p":{"c":false}},"n":[1],"extra":1}`, nil},
				{`{}`, []Error{{"", "missing properties: 'a', 'n', 'o'"}}},
				{`{"a":"y","n":null,"o":{"p":{}}}`, []Error{
					{"/o", "missing properties: 'b'"},
					{"/o/p", "missing properties: 'c'"},
				}},
			},
		},
		{
			name:   "strict array objects require common fields",
			sample: `{"list":[{"id":1,"x":"a"},{"id":2,"y":"b"}]}`,
			strict: true,
			checks: []check{
				{`{"list":[{"id":3}]}`, nil},
				{`{"list":[{"x":"a"}]}`, []Error{{"/list/0", "missing properties: 'id'"}}},
				{`{}`, []Error{{"", "missing properties: 'list'"}}},
			},
		},
		{
			name:   "non-strict nested fields optional",
			sample: `{"o":{"b":1}}`,
			checks: []check{
				{`{"o":{}}`, nil},
			},
		},
		{
			name:   "keys needing JSON pointer escapes",
			sample: `{"a/b":1,"c~d":1,"e f":1,"ü":1}`,
			checks: []check{
				{`{"a/b":"x","c~d":"x","e f":"x","ü":"x"}`, []Error{
					{"/a~1b", "expected number, but got string"},
					{"/c~0d", "expected number, but got string"},
					{"/e f", "expected number, but got string"},
					{"/ü", "expected number, but got string"},
				}},
			},
		},
		{
			name:   "keys that look like schema keywords",
			sample: `{"$ref":"x","type":1,"properties":{"$id":"y"}}`,
			strict: true,
			checks: []check{
				{`{"$ref":"z","type":2,"properties":{"$id":"w"}}`, nil},
				{`{"$ref":1,"type":2,"properties":{}}`, []Error{
					{"/$ref", "expected string, but got number"},
					{"/properties", "missing properties: '$id'"},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromSample([]byte(tt.sample), tt.strict)
			if err != nil {
				t.Fatalf("FromSample: %v", err)
			}
			// The sample always satisfies its own contract.
			if errs := c.Validate(decode(t, tt.sample)); errs != nil {
				t.Errorf("sample does not validate against its own contract: %v", errs)
			}
			runChecks(t, c, tt.checks)
		})
	}
}

func TestFromSampleSchemaDocument(t *testing.T) {
	c, err := FromSample([]byte(`{"id":1,"tags":[],"mix":["a",2],"o":{"n":null},"list":[{"a":1},{"a":2,"b":"x"}]}`), true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "properties": {
    "id": {
      "type": "number"
    },
    "list": {
      "items": {
        "properties": {
          "a": {
            "type": "number"
          },
          "b": {
            "type": "string"
          }
        },
        "required": [
          "a"
        ],
        "type": "object"
      },
      "type": "array"
    },
    "mix": {
      "items": {
        "type": [
          "number",
          "string"
        ]
      },
      "type": "array"
    },
    "o": {
      "properties": {
        "n": {}
      },
      "required": [
        "n"
      ],
      "type": "object"
    },
    "tags": {
      "type": "array"
    }
  },
  "required": [
    "id",
    "list",
    "mix",
    "o",
    "tags"
  ],
  "type": "object"
}`
	if got := string(c.JSONSchema()); got != want {
		t.Errorf("JSONSchema() =\n%s\nwant\n%s", got, want)
	}

	// Field names are not HTML-escaped.
	h, err := FromSample([]byte(`{"a<b&c>":1}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(h.JSONSchema()), `"a<b&c>": {`) {
		t.Errorf("field name escaped in %s", h.JSONSchema())
	}

	// The exported schema is exactly what validates: compiling it again
	// gives the same verdicts.
	again, err := FromSchema(c.JSONSchema(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`{}`, `{"id":"x","tags":[],"mix":[true],"o":{"n":1},"list":[{}]}`} {
		a, b := c.Validate(decode(t, in)), again.Validate(decode(t, in))
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: sample contract %v, recompiled %v", in, a, b)
		}
	}
}

func TestFromSampleInvalidJSON(t *testing.T) {
	tests := []struct {
		name, sample, want string
	}{
		{"empty", ``, "line 1, column 1"},
		{"unterminated object", "{\n  \"a\": 1,\n", "line 3, column 1 (offset 12): unexpected end"},
		{"bad token", "{\n  \"a\": tru\n}", "line 2, column 11 (offset 13)"},
		{"trailing data", `{"a":1} x`, "line 1, column 9 (offset 9)"},
		{"second value", `{} {}`, "line 1, column 4"},
		{"single quotes", `{'a':1}`, "line 1, column 2 (offset 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				c, err := FromSample([]byte(tt.sample), strict)
				if err == nil {
					t.Fatalf("FromSample(%q) = %v, want error", tt.sample, c)
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "sample is not valid JSON") {
					t.Errorf("error %q does not contain %q", err, tt.want)
				}
			}
		})
	}
}

func TestFromSampleLimits(t *testing.T) {
	chain := func(levels int) string { // levels nested objects
		return strings.Repeat(`{"a":`, levels-1) + "{}" + strings.Repeat("}", levels-1)
	}
	wide := func(n int) string { // object with n fields: n+1 subschemas
		parts := make([]string, n)
		for i := range n {
			parts[i] = fmt.Sprintf(`"k%d":1`, i)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	tests := []struct {
		name   string
		sample string
		ok     bool
	}{
		{"max depth objects", chain(MaxSampleDepth), true},
		{"too deep objects", chain(MaxSampleDepth + 1), false},
		{"max depth arrays", strings.Repeat("[", MaxSampleDepth) + strings.Repeat("]", MaxSampleDepth), true},
		{"too deep arrays", strings.Repeat("[", MaxSampleDepth+1) + strings.Repeat("]", MaxSampleDepth+1), false},
		{"max nodes", wide(MaxSampleNodes - 1), true},
		{"too many nodes", wide(MaxSampleNodes), false},
		{"long array merges into one node", "[" + strings.Repeat(`{"a":1},`, 10000) + `{"a":2}]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromSample([]byte(tt.sample), true)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if errs := c.Validate(decode(t, tt.sample)); errs != nil {
					t.Fatal(errs)
				}
				return
			}
			if !errors.Is(err, errSampleTooLarge) {
				t.Fatalf("got %v, want a sample-too-large error", err)
			}
		})
	}
}

func readEasyLife(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../examples/easylife/*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	if len(out) != 5 {
		t.Fatalf("found %d EasyLife payloads, want 5", len(out))
	}
	return out
}

func TestEasyLifePayloads(t *testing.T) {
	payloads := readEasyLife(t)
	missingDepartment := []Error{{"/user", "missing properties: 'department'"}}
	tests := []struct {
		payload    string
		wantLoose  []Error
		wantStrict []Error
	}{
		{"groupcreated", nil, nil},
		{"sharepointcreated", nil, nil}, // superset: adds url, group.description, group.easylife365_group
		{"onenotecreated", nil, missingDepartment},
		{"plannercreated", nil, missingDepartment},
		{"vivaengagecreated", nil, missingDepartment},
	}
	loose, err := FromSample(payloads["groupcreated"], false)
	if err != nil {
		t.Fatal(err)
	}
	strict, err := FromSample(payloads["groupcreated"], true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			v := decode(t, string(payloads[tt.payload]))
			if got := loose.Validate(v); !reflect.DeepEqual(got, tt.wantLoose) {
				t.Errorf("non-strict: got %#v, want %#v", got, tt.wantLoose)
			}
			if got := strict.Validate(v); !reflect.DeepEqual(got, tt.wantStrict) {
				t.Errorf("strict: got %#v, want %#v", got, tt.wantStrict)
			}
		})
	}

	// A wrong type deep inside is reported at its exact path.
	var v map[string]any
	if err := json.Unmarshal(payloads["groupcreated"], &v); err != nil {
		t.Fatal(err)
	}
	v["group"].(map[string]any)["metadata"].(map[string]any)["additionalData"].(map[string]any)["tId"] = 42.0
	v["user"].(map[string]any)["accountEnabled"] = "yes"
	delete(v, "tenantId")
	wantLoose := []Error{
		{"/group/metadata/additionalData/tId", "expected string, but got number"},
		{"/user/accountEnabled", "expected boolean, but got string"},
	}
	if got := loose.Validate(v); !reflect.DeepEqual(got, wantLoose) {
		t.Errorf("modified payload, non-strict: got %#v, want %#v", got, wantLoose)
	}
	wantStrict := append([]Error{{"", "missing properties: 'tenantId'"}}, wantLoose...)
	if got := strict.Validate(v); !reflect.DeepEqual(got, wantStrict) {
		t.Errorf("modified payload, strict: got %#v, want %#v", got, wantStrict)
	}
}

func BenchmarkValidateSample(b *testing.B) {
	payloads := readEasyLife(b)
	for _, strict := range []bool{false, true} {
		name := "loose"
		if strict {
			name = "strict"
		}
		b.Run(name, func(b *testing.B) {
			c, err := FromSample(payloads["groupcreated"], strict)
			if err != nil {
				b.Fatal(err)
			}
			v := decode(b, string(payloads["groupcreated"]))
			b.ReportAllocs()
			for b.Loop() {
				if errs := c.Validate(v); errs != nil {
					b.Fatal(errs)
				}
			}
		})
	}
}
