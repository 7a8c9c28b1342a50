package schema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/internal/jsonvalue"
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// verdict is a payload and whether the engine accepts it.
type verdict struct {
	doc   string
	valid bool
}

const (
	draft04 = `"$schema":"http://json-schema.org/draft-04/schema#",`
	draft06 = `"$schema":"http://json-schema.org/draft-06/schema#",`
	draft07 = `"$schema":"http://json-schema.org/draft-07/schema#",`
	draft19 = `"$schema":"https://json-schema.org/draft/2019-09/schema",`
)

// fastSchemaTests exercise each keyword of the fast validator where its
// semantics are easy to get wrong. The verdicts are the engine's.
var fastSchemaTests = []struct {
	name   string
	schema string
	cases  []verdict
}{
	{"type and integer", `{"type":["integer","null"]}`, []verdict{
		{`1`, true}, {`1.0`, true}, {`-0`, true}, {`1e300`, true}, {`1.5`, false}, {`null`, true}, {`"1"`, false}, {`true`, false},
	}},
	{"draft-04 boolean exclusiveMaximum", `{` + draft04 + `"maximum":10,"exclusiveMaximum":true,"minimum":1,"exclusiveMinimum":false}`, []verdict{
		{`9.999`, true}, {`10`, false}, {`1`, true}, {`0.5`, false}, {`"x"`, true},
	}},
	{"draft-06 numeric exclusive limits", `{` + draft06 + `"exclusiveMaximum":10,"exclusiveMinimum":-1}`, []verdict{
		{`9.5`, true}, {`10`, false}, {`-1`, false}, {`-0.999`, true},
	}},
	{"limits are compared as decimals", `{"properties":{"a":{"maximum":0.1},"b":{"minimum":0.30000000000000004},"c":{"maximum":1e400}}}`, []verdict{
		{`{"a":0.1}`, true}, {`{"a":0.10000000000000001}`, true}, {`{"a":0.10000000000000002}`, false},
		{`{"b":0.30000000000000004}`, true}, {`{"b":0.3}`, false}, {`{"c":1.7976931348623157e308}`, true},
	}},
	{"multipleOf", `{"properties":{"cents":{"multipleOf":0.01},"three":{"multipleOf":3},"tiny":{"multipleOf":1e-9}}}`, []verdict{
		{`{"cents":0.07}`, true}, {`{"cents":19.99}`, true}, {`{"cents":0.075}`, false},
		{`{"three":9}`, true}, {`{"three":-9}`, true}, {`{"three":10}`, false}, {`{"three":1e20}`, false}, {`{"three":3e20}`, true}, {`{"three":4.5}`, false},
		{`{"tiny":0.000000003}`, true}, {`{"tiny":0.0000000035}`, false},
	}},
	{"const and enum compare numbers by value", `{"properties":{"one":{"const":1.0},"e":{"enum":[0.1,"a",null,[1,{"a":2}]]},"far":{"const":0.10000000000000001},"obj":{"const":{"a":[1,"x"]}}}}`, []verdict{
		{`{"one":1}`, true}, {`{"one":1.000}`, true}, {`{"one":"1"}`, false},
		{`{"e":0.1}`, true}, {`{"e":"a"}`, true}, {`{"e":null}`, true}, {`{"e":[1.0,{"a":2}]}`, true}, {`{"e":[1,{"a":2,"b":3}]}`, false}, {`{"e":"b"}`, false},
		{`{"far":0.1}`, false}, {`{"far":0.10000000000000001}`, false},
		{`{"obj":{"a":[1,"x"]}}`, true}, {`{"obj":{"a":[1]}}`, false},
	}},
	{"const and enum numbers beyond float64", `{"properties":{"big":{"enum":[1e400,"a"]},"tiny":{"enum":[1e-400,0e-999999999,-0.0e5]},"huge":{"enum":[1e9999999,"a"]}}}`, []verdict{
		{`{"big":"a"}`, true}, {`{"big":1.7976931348623157e308}`, false},
		{`{"tiny":0}`, true}, {`{"tiny":-0}`, true}, {`{"tiny":5e-324}`, false},
		{`{"huge":"a"}`, true}, {`{"huge":"b"}`, false},
	}},
	{"string length counts code points", `{"minLength":2,"maxLength":3}`, []verdict{
		{`"é€"`, true}, {`"😀😀😀"`, true}, {`"😀😀😀😀"`, false}, {`"a"`, false}, {`"abcd"`, false}, {`12345`, true},
	}},
	{"pattern", `{"properties":{"a":{"pattern":"^\\p{L}+-\\d{2}$"},"b":{"pattern":"x"}}}`, []verdict{
		{`{"a":"été-42"}`, true}, {`{"a":"ete-4"}`, false}, {`{"b":"axb"}`, true}, {`{"b":"ab"}`, false}, {`{"b":3}`, true},
	}},
	{"uniqueItems", `{"uniqueItems":true}`, []verdict{
		{`[1,1.0]`, false}, {`[0,-0]`, false}, {`[{"a":1,"b":[2]},{"b":[2],"a":1}]`, false}, {`[1,"1",[1],{"1":1},true,null]`, true},
		{`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]`, true},
		{`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,{"a":[1]},{"a":[1.0]}]`, false},
		{`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,{"a":[1]},{"a":[-1]}]`, true},
	}},
	{"draft-07 formats", `{` + draft07 + `"properties":{"u":{"format":"uri"},"t":{"format":"uri-template"},"d":{"format":"date-time"},"x":{"format":"no-such-format"}}}`, []verdict{
		{`{"u":"https://api.github.com/x","t":"https://api.github.com/users/octocat/events{/privacy}","d":"2024-07-03T13:18:08Z","x":"anything"}`, true},
		{`{"u":"not a uri"}`, false}, {`{"t":"{unclosed"}`, false}, {`{"d":"2024-07-03"}`, false}, {`{"u":42}`, true},
	}},
	{"2020-12 formats are asserted", `{"properties":{"m":{"format":"email"},"ip":{"format":"ipv4"}}}`, []verdict{
		{`{"m":"a@b.example","ip":"127.0.0.1"}`, true}, {`{"m":"nope"}`, false}, {`{"ip":"256.0.0.1"}`, false},
	}},
	{"draft-07 asserts content", `{` + draft07 + `"properties":{"b":{"contentEncoding":"base64"},"j":{"contentMediaType":"application/json"},"bj":{"contentEncoding":"base64","contentMediaType":"application/json"},"u":{"contentEncoding":"rot13","contentMediaType":"application/json"}}}`, []verdict{
		{`{"b":"aGk=","j":"{\"a\":1}","bj":"eyJhIjoxfQ==","u":"{"}`, true},
		{`{"b":"!!"}`, false}, {`{"j":"{"}`, false}, {`{"bj":"ew=="}`, false},
	}},
	{"2020-12 does not assert content", `{"properties":{"b":{"contentEncoding":"base64","contentMediaType":"application/json"}}}`, []verdict{
		{`{"b":"!!"}`, true},
	}},
	{"object keywords", `{"type":"object","required":["id"],"minProperties":2,"maxProperties":4,
		"properties":{"id":{"type":"integer"},"off":false,"any":true},
		"patternProperties":{"^x-":{"type":"string"}},
		"additionalProperties":{"type":"boolean"},
		"propertyNames":{"maxLength":5}}`, []verdict{
		{`{"id":1,"x-a":"s"}`, true}, {`{"id":1,"other":true,"any":[1]}`, true},
		{`{"id":1}`, false}, {`{"id":1,"a":1,"b":2,"c":3,"d":4}`, false}, {`{"x-a":"s","x-b":"t"}`, false},
		{`{"id":1,"off":null}`, false}, {`{"id":1,"x-a":2}`, false}, {`{"id":1,"other":"s"}`, false}, {`{"id":1,"longname":true}`, false},
	}},
	{"additionalProperties false with patterns", `{"properties":{"a":{}},"patternProperties":{"^b":{"type":"number"}},"additionalProperties":false}`, []verdict{
		{`{"a":"x","b1":1}`, true}, {`{"c":1}`, false}, {`{"b1":"x"}`, false}, {`{}`, true}, {`[1]`, true},
	}},
	{"draft-07 dependencies", `{` + draft07 + `"dependencies":{"card":["cvc"],"ship":{"required":["address"]}}}`, []verdict{
		{`{"card":1,"cvc":2}`, true}, {`{"card":1}`, false}, {`{"ship":1,"address":2}`, true}, {`{"ship":1}`, false}, {`{"cvc":1}`, true},
	}},
	{"2019-09 dependentRequired and dependentSchemas", `{` + draft19 + `"dependentRequired":{"a":["b"]},"dependentSchemas":{"c":{"properties":{"d":{"type":"string"}}}}}`, []verdict{
		{`{"a":1,"b":2}`, true}, {`{"a":1}`, false}, {`{"c":1,"d":"x"}`, true}, {`{"c":1,"d":2}`, false}, {`{"d":2}`, true},
	}},
	{"draft-07 items and additionalItems", `{` + draft07 + `"properties":{"t":{"items":[{"type":"string"},{"type":"number"}],"additionalItems":false},"r":{"items":[{"type":"string"}],"additionalItems":{"type":"boolean"}},"all":{"items":{"type":"integer"},"minItems":1,"maxItems":3}}}`, []verdict{
		{`{"t":["a",1],"r":["a",true,false],"all":[1,2]}`, true}, {`{"t":["a"]}`, true},
		{`{"t":["a",1,2]}`, false}, {`{"t":[1]}`, false}, {`{"r":["a",1]}`, false}, {`{"all":[]}`, false}, {`{"all":[1,2,3,4]}`, false}, {`{"all":[1.5]}`, false},
	}},
	{"2020-12 prefixItems and items", `{"prefixItems":[{"type":"string"}],"items":false}`, []verdict{
		{`["a"]`, true}, {`[]`, true}, {`["a","b"]`, false}, {`[1]`, false},
	}},
	{"contains", `{` + draft19 + `"contains":{"type":"string"},"minContains":2,"maxContains":3}`, []verdict{
		{`["a","b",1]`, true}, {`["a",1]`, false}, {`["a","b","c","d"]`, false}, {`[]`, false}, {`{}`, true},
	}},
	{"draft-07 contains", `{` + draft07 + `"contains":{"const":1}}`, []verdict{
		{`[0,1]`, true}, {`[0]`, false}, {`[]`, false},
	}},
	{"combinators", `{"allOf":[{"type":"object"},{"required":["kind"]}],
		"anyOf":[{"properties":{"kind":{"const":"a"}}},{"properties":{"kind":{"const":"b"}}}],
		"oneOf":[{"required":["x"]},{"required":["y"]}],
		"not":{"required":["z"]}}`, []verdict{
		{`{"kind":"a","x":1}`, true}, {`{"kind":"b","y":1}`, true},
		{`{"kind":"c","x":1}`, false}, {`{"kind":"a","x":1,"y":1}`, false}, {`{"kind":"a"}`, false}, {`{"kind":"a","x":1,"z":1}`, false}, {`{"x":1}`, false}, {`[]`, false},
	}},
	{"if then else", `{` + draft07 + `"if":{"properties":{"kind":{"const":"user"}}},"then":{"required":["login"]},"else":{"required":["name"]}}`, []verdict{
		{`{"kind":"user","login":"o"}`, true}, {`{"kind":"org","name":"g"}`, true}, {`{"kind":"user"}`, false}, {`{"kind":"org"}`, false}, {`3`, true},
	}},
	{"draft-07 ignores keywords beside $ref", `{` + draft07 + `"properties":{"a":{"$ref":"#/definitions/s","type":"number"}},"definitions":{"s":{"type":"string"}}}`, []verdict{
		{`{"a":"x"}`, true}, {`{"a":1}`, false},
	}},
	{"2020-12 applies keywords beside $ref", `{"properties":{"a":{"$ref":"#/$defs/s","maxLength":2}},"$defs":{"s":{"type":"string"}}}`, []verdict{
		{`{"a":"xy"}`, true}, {`{"a":"xyz"}`, false}, {`{"a":1}`, false},
	}},
	{"recursion through properties", `{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","required":["v"],"properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"additionalProperties":false}}}`, []verdict{
		{`{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]}`, true},
		{`{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":"4"}]}]}`, false},
		{`{"v":1,"kids":[{"w":2}]}`, false},
	}},
	{"boolean schemas", `{"properties":{"yes":true,"no":false},"items":false}`, []verdict{
		{`{"yes":[1]}`, true}, {`{"no":null}`, false}, {`[]`, true}, {`[1]`, false},
	}},
}

