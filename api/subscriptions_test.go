package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// orangeLogicSub is an Orange Logic style subscription to document events.
func orangeLogicSub(url string) map[string]any {
	return map[string]any{
		"name":        "Orange Logic DAM",
		"description": "assets created, edited or deleted",
		"topics":      []string{"document.*"},
		"url":         url,
		"headers":     map[string]string{"X-Custom": "context"},
		"envelope":    "orangelogic",
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, http.StatusOK)
	conf, err := registry.CompileSubscription(registry.Subscription{
		ID: "activate", Name: "ACTIVATE", Topics: []string{"USER_CREATED"}, URL: s.srv.URL,
		Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Source: registry.SourceConfig,
	}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg.DeclareConfig(nil, nil, []*registry.CompiledSubscription{conf})

	// Create: 201 with the generated secret, once.
	var created subscriptionView
	e.post("/subscriptions", orangeLogicSub(s.srv.URL)).expect(http.StatusCreated).decode(&created)
	e.remember(created.Secret)
	if !strings.HasPrefix(created.Secret, "whsec_") || !created.HasSecret || !created.Enabled ||
		created.MaxAttempts != registry.DefaultMaxAttempts || created.Timeout.Std() != registry.DefaultTimeout ||
		created.Envelope != "orangelogic" || created.Source != "api" || !strings.HasPrefix(created.ID, "sub_") ||
		created.CreatedAt.IsZero() || created.Headers["X-Custom"] != "context" {
		t.Fatalf("created: %+v", created)
	}
	id := created.ID

	// Read: never the secret.
	for _, path := range []string{"/subscriptions/" + id, "/subscriptions", "/subscriptions/activate"} {
		m := e.get(path).expect(http.StatusOK)
		body := m.Body.String()
		if strings.Contains(body, created.Secret) || strings.Contains(body, `"secret"`) || strings.Contains(body, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
			t.Errorf("GET %s shows a secret: %s", path, body)
		}
		if !strings.Contains(body, `"has_secret":true`) {
			t.Errorf("GET %s: no has_secret: %s", path, body)
		}
	}

	// Orchestry: own id and secret; "none" leaves deliveries unsigned.
	var orch subscriptionView
	e.post("/subscriptions", map[string]any{
		"id": "orchestry", "name": "Orchestry provisioning", "topics": []string{"provisioning.completed"},
		"url": s.srv.URL, "secret": "orchestry-shared-secret", "secret_header": "X-Orchestry-Secret",
		"envelope": "orchestry",
	}).expect(http.StatusCreated).decode(&orch)
	e.remember(orch.Secret)
	if orch.ID != "orchestry" || orch.Secret != "orchestry-shared-secret" {
		t.Errorf("orchestry: %+v", orch)
	}
	var unsigned subscriptionView
	e.post("/subscriptions", map[string]any{"name": "unsigned", "topics": []string{"*"}, "url": s.srv.URL, "secret": "none"}).
		expect(http.StatusCreated).decode(&unsigned)
	if unsigned.HasSecret || unsigned.Secret != "" {
		t.Errorf("unsigned: %+v", unsigned)
	}

	// List: sorted by id.
	var list struct{ Subscriptions []subscriptionView }
	e.get("/subscriptions").decode(&list)
	var ids []string
	for _, x := range list.Subscriptions {
		ids = append(ids, x.ID)
	}
	if len(ids) != 4 || ids[0] != "activate" || ids[1] != "orchestry" {
		t.Errorf("list ids: %v", ids)
	}

	// Disable, then enable again.
	var v subscriptionView
	e.patch("/subscriptions/"+id, map[string]any{"enabled": false}).expect(http.StatusOK).decode(&v)
	if v.Enabled || v.Name != "Orange Logic DAM" || v.Envelope != "orangelogic" || !v.HasSecret {
		t.Errorf("disabled: %+v", v)
	}
	if cs, _ := e.reg.Subscription(id); cs.Dest.Enabled {
		t.Error("the registry still has the subscription enabled")
	}
	v = subscriptionView{Enabled: true}
	e.get("/subscriptions/" + id).decode(&v)
	if v.Enabled {
		t.Error("GET after disable: enabled")
	}
	v = subscriptionView{}
	e.patch("/subscriptions/"+id, map[string]any{"enabled": true, "description": nil, "max_attempts": 3}).expect(http.StatusOK).decode(&v)
	if !v.Enabled || v.Description != "" || v.MaxAttempts != 3 {
		t.Errorf("enabled: %+v", v)
	}

	// Rotate: a new secret, once; the old one still signs during the grace.
	var rot map[string]string
	e.post("/subscriptions/"+id+"/rotate-secret", nil).expect(http.StatusOK).decode(&rot)
	e.remember(rot["secret"])
	if rot["id"] != id || !strings.HasPrefix(rot["secret"], "whsec_") || rot["secret"] == created.Secret {
		t.Fatalf("rotate: %v", rot)
	}
	if cs, _ := e.reg.Subscription(id); len(cs.Dest.Keys) != 2 || cs.Def.Secret != rot["secret"] {
		t.Errorf("after rotation: %d keys", len(cs.Dest.Keys))
	}
	if body := e.get("/subscriptions/" + id).Body.String(); strings.Contains(body, rot["secret"]) {
		t.Errorf("GET shows the rotated secret: %s", body)
	}
	e.post("/subscriptions/"+id+"/rotate-secret", map[string]string{"grace": "1h"}).expect(http.StatusOK).decode(&rot)
	e.remember(rot["secret"])

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"malformed", "POST", "/subscriptions", `{"name":`, http.StatusBadRequest, ""},
		{"unknown field", "POST", "/subscriptions", `{"name":"x","event":"y"}`, http.StatusBadRequest, ""},
		{"body over 1 MiB", "POST", "/subscriptions", `{"name":"` + strings.Repeat("x", MaxBody) + `"}`, http.StatusRequestEntityTooLarge, ""},
		{"name taken", "POST", "/subscriptions", orangeLogicSub(s.srv.URL), http.StatusConflict, "name"},
		{"name of a config subscription", "POST", "/subscriptions", map[string]any{"name": "ACTIVATE", "topics": []string{"*"}, "url": s.srv.URL}, http.StatusConflict, "name"},
		{"id taken", "POST", "/subscriptions", map[string]any{"id": "orchestry", "name": "other", "topics": []string{"*"}, "url": s.srv.URL}, http.StatusConflict, ""},
		{"id of a config subscription", "POST", "/subscriptions", map[string]any{"id": "activate", "name": "other2", "topics": []string{"*"}, "url": s.srv.URL}, http.StatusConflict, ""},
		{"no name", "POST", "/subscriptions", map[string]any{"topics": []string{"*"}, "url": s.srv.URL}, http.StatusUnprocessableEntity, "name"},
		{"no topics", "POST", "/subscriptions", map[string]any{"name": "n", "url": s.srv.URL}, http.StatusUnprocessableEntity, "topics"},
		{"bad topic pattern", "POST", "/subscriptions", map[string]any{"name": "n", "topics": []string{"a*b"}, "url": s.srv.URL}, http.StatusUnprocessableEntity, "topics"},
		{"no url", "POST", "/subscriptions", map[string]any{"name": "n", "topics": []string{"*"}}, http.StatusUnprocessableEntity, "url"},
		{"private url", "POST", "/subscriptions", map[string]any{"name": "n", "topics": []string{"*"}, "url": "http://192.168.1.10/hook"}, http.StatusUnprocessableEntity, "url"},
		{"bad include", "POST", "/subscriptions", map[string]any{"name": "n", "topics": []string{"*"}, "url": s.srv.URL, "include": "tenant =="}, http.StatusUnprocessableEntity, "include"},
		{"bad envelope", "POST", "/subscriptions", map[string]any{"name": "n", "topics": []string{"*"}, "url": s.srv.URL, "envelope": "{a:"}, http.StatusUnprocessableEntity, "envelope"},
		{"get unknown", "GET", "/subscriptions/nope", nil, http.StatusNotFound, ""},
		{"patch unknown", "PATCH", "/subscriptions/nope", `{"enabled":false}`, http.StatusNotFound, ""},
		{"patch secret", "PATCH", "/subscriptions/" + id, `{"secret":"whsec_x"}`, http.StatusUnprocessableEntity, "secret"},
		{"patch unknown field", "PATCH", "/subscriptions/" + id, `{"has_secret":false}`, http.StatusBadRequest, ""},
		{"patch name taken", "PATCH", "/subscriptions/" + id, `{"name":"unsigned"}`, http.StatusConflict, "name"},
		{"patch bad url", "PATCH", "/subscriptions/" + id, `{"url":"ftp://127.0.0.1/"}`, http.StatusUnprocessableEntity, "url"},
		{"patch config", "PATCH", "/subscriptions/activate", `{"enabled":false}`, http.StatusConflict, ""},
		{"delete config", "DELETE", "/subscriptions/activate", nil, http.StatusConflict, ""},
		{"rotate config", "POST", "/subscriptions/activate/rotate-secret", nil, http.StatusConflict, ""},
		{"rotate unknown", "POST", "/subscriptions/nope/rotate-secret", nil, http.StatusNotFound, ""},
		{"rotate negative grace", "POST", "/subscriptions/" + id + "/rotate-secret", `{"grace":"-1s"}`, http.StatusUnprocessableEntity, "grace"},
		{"delete unknown", "DELETE", "/subscriptions/nope", nil, http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errorCheck(t, e.do(req{method: tc.method, path: tc.path, body: tc.body}), tc.status, tc.field)
		})
	}

	// Delete.
	if r := e.del("/subscriptions/" + id); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	errorCheck(t, e.get("/subscriptions/"+id), http.StatusNotFound, "")
	// The name is free again.
	e.post("/subscriptions", orangeLogicSub(s.srv.URL)).expect(http.StatusCreated)
}

