package module

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// End-to-end tests of outgoing webhooks: topics and subscriptions declared in
// the Caddyfile or through the API, events published through the API, and
// deliveries received by real sinks on 127.0.0.1. No test dials anything
// outside 127.0.0.0/8.

const publishToken = "publish-only-token-0123456789"

// bq turns '~' into backticks, for expr expressions in Caddyfile fragments.
func bq(s string) string { return strings.ReplaceAll(s, "~", "`") }

// apiBlock is a hookgate_api directive with the full and publish tokens.
var apiBlock = fmt.Sprintf(`
	hookgate_api /api/hookgate/* {
		token %s
		publish_token %s
	}
	respond "app" 200
`, testToken, publishToken)

// publish posts an event with the full token (and extra headers).
func publish(t *testing.T, ev map[string]any, headers ...string) (int, map[string]any) {
	t.Helper()
	return call(t, "POST", base+"/api/hookgate/events", ev, append([]string{"Authorization", "Bearer " + testToken}, headers...)...)
}

// mustPublish publishes and expects 202 accepted; it returns the event id.
func mustPublish(t *testing.T, ev map[string]any, headers ...string) string {
	t.Helper()
	status, body := publish(t, ev, headers...)
	if status != http.StatusAccepted || body["status"] != "accepted" {
		t.Fatalf("publish %v: %d %v", ev, status, body)
	}
	id, _ := body["id"].(string)
	if id == "" {
		t.Fatalf("publish: no id in %v", body)
	}
	return id
}

// createSubscription creates an API subscription and returns the answer.
func createSubscription(t *testing.T, def map[string]any) map[string]any {
	t.Helper()
	status, body := apiCall(t, "POST", "/subscriptions", def)
	if status != http.StatusCreated {
		t.Fatalf("create subscription %v: %d %v", def["name"], status, body)
	}
	return body
}

// waitCount waits until s has received n requests, then checks that no more
// arrive for a short while, and returns them.
func waitCount(t *testing.T, s *sink, n int) []recorded {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d deliveries", n), 10*time.Second, func() bool { return len(s.received()) >= n })
	time.Sleep(300 * time.Millisecond)
	got := s.received()
	if len(got) != n {
		t.Fatalf("sink received %d requests, want %d", len(got), n)
	}
	return got
}

// webhookIDs lists the webhook-id of each request.
func webhookIDs(rs []recorded) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.Header.Get("Webhook-Id"))
	}
	slices.Sort(ids)
	return ids
}

// byPath returns the requests received on path.
func byPath(rs []recorded, path string) []recorded {
	var out []recorded
	for _, r := range rs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// verify checks a delivery's signature with the independent Standard
// Webhooks library, with one secret alone.
func verify(secret string, r recorded) error {
	var wh *standardwebhooks.Webhook
	var err error
	if strings.HasPrefix(secret, "whsec_") {
		wh, err = standardwebhooks.NewWebhook(secret)
	} else {
		wh, err = standardwebhooks.NewWebhookRaw([]byte(secret))
	}
	if err != nil {
		return err
	}
	return wh.Verify(r.Body, r.Header)
}

// deliveries lists delivery records with a query string.
func deliveries(t *testing.T, query string) []map[string]any {
	t.Helper()
	status, body := apiCall(t, "GET", "/deliveries?"+query, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /deliveries?%s: %d %v", query, status, body)
	}
	var out []map[string]any
	list, _ := body["deliveries"].([]any)
	for _, d := range list {
		out = append(out, d.(map[string]any))
	}
	return out
}

// waitRecord waits until the delivery of event to sub has status.
func waitRecord(t *testing.T, sub, event, status string) map[string]any {
	t.Helper()
	var rec map[string]any
	waitFor(t, fmt.Sprintf("delivery %s.%s %s", sub, event, status), 10*time.Second, func() bool {
		recs := deliveries(t, "subscription="+sub+"&event="+event)
		if len(recs) != 1 {
			return false
		}
		rec = recs[0]
		return rec["status"] == status
	})
	return rec
}

// eventTime returns the accepted time of an event, as the API shows it
// (RFC 3339 with nanoseconds, UTC: the form envelopes use).
func eventTime(t *testing.T, id string) string {
	t.Helper()
	status, body := apiCall(t, "GET", "/events/"+id, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /events/%s: %d %v", id, status, body)
	}
	ev := body["event"].(map[string]any)
	return ev["time"].(string)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, b)
	}
	return m
}

