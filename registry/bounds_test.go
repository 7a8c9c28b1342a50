package registry

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCreateWorkflowCompilesOnce: the watch takes the workflow that
// CreateWorkflow and UpdateWorkflow compiled instead of compiling the same
// document again (issue #8: a costly schema was compiled twice per create),
// and still compiles a document written by anyone else.
func TestCreateWorkflowCompilesOnce(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	schema := json.RawMessage(`{"type":"object","properties":{"a":{"type":"string"}}}`)
	cw, _, err := r.CreateWorkflow(ctx, Workflow{ID: "once", Schema: schema, Filter: `body.a == "x"`})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Workflow("once"); !ok || got != cw {
		t.Fatalf("registry holds %p, CreateWorkflow compiled %p", got, cw)
	}
	up, err := r.UpdateWorkflow(ctx, "once", []byte(`{"description":"patched"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Workflow("once"); !ok || got != up {
		t.Fatalf("after update the registry holds %p, UpdateWorkflow compiled %p", got, up)
	}
	// A document written by another instance is compiled here.
	doc, _ := json.Marshal(Workflow{ID: "once", Source: SourceAPI, Schema: schema, Description: "elsewhere"})
	if _, err := eng.Workflows.Put(ctx, "once", doc); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool {
		got, ok := r.Workflow("once")
		return ok && got.Def.Description == "elsewhere" && got.Contract != nil
	}) {
		t.Fatal("the document written elsewhere was not applied")
	}
}

// TestHostileExpressionsThroughTheStore is issue #8's first finding through
// the API's compile path: an include, a workflow filter or an envelope of
// 520,000 nested parentheses overflowed the parser's stack and killed the
// process. Now each is an *InvalidError naming the field, and nothing is
// stored.
func TestHostileExpressionsThroughTheStore(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	deep := strings.Repeat("(", 520_000) + "true" + strings.Repeat(")", 520_000)
	deepish := strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100)
	for _, src := range []string{deep, deepish} {
		_, _, err := r.CreateWorkflow(ctx, Workflow{ID: "deep", Filter: src})
		if f, _ := invalidField(err); f != "filter" {
			t.Errorf("workflow filter: %.200v", err)
		}
		_, err = r.CreateSubscription(ctx, Subscription{Name: "deep", Topics: []string{"*"}, URL: "http://127.0.0.1:9/hook", Include: Predicates{src}})
		if f, _ := invalidField(err); f != "include" {
			t.Errorf("subscription include: %.200v", err)
		}
		_, err = r.CreateSubscription(ctx, Subscription{Name: "deep", Topics: []string{"*"}, URL: "http://127.0.0.1:9/hook", Envelope: src})
		if f, _ := invalidField(err); f != "envelope" {
			t.Errorf("subscription envelope: %.200v", err)
		}
	}
	if _, ok := r.Workflow("deep"); ok || len(r.Subscriptions()) != 0 {
		t.Fatal("a refused resource was stored")
	}
}
