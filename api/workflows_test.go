package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// provisioning is an EasyLife provisioning workflow (sample contract,
// filter, one signed target).
func provisioning(t *testing.T, id, target string) map[string]any {
	return map[string]any{
		"id":          id,
		"description": "EasyLife provisioning",
		"sample":      readExample(t, "easylife/groupcreated.json"),
		"filter":      `body.eventType in ["groupcreated", "sharepointcreated"]`,
		"targets": []map[string]any{{
			"url": target, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "timeout": "5s",
			"headers": map[string]string{"X-Team": "provisioning"},
		}},
		"verify": map[string]any{"provider": "github", "secrets": []string{"gh-hmac-secret"}},
	}
}

func TestWorkflowLifecycle(t *testing.T) {
	e := newEnv(t)
	now := time.Now()

	// Create: 201, the workflow with its URL and key, shown once.
	r := e.post("/workflows", provisioning(t, "provisioning", "http://127.0.0.1:3000/provisioned")).expect(http.StatusCreated)
	var created workflowView
	r.decode(&created)
	e.remember(created.Key)
	if created.ID != "provisioning" || created.Source != "api" || !created.HasKey || !created.Enabled {
		t.Fatalf("created: %+v", created)
	}
	if want := "http://gw.test/hooks/provisioning/" + created.Key; created.URL != want {
		t.Errorf("url %q, want %q", created.URL, want)
	}
	if len(created.Key) != 43 {
		t.Errorf("key %q: want 43 base64url characters", created.Key)
	}
	if _, ok := e.reg.Authenticate("provisioning", created.Key, now); !ok {
		t.Fatal("the new key is refused")
	}

	// Read: no key, no URL, no secrets; defaults filled in.
	for _, path := range []string{"/workflows/provisioning", "/workflows"} {
		body := e.get(path).expect(http.StatusOK).Body.String()
		for _, leak := range []string{created.Key, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "gh-hmac-secret", `"key"`, `"url":"http://gw.test`} {
			if strings.Contains(body, leak) {
				t.Errorf("GET %s shows %q: %s", path, leak, body)
			}
		}
	}
	var got workflowView
	e.get("/workflows/provisioning").decode(&got)
	if !got.HasKey || got.Name != "provisioning" || !slices.Equal(got.Methods, []string{"POST"}) || got.MaxBody != registry.DefaultMaxBody {
		t.Errorf("GET: %+v", got)
	}
	if len(got.Targets) != 1 || !got.Targets[0].HasSecret || got.Targets[0].Method != "POST" ||
		got.Targets[0].Timeout.Std() != 5*time.Second || got.Targets[0].Envelope != "raw" || got.Targets[0].Headers["X-Team"] != "provisioning" {
		t.Errorf("targets: %+v", got.Targets)
	}
	if got.Verify == nil || got.Verify.Provider != "github" || !got.Verify.HasSecret || got.Verify.SecretCount != 1 || got.Verify.Tolerance != 0 {
		t.Errorf("verify: %+v", got.Verify)
	}
	if len(got.Sample) == 0 || len(got.Schema) != 0 {
		t.Errorf("sample/schema: %s / %s", got.Sample, got.Schema)
	}

	// List: sorted.
	e.post("/workflows", map[string]any{"id": "a-first"}).expect(http.StatusCreated)
	var list struct{ Workflows []workflowView }
	e.get("/workflows").decode(&list)
	if len(list.Workflows) != 2 || list.Workflows[0].ID != "a-first" || list.Workflows[1].ID != "provisioning" {
		t.Fatalf("list: %+v", list.Workflows)
	}

	// Regenerate: a new key, the old one refused at once.
	r = e.post("/workflows/provisioning/regenerate", nil).expect(http.StatusOK)
	var regen map[string]string
	r.decode(&regen)
	e.remember(regen["key"])
	if regen["key"] == created.Key || regen["url"] != "http://gw.test/hooks/provisioning/"+regen["key"] || regen["id"] != "provisioning" {
		t.Fatalf("regenerate: %v", regen)
	}
	if _, ok := e.reg.Authenticate("provisioning", created.Key, time.Now()); ok {
		t.Error("the old key is still accepted after regenerate")
	}
	if _, ok := e.reg.Authenticate("provisioning", regen["key"], time.Now()); !ok {
		t.Error("the regenerated key is refused")
	}

	// Regenerate with a grace period: the old key keeps working meanwhile.
	var regen2 map[string]string
	e.post("/workflows/provisioning/regenerate", map[string]string{"grace": "1h"}).expect(http.StatusOK).decode(&regen2)
	e.remember(regen2["key"])
	for _, k := range []string{regen["key"], regen2["key"]} {
		if _, ok := e.reg.Authenticate("provisioning", k, time.Now()); !ok {
			t.Error("a key is refused during the grace period")
		}
	}

	// Patch: merge patch; schema replaces the sample; disable.
	var patched workflowView
	e.patch("/workflows/provisioning", map[string]any{
		"description": "patched",
		"schema":      json.RawMessage(`{"type":"object","required":["eventType"]}`),
		"enabled":     false,
		"verify":      map[string]any{"provider": "stripe", "tolerance": "10m"},
	}).expect(http.StatusOK).decode(&patched)
	if patched.Description != "patched" || patched.Enabled || len(patched.Sample) != 0 || len(patched.Schema) == 0 {
		t.Errorf("patched: %+v", patched)
	}
	if patched.Verify == nil || patched.Verify.Provider != "stripe" || patched.Verify.Tolerance.Std() != 10*time.Minute || patched.Verify.SecretCount != 1 {
		t.Errorf("patch merged verify badly: %+v", patched.Verify)
	}
	if patched.Filter == "" || len(patched.Targets) != 1 || !patched.Targets[0].HasSecret {
		t.Errorf("patch lost fields: %+v", patched)
	}
	if _, ok := e.reg.Authenticate("provisioning", regen2["key"], time.Now()); ok {
		t.Error("a disabled workflow accepts its key")
	}
	// A null deletes a member.
	patched = workflowView{}
	e.patch("/workflows/provisioning", map[string]any{"filter": nil, "enabled": true, "grace": nil}).expect(http.StatusOK).decode(&patched)
	if patched.Filter != "" || !patched.Enabled {
		t.Errorf("patch with nulls: %+v", patched)
	}

	// Delete.
	if r := e.del("/workflows/provisioning"); r.Code != http.StatusNoContent || r.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	errorCheck(t, e.get("/workflows/provisioning"), http.StatusNotFound, "")
	errorCheck(t, e.del("/workflows/provisioning"), http.StatusNotFound, "")
	if _, ok := e.reg.Authenticate("provisioning", regen2["key"], time.Now()); ok {
		t.Error("a deleted workflow accepts its key")
	}
}