func TestSubscriptionTestDelivery(t *testing.T) {
	e := newEnv(t)
	ok := newSink(t, http.StatusOK)
	failing := newSink(t, http.StatusInternalServerError)
	gone := newSink(t, http.StatusOK)
	gone.srv.Close()

	var sub subscriptionView
	e.post("/subscriptions", orangeLogicSub(ok.srv.URL)).expect(http.StatusCreated).decode(&sub)
	e.remember(sub.Secret)
	var failSub, goneSub subscriptionView
	e.post("/subscriptions", map[string]any{"name": "failing", "topics": []string{"USER_CREATED"}, "url": failing.srv.URL, "envelope": "activate"}).
		expect(http.StatusCreated).decode(&failSub)
	e.remember(failSub.Secret)
	e.post("/subscriptions", map[string]any{"name": "gone", "topics": []string{"*"}, "url": gone.srv.URL}).
		expect(http.StatusCreated).decode(&goneSub)
	e.remember(goneSub.Secret)

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name      string
		sub       string
		body      any
		status    int
		success   bool
		wantErr   bool
		sink      *sink
		checkBody func(t *testing.T, body map[string]any)
	}{
		{"Orange Logic event", sub.ID, map[string]any{
			"id": orangeLogicID, "topic": "document.deleted", "data": json.RawMessage(orangeLogicData),
			"tenant": "ZZ1", "user": "K8OEC0ALO_H",
		}, http.StatusOK, true, false, ok, func(t *testing.T, b map[string]any) {
			if b["EventId"] != orangeLogicID || b["Topic"] != "document.deleted" || b["Tenant"] != "ZZ1" ||
				b["UserId"] != "K8OEC0ALO_H" || b["Data"].(map[string]any)["RecordID"] != "2QDTWAW4499" {
				t.Errorf("Orange Logic body: %v", b)
			}
		}},
		{"any JSON is the data", sub.ID, json.RawMessage(orangeLogicData), http.StatusOK, true, false, ok, func(t *testing.T, b map[string]any) {
			if b["Topic"] != "document.test" || b["Data"].(map[string]any)["RecordID"] != "2QDTWAW4499" {
				t.Errorf("body: %v", b)
			}
		}},
		{"text is a JSON string", sub.ID, "custom text", http.StatusOK, true, false, ok, func(t *testing.T, b map[string]any) {
			if b["Data"] != "custom text" {
				t.Errorf("body: %v", b)
			}
		}},
		{"ACTIVATE to a failing sink", failSub.ID, map[string]any{"topic": "USER_CREATED", "data": json.RawMessage(activateData), "tenant": "parallelworks"},
			http.StatusInternalServerError, false, false, failing, func(t *testing.T, b map[string]any) {
				if b["type"] != "USER_CREATED" || b["webhook"].(map[string]any)["name"] != "failing" || b["payload"].(map[string]any)["userId"] != "66ec445884b4103f670d0c86" {
					t.Errorf("ACTIVATE body: %v", b)
				}
			}},
		{"unreachable", goneSub.ID, map[string]any{"data": json.RawMessage(orchestryData)}, 0, false, true, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before int
			if tc.sink != nil {
				before = len(tc.sink.requests())
			}
			var res testDeliveryResult
			e.do(req{method: "POST", path: "/subscriptions/" + tc.sub + "/test", body: tc.body,
				header: http.Header{"Traceparent": {traceparent}}}).expect(http.StatusOK).decode(&res)
			if res.Status != tc.status || res.Success != tc.success || (res.Error != "") != tc.wantErr || res.DurationMS < 0 || res.EventID == "" {
				t.Fatalf("result: %+v", res)
			}
			if tc.sink == nil {
				return
			}
			if res.Headers["X-Sink"] != "yes" || !strings.HasPrefix(res.Body, `{"received":`) {
				t.Errorf("response headers/body not returned: %+v", res)
			}
			got := tc.sink.requests()
			if len(got) != before+1 {
				t.Fatalf("the sink got %d requests, want 1", len(got)-before)
			}
			r := got[len(got)-1]
			if r.header.Get("Webhook-Signature") == "" || r.header.Get("Webhook-Id") != res.EventID || r.header.Get("Traceparent") != traceparent {
				t.Errorf("delivery headers: %v", r.header)
			}
			var body map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("delivered body %s: %v", r.body, err)
			}
			tc.checkBody(t, body)
		})
	}
	if got := ok.requests()[0].header.Get("X-Custom"); got != "context" {
		t.Errorf("custom header %q", got)
	}
	// A test delivery records nothing.
	if recs, _, _ := e.pipe.Deliveries(t.Context(), delivery.Query{}); len(recs) != 0 {
		t.Errorf("test deliveries were recorded: %d", len(recs))
	}
	errorCheck(t, e.post("/subscriptions/nope/test", map[string]any{"data": 1}), http.StatusNotFound, "")
	errorCheck(t, e.post("/subscriptions/"+sub.ID+"/test", map[string]any{"id": "bad id!", "data": 1}), http.StatusBadRequest, "")
}