// TestOutgoingSignaturesAndRotation: deliveries carry the standard headers
// and verify with the Standard Webhooks library; an API subscription's
// generated secret is shown once; after rotate-secret every delivery carries
// two signatures, each verifying alone with the old and with the new
// secret, also after the engine restarts; a config subscription cannot be
// rotated through the API.
func TestOutgoingSignaturesAndRotation(t *testing.T) {
	s := newSink(t)
	const configSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks spec's example
	dir := t.TempDir()
	global := fmt.Sprintf(`
		topic document.deleted {
			description "A document was deleted"
		}
		topic asset.created
		subscription from-config {
			topics document.*
			url %[1]s/config
			secret %[2]s
			header X-Customer-Context mangovations
		}
		subscription unsigned {
			topics document.deleted
			url %[1]s/unsigned
			secret none
		}
`, s.URL, configSecret)
	startCaddy(t, dir, global, apiBlock)

	created := createSubscription(t, map[string]any{
		"name": "from-api", "topics": []string{"*"}, "url": s.URL + "/api",
		"headers": map[string]string{"X-Tenant-Hint": "ZZ1"},
	})
	subID := created["id"].(string)
	oldSecret, _ := created["secret"].(string)
	if !strings.HasPrefix(oldSecret, "whsec_") || created["has_secret"] != true {
		t.Fatalf("creation must show a generated whsec_ secret once: %v", created)
	}
	_, got := apiCall(t, "GET", "/subscriptions/"+subID, nil)
	if _, ok := got["secret"]; ok || got["has_secret"] != true || got["source"] != "api" {
		t.Fatalf("GET must not show the secret: %v", got)
	}
	_, list := apiCall(t, "GET", "/subscriptions", nil)
	if strings.Contains(fmt.Sprint(list), oldSecret) || strings.Contains(fmt.Sprint(list), configSecret) {
		t.Fatalf("the list shows a secret: %v", list)
	}

	data := map[string]any{"RecordID": "2QDTWAW4499"}
	ev1 := mustPublish(t, map[string]any{"topic": "document.deleted", "data": data, "tenant": "ZZ1"})
	reqs := waitCount(t, s, 3)
	unsigned := byPath(reqs, "/unsigned")
	if len(unsigned) != 1 || unsigned[0].Header.Get("Webhook-Signature") != "" || unsigned[0].Header.Get("Webhook-Id") != ev1 {
		t.Fatalf("secret none: want one unsigned delivery, got %v", unsigned)
	}
	for _, r := range append(byPath(reqs, "/config"), byPath(reqs, "/api")...) {
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("User-Agent") != "hookgate/0.1.0" || r.Header.Get("Webhook-Id") != ev1 {
			t.Errorf("%s: headers %v", r.Path, r.Header)
		}
		if ts, err := strconv.ParseInt(r.Header.Get("Webhook-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("webhook-timestamp %q", r.Header.Get("Webhook-Timestamp"))
		}
		if sigs := strings.Fields(r.Header.Get("Webhook-Signature")); len(sigs) != 1 || !strings.HasPrefix(sigs[0], "v1,") {
			t.Errorf("%s: want one v1 signature, got %q", r.Path, r.Header.Get("Webhook-Signature"))
		}
	}
	cfg, api := byPath(reqs, "/config"), byPath(reqs, "/api")
	if len(cfg) != 1 || len(api) != 1 {
		t.Fatalf("one delivery per subscription: config %d, api %d", len(cfg), len(api))
	}
	if err := verify(configSecret, cfg[0]); err != nil {
		t.Errorf("config subscription: %v", err)
	}
	if cfg[0].Header.Get("X-Customer-Context") != "mangovations" || api[0].Header.Get("X-Tenant-Hint") != "ZZ1" {
		t.Errorf("custom headers missing: %v / %v", cfg[0].Header, api[0].Header)
	}
	if err := verify(oldSecret, api[0]); err != nil {
		t.Errorf("api subscription: %v", err)
	}
	if verify(configSecret, api[0]) == nil {
		t.Error("a delivery verifies with another subscription's secret")
	}

	// Rotation: shown once; both signatures during the grace period.
	status, rot := apiCall(t, "POST", "/subscriptions/"+subID+"/rotate-secret", nil)
	newSecret, _ := rot["secret"].(string)
	if status != http.StatusOK || !strings.HasPrefix(newSecret, "whsec_") || newSecret == oldSecret {
		t.Fatalf("rotate-secret: %d %v", status, rot)
	}
	if _, got = apiCall(t, "GET", "/subscriptions/"+subID, nil); strings.Contains(fmt.Sprint(got), newSecret) {
		t.Fatalf("GET shows the rotated secret")
	}
	checkRotated := func(label string, r recorded) {
		t.Helper()
		if sigs := strings.Fields(r.Header.Get("Webhook-Signature")); len(sigs) != 2 {
			t.Errorf("%s: want two signatures during rotation, got %q", label, r.Header.Get("Webhook-Signature"))
		}
		if err := verify(oldSecret, r); err != nil {
			t.Errorf("%s: the old secret alone: %v", label, err)
		}
		if err := verify(newSecret, r); err != nil {
			t.Errorf("%s: the new secret alone: %v", label, err)
		}
	}
	ev2 := mustPublish(t, map[string]any{"topic": "asset.created", "data": data})
	reqs = waitCount(t, s, 4) // asset.created: only the "*" subscription
	last := reqs[3]
	if last.Path != "/api" || last.Header.Get("Webhook-Id") != ev2 {
		t.Fatalf("unexpected delivery %s %v", last.Path, last.Header)
	}
	checkRotated("after rotation", last)

	// The config subscription is read-only.
	if status, body := apiCall(t, "POST", "/subscriptions/from-config/rotate-secret", nil); status != http.StatusConflict {
		t.Errorf("rotating a config subscription: %d %v", status, body)
	}

	// Restart the engine (another storage, then this one again): the API
	// subscription, its new secret and the grace period survive.
	startCaddy(t, t.TempDir(), "", apiBlock)
	startCaddy(t, dir, global, apiBlock)
	if status, body := apiCall(t, "GET", "/subscriptions/"+subID, nil); status != http.StatusOK {
		t.Fatalf("the API subscription is gone after a restart: %d %v", status, body)
	}
	ev3 := mustPublish(t, map[string]any{"topic": "asset.created", "data": data})
	reqs = waitCount(t, s, 5)
	if reqs[4].Header.Get("Webhook-Id") != ev3 {
		t.Fatalf("unexpected delivery %v", reqs[4].Header)
	}
	checkRotated("after a restart", reqs[4])
}

// TestOutgoingConfigSecretGenerate: "secret generate" is for API
// subscriptions; in the Caddyfile it is refused at the line of the secret (a
// secret generated at every start could not be shown to anyone).
func TestOutgoingConfigSecretGenerate(t *testing.T) {
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`{
	hookgate {
		topic t
		subscription s {
			topics t
			url http://127.0.0.1:9/
			secret generate
		}
	}
}
:9080 {
	respond 200
}
`), map[string]any{"filename": "Caddyfile"})
	if err == nil || !strings.Contains(err.Error(), `secret: "generate" is for subscriptions created through the API`) || !strings.Contains(err.Error(), "Caddyfile:7") {
		t.Fatalf("secret generate in the Caddyfile: %v", err)
	}
}