func TestWorkflowURLOption(t *testing.T) {
	e := newEnv(t)
	h, err := New(e.reg, e.pipe, Options{
		Tokens: []string{adminToken},
		WorkflowURL: func(r *http.Request, id, key string) string {
			return "https://" + r.Host + "/in/" + id + "/" + key
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	var v workflowView
	e.post("/workflows", map[string]any{"id": "phrase"}).expect(http.StatusCreated).decode(&v)
	e.remember(v.Key)
	if v.URL != "https://gw.test/in/phrase/"+v.Key {
		t.Errorf("url %q", v.URL)
	}
}

func TestWorkflowErrors(t *testing.T) {
	e := newEnv(t)
	e.post("/workflows", map[string]any{"id": "taken"}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "nocontract"}).expect(http.StatusCreated)
	pinned, err := registry.CompileWorkflow(registry.Workflow{ID: "pinned", FixedKey: "pinned-key-0123456789", Source: registry.SourceConfig}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg.DeclareConfig([]*registry.CompiledWorkflow{pinned}, nil, nil)

	hugeSample := `{"blob":"` + strings.Repeat("x", MaxResourceBody) + `"}`
	largeSample := `{"id":"large","sample":{"blob":"` + strings.Repeat("x", 2<<20) + `"}}`
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"malformed JSON", "POST", "/workflows", `{"id":`, http.StatusBadRequest, ""},
		{"empty body", "POST", "/workflows", "", http.StatusBadRequest, ""},
		{"unknown field", "POST", "/workflows", `{"id":"x","nope":1}`, http.StatusBadRequest, ""},
		{"trailing data", "POST", "/workflows", `{"id":"x"} {}`, http.StatusBadRequest, ""},
		{"bad id", "POST", "/workflows", `{"id":"a b"}`, http.StatusUnprocessableEntity, "id"},
		{"bad filter", "POST", "/workflows", `{"id":"x","filter":"body.a +"}`, http.StatusUnprocessableEntity, "filter"},
		{"non-boolean filter", "POST", "/workflows", `{"id":"x","filter":"1 + 1"}`, http.StatusUnprocessableEntity, "filter"},
		{"sample and schema", "POST", "/workflows", `{"id":"x","sample":{},"schema":{}}`, http.StatusUnprocessableEntity, "sample"},
		{"bad schema", "POST", "/workflows", `{"id":"x","schema":{"type":"nope"}}`, http.StatusUnprocessableEntity, "schema"},
		{"remote $ref", "POST", "/workflows", `{"id":"x","schema":{"$ref":"https://example.com/s.json"}}`, http.StatusUnprocessableEntity, "schema"},
		{"blocked target", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://10.0.0.1/x"}]}`, http.StatusUnprocessableEntity, "targets[0].url"},
		{"metadata target", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://169.254.169.254/"}]}`, http.StatusUnprocessableEntity, "targets[0].url"},
		{"bad target secret", "POST", "/workflows", `{"id":"x","targets":[{"url":"http://127.0.0.1/","secret":"whsec_!!"}]}`, http.StatusUnprocessableEntity, "targets[0].secret"},
		{"unknown verify provider", "POST", "/workflows", `{"id":"x","verify":{"provider":"bitbucket","secrets":["s"]}}`, http.StatusUnprocessableEntity, "verify.provider"},
		{"verify without secrets", "POST", "/workflows", `{"id":"x","verify":{"provider":"github"}}`, http.StatusUnprocessableEntity, "verify.secrets"},
		{"tolerance without timestamp", "POST", "/workflows", `{"id":"x","verify":{"provider":"gitlab","secrets":["s"],"tolerance":"1m"}}`, http.StatusUnprocessableEntity, "verify.tolerance"},
		{"old verify shape", "POST", "/workflows", `{"id":"x","verify":{"hmac_header":"X-Sig","hmac_secret":"s"}}`, http.StatusBadRequest, ""},
		{"duplicate id", "POST", "/workflows", `{"id":"taken"}`, http.StatusConflict, ""},
		{"config id", "POST", "/workflows", `{"id":"pinned"}`, http.StatusConflict, ""},
		{"body over 4 MiB", "POST", "/workflows", hugeSample, http.StatusRequestEntityTooLarge, ""},
		{"2 MiB sample is fine", "POST", "/workflows", largeSample, http.StatusCreated, ""},
		{"get unknown", "GET", "/workflows/nope", nil, http.StatusNotFound, ""},
		{"patch unknown", "PATCH", "/workflows/nope", `{"description":"x"}`, http.StatusNotFound, ""},
		{"patch unknown field", "PATCH", "/workflows/taken", `{"has_key":true}`, http.StatusBadRequest, ""},
		{"patch not an object", "PATCH", "/workflows/taken", `[1]`, http.StatusBadRequest, ""},
		{"patch malformed", "PATCH", "/workflows/taken", `{`, http.StatusBadRequest, ""},
		{"patch id", "PATCH", "/workflows/taken", `{"id":"other"}`, http.StatusUnprocessableEntity, "id"},
		{"patch bad filter", "PATCH", "/workflows/taken", `{"filter":"nope("}`, http.StatusUnprocessableEntity, "filter"},
		{"patch config", "PATCH", "/workflows/pinned", `{"description":"x"}`, http.StatusConflict, ""},
		{"delete config", "DELETE", "/workflows/pinned", nil, http.StatusConflict, ""},
		{"delete unknown", "DELETE", "/workflows/nope", nil, http.StatusNotFound, ""},
		{"regenerate unknown", "POST", "/workflows/nope/regenerate", nil, http.StatusNotFound, ""},
		{"regenerate pinned", "POST", "/workflows/pinned/regenerate", nil, http.StatusConflict, ""},
		{"regenerate negative grace", "POST", "/workflows/taken/regenerate", `{"grace":"-1h"}`, http.StatusUnprocessableEntity, "grace"},
		{"regenerate bad grace", "POST", "/workflows/taken/regenerate", `{"grace":"soon"}`, http.StatusBadRequest, ""},
		{"regenerate unknown field", "POST", "/workflows/taken/regenerate", `{"ttl":"1h"}`, http.StatusBadRequest, ""},
		{"test unknown", "POST", "/workflows/nope/test", `{}`, http.StatusNotFound, ""},
		{"schema unknown", "GET", "/workflows/nope/schema", nil, http.StatusNotFound, ""},
		{"schema without contract", "GET", "/workflows/nocontract/schema", nil, http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: tc.method, path: tc.path, body: tc.body})
			if tc.status < 300 {
				r.expect(tc.status)
				return
			}
			m := errorCheck(t, r, tc.status, tc.field)
			if tc.status == http.StatusConflict && strings.Contains(tc.name, "config") || strings.Contains(tc.name, "pinned") {
				if msg, _ := m["error"].(string); !strings.Contains(msg, "Caddyfile") {
					t.Errorf("read-only error does not mention the Caddyfile: %q", msg)
				}
			}
		})
	}
}