func TestTestPredicates(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, http.StatusOK)
	var ol, plain, broken subscriptionView
	e.post("/subscriptions", map[string]any{
		"name": "Orange Logic ZZ1", "topics": []string{"document.*"}, "url": s.srv.URL,
		"include": `tenant == "ZZ1"`, "exclude": `data?.RecordID == "SKIP"`,
	}).expect(http.StatusCreated).decode(&ol)
	e.post("/subscriptions", map[string]any{"name": "all", "topics": []string{"*"}, "url": s.srv.URL, "enabled": false}).
		expect(http.StatusCreated).decode(&plain)
	e.post("/subscriptions", map[string]any{"name": "broken", "topics": []string{"*"}, "url": s.srv.URL, "include": `data.user.id == "x"`}).
		expect(http.StatusCreated).decode(&broken)

	tests := []struct {
		name                             string
		sub                              string
		event                            string
		topic, include, exclude, deliver bool
		enabled                          bool
		includeErr                       bool
	}{
		{"matches", ol.ID, `{"topic":"document.deleted","data":` + orangeLogicData + `,"tenant":"ZZ1","user":"K8OEC0ALO_H"}`, true, true, false, true, true, false},
		{"other tenant", ol.ID, `{"topic":"document.deleted","data":` + orangeLogicData + `,"tenant":"ZZ2"}`, true, false, false, false, true, false},
		{"excluded", ol.ID, `{"topic":"document.created","data":{"RecordID":"SKIP"},"tenant":"ZZ1"}`, true, true, true, false, true, false},
		{"other topic", ol.ID, `{"topic":"USER_CREATED","data":` + activateData + `,"tenant":"ZZ1"}`, false, true, false, false, true, false},
		{"no predicates, disabled", plain.ID, `{"id":"` + orangeLogicID + `","topic":"provisioning.completed","data":` + orchestryData + `}`, true, true, false, false, false, false},
		{"predicate error", broken.ID, `{"topic":"USER_CREATED","data":` + activateData + `}`, true, false, false, false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res predicatesResult
			e.post("/subscriptions/"+tc.sub+"/test-predicates", tc.event).expect(http.StatusOK).decode(&res)
			if res.TopicMatched != tc.topic || res.IncludeMatched != tc.include || res.ExcludeMatched != tc.exclude ||
				res.WouldDeliver != tc.deliver || res.Enabled != tc.enabled || (res.IncludeError != "") != tc.includeErr {
				t.Errorf("result %+v", res)
			}
		})
	}
	errorCheck(t, e.post("/subscriptions/"+ol.ID+"/test-predicates", `{"data":{}}`), http.StatusUnprocessableEntity, "topic")
	errorCheck(t, e.post("/subscriptions/"+ol.ID+"/test-predicates", `{"topic":`), http.StatusBadRequest, "")
	errorCheck(t, e.post("/subscriptions/"+ol.ID+"/test-predicates", `{"topic":"a","extra":1}`), http.StatusBadRequest, "")
	errorCheck(t, e.post("/subscriptions/nope/test-predicates", `{"topic":"a"}`), http.StatusNotFound, "")
}

