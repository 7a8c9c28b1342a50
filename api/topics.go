package api

import (
	"net/http"

	"github.com/hookgate/hookgate/registry"
)

// viewTopic is a topic as the API shows it.
func viewTopic(ct *registry.CompiledTopic) registry.Topic {
	t := ct.Def
	// Resources read from the KV buckets are always marked "api"; the
	// others were declared in the Caddyfile.
	if t.Source == "" {
		t.Source = registry.SourceConfig
	}
	return t
}

// brokenTopic is a stored topic that no longer reads or compiles: it is
// not served (publishing on it is a 404) until it is replaced or deleted.
type brokenTopic struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Broken string `json:"broken"`
}

// listTopics serves GET /topics: the topics by name, broken ones included.
func (h *Handler) listTopics(w http.ResponseWriter, _ *http.Request, _ []string) error {
	var served []registry.Topic
	for _, ct := range h.reg.Topics() {
		served = append(served, viewTopic(ct))
	}
	list := withBroken(served, func(t registry.Topic) string { return t.Name }, h.reg.Broken(registry.KindTopic))
	for i, v := range list {
		if b, ok := v.(brokenView); ok {
			list[i] = brokenTopic{Name: b.ID, Source: b.Source, Broken: b.Broken}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"topics": list})
	return nil
}

// getTopic serves GET /topics/{name}.
func (h *Handler) getTopic(w http.ResponseWriter, _ *http.Request, p []string) error {
	ct, ok := h.reg.Topic(p[0])
	if !ok {
		if reason, broken := h.reg.Broken(registry.KindTopic)[p[0]]; broken {
			writeJSON(w, http.StatusOK, brokenTopic{Name: p[0], Source: registry.SourceAPI, Broken: reason})
			return nil
		}
		return notFound("topic %q not found", p[0])
	}
	writeJSON(w, http.StatusOK, viewTopic(ct))
	return nil
}

// putTopic serves PUT /topics/{name}: creates (201) or replaces (200) a
// topic; the body is {description, schema}, and a "name" must match the
// path.
func (h *Handler) putTopic(w http.ResponseWriter, r *http.Request, p []string) error {
	name := p[0]
	var t registry.Topic
	if err := decodeJSON(r, &t, true); err != nil {
		return err
	}
	if t.Name != "" && t.Name != name {
		return fieldError("name", "%q does not match the topic name in the path (%q)", t.Name, name)
	}
	t.Name = name
	_, existed := h.reg.Topic(name)
	ct, err := h.reg.PutTopic(r.Context(), t)
	if err != nil {
		return wrapResource("topic", name, err)
	}
	status := http.StatusOK
	if !existed {
		status = http.StatusCreated
	}
	writeJSON(w, status, viewTopic(ct))
	return nil
}

// deleteTopic serves DELETE /topics/{name}.
func (h *Handler) deleteTopic(w http.ResponseWriter, r *http.Request, p []string) error {
	if err := h.reg.DeleteTopic(r.Context(), p[0]); err != nil {
		return wrapResource("topic", p[0], err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
