package jsonvalue

import (
	"encoding/json"
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
		`{"é":"ü","\u00e9":"x"}`, "{\"\xff\":\"\xfe\"}", "[\"a\xffb\\n\"]", `"\u0000"`, "\"\xe2\x80\xa8\"",
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