func TestWorkflowDryRun(t *testing.T) {
	e := newEnv(t)
	e.post("/workflows", provisioning(t, "provisioning", "http://127.0.0.1:3000/provisioned")).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{
		"id":     "github",
		"schema": json.RawMessage(`{"type":"object","required":["ref"],"properties":{"ref":{"type":"string"}}}`),
		"filter": `headers["x-github-event"] == "push" && query.env == "prod"`,
	}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "phrase"}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "small", "sample": json.RawMessage(`{"a":1}`), "max_body": 16}).expect(http.StatusCreated)

	group := readExample(t, "easylife/groupcreated.json")
	planner := readExample(t, "easylife/plannercreated.json")
	var wrongType map[string]any
	_ = json.Unmarshal(group, &wrongType)
	wrongType["user"].(map[string]any)["accountEnabled"] = "yes"

	tests := []struct {
		name     string
		path     string
		body     any
		header   http.Header
		valid    bool
		matched  bool
		outcome  string
		targets  []string
		errPaths []string
	}{
		{"EasyLife groupcreated", "/workflows/provisioning/test", group, nil, true, true, outcomeAccepted, []string{"http://127.0.0.1:3000/provisioned"}, nil},
		{"EasyLife plannercreated is filtered", "/workflows/provisioning/test", planner, nil, true, false, outcomeFiltered, nil, nil},
		{"wrong type", "/workflows/provisioning/test", wrongType, nil, false, true, outcomeInvalid, nil, []string{"/user/accountEnabled"}},
		{"not JSON", "/workflows/provisioning/test", "not json", nil, false, false, outcomeInvalid, nil, []string{""}},
		{"headers and query", "/workflows/github/test?env=prod", `{"ref":"refs/heads/main"}`,
			http.Header{"X-Github-Event": {"push"}}, true, true, outcomePassthrough, nil, nil},
		{"header mismatch", "/workflows/github/test?env=prod", `{"ref":"refs/heads/main"}`,
			http.Header{"X-Github-Event": {"issues"}}, true, false, outcomeFiltered, nil, nil},
		{"query mismatch", "/workflows/github/test?env=dev", `{"ref":"refs/heads/main"}`,
			http.Header{"X-Github-Event": {"push"}}, true, false, outcomeFiltered, nil, nil},
		{"schema failure", "/workflows/github/test?env=prod", `{"ref":1}`,
			http.Header{"X-Github-Event": {"push"}}, false, true, outcomeInvalid, nil, []string{"/ref"}},
		{"no contract, empty body", "/workflows/phrase/test", nil, nil, true, true, outcomePassthrough, nil, nil},
		{"no contract, a body", "/workflows/phrase/test", `{"a":1}`, nil, false, false, outcomeInvalid, nil, []string{""}},
		{"form values are strings for the contract", "/workflows/small/test", "a=1",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, false, true, outcomeInvalid, nil, []string{"/a"}},
		{"bad form", "/workflows/small/test", "a=%zz",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, false, false, outcomeInvalid, nil, []string{""}},
		{"over max_body", "/workflows/small/test", `{"a":1,"padding":"xxxxxxxxxxxxxxxxxxxxxx"}`, nil, false, false, outcomeInvalid, nil, []string{""}},
	}
	before := e.streamMsgs()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res testResult
			e.do(req{method: "POST", path: tc.path, body: tc.body, header: tc.header}).expect(http.StatusOK).decode(&res)
			if res.Valid != tc.valid || res.FilterMatched != tc.matched || res.Outcome != tc.outcome {
				t.Fatalf("valid %v matched %v outcome %q, want %v %v %q: %+v", res.Valid, res.FilterMatched, res.Outcome, tc.valid, tc.matched, tc.outcome, res)
			}
			if !slices.Equal(res.Targets, tc.targets) && !(len(res.Targets) == 0 && len(tc.targets) == 0) {
				t.Errorf("targets %v, want %v", res.Targets, tc.targets)
			}
			var paths []string
			for _, e := range res.Errors {
				paths = append(paths, e.Path)
				if e.Message == "" {
					t.Errorf("error without a message: %+v", e)
				}
			}
			if !slices.Equal(paths, tc.errPaths) {
				t.Errorf("error paths %v, want %v (%+v)", paths, tc.errPaths, res.Errors)
			}
		})
	}
	// A dry run writes nothing.
	if after := e.streamMsgs(); after != before {
		t.Errorf("the dry runs wrote %d messages", after-before)
	}
	if recs, _, _ := e.pipe.Deliveries(t.Context(), delivery.Query{}); len(recs) != 0 {
		t.Errorf("the dry runs made %d deliveries", len(recs))
	}
	// The API token is not shown to filters as a header.
	e.post("/workflows", map[string]any{"id": "auth", "filter": `!("authorization" in headers) && headers["x-probe"] == "1"`}).expect(http.StatusCreated)
	var res testResult
	e.do(req{method: "POST", path: "/workflows/auth/test", header: http.Header{"X-Probe": {"1"}}}).expect(http.StatusOK).decode(&res)
	if !res.FilterMatched {
		t.Error("the filter saw the Authorization header of the API request")
	}
}

