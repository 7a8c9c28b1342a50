package module

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// vivaEngageFilter forwards Teams and SharePoint sites: a Viva Engage
// community also arrives as groupcreated, told apart by its Yammer URL
// (group.metadata.additionalData.yUrl), as in examples/easylife.
const vivaEngageFilter = "`" + `body.eventType == "sharepointcreated" || (body.eventType == "groupcreated" && body.group?.metadata?.additionalData?.yUrl == nil)` + "`"

// TestSeedEasyLifeRespond follows easylife-provisioning-payloads.txt: "A
// status 200 OK is expected with no body." Every payload of the seed gets
// exactly that, whether forwarded, filtered or a retry; only the Team and
// the SharePoint site reach the app (the Viva Engage community, also
// "groupcreated", does not).
func TestSeedEasyLifeRespond(t *testing.T) {
	app := newSink(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow easylife {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			filter %[2]s
			idempotency_header X-Request-Id
			respond 200
			forward %[3]s/provisioned
		}
		workflow default-answers {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			filter %[2]s
			respond filtered 204
			respond accepted 201 "{\"ok\":true}"
			forward %[3]s/default
		}
	}
	hookgate_api /api/hookgate/* {
		token %[4]s
	}
`, pinnedKey, vivaEngageFilter, app.URL, testToken))

	for i, name := range easylifeNames {
		for _, try := range []string{"first", "retry"} {
			status, hdr, body := rawCall(t, "POST", base+"/hooks/easylife/"+pinnedKey, easylife(t, name), "X-Request-Id", fmt.Sprint("req-", i))
			if status != http.StatusOK || len(body) != 0 || hdr.Get("Content-Type") != "" {
				t.Errorf("%s (%s): %d %q Content-Type %q, want 200 OK with no body", name, try, status, body, hdr.Get("Content-Type"))
			}
		}
	}
	waitFor(t, "the Team and the SharePoint site", 10*time.Second, func() bool { return len(app.received()) >= 2 })
	time.Sleep(300 * time.Millisecond) // nothing else arrives
	got := app.received()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2 (Team, SharePoint site)", len(got))
	}
	var types []string
	for _, r := range got {
		var p struct {
			EventType string `json:"eventType"`
			Group     struct {
				DisplayName string `json:"displayName"`
			} `json:"group"`
		}
		_ = json.Unmarshal(r.Body, &p)
		types = append(types, p.EventType+"/"+p.Group.DisplayName)
	}
	if fmt.Sprint(types) != "[groupcreated/Learning Team sharepointcreated/Intranet Site]" &&
		fmt.Sprint(types) != "[sharepointcreated/Intranet Site groupcreated/Learning Team]" {
		t.Errorf("delivered %v", types)
	}

	// Through the API: the same answer, shown back; bounds refused with 422.
	none := map[string]any{"status": 200, "body": ""}
	status, created := apiCall(t, "POST", "/workflows", map[string]any{
		"id": "easylife-api", "sample": json.RawMessage(easylife(t, "groupcreated")),
		"respond": map[string]any{"accepted": none, "filtered": none, "duplicate": none},
		"targets": []map[string]any{{"url": app.URL + "/api"}},
	})
	if status != http.StatusCreated || created["respond"] == nil {
		t.Fatalf("create: %d %v", status, created)
	}
	if status, _, body := rawCall(t, "POST", base+"/hooks/easylife-api/"+created["key"].(string), easylife(t, "groupcreated")); status != http.StatusOK || len(body) != 0 {
		t.Errorf("API workflow: %d %q", status, body)
	}
	waitFor(t, "the API workflow's delivery", 10*time.Second, func() bool { return len(app.received()) >= 3 })
	for _, bad := range []map[string]any{
		{"accepted": map[string]any{"status": 302}},
		{"filtered": map[string]any{"status": 200, "body": strings.Repeat("x", 4097)}},
	} {
		if status, body := apiCall(t, "POST", "/workflows", map[string]any{"id": "bad", "respond": bad}); status != http.StatusUnprocessableEntity {
			t.Errorf("respond %v: %d %v", bad, status, body)
		}
	}

	// Per kind: a JSON body is sent as application/json; a kind left out
	// keeps its default answer.
	tests := []struct {
		name, payload string
		status        int
		body, ctype   string
	}{
		{"accepted", "groupcreated", 201, `{"ok":true}`, "application/json"},
		{"filtered", "plannercreated", 204, "", ""},
	}
	for _, tc := range tests {
		status, hdr, body := rawCall(t, "POST", base+"/hooks/default-answers/"+pinnedKey, easylife(t, tc.payload))
		if status != tc.status || string(body) != tc.body || hdr.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %d %q %q, want %d %q %q", tc.name, status, body, hdr.Get("Content-Type"), tc.status, tc.body, tc.ctype)
		}
	}
}

// TestSeedOrangeLogic follows orangelogic-webhooks.txt through a real Caddy
// and a subscriber on 127.0.0.1: the signature "is included in the header
// as x-ol-signature"; EventDateUtc is "the date when the event occurred";
// testdelivery sends "custom text or JSON" and "returns the HTTP response,
// including the Response Code and Response Body"; testpredicates "returns
// the first includePredicate and excludePredicate that match".
func TestSeedOrangeLogic(t *testing.T) {
	const secret = "ol-shared-secret-0123456789"
	s := newSink(t)
	startCaddy(t, t.TempDir(), `
		topic document.deleted
		topic asset.created
`, fmt.Sprintf(`
	hookgate_api /api/hookgate/* {
		token %s
	}
`, testToken))
	status, sub := apiCall(t, "POST", "/subscriptions", map[string]any{
		"name": "dam-sync", "topics": []string{"document.*", "asset.*"}, "url": s.URL + "/orangelogic",
		"secret": secret, "envelope": "orangelogic",
		"signature": map[string]any{"scheme": "hmac", "header": "x-ol-signature", "encoding": "hex", "prefix": ""},
		"include":   []string{`tenant == "ZZ1"`, `tenant == "ZZ2"`},
		"exclude":   []string{`user == "bot"`, `data?.RecordID == "SKIP"`},
	})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, sub)
	}
	id := sub["id"].(string)
	if sig, _ := sub["signature"].(map[string]any); sig["header"] != "x-ol-signature" {
		t.Errorf("signature not shown: %v", sub)
	}
	olSig := func(r recorded) error {
		return verifyHMACHex(secret, r.Header.Get("x-ol-signature"), r.Body)
	}

	// EventDateUtc: when the event occurred, as published.
	status, body := apiCall(t, "POST", "/events", map[string]any{
		"id": "773bdd63-29be-4e77-8f39-fb0b572a7a88", "topic": "document.deleted", "time": "2024-12-30T19:18:23.8711593Z",
		"data": map[string]any{"RecordID": "2QDTWAW4499"}, "tenant": "ZZ1", "user": "K8OEC0ALO_H",
	})
	if status != http.StatusAccepted {
		t.Fatalf("publish: %d %v", status, body)
	}
	r := waitCount(t, s, 1)[0]
	want := `{"EventId":"773bdd63-29be-4e77-8f39-fb0b572a7a88","Topic":"document.deleted","EventDateUtc":"2024-12-30T19:18:23.8711593Z",
		"Data":{"RecordID":"2QDTWAW4499"},"Tenant":"ZZ1","UserId":"K8OEC0ALO_H"}`
	if !jsonEqual(r.Body, []byte(want)) {
		t.Errorf("body %s, want %s", r.Body, want)
	}
	if err := olSig(r); err != nil {
		t.Errorf("x-ol-signature: %v", err)
	}
	if r.Header.Get("Webhook-Signature") != "" || r.Header.Get("Traceparent") == "" {
		t.Errorf("headers %v", r.Header)
	}
	for _, bad := range []string{time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "30/12/2024"} {
		status, body := apiCall(t, "POST", "/events", map[string]any{"topic": "asset.created", "time": bad, "data": map[string]any{}})
		if status != http.StatusUnprocessableEntity || body["field"] != "time" {
			t.Errorf("time %q: %d %v", bad, status, body)
		}
	}

	// testpredicates: the first include and exclude predicates that match.
	tests := []struct {
		name             string
		event            map[string]any
		include, exclude string
		wouldDeliver     bool
	}{
		{"second include", map[string]any{"topic": "asset.created", "tenant": "ZZ2", "data": map[string]any{"RecordID": "R"}}, `tenant == "ZZ2"`, "", true},
		{"second exclude", map[string]any{"topic": "asset.created", "tenant": "ZZ1", "data": map[string]any{"RecordID": "SKIP"}}, `tenant == "ZZ1"`, `data?.RecordID == "SKIP"`, false},
		{"no include", map[string]any{"topic": "asset.created", "tenant": "XX9", "data": map[string]any{}}, "", "", false},
	}
	for _, tc := range tests {
		_, res := apiCall(t, "POST", "/subscriptions/"+id+"/test-predicates", tc.event)
		inc, _ := res["include_predicate"].(string)
		exc, _ := res["exclude_predicate"].(string)
		if inc != tc.include || exc != tc.exclude || res["would_deliver"] != tc.wouldDeliver {
			t.Errorf("%s: %v", tc.name, res)
		}
	}

	// testdelivery: custom text or JSON, sent as given and signed; the
	// answer carries the response code and body.
	s.mu.Lock()
	s.statuses = []int{http.StatusAccepted, http.StatusOK}
	s.mu.Unlock()
	deliveries := []struct {
		name, req, sent, ctype string
		status                 float64
	}{
		{"text", `{"body":"custom text, not JSON"}`, "custom text, not JSON", "text/plain; charset=utf-8", 202},
		{"JSON", `{"raw": {"Topic": "document.deleted",  "Data": {"RecordID": "2QDTWAW4499"}}}`, `{"Topic": "document.deleted",  "Data": {"RecordID": "2QDTWAW4499"}}`, "application/json", 200},
	}
	for i, tc := range deliveries {
		_, res := apiCall(t, "POST", "/subscriptions/"+id+"/test", tc.req)
		if res["status"] != tc.status || res["body"] != `{"ok":true}` {
			t.Errorf("%s: answer %v", tc.name, res)
		}
		r := waitCount(t, s, 2+i)[1+i]
		if string(r.Body) != tc.sent || r.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: sent %q (%s), want %q (%s)", tc.name, r.Body, r.Header.Get("Content-Type"), tc.sent, tc.ctype)
		}
		if err := olSig(r); err != nil {
			t.Errorf("%s: x-ol-signature: %v", tc.name, err)
		}
	}
}

// verifyHMACHex checks a lower-case hex HMAC-SHA256 of body under secret,
// as an Orange Logic receiver would.
func verifyHMACHex(secret, got string, body []byte) error {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if want := hex.EncodeToString(mac.Sum(nil)); got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

// TestSeedOrchestrySecret follows orchestry-outgoing-webhooks.txt: "an
// OPTIONAL SECRET. If provided, Orchestry will provide the secret in a
// property in the JSON body and as a header." A subscription created
// without one gets a generated signing secret, which is never sent in the
// body or a header.
func TestSeedOrchestrySecret(t *testing.T) {
	s := newSink(t)
	startCaddy(t, t.TempDir(), `
		topic workspace.provisioning.completed
`, fmt.Sprintf(`
	hookgate_api /api/hookgate/* {
		token %s
	}
`, testToken))
	payload := map[string]any{
		"tenantId": "6d2c4f0e-1f4b-4b8e-9c1a-3f5e2d7a8b90", "requestId": "a1b2c3d4-0001-4e5f-8a9b-0c1d2e3f4a5b",
		"templateId": "tpl-project-site", "groupId": "0b8a6c2e-5d4f-4e3a-9b1c-7d6e5f4a3b2c",
		"sharePointUrl": "https://contoso.sharepoint.com/sites/Marketing",
	}
	tests := []struct {
		name, secret string
		generated    bool
	}{
		{"provided", "s3cr3t-from-orchestry-setup", false},
		{"absent", "", true},
	}
	for _, tc := range tests {
		req := map[string]any{
			"name": "itsm-" + tc.name, "topics": []string{"workspace.provisioning.completed"},
			"url": s.URL + "/" + tc.name, "envelope": "orchestry", "secret_header": "X-Orchestry-Secret",
		}
		if tc.secret != "" {
			req["secret"] = tc.secret
		}
		status, body := apiCall(t, "POST", "/subscriptions", req)
		if status != http.StatusCreated || (body["secret_generated"] == true) != tc.generated {
			t.Fatalf("%s: %d %v", tc.name, status, body)
		}
	}
	if status, body := apiCall(t, "POST", "/events", map[string]any{"topic": "workspace.provisioning.completed", "data": payload}); status != http.StatusAccepted {
		t.Fatalf("publish: %d %v", status, body)
	}
	got := waitCount(t, s, 2)
	for _, r := range got {
		var body map[string]any
		_ = json.Unmarshal(r.Body, &body)
		switch r.Path {
		case "/provided":
			if body["Secret"] != "s3cr3t-from-orchestry-setup" || r.Header.Get("X-Orchestry-Secret") != "s3cr3t-from-orchestry-setup" {
				t.Errorf("provided: %s %v", r.Body, r.Header)
			}
		case "/absent":
			if _, ok := body["Secret"]; ok || r.Header.Get("X-Orchestry-Secret") != "" {
				t.Errorf("absent: a secret was sent: %s %v", r.Body, r.Header)
			}
			if body["requestId"] != payload["requestId"] || r.Header.Get("Webhook-Signature") == "" {
				t.Errorf("absent: %s %v", r.Body, r.Header)
			}
		default:
			t.Errorf("unexpected delivery to %s", r.Path)
		}
	}
}

// TestSeedGoneDisablesConfigSubscription: a subscriber that answers 410
// Gone no longer wants the webhooks (Orange Logic, Orchestry and ACTIVATE
// subscribers alike). A subscription declared in the Caddyfile is disabled
// too: the API shows enabled:false with the reason, nothing more is
// delivered, the state survives a reload, and PATCH {"enabled": true} or a
// change to the subscription's configuration enables it again.
func TestSeedGoneDisablesConfigSubscription(t *testing.T) {
	s := newSink(t, http.StatusGone)
	storage := t.TempDir()
	config := func(description string) string {
		return fmt.Sprintf(`
		topic document.deleted
		subscription dam-sync {
			description %q
			topics document.deleted
			url %s/orangelogic
			secret none
			envelope orangelogic
		}
`, description, s.URL)
	}
	api := fmt.Sprintf(`
	hookgate_api /api/hookgate/* {
		token %s
	}
`, testToken)
	publish := func(record string) {
		t.Helper()
		if status, body := apiCall(t, "POST", "/events", map[string]any{"topic": "document.deleted", "data": map[string]any{"RecordID": record}}); status != http.StatusAccepted {
			t.Fatalf("publish: %d %v", status, body)
		}
	}
	state := func() (bool, string) {
		t.Helper()
		status, body := apiCall(t, "GET", "/subscriptions/dam-sync", nil)
		if status != http.StatusOK {
			t.Fatalf("GET: %d %v", status, body)
		}
		reason, _ := body["disabled_reason"].(string)
		return body["enabled"] == true, reason
	}
	disabledBy410 := func() {
		t.Helper()
		waitFor(t, "the subscription disabled", 10*time.Second, func() bool { on, _ := state(); return !on })
		if _, reason := state(); !strings.Contains(reason, "410") {
			t.Errorf("reason %q", reason)
		}
	}

	startCaddy(t, storage, config("Keep the DAM in sync"), api)
	publish("gone")
	disabledBy410()
	publish("not-delivered")
	time.Sleep(500 * time.Millisecond)
	if n := len(s.received()); n != 1 {
		t.Fatalf("%d deliveries after the 410, want 1", n)
	}

	// A reload (the same configuration) keeps the state.
	startCaddy(t, storage, config("Keep the DAM in sync"), api)
	if on, _ := state(); on {
		t.Fatal("enabled again by a reload")
	}
	// Other writes stay refused; enabling is allowed.
	if status, _ := apiCall(t, "PATCH", "/subscriptions/dam-sync", map[string]any{"url": s.URL}); status != http.StatusConflict {
		t.Errorf("PATCH url: %d, want 409", status)
	}
	if status, body := apiCall(t, "PATCH", "/subscriptions/dam-sync", map[string]any{"enabled": true}); status != http.StatusOK || body["enabled"] != true || body["disabled_reason"] != nil {
		t.Fatalf("PATCH enabled: %d %v", status, body)
	}
	publish("after-enable")
	waitCount(t, s, 2)

	// Disabled again, then cleared by a change to its configuration.
	s.mu.Lock()
	s.statuses = []int{http.StatusGone}
	s.mu.Unlock()
	publish("gone-again")
	disabledBy410()
	startCaddy(t, storage, config("Keep the DAM in sync, v2"), api)
	if on, reason := state(); !on || reason != "" {
		t.Fatalf("after a configuration change: enabled %v, reason %q", on, reason)
	}
	publish("after-change")
	waitCount(t, s, 4)
}
