package schema

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/internal/jsonvalue"
)

// mutations returns v with, in turn, every value replaced by each of a set
// of other values, and every object member deleted.
func mutations(v any) []any {
	replacements := []any{nil, true, 1.5, float64(7), "s", []any{}, map[string]any{}, []any{1.0, "a", map[string]any{"x": 1.0}}}
	var out []any
	var walk func(cur any, set func(any) any)
	walk = func(cur any, set func(any) any) {
		for _, r := range replacements {
			out = append(out, set(r))
		}
		switch c := cur.(type) {
		case map[string]any:
			for k, child := range c {
				k, child := k, child
				walk(child, func(nv any) any {
					return set(withKey(c, k, nv, false))
				})
				out = append(out, set(withKey(c, k, nil, true)))
			}
		case []any:
			for i, child := range c {
				i, child := i, child
				walk(child, func(nv any) any {
					cp := append([]any(nil), c...)
					cp[i] = nv
					return set(cp)
				})
			}
		}
	}
	walk(v, func(nv any) any { return nv })
	return out
}

func withKey(m map[string]any, k string, v any, del bool) map[string]any {
	cp := make(map[string]any, len(m))
	for kk, vv := range m {
		cp[kk] = vv
	}
	if del {
		delete(cp, k)
	} else {
		cp[k] = v
	}
	return cp
}

// TestSampleValidatorMatchesJSONSchema holds the request-path validator of
// sample contracts equal to the JSON Schema engine on the inferred schema:
// same verdict, same paths, same messages, for the EasyLife payloads and
// every single-point mutation of them.
func TestSampleValidatorMatchesJSONSchema(t *testing.T) {
	files, _ := filepath.Glob("../examples/easylife/*.json")
	if len(files) != 5 {
		t.Fatalf("want the five EasyLife payloads, found %d", len(files))
	}
	var docs []any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, v)
	}
	samples := []string{
		`{"a":[{"b":1},{"b":"x","c":null}],"d":{"e~/f":true}}`,
		`[1,"two",{"three":3}]`,
		`{"empty":[],"nested":[[1],[2.5]]}`,
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		samples = append(samples, string(b))
	}
	checked := 0
	for _, sample := range samples {
		for _, strict := range []bool{false, true} {
			c, err := FromSample([]byte(sample), strict)
			if err != nil {
				t.Fatal(err)
			}
			var sv any
			_ = json.Unmarshal([]byte(sample), &sv)
			cases := append(append([]any{}, docs...), mutations(sv)...)
			for _, d := range docs[:2] {
				cases = append(cases, mutations(d)...)
			}
			for _, doc := range cases {
				fast := c.Validate(doc)
				ref := c.validateSchema(doc)
				if !reflect.DeepEqual(fast, ref) {
					b, _ := json.Marshal(doc)
					t.Fatalf("sample %.60s strict=%v doc %.200s:\nfast %v\nref  %v", sample, strict, b, fast, ref)
				}
				b, _ := json.Marshal(doc)
				checkValidateDoc(t, c, b)
				checked++
			}
		}
	}
	t.Logf("%d documents agree", checked)
}

func FuzzSampleValidator(f *testing.F) {
	files, _ := filepath.Glob("../examples/easylife/*.json")
	for i, file := range files {
		b, _ := os.ReadFile(file)
		next, _ := os.ReadFile(files[(i+1)%len(files)])
		f.Add(b, next, i%2 == 0)
	}
	f.Add([]byte(`{"a":[1,{"b":null}]}`), []byte(`{"a":[{"b":2},"x"]}`), true)
	f.Fuzz(func(t *testing.T, sample, doc []byte, strict bool) {
		c, err := FromSample(sample, strict)
		if err != nil {
			return
		}
		var v any
		if json.Unmarshal(doc, &v) != nil {
			return
		}
		if fast, ref := c.Validate(v), c.validateSchema(v); !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast %v\nref  %v", fast, ref)
		}
		checkValidateDoc(t, c, doc)
	})
}

// checkValidateDoc holds ValidateDoc on the parsed document doc to Validate
// on the decoded one: the same errors, in the same order.
func checkValidateDoc(t *testing.T, c *Contract, doc []byte) {
	t.Helper()
	v, err := jsonvalue.Decode(doc)
	if err != nil {
		t.Fatalf("%q does not decode: %v", doc, err)
	}
	pd, err := jsonvalue.Parse(doc)
	if err != nil {
		t.Fatalf("%q does not parse: %v", doc, err)
	}
	defer pd.Release()
	got, ok := c.ValidateDoc(pd)
	if !ok {
		t.Fatalf("a sample contract did not validate a parsed document")
	}
	if want := c.Validate(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("doc %.300s:\nValidateDoc %v\nValidate    %v", doc, got, want)
	}
}

// TestValidateDoc: what the mutations of a decoded value cannot show:
// duplicate keys (the last one counts), escaped keys, and objects large
// enough for their members to be indexed; a JSON Schema contract declines.
func TestValidateDoc(t *testing.T) {
	many := func(extra string) string {
		var b strings.Builder
		b.WriteString(`{`)
		for i := range 300 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(extra + `}`)
		return b.String()
	}
	cases := []struct{ sample, doc string }{
		{`{"a":1,"b":"x"}`, `{"a":"wrong","a":2}`},
		{`{"a":1,"b":"x"}`, `{"a":2,"a":"wrong","b":true,"b":"ok"}`},
		{`{"a":1,"b":"x"}`, `{"\u0061":"wrong","b":1}`},
		{`{"a/b":1,"c~d":{"e":[1]}}`, `{"a/b":"x","c~d":{"e":["y",2,"z"]}}`},
		{`{"a":1,"b":"x"}`, many(`"a":"wrong","b":"ok","a":"again"`)},
		{`{"k7":1,"k299":1,"z":"x"}`, many(`"z":3`)},
		{`{"k7":"s","k299":1,"z":"x"}`, many(`"z":"ok"`)},
		{`[{"a":1}]`, `[{"a":1},{"a":"x","a":2},{"a":"y"},3]`},
		{`{"a":{"b":{"c":[{"d":true}]}}}`, `{"a":{"b":{"c":[{"d":1},{"d":false},{}]}}}`},
		{`{"a":null,"b":[]}`, `{"a":{"x":1},"b":[1,"x",null]}`},
		{`"s"`, `null`}, {`1`, `"x"`}, {`{}`, `[]`}, {`[]`, `{}`},
		// More names than validateDoc's buffers hold.
		{many(`"z":[1]`), many(`"k3":"x","k299":null,"k7":{},"z":"y"`)},
		{many(`"z":[1]`), `{"k1":1,"k2":"wrong","k2":2,"k3":"wrong"}`},
	}
	for _, tc := range cases {
		for _, strict := range []bool{false, true} {
			c, err := FromSample([]byte(tc.sample), strict)
			if err != nil {
				t.Fatal(err)
			}
			checkValidateDoc(t, c, []byte(tc.doc))
		}
	}
	c, err := FromSchema([]byte(`{"type":"object"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonvalue.Parse([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Release()
	if errs, ok := c.ValidateDoc(doc); ok || errs != nil {
		t.Errorf("a JSON Schema contract validated a parsed document: %v, %v", errs, ok)
	}
}
