package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vErrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"

	"github.com/hookgate/hookgate/delivery"
)

// openAPIDoc decodes the served document.
func openAPIDoc(t *testing.T, e *env) map[string]any {
	t.Helper()
	r := e.do(req{method: "GET", path: "/openapi.json", token: "-"}).expect(http.StatusOK)
	if ct := r.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc map[string]any
	r.decode(&doc)
	return doc
}

// routingAnswer reports whether r is the router's own 404 or 405 (no route
// for the path, or not for the method).
func routingAnswer(r response) bool {
	if r.Code == http.StatusMethodNotAllowed {
		return true
	}
	var m map[string]any
	_ = json.Unmarshal(r.Body.Bytes(), &m)
	msg, _ := m["error"].(string)
	return r.Code == http.StatusNotFound && strings.HasPrefix(msg, "no such API route")
}

// examplePath fills the path parameters of an OpenAPI path template.
func examplePath(p string) string {
	return strings.NewReplacer("{id}", "nope", "{name}", "a/b").Replace(p)
}

// TestOpenAPIWalk walks the route table and the document both ways: every
// route is documented with its method, every documented path and method is
// served (the answer is not the router's 404 or 405), and every other
// method on a documented path is the router's 405 with the documented
// methods in Allow.
func TestOpenAPIWalk(t *testing.T) {
	e := newEnv(t)
	doc := openAPIDoc(t, e)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", doc["openapi"])
	}
	paths, _ := doc["paths"].(map[string]any)
	documented := 0
	for _, item := range paths {
		for range item.(map[string]any) {
			documented++
		}
	}
	rts := Routes()
	if documented != len(rts) {
		t.Errorf("%d documented operations, %d routes", documented, len(rts))
	}
	for _, rt := range rts {
		item, _ := paths[openAPIPath(rt.Pattern)].(map[string]any)
		op, _ := item[strings.ToLower(rt.Method)].(map[string]any)
		if op == nil {
			t.Errorf("route %s %s is not in the document", rt.Method, rt.Pattern)
			continue
		}
		if op["summary"] != rt.Summary {
			t.Errorf("%s %s: summary %q, want %q", rt.Method, rt.Pattern, op["summary"], rt.Summary)
		}
		// Every path wildcard is a documented path parameter.
		params, _ := op["parameters"].([]any)
		for _, name := range rt.wildcards() {
			found := false
			for _, p := range params {
				pm := p.(map[string]any)
				found = found || pm["name"] == name && pm["in"] == "path" && pm["required"] == true
			}
			if !found {
				t.Errorf("%s %s: path parameter %q not documented", rt.Method, rt.Pattern, name)
			}
		}
	}
	for p, item := range paths {
		var methods []string
		for m := range item.(map[string]any) {
			methods = append(methods, strings.ToUpper(m))
		}
		slices.Sort(methods)
		for _, m := range routeMethods {
			t.Run(m+" "+p, func(t *testing.T) {
				r := e.do(req{method: m, path: examplePath(p)})
				if !slices.Contains(methods, m) {
					if r.Code != http.StatusMethodNotAllowed || r.Header().Get("Allow") != strings.Join(methods, ", ") {
						t.Errorf("undocumented method: %d Allow %q, want 405 with %v: %s", r.Code, r.Header().Get("Allow"), methods, r.Body)
					}
					return
				}
				if routingAnswer(r) {
					t.Errorf("documented but not served: %d %s", r.Code, r.Body)
				}
			})
		}
	}
}

// TestOpenAPIPublic checks that the document is served without a token
// (and to a publish-only token), while other methods on its path are not.
func TestOpenAPIPublic(t *testing.T) {
	e := newEnv(t)
	for _, token := range []string{"-", publishToken, "wrong"} {
		e.do(req{method: "GET", path: "/openapi.json", token: token}).expect(http.StatusOK)
	}
	errorCheck(t, e.do(req{method: "POST", path: "/openapi.json", token: "-"}), http.StatusUnauthorized, "")
	errorCheck(t, e.do(req{method: "HEAD", path: "/openapi.json"}), http.StatusMethodNotAllowed, "")
	// Nothing secret in it: no token, no key.
	body := e.do(req{method: "GET", path: "/openapi.json", token: "-"}).Body.String()
	for _, s := range []string{adminToken, publishToken} {
		if strings.Contains(body, s) {
			t.Errorf("the document contains a token")
		}
	}
}

// newValidator validates the served document with libopenapi-validator and
// returns the validator of requests and responses.
func newValidator(t *testing.T, e *env) (validator.Validator, libopenapi.Document) {
	t.Helper()
	b := e.do(req{method: "GET", path: "/openapi.json", token: "-"}).expect(http.StatusOK).Body.Bytes()
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatalf("libopenapi: %v", err)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		t.Fatalf("libopenapi: the v3 model does not build: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("the document is not a valid OpenAPI document:\n%s", describe(verrs))
	}
	return v, doc
}

