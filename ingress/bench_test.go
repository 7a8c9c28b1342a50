package ingress

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookgate/hookgate/registry"
)

// benchFilter is the filter of bench/run.sh's passthrough and ingest runs.
const benchFilter = `body.eventType in ["groupcreated", "sharepointcreated"]`

// benchWorkflows declares the two shapes of bench/run.sh on e: "pass" (no
// targets: key, method, size, type, decode, sample contract, filter, then
// on to the app) and "ingest" (the same checks, then the durable write).
func benchWorkflows(b *testing.B, e *env, body []byte) map[string]*registry.CompiledWorkflow {
	b.Helper()
	ws := map[string]*registry.CompiledWorkflow{}
	var cws []*registry.CompiledWorkflow
	for _, w := range []registry.Workflow{
		{ID: "pass", Sample: body, FixedKey: testKey, Filter: benchFilter},
		{ID: "ingest", Sample: body, FixedKey: testKey, Filter: benchFilter,
			Targets: []registry.Target{{URL: "http://127.0.0.1:1/sink"}}},
	} {
		cw, err := registry.CompileWorkflow(w, e.reg.Guard())
		if err != nil {
			b.Fatal(err)
		}
		ws[w.ID] = cw
		cws = append(cws, cw)
	}
	e.reg.DeclareConfig(cws, nil, nil)
	return ws
}

func benchRequest(id string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/"+id+"/"+testKey, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// BenchmarkDecide is the checks alone (no key lookup, no write) on the
// EasyLife sample: method, size, type, decode, sample contract, filter.
func BenchmarkDecide(b *testing.B) { benchDecide(b, false) }

// BenchmarkDecideDecoded is BenchmarkDecide on the whole decoded tree (as a
// dry run decides, and as every request did before the parsed-document
// path): the reference the request path is measured against.
func BenchmarkDecideDecoded(b *testing.B) { benchDecide(b, true) }

// benchDecide runs Decide on the EasyLife sample, on the whole decoded tree
// when decodeAll is set.
func benchDecide(b *testing.B, decodeAll bool) {
	e := newEnv(b)
	body := readFileB(b, "groupcreated.json")
	w := benchWorkflows(b, e, body)["pass"]
	b.ReportAllocs()
	for b.Loop() {
		d := Decide(benchRequest("pass", body), w, Check{Now: time.Now(), decodeAll: decodeAll})
		if !d.Passed() {
			b.Fatalf("%+v", d)
		}
	}
}

// BenchmarkHandle is the whole request path of the passthrough shape (no
// targets) and of the ingest shape (the durable write to the embedded
// JetStream included).
func BenchmarkHandle(b *testing.B) {
	e := newEnv(b)
	body := readFileB(b, "groupcreated.json")
	benchWorkflows(b, e, body)
	for _, tc := range []struct {
		id   string
		pass bool
	}{{"pass", true}, {"ingest", false}} {
		b.Run(tc.id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res := e.in.Handle(benchRequest(tc.id, body), tc.id, testKey)
				if res.Pass != tc.pass || (!tc.pass && res.Status != http.StatusAccepted) {
					b.Fatalf("%+v", res)
				}
			}
		})
	}
}
