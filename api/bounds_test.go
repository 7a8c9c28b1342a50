package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBoundsThroughTheAPI replays issue #8's requests against the API:
// each is a 4xx whose JSON names the bound, answered at once, and the
// process is still there for the next one.
func TestBoundsThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	deep := strings.Repeat("(", 520_000) + "true" + strings.Repeat(")", 520_000)
	nested := func(n int) json.RawMessage {
		return json.RawMessage(strings.Repeat(`{"type":"object","properties":{"a":`, n) + `{"type":"string"}` + strings.Repeat(`}}`, n))
	}
	tests := []struct {
		name, path string
		body       any
		status     int
		field      string
		mention    string
	}{
		{"include of 520,000 parentheses", "/subscriptions",
			map[string]any{"name": "deep", "topics": []string{"*"}, "url": "http://127.0.0.1:9/hook", "include": deep},
			http.StatusUnprocessableEntity, "include", "expression_length"},
		{"filter nested past the depth bound", "/workflows",
			map[string]any{"id": "deep", "filter": strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100)},
			http.StatusUnprocessableEntity, "filter", "expression_depth bound of 64"},
		{"schema nested 600 levels", "/workflows",
			map[string]any{"id": "nested", "schema": nested(600)},
			http.StatusUnprocessableEntity, "schema", "schema_depth"},
		{"max_body 200GB", "/workflows",
			map[string]any{"id": "huge", "sample": json.RawMessage(`{}`), "max_body": 200_000_000_000},
			http.StatusUnprocessableEntity, "max_body", "ceiling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			m := errorCheck(t, e.post(tt.path, tt.body), tt.status, tt.field)
			if msg, _ := m["error"].(string); !strings.Contains(msg, tt.mention) {
				t.Errorf("error %q does not mention %q", msg, tt.mention)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}

	// Evaluation bounds, caught by the dry runs.
	var wf, costly, big map[string]any
	e.post("/workflows", map[string]any{"id": "cpu", "sample": json.RawMessage(`{}`),
		"filter": `let r = 1..700; all(r, all(r, all(r, true)))`}).expect(http.StatusCreated).decode(&wf)
	e.remember(wf["key"].(string))
	e.post("/subscriptions", map[string]any{"name": "costly", "topics": []string{"*"}, "url": "http://127.0.0.1:9/hook",
		"include": `let r = 1..700; all(r, all(r, all(r, true)))`}).expect(http.StatusCreated).decode(&costly)
	e.post("/subscriptions", map[string]any{"name": "big", "topics": []string{"*"}, "url": "http://127.0.0.1:9/hook",
		"envelope": `{a: repeat("x", 1000000), b: repeat("y", 1000000), c: repeat("z", 1000000)}`}).expect(http.StatusCreated).decode(&big)
	for _, tc := range []struct {
		name, path, body, mention string
	}{
		{"workflow dry run", "/workflows/cpu/test", `{}`, "eval_"},
		{"subscription predicates", "/subscriptions/" + costly["id"].(string) + "/test-predicates", `{"topic":"t","data":{}}`, "eval_"},
		{"subscription envelope", "/subscriptions/" + big["id"].(string) + "/test", `{"data":{}}`, "envelope_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := errorCheck(t, e.post(tc.path, tc.body), http.StatusUnprocessableEntity, "")
			if msg, _ := m["error"].(string); !strings.Contains(msg, tc.mention) {
				t.Errorf("error %q does not mention %q", msg, tc.mention)
			}
		})
	}
}