func TestWorkflowSchemaPreview(t *testing.T) {
	e := newEnv(t)
	e.post("/workflows", provisioning(t, "provisioning", "http://127.0.0.1:3000/x")).expect(http.StatusCreated)
	doc := `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"ref":{"type":"string"}}}`
	e.post("/workflows", map[string]any{"id": "github", "schema": json.RawMessage(doc)}).expect(http.StatusCreated)

	r := e.get("/workflows/provisioning/schema").expect(http.StatusOK)
	if ct := r.Header().Get("Content-Type"); ct != "application/schema+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var inferred map[string]any
	r.decode(&inferred)
	props, _ := inferred["properties"].(map[string]any)
	user, _ := props["user"].(map[string]any)
	if inferred["type"] != "object" || user["type"] != "object" || props["eventType"] == nil {
		t.Errorf("inferred schema: %s", r.Body)
	}

	var given map[string]any
	e.get("/workflows/github/schema").expect(http.StatusOK).decode(&given)
	if given["$schema"] != "https://json-schema.org/draft/2020-12/schema" || given["type"] != "object" {
		t.Errorf("schema: %v", given)
	}
}

// TestWorkflowValidatorReported checks that the schema preview and the dry
// run say which validator a contract takes, and why the engine.
func TestWorkflowValidatorReported(t *testing.T) {
	e := newEnv(t)
	e.post("/workflows", provisioning(t, "provisioning", "http://127.0.0.1:3000/x")).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "fast", "schema": json.RawMessage(`{"type":"object","required":["ref"]}`)}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "engine", "schema": json.RawMessage(`{"properties":{"a":{}},"unevaluatedProperties":false}`)}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "none"}).expect(http.StatusCreated)

	tests := []struct {
		id, validator, reason string
	}{
		{"provisioning", "fast", ""},
		{"fast", "fast", ""},
		{"engine", "engine", "unevaluatedProperties"},
		{"none", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			var res testResult
			e.do(req{method: "POST", path: "/workflows/" + tc.id + "/test", body: `{}`}).expect(http.StatusOK).decode(&res)
			if res.Validator != tc.validator || !strings.Contains(res.FallbackReason, tc.reason) || (tc.reason == "") != (res.FallbackReason == "") {
				t.Errorf("dry run: validator %q, fallback_reason %q; want %q, %q", res.Validator, res.FallbackReason, tc.validator, tc.reason)
			}
			if tc.validator == "" {
				return
			}
			r := e.get("/workflows/" + tc.id + "/schema").expect(http.StatusOK)
			if v, reason := r.Header().Get("X-Hookgate-Validator"), r.Header().Get("X-Hookgate-Fallback-Reason"); v != tc.validator || reason != res.FallbackReason {
				t.Errorf("schema preview: validator %q, fallback reason %q; want %q, %q", v, reason, tc.validator, res.FallbackReason)
			}
		})
	}
}

