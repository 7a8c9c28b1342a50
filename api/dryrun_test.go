package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/ingress"
	"github.com/hookgate/hookgate/signature"
)

// githubSig is GitHub's X-Hub-Signature-256 of body.
func githubSig(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestDryRunAgreesWithIngress sends the same requests to the request path
// (ingress.Handle) and to the workflow dry run (POST /workflows/{id}/test):
// both decide with ingress.Decide, so they answer the same status and
// outcome. The one documented difference: a dry run without the provider's
// signature headers skips the signature check (signature "skipped") where
// the request path refuses the request.
func TestDryRunAgreesWithIngress(t *testing.T) {
	e := newEnv(t)
	sink := newSink(t, http.StatusOK)
	keys := map[string]string{}
	create := func(def map[string]any) {
		t.Helper()
		var v workflowView
		e.post("/workflows", def).expect(http.StatusCreated).decode(&v)
		e.remember(v.Key)
		keys[v.ID] = v.Key
	}
	create(provisioning(t, "provisioning", sink.srv.URL+"/provisioned"))
	create(map[string]any{"id": "small", "sample": json.RawMessage(`{"a":1}`), "max_body": 64})
	create(map[string]any{"id": "phrase"})
	create(map[string]any{"id": "put-only", "sample": json.RawMessage(`{"a":1}`), "methods": []string{"PUT"}})
	create(map[string]any{"id": "headers", "sample": json.RawMessage(`{"ref":"x"}`),
		"filter": `headers["x-github-event"] == "push" && query.env == "prod"`})

	group := readExample(t, "easylife/groupcreated.json")
	planner := readExample(t, "easylife/plannercreated.json")
	var wrong map[string]any
	_ = json.Unmarshal(group, &wrong)
	wrong["user"].(map[string]any)["accountEnabled"] = "yes"
	wrongType, _ := json.Marshal(wrong)
	const ghSecret = "gh-hmac-secret"
	signed := func(body []byte) http.Header {
		return http.Header{"Content-Type": {"application/json"}, signature.HeaderGitHub: {githubSig(ghSecret, body)}}
	}
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	formCT := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	tests := []struct {
		name     string
		workflow string
		method   string
		query    string
		body     []byte
		header   http.Header
		status   int    // the ingress's status (0: passed on)
		outcome  string // the ingress's outcome
		dryRun   string // the dry run's outcome
		// skipped: unsigned, so the dry run skips the check and decides
		// on; the request path answers status/outcome.
		skipped      bool
		dryRunStatus int
	}{
		{name: "EasyLife groupcreated, signed", workflow: "provisioning", body: group, header: signed(group),
			status: 202, outcome: ingress.OutcomeAccepted, dryRun: outcomeAccepted},
		{name: "EasyLife plannercreated, signed, filtered", workflow: "provisioning", body: planner, header: signed(planner),
			status: 202, outcome: ingress.OutcomeFiltered, dryRun: outcomeFiltered},
		{name: "EasyLife wrong type, signed", workflow: "provisioning", body: wrongType, header: signed(wrongType),
			status: 422, outcome: ingress.OutcomeInvalid, dryRun: outcomeInvalid},
		{name: "EasyLife, wrong signature", workflow: "provisioning", body: group,
			header: http.Header{"Content-Type": {"application/json"}, signature.HeaderGitHub: {githubSig("other", group)}},
			status: 401, outcome: ingress.OutcomeSignature, dryRun: outcomeInvalid},
		{name: "EasyLife, malformed signature", workflow: "provisioning", body: group,
			header: http.Header{"Content-Type": {"application/json"}, signature.HeaderGitHub: {"md5=zz"}},
			status: 401, outcome: ingress.OutcomeSignature, dryRun: outcomeInvalid},
		{name: "EasyLife, unsigned", workflow: "provisioning", body: group, header: jsonCT,
			status: 401, outcome: ingress.OutcomeSignature, skipped: true, dryRunStatus: 202, dryRun: outcomeAccepted},
		{name: "JSON passes on", workflow: "small", body: []byte(`{"a":2}`), header: jsonCT,
			status: 0, outcome: ingress.OutcomePassed, dryRun: outcomePassthrough},
		{name: "application/+json type", workflow: "small", body: []byte(`{"a":2}`), header: http.Header{"Content-Type": {"application/cloudevents+json"}},
			status: 0, outcome: ingress.OutcomePassed, dryRun: outcomePassthrough},
		{name: "bad JSON", workflow: "small", body: []byte(`{"a":`), header: jsonCT,
			status: 400, outcome: ingress.OutcomeBadJSON, dryRun: outcomeInvalid},
		{name: "contract failure", workflow: "small", body: []byte(`{"a":"x"}`), header: jsonCT,
			status: 422, outcome: ingress.OutcomeInvalid, dryRun: outcomeInvalid},
		{name: "form values are strings", workflow: "small", body: []byte(`a=1`), header: formCT,
			status: 422, outcome: ingress.OutcomeInvalid, dryRun: outcomeInvalid},
		{name: "bad form", workflow: "small", body: []byte(`a=%zz`), header: formCT,
			status: 400, outcome: ingress.OutcomeBadForm, dryRun: outcomeInvalid},
		{name: "wrong content type", workflow: "small", body: []byte(`{"a":1}`), header: http.Header{"Content-Type": {"text/plain"}},
			status: 415, outcome: ingress.OutcomeMediaType, dryRun: outcomeInvalid},
		{name: "no content type", workflow: "small", body: []byte(`{"a":1}`),
			status: 415, outcome: ingress.OutcomeMediaType, dryRun: outcomeInvalid},
		{name: "oversized body", workflow: "small", body: []byte(`{"a":1,"pad":"` + strings.Repeat("x", 80) + `"}`), header: jsonCT,
			status: 413, outcome: ingress.OutcomeTooLarge, dryRun: outcomeInvalid},
		{name: "wrong method", workflow: "put-only", method: "POST", body: []byte(`{"a":1}`), header: jsonCT,
			status: 405, outcome: ingress.OutcomeMethod, dryRun: outcomeInvalid},
		{name: "the method of the workflow", workflow: "put-only", method: "PUT", body: []byte(`{"a":1}`), header: jsonCT,
			status: 0, outcome: ingress.OutcomePassed, dryRun: outcomePassthrough},
		{name: "no contract, empty body", workflow: "phrase",
			status: 0, outcome: ingress.OutcomePassed, dryRun: outcomePassthrough},
		{name: "no contract, a body", workflow: "phrase", body: []byte(`{"a":1}`), header: jsonCT,
			status: 422, outcome: ingress.OutcomeInvalid, dryRun: outcomeInvalid},
		{name: "headers and query match", workflow: "headers", query: "?env=prod", body: []byte(`{"ref":"main"}`),
			header: http.Header{"Content-Type": {"application/json"}, "X-Github-Event": {"push"}},
			status: 0, outcome: ingress.OutcomePassed, dryRun: outcomePassthrough},
		{name: "query does not match", workflow: "headers", query: "?env=dev", body: []byte(`{"ref":"main"}`),
			header: http.Header{"Content-Type": {"application/json"}, "X-Github-Event": {"push"}},
			status: 202, outcome: ingress.OutcomeFiltered, dryRun: outcomeFiltered},
	}
	in := &ingress.Ingress{Registry: e.reg, Pipeline: e.pipe}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			// The request path.
			hook := httptest.NewRequest(method, "http://gw.test/hooks/"+tc.workflow+"/"+keys[tc.workflow]+tc.query, strings.NewReader(string(tc.body)))
			for k, v := range tc.header {
				hook.Header[k] = v
			}
			res := in.Handle(hook, tc.workflow, keys[tc.workflow])
			if res.Status != tc.status || res.Outcome != tc.outcome {
				t.Fatalf("ingress: %d %q, want %d %q (%+v)", res.Status, res.Outcome, tc.status, tc.outcome, res.Response)
			}
			// The dry run of the same request.
			header := http.Header{dryRunMethodHeader: {method}}
			for k, v := range tc.header {
				header[k] = v
			}
			var dry testResult
			e.doRaw("/workflows/"+tc.workflow+"/test"+tc.query, tc.body, header).expect(http.StatusOK).decode(&dry)
			wantStatus, wantReason := tc.status, tc.outcome
			if tc.skipped {
				wantStatus, wantReason = tc.dryRunStatus, tc.dryRun
				if dry.Signature != sigSkipped || !strings.Contains(dry.SignatureError, signature.HeaderGitHub) {
					t.Errorf("dry run: signature %q (%q), want skipped naming the missing header", dry.Signature, dry.SignatureError)
				}
			}
			if dry.Status != wantStatus || dry.Reason != wantReason || dry.Outcome != tc.dryRun {
				t.Fatalf("dry run: status %d reason %q outcome %q, want %d %q %q: %+v", dry.Status, dry.Reason, dry.Outcome, wantStatus, wantReason, tc.dryRun, dry)
			}
			if dry.Valid != (tc.dryRun != outcomeInvalid) {
				t.Errorf("dry run: valid %v with outcome %q", dry.Valid, dry.Outcome)
			}
			if !dry.Valid && len(dry.Errors) == 0 {
				t.Errorf("dry run: invalid without errors: %+v", dry)
			}
			if tc.workflow == "provisioning" && !tc.skipped {
				want := sigVerified
				if tc.status == http.StatusUnauthorized {
					want = sigFailed
				}
				if dry.Signature != want {
					t.Errorf("dry run: signature %q, want %q", dry.Signature, want)
				}
			}
		})
	}
	// The request path wrote the accepted event, and its delivery went out.
	eventually(t, 10*time.Second, "the accepted EasyLife event delivered", func() bool { return len(sink.requests()) == 1 })
}

// doRaw is an admin POST with exactly the given headers (e.do adds a JSON
// Content-Type to a body).
func (e *env) doRaw(path string, body []byte, header http.Header) response {
	e.t.Helper()
	r := httptest.NewRequest("POST", "http://gw.test"+path, strings.NewReader(string(body)))
	for k, v := range header {
		r.Header[k] = v
	}
	r.Header.Set("Authorization", "Bearer "+adminToken)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return response{ResponseRecorder: w, t: e.t}
}
