package jsonvalue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func check(t *testing.T, in []byte) {
	t.Helper()
	got, err := Decode(in)
	var want any
	wantErr := json.Unmarshal(in, &want)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: Decode error %v, encoding/json error %v", in, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: Decode %#v, encoding/json %#v", in, got, want)
	}
	checkDoc(t, in, got, err)
}

// checkDoc holds Parse to Decode: the same error, the same value, and a
// navigation (kinds, lengths, children, lookups) that agrees with it.
func checkDoc(t *testing.T, in []byte, want any, wantErr error) {
	t.Helper()
	doc, err := Parse(in)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%q: Parse error %v, Decode error %v", in, err, wantErr)
	}
	if err != nil {
		return
	}
	defer doc.Release()
	if got := doc.Value(Root); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: Parse %#v, Decode %#v", in, got, want)
	}
	checkNav(t, in, doc, Root, want)
}

func checkNav(t *testing.T, in []byte, doc *Doc, r Ref, want any) {
	t.Helper()
	kinds := map[Kind]string{Null: "<nil>", False: "bool", True: "bool", Number: "float64",
		String: "string", Array: "[]interface {}", Object: "map[string]interface {}"}
	if got, typ := kinds[doc.Kind(r)], fmt.Sprintf("%T", want); got != typ {
		t.Fatalf("%q: kind %s, value %#v", in, got, want)
	}
	switch w := want.(type) {
	case bool:
		if (doc.Kind(r) == True) != w {
			t.Fatalf("%q: kind %d, value %v", in, doc.Kind(r), w)
		}
	case []any:
		if doc.Len(r) != len(w) {
			t.Fatalf("%q: Len %d, %d elements", in, doc.Len(r), len(w))
		}
		c := doc.First(r)
		for _, e := range w {
			checkNav(t, in, doc, c, e)
			c = doc.Next(c)
		}
		if c != doc.Next(r) {
			t.Fatalf("%q: the last element is not followed by the array's sibling", in)
		}
	case map[string]any:
		keys := map[string]bool{}
		c := doc.First(r)
		for range doc.Len(r) {
			keys[doc.Key(c)] = true
			c = doc.Next(c)
		}
		if doc.Len(r) > 0 && c != doc.Next(r) {
			t.Fatalf("%q: the last member is not followed by the object's sibling", in)
		}
		if len(keys) != len(w) {
			t.Fatalf("%q: keys %v, map %v", in, keys, w)
		}
		for k, v := range w {
			m, ok := doc.Lookup(r, k)
			if !ok {
				t.Fatalf("%q: Lookup(%q) found nothing", in, k)
			}
			if got := doc.Value(m); !reflect.DeepEqual(got, v) {
				t.Fatalf("%q: Lookup(%q) is %#v, the map has %#v", in, k, got, v)
			}
			checkNav(t, in, doc, m, v)
		}
		if _, ok := doc.Lookup(r, "\x00absent"); ok {
			t.Fatalf("%q: Lookup of an absent key found it", in)
		}
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-12.25E-2`, `1e400`, `01`, `-`, `1.`, `.5`, `1e`, `+1`,
		`""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\udc00\ud83d\ude00"`,
		`"\u12"`, `"\x"`, "\"a\x01\"", "\"\xff\xfe\"", `"é"`,
		`{}`, `[]`, `[1,2,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `{"a":1}{`, `[1] x`, ` {"a" : [ 1 , {"b":null} ] } `,
		`{"a":1,"a":2}`, `[`, `{`, `{"a"`, `{"a":`, `tru`, `nul`, `falsey`, ``, ` `, `"unterminated`,
		// Integers around the 15 digits converted without strconv.
		`999999999999999`, `-999999999999999`, `1000000000000000`, `9007199254740993`, `12345678901234567890`,
		`-01`, `00`, `0x`, `[0,-0,7,-7,10,1.0,1e2,10E-1]`, `1 `, `-`, `-a`, `[1,]`,
		// Nested containers on the shared stacks, duplicates at each level.
		`{"a":{"b":[1,{"c":[],"c":[2,3]}],"b":{}},"a":{"x":[[],[[]],[1,[2,[3]]]]},"z":[{"k":1},{"k":2}]}`,
		`[{"a":1,"b":2},{"a":3},[{"a":[4]}],{}]`, `{"a":[1,2,{"b":[3,{"c":4`,
		// Non-ASCII strings and keys, valid or not, with and without escapes.
		`{"é":"ü","\u00e9":"x"}`, `{"\u0061":"\n","\u0062":{"\u0063":["\u0064","e\t"]},"f":"g"}`, "{\"\xff\":\"\xfe\"}", "[\"a\xffb\\n\"]", `"\u0000"`, "\"\xe2\x80\xa8\"",
	}
	for _, c := range cases {
		check(t, []byte(c))
	}
	files, _ := filepath.Glob("../../examples/easylife/*.json")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		check(t, b)
	}
}

// TestDecodeAfterError: a document that fails half-way leaves nothing in
// the decoder that a later document sees, and decoded values share no
// container.
func TestDecodeAfterError(t *testing.T) {
	for _, bad := range []string{`{"a":[1,2,{"b":"x"`, `[[1,2],[3,`, `{"a":1,"b":tru}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Fatalf("%s decoded", bad)
		}
		check(t, []byte(`{"a":[1,{"b":[]}],"c":{"d":"e"}}`))
	}
	in := []byte(`{"a":[1,2],"m":{"k":"v"}}`)
	v1, _ := Decode(in)
	v2, _ := Decode(in)
	v1.(map[string]any)["a"].([]any)[0] = "changed"
	v1.(map[string]any)["m"].(map[string]any)["k"] = "changed"
	check(t, in)
	if !reflect.DeepEqual(v2, map[string]any{"a": []any{1.0, 2.0}, "m": map[string]any{"k": "v"}}) {
		t.Errorf("second decode changed with the first: %#v", v2)
	}
}

// TestNegativeZero: -0 keeps its sign, as strconv.ParseFloat gives it.
func TestNegativeZero(t *testing.T) {
	v, err := Decode([]byte(`-0`))
	if f, ok := v.(float64); err != nil || !ok || f != 0 || !math.Signbit(f) {
		t.Errorf("-0 decoded as %#v, %v", v, err)
	}
	doc, err := Parse([]byte(`-0`))
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Release()
	if f, ok := doc.Value(Root).(float64); !ok || f != 0 || !math.Signbit(f) {
		t.Errorf("-0 parsed as %#v", doc.Value(Root))
	}
}

func TestDepthLimit(t *testing.T) {
	deep := make([]byte, 0, 2*MaxDepth+4)
	for i := 0; i <= MaxDepth; i++ {
		deep = append(deep, '[')
	}
	if _, err := Decode(deep); err == nil {
		t.Fatal("no error past the depth limit")
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../../examples/easylife/*.json")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	for _, s := range []string{`"\ud83d\ude00"`, `[1e5,-0.5,{"a":[]}]`, `{"a":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { check(t, in) })
}

// BenchmarkDecode decodes the request path's bodies: the 986-byte EasyLife
// sample of bench/run.sh, a 1.5 KB one, and the 13.5 KB GitHub "issues
// opened" example; encoding/json beside each for scale.
func BenchmarkDecode(b *testing.B) {
	for _, f := range []string{
		"../../examples/easylife/groupcreated.json",
		"../../examples/easylife/sharepointcreated.json",
		"../../bench/github-issues-opened.json",
	} {
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		b.Run(name+"/jsonvalue", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parse", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				doc, err := Parse(body)
				if err != nil {
					b.Fatal(err)
				}
				doc.Release()
			}
		})
		b.Run(name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var v any
				if err := json.Unmarshal(body, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDocValuesOutliveIt: what Value returns (a string alone, or in a
// container) shares nothing with the parsed bytes nor with the Doc, which
// the next Parse reuses.
func TestDocValuesOutliveIt(t *testing.T) {
	data := []byte(`{"s":"abc","e":"x\ny","k\u00e9":["def",{"g":"hij"}]}`)
	doc, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	whole := doc.Value(Root)
	s, _ := doc.Lookup(Root, "s")
	alone := doc.Value(s)
	doc.Release()
	for i := range data {
		data[i] = ' '
	}
	if doc, err := Parse([]byte(`{"s":"zzz","e":"zzzz","kz":["zzz",{"g":"zzz"}]}`)); err == nil {
		_ = doc.Value(Root)
		doc.Release()
	}
	want := map[string]any{"s": "abc", "e": "x\ny", "ké": []any{"def", map[string]any{"g": "hij"}}}
	if !reflect.DeepEqual(whole, want) || alone != "abc" {
		t.Errorf("values changed with their bytes or the Doc: %#v, %#v", whole, alone)
	}
}

// TestPlainASCII: the word-at-a-time scan stops at the word of every kind
// of special byte, at any place in the word, and runs over plain text.
func TestPlainASCII(t *testing.T) {
	plain := []byte(strings.Repeat("abcdefgh~ !#[]{}", 4))
	for _, special := range []byte{'"', '\\', 0x00, 0x1f, '\n', 0x80, 0xff, 0xc3} {
		for at := range 24 {
			data := bytes.Clone(plain[:24])
			data[at] = special
			if got, want := plainASCII(data, 0), at/8*8; got != want {
				t.Errorf("byte %#x at %d: stopped at %d, want %d", special, at, got, want)
			}
		}
	}
	if got := plainASCII(plain[:61], 0); got != 56 {
		t.Errorf("plain text: stopped at %d, want 56 (the last whole word)", got)
	}
	if got := plainASCII(plain[:20], 3); got != 19 {
		t.Errorf("plain text from 3: stopped at %d, want 19", got)
	}
}