func describe(errs []*vErrors.ValidationError) string {
	var sb strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&sb, "- %s: %s", e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&sb, " [%s at %s]", s.Reason, s.FieldPath)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// TestOpenAPIDocumentValid validates the document against the OpenAPI 3.1
// specification.
func TestOpenAPIDocumentValid(t *testing.T) {
	newValidator(t, newEnv(t))
}

// TestOpenAPIResponses runs the main routes of the API and validates each
// real request and answer against the document: statuses, bodies, media
// types; the router's own 404 and 405 (on paths and methods the document
// cannot list) are validated against its Error schema.
func TestOpenAPIResponses(t *testing.T) {
	e := newEnv(t)
	v, doc := newValidator(t, e)
	sink := newSink(t, http.StatusOK)

	// call runs a request and validates the request and its answer (only
	// the answer when the request is meant to be wrong).
	call := func(method, path string, body any, status int, answerOnly bool, header ...string) response {
		t.Helper()
		var raw []byte
		switch b := body.(type) {
		case nil:
		case string:
			raw = []byte(b)
		case []byte:
			raw = b
		default:
			raw, _ = json.Marshal(b)
		}
		build := func() *http.Request {
			r := httptest.NewRequest(method, "http://gw.test"+path, bytes.NewReader(raw))
			if body != nil {
				r.Header.Set("Content-Type", "application/json")
			}
			for i := 0; i+1 < len(header); i += 2 {
				r.Header.Set(header[i], header[i+1])
			}
			if r.Header.Get("Authorization") == "" {
				r.Header.Set("Authorization", "Bearer "+adminToken)
			} else if r.Header.Get("Authorization") == "-" {
				r.Header.Del("Authorization")
			}
			return r
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, build())
		resp := response{ResponseRecorder: w, t: t}
		if w.Code != status {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, status, w.Body)
		}
		var ok bool
		var errs []*vErrors.ValidationError
		if answerOnly {
			ok, errs = v.ValidateHttpResponse(build(), w.Result())
		} else {
			ok, errs = v.ValidateHttpRequestResponse(build(), w.Result())
		}
		if !ok {
			t.Errorf("%s %s (%d): not as documented:\n%s%s", method, path, w.Code, describe(errs), w.Body)
		}
		return resp
	}

	// The document itself.
	call("GET", "/openapi.json", nil, 200, false, "Authorization", "-")

	// Workflows.
	var wf workflowView
	call("POST", "/workflows", provisioning(t, "provisioning", sink.srv.URL+"/provisioned"), 201, false).decode(&wf)
	e.remember(wf.Key)
	call("POST", "/workflows", map[string]any{"id": "open", "filter": "true"}, 201, false)
	call("GET", "/workflows", nil, 200, false)
	call("GET", "/workflows/provisioning", nil, 200, false)
	call("PATCH", "/workflows/provisioning", map[string]any{"description": "EasyLife groups"}, 200, false)
	var regen map[string]string
	call("POST", "/workflows/provisioning/regenerate", map[string]any{"grace": "1m"}, 200, false).decode(&regen)
	e.remember(regen["key"])
	group := readExample(t, "easylife/groupcreated.json")
	call("POST", "/workflows/provisioning/test", group, 200, false)
	call("POST", "/workflows/provisioning/test", group, 200, false, "X-Hub-Signature-256", githubSig("gh-hmac-secret", group))
	call("POST", "/workflows/provisioning/test", "a=1", 200, false, "Content-Type", "application/x-www-form-urlencoded")
	call("POST", "/workflows/open/test", nil, 200, false, dryRunMethodHeader, "PUT")
	call("GET", "/workflows/provisioning/schema", nil, 200, false)

	// Topics and subscriptions.
	call("PUT", "/topics/document.deleted", map[string]any{"description": "Orange Logic",
		"schema": json.RawMessage(`{"type":"object","required":["RecordID"]}`)}, 201, false)
	call("PUT", "/topics/document.deleted", map[string]any{"description": "Orange Logic documents"}, 200, false)
	call("GET", "/topics", nil, 200, false)
	call("GET", "/topics/document.deleted", nil, 200, false)
	var sub subscriptionView
	call("POST", "/subscriptions", map[string]any{"id": "dam", "name": "DAM", "topics": []string{"document.*"},
		"url": sink.srv.URL + "/dam", "include": `data.RecordID != ""`, "headers": map[string]string{"Authorization": "Bearer x"}}, 201, false).decode(&sub)
	e.remember(sub.Secret)
	call("GET", "/subscriptions", nil, 200, false)
	call("GET", "/subscriptions/dam", nil, 200, false)
	call("PATCH", "/subscriptions/dam", map[string]any{"description": "the DAM"}, 200, false)
	var rot map[string]string
	call("POST", "/subscriptions/dam/rotate-secret", map[string]any{"grace": "1h"}, 200, false).decode(&rot)
	e.remember(rot["secret"])
	call("POST", "/subscriptions/dam/test", map[string]any{"data": json.RawMessage(orangeLogicData)}, 200, false)
	call("POST", "/subscriptions/dam/test-predicates", map[string]any{"topic": "document.deleted", "data": json.RawMessage(orangeLogicData)}, 200, false)

	// Events and deliveries.
	call("POST", "/events", map[string]any{"id": orangeLogicID, "topic": "document.deleted", "data": json.RawMessage(orangeLogicData),
		"time": "2024-12-30T19:18:23.8711593Z"}, 202, false)
	call("POST", "/events", map[string]any{"id": orangeLogicID, "topic": "document.deleted", "data": json.RawMessage(orangeLogicData)}, 202, false)
	olEvent := map[string]any{"id": "ol-batch", "topic": "document.deleted", "data": json.RawMessage(orangeLogicData), "tenant": "ZZ1"}
	call("POST", "/events/batch", map[string]any{"events": []any{olEvent, olEvent,
		map[string]any{"topic": "document.deleted", "data": json.RawMessage(orangeLogicData)}}}, 202, false)
	call("POST", "/events/batch", map[string]any{"events": []any{olEvent}}, 202, false, "Authorization", "Bearer "+publishToken)
	call("POST", "/events/batch", map[string]any{"events": []any{olEvent,
		map[string]any{"topic": "document.deleted", "time": "yesterday"}}}, 422, false)
	call("POST", "/events/batch", map[string]any{"events": []any{map[string]any{"topic": "nope"}}}, 404, false)
	call("POST", "/events/batch", map[string]any{"events": []any{}}, 400, true)
	call("POST", "/events/batch", map[string]any{"events": slices.Repeat([]any{olEvent}, MaxBatch+1)}, 413, true)
	call("POST", "/events/batch", map[string]any{"events": []any{olEvent,
		map[string]any{"id": delivery.EventRef(e.eng.EventEpoch, 1<<40), "topic": "document.deleted", "data": json.RawMessage(orangeLogicData)}}}, 503, false)
	var recs struct {
		Deliveries []struct {
			ID, Status string
		} `json:"deliveries"`
	}
	eventually(t, 10*time.Second, "the delivery succeeded", func() bool {
		e.get("/deliveries?event=" + orangeLogicID).decode(&recs)
		return len(recs.Deliveries) == 1 && recs.Deliveries[0].Status == "succeeded"
	})
	call("GET", "/events/"+orangeLogicID, nil, 200, false)
	call("GET", "/deliveries", nil, 200, false)
	call("GET", "/deliveries?subscription=dam&status=succeeded&limit=10", nil, 200, false)
	call("GET", "/deliveries/"+recs.Deliveries[0].ID, nil, 200, false)
	call("POST", "/deliveries/"+recs.Deliveries[0].ID+"/retry", nil, 202, false)
	eventually(t, 10*time.Second, "the retried delivery succeeded", func() bool {
		e.get("/deliveries?event=" + orangeLogicID).decode(&recs)
		return len(recs.Deliveries) == 1 && recs.Deliveries[0].Status == "succeeded"
	})
	call("POST", "/deliveries/retry", map[string]any{"subscription": "dam", "status": "succeeded"}, 202, false)

	// Errors.
	call("POST", "/workflows", "{not json", 400, true)
	call("GET", "/deliveries?status=lost", nil, 400, true)
	call("GET", "/topics", nil, 401, true, "Authorization", "-")
	call("GET", "/topics", nil, 403, true, "Authorization", "Bearer "+publishToken)
	call("GET", "/workflows/nope", nil, 404, false)
	call("GET", "/deliveries/nope", nil, 404, false)
	call("POST", "/workflows", map[string]any{"id": "open"}, 409, false)
	call("POST", "/subscriptions", `{"id":"big","name":"`+strings.Repeat("a", MaxBody)+`"}`, 413, true)
	call("POST", "/subscriptions", map[string]any{"id": "bad", "topics": []string{"x"}, "url": "ftp://127.0.0.1/"}, 422, false)
	call("POST", "/events", map[string]any{"topic": "document.deleted", "data": map[string]any{"x": 1}, "time": "yesterday"}, 422, true)

	// Deletions.
	call("DELETE", "/subscriptions/dam", nil, 204, false)
	call("DELETE", "/topics/document.deleted", nil, 204, false)
	call("DELETE", "/workflows/provisioning", nil, 204, false)

	// The router's 404 and 405 are on paths and methods the document
	// cannot list: their bodies are checked against its Error schema.
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	errSchema := model.Model.Components.Schemas.GetOrZero("Error").Schema()
	sv := schema_validation.NewSchemaValidator()
	for _, c := range []struct {
		method, path string
		status       int
	}{{"GET", "/nope", 404}, {"GET", "/workflows//test", 404}, {"PUT", "/workflows", 405}, {"HEAD", "/topics", 405}} {
		r := e.do(req{method: c.method, path: c.path})
		if r.Code != c.status {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, r.Code, c.status)
		}
		if ok, errs := sv.ValidateSchemaBytes(errSchema, r.Body.Bytes()); !ok {
			t.Errorf("%s %s: the answer is not the Error shape:\n%s", c.method, c.path, describe(errs))
		}
		if c.status == 405 && r.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
}