// TestOutgoingFanOut: one delivery per (event, enabled matching
// subscription) over exact, prefix.* and * topics with include and exclude
// predicates; a disabled subscription gets nothing from the moment it is
// disabled.
func TestOutgoingFanOut(t *testing.T) {
	images, rest, docs, off := newSink(t), newSink(t), newSink(t), newSink(t)
	startCaddy(t, t.TempDir(), bq(fmt.Sprintf(`
		topic asset.created
		topic asset.deleted
		topic document.deleted
		subscription images {
			topics asset.*
			include ~data?.Kind == "image"~
			url %s/images
		}
`, images.URL)), apiBlock)
	createSubscription(t, map[string]any{
		"name": "all-but-deletions", "topics": []string{"*"}, "url": rest.URL,
		"exclude": `topic endsWith ".deleted"`,
	})
	createSubscription(t, map[string]any{
		"name": "zz1-documents", "topics": []string{"document.deleted"}, "url": docs.URL,
		"include": `tenant == "ZZ1"`,
	})
	offID := createSubscription(t, map[string]any{"name": "soon-disabled", "topics": []string{"*"}, "url": off.URL})["id"].(string)

	ev0 := mustPublish(t, map[string]any{"topic": "document.deleted", "tenant": "ZZ9", "data": map[string]any{"RecordID": "R0"}})
	waitCount(t, off, 1)
	status, body := apiCall(t, "PATCH", "/subscriptions/"+offID, map[string]any{"enabled": false})
	if status != http.StatusOK || body["enabled"] != false {
		t.Fatalf("disable: %d %v", status, body)
	}

	e1 := mustPublish(t, map[string]any{"topic": "asset.created", "tenant": "ZZ1", "data": map[string]any{"Kind": "image"}})
	e2 := mustPublish(t, map[string]any{"topic": "asset.created", "tenant": "ZZ2", "data": map[string]any{"Kind": "video"}})
	e3 := mustPublish(t, map[string]any{"topic": "asset.deleted", "tenant": "ZZ1", "data": map[string]any{"Kind": "image"}})
	e4 := mustPublish(t, map[string]any{"topic": "document.deleted", "tenant": "ZZ1", "data": map[string]any{"RecordID": "R4"}})
	e5 := mustPublish(t, map[string]any{"topic": "document.deleted", "tenant": "ZZ2", "data": map[string]any{"RecordID": "R5"}})

	for _, c := range []struct {
		name string
		s    *sink
		want []string
	}{
		{"images", images, []string{e1, e3}},
		{"all-but-deletions", rest, []string{e1, e2}},
		{"zz1-documents", docs, []string{e4}},
		{"disabled", off, []string{ev0}},
	} {
		got := webhookIDs(waitCount(t, c.s, len(c.want)))
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s received %v, want %v", c.name, got, want)
		}
	}
	if recs := deliveries(t, "event="+e5); len(recs) != 0 {
		t.Errorf("an event no subscription wants has deliveries: %v", recs)
	}
	if recs := deliveries(t, "event="+e1); len(recs) != 2 {
		t.Errorf("e1 has %d delivery records, want 2", len(recs))
	}
}

