package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/registry"
)

// recordSchema is a JSON Schema for Orange Logic event data.
const recordSchema = `{"type":"object","required":["RecordID"],"properties":{"RecordID":{"type":"string"}}}`

func TestTopics(t *testing.T) {
	e := newEnv(t)
	conf, err := registry.CompileTopic(registry.Topic{Name: "USER_CREATED", Description: "ACTIVATE"})
	if err != nil {
		t.Fatal(err)
	}
	e.reg.DeclareConfig(nil, []*registry.CompiledTopic{conf}, nil)

	// Create (201), replace (200), read.
	var topic registry.Topic
	e.put("/topics/document.deleted", map[string]any{"description": "An asset was deleted", "schema": json.RawMessage(recordSchema)}).
		expect(http.StatusCreated).decode(&topic)
	if topic.Name != "document.deleted" || topic.Source != "api" || len(topic.Schema) == 0 {
		t.Fatalf("created: %+v", topic)
	}
	topic = registry.Topic{}
	e.put("/topics/document.deleted", map[string]any{"name": "document.deleted", "description": "replaced"}).
		expect(http.StatusOK).decode(&topic)
	if topic.Description != "replaced" || len(topic.Schema) != 0 {
		t.Errorf("replaced: %+v", topic)
	}
	e.put("/topics/document.created", nil).expect(http.StatusCreated)
	e.get("/topics/document.deleted").expect(http.StatusOK).decode(&topic)
	if topic.Description != "replaced" {
		t.Errorf("read: %+v", topic)
	}
	// Names that are not KV keys.
	e.put("/topics/Asset%20Created", nil).expect(http.StatusUnprocessableEntity)
	e.put("/topics/provisioning/requested", nil).expect(http.StatusCreated)
	e.get("/topics/provisioning/requested").expect(http.StatusOK)

	// List: sorted by name, config and built-in topics included.
	var list struct{ Topics []registry.Topic }
	e.get("/topics").expect(http.StatusOK).decode(&list)
	var names []string
	for _, tp := range list.Topics {
		names = append(names, tp.Name+"("+tp.Source+")")
	}
	if got := strings.Join(names, " "); got != "USER_CREATED(config) document.created(api) document.deleted(api) hookgate.subscription.disabled(builtin) provisioning/requested(api)" {
		t.Errorf("list: %s", got)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"name mismatch", "PUT", "/topics/a.b", `{"name":"c.d"}`, http.StatusUnprocessableEntity, "name"},
		{"bad name", "PUT", "/topics/a*", `{}`, http.StatusUnprocessableEntity, "name"},
		{"bad schema", "PUT", "/topics/a.b", `{"schema":{"type":12}}`, http.StatusUnprocessableEntity, "schema"},
		{"unknown field", "PUT", "/topics/a.b", `{"descr":"x"}`, http.StatusBadRequest, ""},
		{"malformed", "PUT", "/topics/a.b", `{"description":`, http.StatusBadRequest, ""},
		{"config topic", "PUT", "/topics/USER_CREATED", `{}`, http.StatusConflict, ""},
		{"delete config topic", "DELETE", "/topics/USER_CREATED", nil, http.StatusConflict, ""},
		{"get unknown", "GET", "/topics/nope", nil, http.StatusNotFound, ""},
		{"delete unknown", "DELETE", "/topics/nope", nil, http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := errorCheck(t, e.do(req{method: tc.method, path: tc.path, body: tc.body}), tc.status, tc.field)
			if tc.status == http.StatusConflict && !strings.Contains(m["error"].(string), "Caddyfile") {
				t.Errorf("read-only error does not mention the Caddyfile: %v", m["error"])
			}
		})
	}

	// Delete.
	if r := e.del("/topics/document.created"); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	errorCheck(t, e.get("/topics/document.created"), http.StatusNotFound, "")
}

// A stored topic that no longer compiles is listed and shown as broken,
// beside the topics that are served.
func TestBrokenTopicShown(t *testing.T) {
	e := newEnv(t)
	e.put("/topics/a.ok", map[string]any{"description": "fine"}).expect(http.StatusCreated)
	if _, err := e.eng.Topics.Put(t.Context(), "b_bad", []byte(`{"name":"b_bad","schema":{"type":12}}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the broken topic is seen", func() bool { return len(e.reg.Broken(registry.KindTopic)) == 1 })
	var list struct {
		Topics []struct {
			Name   string `json:"name"`
			Broken string `json:"broken"`
		}
	}
	e.get("/topics").expect(http.StatusOK).decode(&list)
	var broken string
	for _, tp := range list.Topics {
		if tp.Name == "b_bad" {
			broken = tp.Broken
		} else if tp.Broken != "" {
			t.Errorf("topic %s shown broken: %s", tp.Name, tp.Broken)
		}
	}
	if broken == "" {
		t.Fatalf("broken topic not listed: %+v", list.Topics)
	}
	var one struct{ Name, Broken string }
	e.get("/topics/b_bad").expect(http.StatusOK).decode(&one)
	if one.Name != "b_bad" || one.Broken == "" {
		t.Errorf("GET /topics/b_bad = %+v", one)
	}
}
