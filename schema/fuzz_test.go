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