// streamMsgs counts the messages of the event stream.
func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	info, err := e.eng.EventStream.Info(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// Stored resources that no longer compile are listed and shown with the
// reason in "broken", between the served ones in id order; they are not
// served.
func TestBrokenResourcesShown(t *testing.T) {
	e := newEnv(t)
	e.post("/workflows", map[string]any{"id": "a"}).expect(http.StatusCreated)
	e.post("/workflows", map[string]any{"id": "c"}).expect(http.StatusCreated)
	e.post("/subscriptions", map[string]any{"id": "s1", "name": "s1", "topics": []string{"*"}, "url": "http://127.0.0.1:9/"}).expect(http.StatusCreated)
	ctx := t.Context()
	if _, err := e.eng.Workflows.Put(ctx, "b", []byte(`{"id":"b","targets":[{"url":"http://10.0.0.1/"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Subscriptions.Put(ctx, "s0", []byte(`{not json`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the broken resources are seen", func() bool {
		return len(e.reg.Broken(registry.KindWorkflow)) == 1 && len(e.reg.Broken(registry.KindSubscription)) == 1
	})

	type entry struct {
		ID     string `json:"id"`
		Broken string `json:"broken"`
	}
	var wfs struct{ Workflows []entry }
	e.get("/workflows").expect(http.StatusOK).decode(&wfs)
	if len(wfs.Workflows) != 3 || wfs.Workflows[0].ID != "a" || wfs.Workflows[1].ID != "b" || wfs.Workflows[2].ID != "c" {
		t.Fatalf("workflows listed: %+v", wfs.Workflows)
	}
	if !strings.HasPrefix(wfs.Workflows[1].Broken, "targets[0].url") || wfs.Workflows[0].Broken != "" || wfs.Workflows[2].Broken != "" {
		t.Errorf("broken fields: %+v", wfs.Workflows)
	}
	var subs struct{ Subscriptions []entry }
	e.get("/subscriptions").expect(http.StatusOK).decode(&subs)
	if len(subs.Subscriptions) != 2 || subs.Subscriptions[0].ID != "s0" || !strings.HasPrefix(subs.Subscriptions[0].Broken, "unreadable") || subs.Subscriptions[1].Broken != "" {
		t.Errorf("subscriptions listed: %+v", subs.Subscriptions)
	}
	var one entry
	e.get("/workflows/b").expect(http.StatusOK).decode(&one)
	if one.ID != "b" || one.Broken == "" {
		t.Errorf("GET /workflows/b = %+v", one)
	}
	e.get("/subscriptions/s0").expect(http.StatusOK).decode(&one)
	if one.ID != "s0" || one.Broken == "" {
		t.Errorf("GET /subscriptions/s0 = %+v", one)
	}
	e.get("/workflows/nope").expect(http.StatusNotFound)
	// Not served: a broken workflow is unknown to the request path.
	if _, ok := e.reg.Workflow("b"); ok {
		t.Error("broken workflow served")
	}
	e.del("/workflows/b").expect(http.StatusNoContent)
	e.get("/workflows/b").expect(http.StatusNotFound)
}