// TestCustomTestBody: Orange Logic's testdelivery takes "custom text or
// JSON": {raw} and {body} are sent as given; anything else is an event.
func TestCustomTestBody(t *testing.T) {
	tests := []struct {
		name, in string
		asIs     bool
		sent     string
		err      bool
	}{
		{"raw JSON kept byte for byte", `{"raw": {"b": 1,  "a": [2]}}`, true, `{"b": 1,  "a": [2]}`, false},
		{"text", `{"body": "custom text"}`, true, "custom text", false},
		{"text with an id", `{"id": "evt_1", "body": "x"}`, true, "x", false},
		{"both", `{"raw": 1, "body": "x"}`, false, "", true},
		{"body not a string", `{"body": {"a": 1}}`, false, "", true},
		{"other fields", `{"raw": 1, "topic": "a"}`, false, "", true},
		{"an event", `{"topic": "a", "data": {}}`, false, "", false},
		{"plain JSON data", `{"RecordID": "R"}`, false, "", false},
		{"plain text", `hello`, false, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, asIs, err := customTestBody([]byte(tc.in))
			if (err != nil) != tc.err || asIs != tc.asIs {
				t.Fatalf("asIs %v, err %v", asIs, err)
			}
			if asIs && string(c.bytes()) != tc.sent {
				t.Errorf("sends %q, want %q", c.bytes(), tc.sent)
			}
		})
	}
}