// TestOutgoingDedupe: an event published twice with the same id is accepted
// once ("duplicate" the second time) and delivered once per subscription;
// an event without id gets one.
func TestOutgoingDedupe(t *testing.T) {
	a, b := newSink(t), newSink(t)
	startCaddy(t, t.TempDir(), fmt.Sprintf(`
		topic USER_CREATED
		subscription a {
			topics USER_CREATED
			url %s
		}
`, a.URL), apiBlock)
	createSubscription(t, map[string]any{"name": "b", "topics": []string{"USER_CREATED"}, "url": b.URL})
	ev := map[string]any{"id": "66ec445884b4103f670d0c86", "topic": "USER_CREATED", "data": map[string]any{"username": "demo"}}
	id := mustPublish(t, ev)
	if id != "66ec445884b4103f670d0c86" {
		t.Fatalf("the given id was not kept: %s", id)
	}
	status, body := publish(t, ev)
	if status != http.StatusAccepted || body["id"] != id || body["status"] != "duplicate" {
		t.Fatalf("repeated id: %d %v", status, body)
	}
	for _, s := range []*sink{a, b} {
		if got := webhookIDs(waitCount(t, s, 1)); got[0] != id {
			t.Errorf("webhook-id %s, want %s", got[0], id)
		}
	}
	gen := mustPublish(t, map[string]any{"topic": "USER_CREATED", "data": nil})
	if gen == id || !strings.HasPrefix(gen, "evt_") {
		t.Errorf("generated id %q", gen)
	}
	waitCount(t, a, 2)
}

// TestOutgoingRetriesDeadLetterReplay: a failing subscriber is retried on
// the subscription's schedule with the same webhook-id and traceparent;
// after max_attempts the delivery is failed, listed with status=failed, and a
// manual retry succeeds once the subscriber is fixed. A publish without
// traceparent gets a new one.
func TestOutgoingRetriesDeadLetterReplay(t *testing.T) {
	s := newSink(t, 500, 502, 503)
	startCaddy(t, t.TempDir(), `
		topic order.paid
`, apiBlock)
	subID := createSubscription(t, map[string]any{
		"name": "flaky", "topics": []string{"order.*"}, "url": s.URL,
		"max_attempts": 3, "retry_schedule": []string{"50ms", "100ms"}, "timeout": "5s",
	})["id"].(string)

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev := mustPublish(t, map[string]any{"topic": "order.paid", "data": map[string]any{"orderId": "o-1"}}, "Traceparent", tp)
	rec := waitRecord(t, subID, ev, "failed")
	if attempts := rec["attempts"].([]any); len(attempts) != 3 {
		t.Fatalf("attempts = %d, want 3: %v", len(attempts), attempts)
	} else if a := attempts[2].(map[string]any); a["status_code"] != float64(503) || a["error"] == "" {
		t.Errorf("last attempt %v", a)
	}
	failed := deliveries(t, "status=failed")
	if len(failed) != 1 || failed[0]["id"] != rec["id"] || failed[0]["subscription_id"] != subID || failed[0]["event_id"] != ev {
		t.Fatalf("GET /deliveries?status=failed: %v", failed)
	}
	if got := deliveries(t, "status=succeeded"); len(got) != 0 {
		t.Errorf("succeeded: %v", got)
	}
	reqs := waitCount(t, s, 3)

	// The subscriber is fixed (the sink now answers 200): replay.
	recID := rec["id"].(string)
	status, body := apiCall(t, "POST", "/deliveries/"+recID+"/retry", nil)
	if status != http.StatusAccepted {
		t.Fatalf("retry: %d %v", status, body)
	}
	rec = waitRecord(t, subID, ev, "succeeded")
	if attempts := rec["attempts"].([]any); len(attempts) != 4 {
		t.Errorf("attempts after replay = %d, want 4", len(attempts))
	}
	reqs = waitCount(t, s, 4)
	for i, r := range reqs {
		if r.Header.Get("Webhook-Id") != ev || r.Header.Get("Traceparent") != tp {
			t.Errorf("attempt %d: webhook-id %q traceparent %q, want %q %q", i+1,
				r.Header.Get("Webhook-Id"), r.Header.Get("Traceparent"), ev, tp)
		}
		if !jsonEqual(r.Body, reqs[0].Body) {
			t.Errorf("attempt %d: body changed", i+1)
		}
	}
	if d := reqs[1].At.Sub(reqs[0].At); d < 40*time.Millisecond {
		t.Errorf("first retry after %v, schedule says 50ms", d)
	}
	if status, _ := apiCall(t, "POST", "/deliveries/"+subID+".nosuch/retry", nil); status != http.StatusNotFound {
		t.Errorf("retry of an unknown delivery: %d", status)
	}

	// No traceparent on the publish: a new, valid one per event.
	ev2 := mustPublish(t, map[string]any{"topic": "order.paid", "data": map[string]any{"orderId": "o-2"}})
	r := waitCount(t, s, 5)[4]
	got := r.Header.Get("Traceparent")
	if r.Header.Get("Webhook-Id") != ev2 || len(got) != 55 || !strings.HasPrefix(got, "00-") || got[3:35] == tp[3:35] {
		t.Errorf("new traceparent %q for %s", got, r.Header.Get("Webhook-Id"))
	}
}

