package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// Issue #9: flow control fields on subscriptions and workflow targets, the
// circuit state in their views, and 422s naming the field.
func TestFlowControlFields(t *testing.T) {
	e := newEnv(t)
	var sub subscriptionView
	e.post("/subscriptions", map[string]any{
		"id": "paced", "name": "paced", "topics": []string{"*"}, "url": "http://127.0.0.1:9/",
		"rate_limit": "50/s", "max_in_flight": 4, "disable_after": "48h",
		"breaker": map[string]any{"failures": 3, "cooldown": "2s", "max_cooldown": "1m"},
	}).expect(http.StatusCreated).decode(&sub)
	if sub.RateLimit != "50/s" || sub.MaxInFlight != 4 || sub.DisableAfter.Std().Hours() != 48 ||
		sub.Breaker == nil || sub.Breaker.Failures != 3 || sub.Breaker.Cooldown.Std().Seconds() != 2 {
		t.Errorf("created %+v", sub)
	}
	e.get("/subscriptions/paced").expect(http.StatusOK).decode(&sub)
	if sub.Circuit == nil || sub.Circuit.State != delivery.CircuitClosed || sub.Circuit.Failures != 0 {
		t.Errorf("GET circuit %+v", sub.Circuit)
	}
	e.patch("/subscriptions/paced", map[string]any{"rate_limit": "300/m", "breaker": map[string]any{"off": true}}).expect(http.StatusOK).decode(&sub)
	if cs, _ := e.reg.Subscription("paced"); sub.RateLimit != "300/m" || cs.Dest.Flow.Rate != 5 || !cs.Dest.Flow.BreakerOff {
		t.Errorf("patched %+v", sub)
	}

	var wf workflowView
	e.post("/workflows", map[string]any{"id": "wfp", "targets": []map[string]any{{
		"url": "http://127.0.0.1:9/", "rate_limit": "10/s", "max_in_flight": 2, "breaker": map[string]any{"failures": 2},
	}}}).expect(http.StatusCreated).decode(&wf)
	if len(wf.Targets) != 1 || wf.Targets[0].RateLimit != "10/s" || wf.Targets[0].MaxInFlight != 2 ||
		wf.Targets[0].Circuit == nil || wf.Targets[0].Circuit.State != delivery.CircuitClosed {
		t.Errorf("workflow targets %+v", wf.Targets)
	}
	if cw, _ := e.reg.Workflow("wfp"); cw.Targets[0].Flow.Failures != 2 || cw.Targets[0].Flow.MaxInFlight != 2 {
		t.Errorf("compiled target flow %+v", cw.Targets[0].Flow)
	}

	sc := func(extra string) string {
		return `{"name":"s","topics":["*"],"url":"http://127.0.0.1:9/",` + extra + `}`
	}
	for _, tc := range []struct{ name, method, path, body, field, want string }{
		{"rate without unit", "POST", "/subscriptions", sc(`"rate_limit":"50"`), "rate_limit", "N/s"},
		{"rate too high", "POST", "/subscriptions", sc(`"rate_limit":"1000000/s"`), "rate_limit", "maximum"},
		{"max_in_flight 2000", "POST", "/subscriptions", sc(`"max_in_flight":2000`), "max_in_flight", "1024"},
		{"breaker failures", "POST", "/subscriptions", sc(`"breaker":{"failures":5000}`), "breaker.failures", "1000"},
		{"breaker cooldown", "POST", "/subscriptions", sc(`"breaker":{"cooldown":"3h"}`), "breaker.cooldown", "maximum of 1h0m0s"},
		{"disable_after 1000d", "POST", "/subscriptions", sc(`"disable_after":"24000h"`), "disable_after", "720h"},
		{"patch rate", "PATCH", "/subscriptions/paced", `{"rate_limit":"fast"}`, "rate_limit", "N/s"},
		{"target max_in_flight", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","max_in_flight":5000}]}`, "targets[0].max_in_flight", "1024"},
		{"target rate", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","rate_limit":"5/d"}]}`, "targets[0].rate_limit", "unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: tc.method, path: tc.path, body: tc.body})
			m := errorCheck(t, r, http.StatusUnprocessableEntity, tc.field)
			if msg, _ := m["error"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
		})
	}
}

// The built-in topic is listed and read-only.
func TestBuiltinTopic(t *testing.T) {
	e := newEnv(t)
	body := e.get("/topics").expect(http.StatusOK).Body.String()
	if !strings.Contains(body, registry.TopicSubscriptionDisabled) || !strings.Contains(body, `"source":"builtin"`) {
		t.Errorf("GET /topics: %s", body)
	}
	if r := e.del("/topics/" + registry.TopicSubscriptionDisabled); r.Code < 400 {
		t.Errorf("DELETE of the built-in topic: %d", r.Code)
	}
	e.post("/subscriptions", map[string]any{"name": "watch", "topics": []string{registry.TopicSubscriptionDisabled}, "url": "http://127.0.0.1:9/"}).expect(http.StatusCreated)
}