func decodeBoth(t testing.TB, doc string) (fromJSON, fromJSONValue any) {
	t.Helper()
	if err := json.Unmarshal([]byte(doc), &fromJSON); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	v, err := jsonvalue.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return fromJSON, v
}

// TestFastSchemaKeywords checks the fast validator keyword by keyword
// against the engine's verdicts, and checks that Validate returns the
// engine's errors when it refuses.
func TestFastSchemaKeywords(t *testing.T) {
	for _, tt := range fastSchemaTests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustSchema(t, tt.schema, "")
			if c.Validator() != ValidatorFast {
				t.Fatalf("validator %s: %s", c.Validator(), c.FallbackReason())
			}
			for _, tc := range tt.cases {
				a, b := decodeBoth(t, tc.doc)
				ref := c.validateSchema(a)
				if (ref == nil) != tc.valid {
					t.Fatalf("%s: the engine says %v, the test expects valid=%v", tc.doc, ref, tc.valid)
				}
				for _, v := range []any{a, b} {
					if got := c.fast.valid(v); got != tc.valid {
						t.Errorf("%s: fast says valid=%v, want %v", tc.doc, got, tc.valid)
					}
					if got := c.Validate(v); !reflect.DeepEqual(got, ref) {
						t.Errorf("%s: Validate = %v, want the engine's %v", tc.doc, got, ref)
					}
				}
			}
		})
	}
}