// TestOutgoingGoneDisables: a 410 answer disables the subscription at once,
// with a reason, without retries; later events are not delivered until it is
// enabled again.
func TestOutgoingGoneDisables(t *testing.T) {
	s := newSink(t, http.StatusGone)
	startCaddy(t, t.TempDir(), `
		topic USER_DISABLED
`, apiBlock)
	subID := createSubscription(t, map[string]any{
		"name": "gone", "topics": []string{"USER_DISABLED"}, "url": s.URL,
		"retry_schedule": []string{"50ms"},
	})["id"].(string)
	ev := mustPublish(t, map[string]any{"topic": "USER_DISABLED", "data": map[string]any{"username": "demo"}})
	rec := waitRecord(t, subID, ev, "failed")
	if n := len(rec["attempts"].([]any)); n != 1 {
		t.Errorf("410 must not be retried: %d attempts", n)
	}
	status, sub := apiCall(t, "GET", "/subscriptions/"+subID, nil)
	reason, _ := sub["disabled_reason"].(string)
	if status != http.StatusOK || sub["enabled"] != false || !strings.Contains(reason, "410") {
		t.Fatalf("after 410: %d %v", status, sub)
	}
	ev2 := mustPublish(t, map[string]any{"topic": "USER_DISABLED", "data": map[string]any{"username": "demo2"}})
	waitCount(t, s, 1)
	if recs := deliveries(t, "event="+ev2); len(recs) != 0 {
		t.Errorf("a disabled subscription got a delivery: %v", recs)
	}

	status, sub = apiCall(t, "PATCH", "/subscriptions/"+subID, map[string]any{"enabled": true})
	if status != http.StatusOK || sub["enabled"] != true || sub["disabled_reason"] != nil {
		t.Fatalf("enable again: %d %v", status, sub)
	}
	ev3 := mustPublish(t, map[string]any{"topic": "USER_DISABLED", "data": map[string]any{"username": "demo3"}})
	if got := waitCount(t, s, 2); got[1].Header.Get("Webhook-Id") != ev3 {
		t.Errorf("after re-enabling: %v", got[1].Header)
	}
}

// TestOutgoingRetryAfter: a 503 with Retry-After: 1 delays the retry by a
// second although the schedule says 50ms; without Retry-After the schedule
// applies.
func TestOutgoingRetryAfter(t *testing.T) {
	slow := newSink(t, 503)
	slow.mu.Lock()
	slow.headers = map[string]string{"Retry-After": "1"}
	slow.mu.Unlock()
	fast := newSink(t, 503)
	startCaddy(t, t.TempDir(), fmt.Sprintf(`
		topic job.done
		subscription polite {
			topics job.done
			url %s
			retry_schedule 50ms
			max_attempts 3
		}
		subscription plain {
			topics job.done
			url %s
			retry_schedule 50ms
			max_attempts 3
		}
`, slow.URL, fast.URL), apiBlock)
	ev := mustPublish(t, map[string]any{"topic": "job.done", "data": map[string]any{"ok": true}})
	r := waitCount(t, slow, 2)
	if d := r[1].At.Sub(r[0].At); d < 950*time.Millisecond {
		t.Errorf("retried %v after a Retry-After: 1", d)
	}
	f := waitCount(t, fast, 2)
	if d := f[1].At.Sub(f[0].At); d > 900*time.Millisecond {
		t.Errorf("without Retry-After the 50ms schedule applies; retried after %v", d)
	}
	waitRecord(t, "polite", ev, "succeeded")
	waitRecord(t, "plain", ev, "succeeded")
}

