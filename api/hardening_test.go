package api

import (
	"net/http"
	"strings"
	"testing"
)

// Issue #8: hostile configuration through the API is refused with 422 and
// the field, before it is stored (findings 5, 7 and 9).
func TestHostileResourcesRefused(t *testing.T) {
	e := newEnv(t)
	e.post("/workflows", map[string]any{"id": "wf"}).expect(http.StatusCreated)
	e.post("/subscriptions", map[string]any{"id": "sub", "name": "sub", "topics": []string{"*"}, "url": "http://127.0.0.1:9/"}).expect(http.StatusCreated)
	sub := func(extra string) string {
		return `{"name":"s","topics":["*"],"url":"http://127.0.0.1:9/",` + extra + `}`
	}
	tests := []struct {
		name, method, path, body, field, want string
	}{
		{"target header CRLF", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","headers":{"X-A":"a\r\nX-Injected: 1"}}]}`, "targets[0].headers", "control character"},
		{"target header name space", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","headers":{"X A":"a"}}]}`, "targets[0].headers", "not allowed in a header name"},
		{"target header NUL", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","headers":{"X-A":"a\u0000"}}]}`, "targets[0].headers", "control character"},
		{"target timeout 100000h", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","timeout":"100000h"}]}`, "targets[0].timeout", "maximum of 5m0s"},
		{"target retry wait 48h", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1:9/","retry_schedule":["1s","48h"]}]}`, "targets[0].retry_schedule", "maximum of 24h0m0s"},
		{"workflow grace 1000h", "POST", "/workflows", `{"id":"x","grace":"1000h"}`, "grace", "maximum of 168h0m0s"},
		{"idempotency header with space", "POST", "/workflows", `{"id":"x","idempotency_header":"X Request Id"}`, "idempotency_header", "not allowed"},
		{"non-boolean filter", "POST", "/workflows", `{"id":"x","sample":{"eventType":"a"},"filter":"body.eventType"}`, "filter", "must be boolean"},
		{"patch non-boolean filter", "PATCH", "/workflows/wf", `{"filter":"body.eventType"}`, "filter", "must be boolean"},
		{"patch target header LF", "PATCH", "/workflows/wf", `{"targets":[{"url":"http://127.0.0.1:9/","headers":{"X-A":"a\nb"}}]}`, "targets[0].headers", "control character"},
		{"subscription header CRLF", "POST", "/subscriptions", sub(`"headers":{"Authorization":"Bearer x\r\nX-Evil: 1"}`), "headers", "control character"},
		{"subscription max_attempts 1e9", "POST", "/subscriptions", sub(`"max_attempts":1000000000`), "max_attempts", "maximum of 100"},
		{"subscription timeout 100000h", "POST", "/subscriptions", sub(`"timeout":"100000h"`), "timeout", "maximum of 5m0s"},
		{"subscription non-boolean include", "POST", "/subscriptions", sub(`"include":"data.enabled"`), "include", "must be boolean"},
		{"subscription secret header", "POST", "/subscriptions", sub(`"secret_header":"X:Secret"`), "secret_header", "not allowed"},
		{"subscription redacted header value", "POST", "/subscriptions", sub(`"headers":{"Authorization":"***"}`), "headers", "stands for a stored value"},
		{"patch subscription max_attempts", "PATCH", "/subscriptions/sub", `{"max_attempts":101}`, "max_attempts", "maximum of 100"},
		{"rotate grace 1000h", "POST", "/subscriptions/sub/rotate-secret", `{"grace":"1000h"}`, "grace", "maximum of 168h0m0s"},
		{"regenerate grace 1000h", "POST", "/workflows/wf/regenerate", `{"grace":"1000h"}`, "grace", "maximum of 168h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: tc.method, path: tc.path, body: tc.body})
			m := errorCheck(t, r, http.StatusUnprocessableEntity, tc.field)
			if msg, _ := m["error"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
		})
	}
}

// Issue #8, finding 5: credential-like header values are never shown; a
// PATCH that sends the redacted value back keeps the stored one.
func TestHeaderValuesRedacted(t *testing.T) {
	e := newEnv(t)
	const auth = "Bearer app-credential-0123"
	e.remember(auth)
	e.post("/subscriptions", map[string]any{
		"id": "s", "name": "s", "topics": []string{"*"}, "url": "http://127.0.0.1:9/",
		"headers": map[string]string{"Authorization": auth, "X-Api-Key": "key-0123", "X-Tenant": "ZZ1"},
	}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{
		"id": "w", "targets": []map[string]any{{"url": "http://127.0.0.1:9/a", "headers": map[string]string{"X-Auth-Token": "tok-0123", "X-Source": "hookgate"}}},
	}).expect(http.StatusCreated)

	for _, path := range []string{"/subscriptions/s", "/subscriptions", "/workflows/w", "/workflows"} {
		body := e.get(path).expect(http.StatusOK).Body.String()
		for _, secret := range []string{auth, "key-0123", "tok-0123"} {
			if strings.Contains(body, secret) {
				t.Errorf("GET %s shows a credential header value: %s", path, body)
			}
		}
		if !strings.Contains(body, `"***"`) || !(strings.Contains(body, "ZZ1") || strings.Contains(body, "hookgate")) {
			t.Errorf("GET %s: want redacted credentials and clear other headers: %s", path, body)
		}
	}

	// Sent back as shown: the stored value stays; a plain header changes.
	e.patch("/subscriptions/s", map[string]any{"headers": map[string]any{"Authorization": "***", "X-Tenant": "ZZ2"}}).expect(http.StatusOK)
	cs, _ := e.reg.Subscription("s")
	if h := cs.Def.Headers; h["Authorization"] != auth || h["X-Api-Key"] != "key-0123" || h["X-Tenant"] != "ZZ2" {
		t.Errorf("after PATCH with redacted values: %v", h)
	}
	e.patch("/subscriptions/s", map[string]any{"headers": map[string]any{"Authorization": "Bearer new"}}).expect(http.StatusOK)
	if cs, _ := e.reg.Subscription("s"); cs.Def.Headers["Authorization"] != "Bearer new" {
		t.Errorf("a new value was not stored: %v", cs.Def.Headers)
	}

	var shown workflowView
	e.get("/workflows/w").expect(http.StatusOK).decode(&shown)
	shown.Targets[0].Headers["X-Source"] = "gateway"
	e.patch("/workflows/w", map[string]any{"targets": []any{map[string]any{
		"url": shown.Targets[0].URL, "headers": shown.Targets[0].Headers}}}).expect(http.StatusOK)
	cw, _ := e.reg.Workflow("w")
	if h := cw.Def.Targets[0].Headers; h["X-Auth-Token"] != "tok-0123" || h["X-Source"] != "gateway" {
		t.Errorf("workflow target headers after PATCH with redacted values: %v", h)
	}
	// A redacted value for a target that had none is refused.
	r := e.patch("/workflows/w", map[string]any{"targets": []any{map[string]any{
		"url": "http://127.0.0.1:9/b", "headers": map[string]string{"X-Auth-Token": "***"}}}})
	errorCheck(t, r, http.StatusUnprocessableEntity, "targets[0].headers")
}