// TestFastSchemaFallback checks that schemas with keywords the fast
// validator does not implement take the engine, say why, and still validate.
func TestFastSchemaFallback(t *testing.T) {
	tests := []struct {
		name, schema, reason string
		valid, invalid       string
	}{
		{"unevaluatedProperties",
			`{"properties":{"a":{}},"unevaluatedProperties":false}`, "unevaluatedProperties",
			`{"a":1}`, `{"a":1,"b":2}`},
		{"unevaluatedItems",
			`{"prefixItems":[{}],"unevaluatedItems":false}`, "unevaluatedItems",
			`[1]`, `[1,2]`},
		{"$dynamicRef",
			`{"$dynamicAnchor":"n","type":"object","properties":{"k":{"$dynamicRef":"#n"}}}`, "$dynamicRef",
			`{"k":{}}`, `{"k":1}`},
		{"$recursiveRef",
			`{` + draft19 + `"$recursiveAnchor":true,"type":"object","properties":{"k":{"$recursiveRef":"#"}}}`, "$recursiveRef",
			`{"k":{}}`, `{"k":1}`},
		{"draft-07 contentSchema",
			`{` + draft07 + `"contentMediaType":"application/json","contentSchema":{"type":"object"}}`, "contentSchema",
			`"{}"`, `"{"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustSchema(t, tt.schema, "")
			if c.Validator() != ValidatorEngine || !strings.Contains(c.FallbackReason(), tt.reason) {
				t.Fatalf("validator %s, reason %q: want the engine because of %s", c.Validator(), c.FallbackReason(), tt.reason)
			}
			valid, _ := decodeBoth(t, tt.valid)
			if errs := c.Validate(valid); errs != nil {
				t.Errorf("%s: %v", tt.valid, errs)
			}
			invalid, _ := decodeBoth(t, tt.invalid)
			if errs := c.Validate(invalid); len(errs) == 0 {
				t.Errorf("%s: accepted", tt.invalid)
			}
		})
	}
}

// TestFastSchemaInPlaceCycle checks the guard against a schema graph that
// reaches a subschema again without descending into the payload. The
// compiler refuses the cycles it sees while compiling; the guard keeps the
// fast validator from recursing forever on any it lets through.
func TestFastSchemaInPlaceCycle(t *testing.T) {
	a := &jsonschema.Schema{Location: "test#/a", Types: []string{"object"}}
	b := &jsonschema.Schema{Location: "test#/b", AnyOf: []*jsonschema.Schema{{Location: "test#/b/anyOf/0"}, a}}
	a.AllOf = []*jsonschema.Schema{b}
	root := &jsonschema.Schema{Location: "test#", Properties: map[string]*jsonschema.Schema{"x": a}}
	if fast, reason := compileFast(root); fast != nil || !strings.Contains(reason, "reaches itself") {
		t.Fatalf("compileFast = %v, %q: want a fallback", fast, reason)
	}

	// Recursion through a property descends into the payload: fine.
	a.AllOf = nil
	a.Properties = map[string]*jsonschema.Schema{"next": a}
	if fast, reason := compileFast(root); fast == nil {
		t.Fatalf("compileFast: %s", reason)
	}
}

// TestEngineRefusesWhatItCannotEvaluate checks that a payload on which the
// engine panics is refused with an error instead of crashing the caller.
func TestEngineRefusesWhatItCannotEvaluate(t *testing.T) {
	c := mustSchema(t, `{"enum":[1e9999999,"a"]}`, "")
	errs := c.Validate(1.0)
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "cannot be evaluated") {
		t.Fatalf("Validate(1) = %v", errs)
	}
	if errs := c.Validate("a"); errs != nil {
		t.Fatalf(`Validate("a") = %v`, errs)
	}
}

// TestFastSchemaUndecided checks that values the fast validator does not
// handle (json.Number, Go integers) are left to the engine.
func TestFastSchemaUndecided(t *testing.T) {
	c := mustSchema(t, `{"properties":{"n":{"type":"integer","maximum":10}}}`, "")
	tests := []struct {
		v     any
		valid bool
	}{
		{map[string]any{"n": json.Number("7")}, true},
		{map[string]any{"n": json.Number("7.5")}, false},
		{map[string]any{"n": json.Number("11")}, false},
		{map[string]any{"n": 7}, true},
		{map[string]any{"n": int64(12)}, false},
	}
	for _, tt := range tests {
		if c.fast.accepts(tt.v) {
			t.Errorf("%v: the fast validator decided on a value it does not handle", tt.v)
		}
		if errs := c.Validate(tt.v); (errs == nil) != tt.valid {
			t.Errorf("%v: Validate = %v, want valid=%v", tt.v, errs, tt.valid)
		}
	}
}

// FuzzSchemaFastPath holds the fast validator equal to the engine on
// arbitrary schema and payload pairs: whenever the schema compiles and takes
// the fast path, both give the same verdict.
func FuzzSchemaFastPath(f *testing.F) {
	for _, tt := range fastSchemaTests {
		for _, tc := range tt.cases {
			f.Add([]byte(tt.schema), []byte(tc.doc))
		}
	}
	f.Add([]byte(githubUserSchema), []byte(`{"sender":`+githubSender+`}`))
	for _, seed := range randomSeeds(40) {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, schemaDoc, doc []byte) {
		if len(schemaDoc) > 4096 || len(doc) > 4096 {
			return // compile time grows fast with schema size; keep runs short
		}
		c, err := FromSchema(schemaDoc, "")
		if err != nil || c.fast == nil {
			return
		}
		v, err := jsonvalue.Decode(doc)
		if err != nil {
			return
		}
		ref := c.validateSchema(v)
		if fast := c.fast.valid(v); fast != (ref == nil) {
			t.Fatalf("schema %s\npayload %s\nfast says valid=%v, engine says %v", schemaDoc, doc, fast, ref)
		}
		if got := c.Validate(v); !reflect.DeepEqual(got, ref) {
			t.Fatalf("Validate = %v, want the engine's %v", got, ref)
		}
	})
}

// TestFastSchemaNoAllocs checks that accepting a payload allocates nothing
// when the schema has no format, no uniqueItems over 20 items and no number
// on a limit (the cases that fall back on exact arithmetic).
func TestFastSchemaNoAllocs(t *testing.T) {
	c := mustSchema(t, `{"oneOf":[
		{"type":"object","required":["action","n"],"properties":{"action":{"enum":["opened"]},"n":{"type":"integer","minimum":1,"multipleOf":2}},"additionalProperties":false},
		{"type":"object","required":["action","tags"],"properties":{"action":{"const":"closed"},"tags":{"type":"array","items":{"type":"string","maxLength":8,"pattern":"^[a-z]+$"},"uniqueItems":true}}}
	]}`, "")
	for _, doc := range []string{`{"action":"opened","n":4}`, `{"action":"closed","tags":["a","b","c"]}`} {
		_, v := decodeBoth(t, doc)
		if !c.fast.accepts(v) {
			t.Fatalf("%s refused", doc)
		}
		if n := testing.AllocsPerRun(100, func() { c.Validate(v) }); n != 0 {
			t.Errorf("%s: %v allocations per validation", doc, n)
		}
	}
}