// TestOutgoingEnvelopes: each envelope shape, exactly, with the seed
// systems' payloads: standard, raw, a custom expression, ACTIVATE, Orange
// Logic, and Orchestry with the secret in the body and a header (preset, and
// secret_field/secret_header on a raw envelope).
func TestOutgoingEnvelopes(t *testing.T) {
	s := newSink(t)
	const orchestrySecret = "orchestry-shared-secret"
	const orchestrySecret2 = "another-orchestry-secret"
	startCaddy(t, t.TempDir(), bq(fmt.Sprintf(`
		topic order.paid
		topic USER_CREATED
		topic document.deleted
		topic workspace.provisioning.completed
		subscription std {
			topics order.paid
			url %[1]s/standard
		}
		subscription raw {
			topics order.paid
			url %[1]s/raw
			envelope raw
		}
		subscription custom {
			topics order.paid
			url %[1]s/custom
			envelope ~{kind: event.topic, order: event.data.orderId, total: event.data.amount, tenant: event.tenant, by: event.user, sub: subscription.name, id: event.id}~
		}
		subscription demo {
			id 66ec434e84b4103f670cb617
			topics USER_CREATED
			url %[1]s/activate
			envelope activate
		}
		subscription orangelogic {
			topics document.*
			url %[1]s/orangelogic
			envelope orangelogic
		}
		subscription orchestry {
			topics workspace.provisioning.completed
			url %[1]s/orchestry
			envelope orchestry
			secret %[2]s
			secret_header X-Orchestry-Secret
		}
		subscription orchestry-fields {
			topics workspace.provisioning.completed
			url %[1]s/orchestry-fields
			envelope raw
			secret %[3]s
			secret_field Secret
			secret_header X-Webhook-Secret
		}
`, s.URL, orchestrySecret, orchestrySecret2)), apiBlock)

	order := mustPublish(t, map[string]any{"topic": "order.paid", "tenant": "t1", "user": "u1",
		"data": map[string]any{"orderId": "o-1", "amount": 12.5}})
	activateData := map[string]any{
		"username": "demo", "email": "demo@parallelworks.com", "userId": "66ec445884b4103f670d0c86",
		"organization": "parallelworks", "remainingSeats": 5,
	}
	mustPublish(t, map[string]any{"topic": "USER_CREATED", "tenant": "parallelworks", "data": activateData})
	olID := mustPublish(t, map[string]any{"id": "773bdd63-29be-4e77-8f39-fb0b572a7a88", "topic": "document.deleted",
		"tenant": "ZZ1", "user": "K8OEC0ALO_H", "data": map[string]any{"RecordID": "2QDTWAW4499"}})
	orchestryData := map[string]any{
		"tenantId": "6d2c4f0e-1f4b-4b8e-9c1a-3f5e2d7a8b90", "requestId": "a1b2c3d4-0001-4e5f-8a9b-0c1d2e3f4a5b",
		"templateId": "tpl-project-site", "groupId": "0b8a6c2e-5d4f-4e3a-9b1c-7d6e5f4a3b2c",
		"sharePointUrl": "https://contoso.sharepoint.com/sites/Marketing",
	}
	mustPublish(t, map[string]any{"topic": "workspace.provisioning.completed", "data": orchestryData})

	reqs := waitCount(t, s, 7)
	one := func(path string) recorded {
		t.Helper()
		rs := byPath(reqs, path)
		if len(rs) != 1 {
			t.Fatalf("%s: %d deliveries", path, len(rs))
		}
		return rs[0]
	}
	orderTime := eventTime(t, order)

	// standard: {type, timestamp, data}, in that order, byte for byte.
	if got, want := string(one("/standard").Body), `{"type":"order.paid","timestamp":"`+orderTime+`","data":{"amount":12.5,"orderId":"o-1"}}`; got != want {
		t.Errorf("standard:\n got %s\nwant %s", got, want)
	}
	// raw: the data alone.
	if got := string(one("/raw").Body); got != `{"amount":12.5,"orderId":"o-1"}` {
		t.Errorf("raw: %s", got)
	}
	// custom expression.
	if got, want := one("/custom").Body, mustJSON(map[string]any{"kind": "order.paid", "order": "o-1", "total": 12.5,
		"tenant": "t1", "by": "u1", "sub": "custom", "id": order}); !jsonEqual(got, want) {
		t.Errorf("custom:\n got %s\nwant %s", got, want)
	}
	// ACTIVATE: the seed's USER_CREATED body, exactly.
	activate := `{
"type": "USER_CREATED",
"webhook": {
"id": "66ec434e84b4103f670cb617",
"organization": "parallelworks",
"name": "demo"
},
"payload": {
"username": "demo",
"email": "demo@parallelworks.com",
"userId": "66ec445884b4103f670d0c86",
"organization": "parallelworks",
"remainingSeats": 5
}
}`
	if got := one("/activate").Body; !jsonEqual(got, []byte(activate)) {
		t.Errorf("activate:\n got %s\nwant %s", got, activate)
	}
	// Orange Logic: {EventId, Topic, EventDateUtc, Data, Tenant, UserId}.
	olGot := one("/orangelogic")
	olWant := mustJSON(map[string]any{"EventId": olID, "Topic": "document.deleted", "EventDateUtc": eventTime(t, olID),
		"Data": map[string]any{"RecordID": "2QDTWAW4499"}, "Tenant": "ZZ1", "UserId": "K8OEC0ALO_H"})
	if !jsonEqual(olGot.Body, olWant) {
		t.Errorf("orangelogic:\n got %s\nwant %s", olGot.Body, olWant)
	}
	if olID != "773bdd63-29be-4e77-8f39-fb0b572a7a88" || olGot.Header.Get("Webhook-Id") != olID {
		t.Errorf("the Orange Logic EventId is the webhook-id: %s %s", olID, olGot.Header.Get("Webhook-Id"))
	}
	if ts := decodeMap(t, olGot.Body)["EventDateUtc"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("EventDateUtc %q is not UTC", ts)
	}
	// Orchestry: the payload with the secret as "Secret", and in a header.
	for _, c := range []struct{ path, secret, header string }{
		{"/orchestry", orchestrySecret, "X-Orchestry-Secret"},
		{"/orchestry-fields", orchestrySecret2, "X-Webhook-Secret"},
	} {
		r := one(c.path)
		want := map[string]any{"Secret": c.secret}
		for k, v := range orchestryData {
			want[k] = v
		}
		if !jsonEqual(r.Body, mustJSON(want)) {
			t.Errorf("%s:\n got %s\nwant %s", c.path, r.Body, mustJSON(want))
		}
		if r.Header.Get(c.header) != c.secret {
			t.Errorf("%s: header %s = %q", c.path, c.header, r.Header.Get(c.header))
		}
		if err := verify(c.secret, r); err != nil {
			t.Errorf("%s: signature over the body as sent: %v", c.path, err)
		}
	}
	for _, r := range reqs {
		if r.Header.Get("Content-Type") != "application/json" || !json.Valid(r.Body) {
			t.Errorf("%s: %s %s", r.Path, r.Header.Get("Content-Type"), r.Body)
		}
	}
}

