package api

import (
	"net/http"
	"strings"
	"testing"
)

// Issue #9: ordered and order_key on subscriptions and workflow targets:
// they round-trip through POST, GET and PATCH, reach the compiled
// destination, and a wrong key is a 422 naming the field.
func TestOrderingFields(t *testing.T) {
	e := newEnv(t)
	var sub subscriptionView
	e.post("/subscriptions", map[string]any{
		"id": "ord", "name": "ord", "topics": []string{"*"}, "url": "http://127.0.0.1:9/",
		"ordered": true, "order_key": "data.RecordID",
	}).expect(http.StatusCreated).decode(&sub)
	if !sub.Ordered || sub.OrderKey != "data.RecordID" {
		t.Errorf("created %+v", sub.FlowControl)
	}
	sub = subscriptionView{}
	e.get("/subscriptions/ord").expect(http.StatusOK).decode(&sub)
	if !sub.Ordered || sub.OrderKey != "data.RecordID" {
		t.Errorf("GET %+v", sub.FlowControl)
	}
	if cs, _ := e.reg.Subscription("ord"); !cs.Dest.Flow.Ordered || cs.Dest.Flow.OrderKey.String() != "data.RecordID" {
		t.Errorf("compiled flow %+v", cs.Dest.Flow)
	}
	e.patch("/subscriptions/ord", map[string]any{"order_key": "tenant + data.RecordID"}).expect(http.StatusOK).decode(&sub)
	if cs, _ := e.reg.Subscription("ord"); !sub.Ordered || cs.Dest.Flow.OrderKey.String() != "tenant + data.RecordID" {
		t.Errorf("patched %+v", sub.FlowControl)
	}
	// Off again: both go.
	sub = subscriptionView{}
	e.patch("/subscriptions/ord", map[string]any{"ordered": false, "order_key": ""}).expect(http.StatusOK).decode(&sub)
	if cs, _ := e.reg.Subscription("ord"); sub.Ordered || sub.OrderKey != "" || cs.Dest.Flow.Ordered || cs.Dest.Flow.OrderKey != nil {
		t.Errorf("unordered %+v", sub.FlowControl)
	}
	body := e.get("/subscriptions/ord").expect(http.StatusOK).Body.String()
	if strings.Contains(body, `"ordered"`) || strings.Contains(body, `"order_key"`) {
		t.Errorf("an unordered subscription shows the options: %s", body)
	}

	var wf workflowView
	e.post("/workflows", map[string]any{"id": "wfo", "targets": []map[string]any{
		{"url": "http://127.0.0.1:9/a", "ordered": true},
		{"url": "http://127.0.0.1:9/b", "ordered": true, "order_key": "data.id"},
		{"url": "http://127.0.0.1:9/c"},
	}}).expect(http.StatusCreated).decode(&wf)
	if len(wf.Targets) != 3 || !wf.Targets[0].Ordered || wf.Targets[0].OrderKey != "" ||
		!wf.Targets[1].Ordered || wf.Targets[1].OrderKey != "data.id" || wf.Targets[2].Ordered {
		t.Errorf("workflow targets %+v", wf.Targets)
	}
	cw, _ := e.reg.Workflow("wfo")
	if f := cw.Targets[1].Flow; !f.Ordered || f.OrderKey.String() != "data.id" || cw.Targets[2].Flow.Ordered {
		t.Errorf("compiled targets %+v", f)
	}

	sc := func(extra string) string {
		return `{"name":"s","topics":["*"],"url":"http://127.0.0.1:9/",` + extra + `}`
	}
	for _, tc := range []struct{ name, method, path, body, field, want string }{
		{"bad expression", "POST", "/subscriptions", sc(`"ordered":true,"order_key":"data.("`), "order_key", `order_key "data.("`},
		{"unknown name", "POST", "/subscriptions", sc(`"ordered":true,"order_key":"body.id"`), "order_key", "unknown name body"},
		{"key without ordered", "POST", "/subscriptions", sc(`"order_key":"data.id"`), "order_key", "ordered is not"},
		{"patch bad key", "PATCH", "/subscriptions/ord", `{"ordered":true,"order_key":"data.id +"}`, "order_key", "order_key"},
		{"target bad key", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","ordered":true,"order_key":")"}]}`, "targets[0].order_key", "order_key"},
		{"target key without ordered", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","order_key":"data.id"}]}`, "targets[0].order_key", "ordered is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: tc.method, path: tc.path, body: tc.body})
			m := errorCheck(t, r, http.StatusUnprocessableEntity, tc.field)
			if msg, _ := m["error"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
		})
	}
	// A value of the wrong JSON type is a 400 with a JSON body.
	r := e.do(req{method: "POST", path: "/subscriptions", body: sc(`"ordered":"yes"`)})
	errorCheck(t, r, http.StatusBadRequest, "")
}
