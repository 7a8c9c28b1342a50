package ingress

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hookgate/hookgate/registry"
)

// BenchmarkHandlePassthrough is the request path without the durable write:
// key, method, size, type, decode, sample contract, filter.
func BenchmarkHandlePassthrough(b *testing.B) {
	e := newEnv(&testing.T{})
	body := readFileB(b, "groupcreated.json")
	cw, err := registry.CompileWorkflow(registry.Workflow{ID: "bench", Sample: body, FixedKey: testKey,
		Filter: `body.eventType in ["groupcreated", "sharepointcreated"]`}, e.reg.Guard())
	if err != nil {
		b.Fatal(err)
	}
	e.reg.DeclareConfig([]*registry.CompiledWorkflow{cw}, nil, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/hooks/bench/"+testKey, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if res := e.in.Handle(r, "bench", testKey); !res.Pass {
			b.Fatalf("%+v", res)
		}
	}
}
