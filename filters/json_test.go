package filters

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stdMarshal is the reference: encoding/json without HTML escaping.
func stdMarshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func checkMarshal(t *testing.T, name string, v any) {
	t.Helper()
	got, err := marshal(v)
	want, werr := stdMarshal(v)
	if (err != nil) != (werr != nil) {
		t.Fatalf("%s: error %v, encoding/json error %v", name, err, werr)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", name, got, want)
	}
}

type plainStruct struct {
	A string    `json:"a"`
	B []int     `json:"b"`
	T time.Time `json:"t"`
}

// marshal must produce exactly what encoding/json does.
func TestMarshalMatchesEncodingJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "easylife", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no EasyLife payloads: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		checkMarshal(t, filepath.Base(f), v)
	}
	paris := time.FixedZone("CET", 3600)
	cases := map[string]any{
		"nil":             nil,
		"true":            true,
		"strings":         []any{"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\x7f", "\b\f\n\r\t", "<a href='x'>&amp;</a>", "é日本🙂", "bad\xffutf8\xc3", "sep\u2028\u2029", "mixed\x00é\xff\u2028end"},
		"floats":          []any{0.0, math.Copysign(0, -1), 1.0, -1.5, 3.14159, 1e20, 1e21, 1e-6, 1e-7, 123456789012345678.0, 5e-324, math.MaxFloat64, -2.5e-10},
		"ints":            []any{0, 1, -1, math.MaxInt64, int64(math.MinInt64)},
		"nested":          map[string]any{"b": map[string]any{"z": []any{map[string]any{"y": 1.0, "x": nil}}, "a": []any{}}, "a": map[string]any{}, "": "empty key", "\u2028k\xff": 1.0},
		"nil map":         map[string]any(nil),
		"nil slice":       []any(nil),
		"nil in map":      map[string]any{"m": map[string]any(nil), "s": []any(nil)},
		"typed fallback":  map[string]any{"ss": map[string]string{"b": "1", "a": "<2>"}, "n": json.Number("12.50"), "raw": json.RawMessage(` { "a" : [1, 2] } `), "i32": int32(-3), "f32": float32(0.1), "u": uint(7)},
		"struct":          plainStruct{A: "x&y", B: []int{1, 2}, T: time.Date(2024, 1, 2, 3, 4, 5, 600, paris)},
		"time utc":        time.Date(2024, 12, 30, 19, 18, 23, 871159300, time.UTC),
		"time zoned":      time.Date(2024, 12, 30, 19, 18, 23, 871159300, paris),
		"time year 10000": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"time zero":       time.Time{},
		"deep":            deep(50),
	}
	for name, v := range cases {
		checkMarshal(t, name, v)
	}
	for name, v := range map[string]any{"nan": math.NaN(), "inf": math.Inf(-1), "nested nan": map[string]any{"a": []any{math.NaN()}}, "func": func() {}} {
		if _, err := marshal(v); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	if _, err := marshal(cyclic); err == nil {
		t.Error("cycle: no error")
	}
}

func deep(n int) any {
	var v any = "leaf"
	for i := range n {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	return v
}

// FuzzMarshal checks marshal against encoding/json on decoded JSON.
func FuzzMarshal(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1.5e300,-0,"\u2028<>&"]`, `{"z":{"y":[null,true,false]},"":""}`, `"\ud800"`, `1e-7`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		checkMarshal(t, "fuzz", v)
	})
}
