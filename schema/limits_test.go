package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nestedProperties is the schema of issue #8: n levels of "properties".
func nestedProperties(n int) string {
	return strings.Repeat(`{"type":"object","properties":{"a":`, n) + `{"type":"string"}` + strings.Repeat(`}}`, n)
}

// wideProperties is a schema with n object properties of one string each.
func wideProperties(schema string, n int) string {
	var b strings.Builder
	b.WriteString(`{` + schema + `"type":"object","properties":{`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"p%d":{"type":"object","properties":{"x":{"type":"string"}}}`, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

// refChain is a schema whose root goes through n $refs.
func refChain(n int) string {
	var b strings.Builder
	b.WriteString(`{"$schema":"http://json-schema.org/draft-07/schema#","$ref":"#/definitions/d0","definitions":{`)
	for i := range n {
		fmt.Fprintf(&b, `"d%d":{"$ref":"#/definitions/d%d"},`, i, i+1)
	}
	fmt.Fprintf(&b, `"d%d":{"type":"string"}}}`, n)
	return b.String()
}

// TestSchemaBounds: each costly shape is refused with the bound it goes
// over, at once, instead of compiling for seconds (issue #8: 200, 400 and
// 600 nested levels took 0.9, 6.9 and about 20 s).
func TestSchemaBounds(t *testing.T) {
	tests := []struct {
		name, doc, limit string
	}{
		{"nested 200 levels", nestedProperties(200), "schema_depth"},
		{"nested 400 levels", nestedProperties(400), "schema_depth"},
		{"nested 600 levels", nestedProperties(600), "schema_depth"},
		{"nested arrays", strings.Repeat(`{"items":[`, 70) + `{}` + strings.Repeat(`]}`, 70), "schema_depth"},
		{"wide 2020-12", wideProperties("", 4000), "schema_work"},
		{"long $ref chain", refChain(8000), "schema_work"},
		{"many objects", wideProperties(draft07, 20000), "schema_objects"},
		{"size", `{"description":"` + strings.Repeat("x", MaxSchemaBytes) + `"}`, "schema_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := FromSchema([]byte(tt.doc), "")
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != tt.limit {
				t.Fatalf("err %.300v, want bound %s", err, tt.limit)
			}
			// Generous for the race detector on a loaded machine: compiling
			// took seconds to minutes before.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusing took %s", d)
			}
		})
	}
}

// TestSchemaBoundsAllow: shapes within the bounds compile, the deepest and
// widest allowed among them.
func TestSchemaBoundsAllow(t *testing.T) {
	for name, doc := range map[string]string{
		"nested 60 levels":        nestedProperties(60),
		"wide 2020-12":            wideProperties("", 1000),
		"wide draft-07":           wideProperties(draft07, 5000),
		"$ref chain":              refChain(1000),
		"brackets in strings":     `{"description":"` + strings.Repeat("{[", 1000) + `","type":"string"}`,
		"escaped quotes":          `{"description":"\"{{{{\\\"","type":"string"}`,
		"$ref as a property name": `{"properties":{"$ref":{"type":"string"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := FromSchema([]byte(doc), ""); err != nil {
				t.Fatalf("%.300v", err)
			}
		})
	}
}

// TestSchemaBoundsReferencedFiles: files a schema references count toward
// the bounds, so a small document cannot pull in a costly one.
func TestSchemaBoundsReferencedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("deep.json", nestedProperties(200))
	root := write("root.json", `{"type":"object","properties":{"d":{"$ref":"deep.json"}}}`)
	doc, _ := os.ReadFile(root)
	_, err := FromSchema(doc, root)
	// The compiler keeps the loader's message, not the error value.
	if err == nil || !strings.Contains(err.Error(), "schema_depth bound exceeded") || !strings.Contains(err.Error(), "deep.json") {
		t.Fatalf("err %v, want schema_depth naming deep.json", err)
	}
	write("ok.json", nestedProperties(10))
	ok := write("ok-root.json", `{"type":"object","properties":{"d":{"$ref":"ok.json"}}}`)
	doc, _ = os.ReadFile(ok)
	if _, err := FromSchema(doc, ok); err != nil {
		t.Fatal(err)
	}
}

// TestScan pins what the scan counts.
func TestScan(t *testing.T) {
	tests := []struct {
		doc           string
		objects, refs int64
		quadratic     bool
		depthErr      bool
	}{
		{doc: `{}`, objects: 1, quadratic: true},
		{doc: `{"$schema":"http://json-schema.org/draft-07/schema#","a":{"$ref":"#"}}`, objects: 2, refs: 1},
		{doc: `{"$schema":"https://json-schema.org/draft/2019-09/schema"}`, objects: 1},
		{doc: `{"$schema":"https://json-schema.org/draft/2020-12/schema","$dynamicRef":"#x"}`, objects: 1, refs: 1, quadratic: true},
		{doc: `{"enum":["$ref", "{"], "x": "\\"}`, objects: 1, quadratic: true},
		{doc: `[{"$ref" : "a"}, {}]`, objects: 2, refs: 1, quadratic: true},
		{doc: strings.Repeat("[", MaxSchemaDepth+1) + strings.Repeat("]", MaxSchemaDepth+1), depthErr: true},
	}
	for _, tt := range tests {
		s, err := scan([]byte(tt.doc))
		if tt.depthErr {
			if err == nil {
				t.Errorf("%.40s: no depth error", tt.doc)
			}
			continue
		}
		if err != nil || s.objects != tt.objects || s.refs != tt.refs || s.quadratic != tt.quadratic {
			t.Errorf("%s: %+v %v, want objects %d refs %d quadratic %v", tt.doc, s, err, tt.objects, tt.refs, tt.quadratic)
		}
	}
}