// TestOutgoingPublishAPI: topics from the Caddyfile and the API are listed;
// publish answers 202 after the write, 404 for an unknown topic, 422 when the
// data fails the topic's schema; a publish-only token may publish and
// nothing else.
func TestOutgoingPublishAPI(t *testing.T) {
	s := newSink(t)
	schemaFile := filepath.Join(t.TempDir(), "record.schema.json")
	if err := os.WriteFile(schemaFile, []byte(`{
		"type": "object",
		"required": ["RecordID"],
		"properties": {"RecordID": {"type": "string", "minLength": 1}}
	}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startCaddy(t, t.TempDir(), fmt.Sprintf(`
		topic asset.created {
			description "An asset was created"
			schema %s
		}
		subscription everything {
			topics *
			url %s
		}
`, schemaFile, s.URL), apiBlock)

	status, body := apiCall(t, "PUT", "/topics/workspace.provisioning.completed", map[string]any{
		"description": "Workspace provisioning has been completed",
		"schema":      map[string]any{"type": "object", "required": []string{"requestId"}},
	})
	if status != http.StatusCreated {
		t.Fatalf("PUT topic: %d %v", status, body)
	}
	if status, _ := apiCall(t, "PUT", "/topics/asset.created", map[string]any{}); status != http.StatusConflict {
		t.Errorf("PUT on a config topic: %d, want 409", status)
	}
	_, list := apiCall(t, "GET", "/topics", nil)
	topics, _ := list["topics"].([]any)
	sources := map[string]any{}
	for _, tp := range topics {
		m := tp.(map[string]any)
		sources[m["name"].(string)] = m["source"]
	}
	if sources["asset.created"] != "config" || sources["workspace.provisioning.completed"] != "api" ||
		sources["hookgate.subscription.disabled"] != "builtin" || len(sources) != 3 {
		t.Errorf("GET /topics: %v", list)
	}

	pub := func(token string, ev any) (int, map[string]any) {
		return call(t, "POST", base+"/api/hookgate/events", ev, "Authorization", "Bearer "+token)
	}
	for _, c := range []struct {
		name   string
		ev     map[string]any
		status int
	}{
		{"unknown topic", map[string]any{"topic": "asset.nosuch", "data": map[string]any{}}, 404},
		{"config schema", map[string]any{"topic": "asset.created", "data": map[string]any{"RecordID": 7}}, 422},
		{"config schema, missing", map[string]any{"topic": "asset.created", "data": map[string]any{}}, 422},
		{"api schema", map[string]any{"topic": "workspace.provisioning.completed", "data": map[string]any{"groupId": "g"}}, 422},
		{"no topic", map[string]any{"data": map[string]any{}}, 422},
		{"bad id", map[string]any{"id": "has spaces", "topic": "asset.created", "data": map[string]any{"RecordID": "x"}}, 400},
	} {
		status, body := pub(testToken, c.ev)
		if status != c.status || body["error"] == nil {
			t.Errorf("%s: %d %v, want %d with an error", c.name, status, body, c.status)
		}
	}
	if _, body := pub(testToken, map[string]any{"topic": "asset.created", "data": map[string]any{"RecordID": 7}}); body["errors"] == nil {
		t.Errorf("a schema failure lists its errors: %v", body)
	}
	if n := len(s.received()); n != 0 {
		t.Fatalf("refused events were delivered: %d", n)
	}

	// The publish-only token.
	status, body = pub(publishToken, map[string]any{"topic": "asset.created", "data": map[string]any{"RecordID": "2QDTWAW4499"}})
	if status != http.StatusAccepted || body["status"] != "accepted" {
		t.Fatalf("publish-only token: %d %v", status, body)
	}
	id := body["id"].(string)
	for _, r := range []struct{ method, path string }{
		{"GET", "/subscriptions"}, {"GET", "/events/" + id}, {"GET", "/topics"}, {"POST", "/subscriptions"},
		{"GET", "/deliveries"},
	} {
		status, _ := call(t, r.method, base+"/api/hookgate"+r.path, nil, "Authorization", "Bearer "+publishToken)
		if status != http.StatusForbidden {
			t.Errorf("publish-only token on %s %s: %d, want 403", r.method, r.path, status)
		}
	}
	if status, _ := call(t, "GET", base+"/api/hookgate/subscriptions", nil); status != http.StatusUnauthorized {
		t.Errorf("no token: %d", status)
	}
	if status, _ := pub("wrong-token", map[string]any{"topic": "asset.created"}); status != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", status)
	}
	// 202 means stored: the event is readable at once.
	if status, ev := apiCall(t, "GET", "/events/"+id, nil); status != http.StatusOK || ev["event"].(map[string]any)["topic"] != "asset.created" {
		t.Errorf("GET /events/%s: %d %v", id, status, ev)
	}
	if got := waitCount(t, s, 1); got[0].Header.Get("Webhook-Id") != id {
		t.Errorf("delivered %v", got[0].Header)
	}
}

// rawTarget is a bare TCP listener on an address the guard must refuse; it
// counts connections and the HTTP requests read from them, and answers each
// request 200.
type rawTarget struct {
	l        net.Listener
	accepted atomic.Int32
	requests atomic.Int32
	wg       sync.WaitGroup
}

func newRawTarget(t *testing.T, addr string) *rawTarget {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	rt := &rawTarget{l: l}
	conns := make(chan net.Conn, 16)
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rt.accepted.Add(1)
			conns <- c
			rt.wg.Add(1)
			go func() {
				defer rt.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					rt.requests.Add(1)
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(conns)
		for c := range conns {
			c.Close()
		}
		rt.wg.Wait()
	})
	return rt
}

// loadError posts a Caddyfile to the admin API and returns the error it
// answers ("" when it loads).
func loadError(t *testing.T, cfg string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+testAdminAddr+"/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		return string(b)
	}
	return e.Error
}

// TestOutgoingSSRF: with allow_targets 127.0.0.1/32, a subscription to
// 127.0.0.2 is refused by the API (422 naming url) and by the configuration
// (the load fails naming the subscription and url); a subscription allowed
// when it was created is refused at dial time once the allowlist no longer
// covers it, and its target receives nothing. Every address involved is in
// 127.0.0.0/8.
func TestOutgoingSSRF(t *testing.T) {
	target := newRawTarget(t, "127.0.0.2:0")
	targetURL := "http://" + target.l.Addr().String() + "/hook"
	dir := t.TempDir()
	const topics = `
		topic asset.created
`
	startCaddy(t, dir, topics, apiBlock)

	// The API refuses the literal address.
	status, body := apiCall(t, "POST", "/subscriptions", map[string]any{"name": "internal", "topics": []string{"*"}, "url": targetURL})
	if status != http.StatusUnprocessableEntity || body["field"] != "url" || !strings.Contains(fmt.Sprint(body["error"]), "not allowed") {
		t.Fatalf("API creation to 127.0.0.2: %d %v", status, body)
	}
	for _, u := range []string{"http://[::ffff:127.0.0.2]:80/", "http://2130706434/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "file:///etc/passwd"} {
		if status, body := apiCall(t, "POST", "/subscriptions", map[string]any{"name": "internal", "topics": []string{"*"}, "url": u}); status != http.StatusUnprocessableEntity {
			t.Errorf("API creation to %s: %d %v", u, status, body)
		}
	}

	// The configuration refuses it too: the load fails, naming the field;
	// the running configuration stays.
	msg := loadError(t, testCaddyfile(t.TempDir(), topics+fmt.Sprintf(`
		subscription internal {
			topics *
			url %s
		}
`, targetURL), apiBlock))
	if msg == "" || !strings.Contains(msg, `"internal"`) || !strings.Contains(msg, "url: netguard: address 127.0.0.2 is not allowed") {
		t.Fatalf("loading a config subscription to 127.0.0.2: %q", msg)
	}
	if status, _ := apiCall(t, "GET", "/topics", nil); status != http.StatusOK {
		t.Fatalf("the running configuration is gone: %d", status)
	}

	// Allowed by the allowlist: the subscription works (this shows the
	// target would see a delivery that got through).
	startCaddy(t, dir, topics+"\t\tallow_targets 127.0.0.2/32\n", apiBlock)
	subID := createSubscription(t, map[string]any{
		"name": "internal", "topics": []string{"*"}, "url": targetURL,
		"max_attempts": 2, "retry_schedule": []string{"50ms"},
	})["id"].(string)
	ev := mustPublish(t, map[string]any{"topic": "asset.created", "data": map[string]any{}})
	waitRecord(t, subID, ev, "succeeded")
	if target.requests.Load() != 1 {
		t.Fatalf("the allowed target got %d requests", target.requests.Load())
	}
	accepted := target.accepted.Load()

	// The allowlist shrinks on reload: the stored subscription stays, but
	// every dial is refused, including over pooled connections.
	startCaddy(t, dir, topics, apiBlock)
	ev2 := mustPublish(t, map[string]any{"topic": "asset.created", "data": map[string]any{}})
	rec := waitRecord(t, subID, ev2, "failed")
	for _, a := range rec["attempts"].([]any) {
		if e, _ := a.(map[string]any)["error"].(string); !strings.Contains(e, "not allowed") {
			t.Errorf("attempt error %q, want a guard refusal", e)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n, r := target.accepted.Load(), target.requests.Load(); n != accepted || r != 1 {
		t.Fatalf("the refused target was reached: %d connections (was %d), %d requests (was 1)", n, accepted, r)
	}
}
