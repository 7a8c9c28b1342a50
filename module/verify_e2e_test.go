package module

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func e2eHMAC(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// TestProviderPresetsEndToEnd runs provider-signed webhooks through a real
// Caddy loaded from a Caddyfile: GitHub and Stripe events are verified and
// forwarded, a tampered or stale one is refused 401, Slack's
// url_verification and Zoom's endpoint.url_validation are answered by
// hookgate and never forwarded, and a Twilio form, signed over the https URL
// that a trusted TLS-terminating proxy received, meets its contract and
// reaches the target as JSON.
func TestProviderPresetsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	anyObject := filepath.Join(dir, "any.json")
	sms := filepath.Join(dir, "sms.json")
	for f, doc := range map[string]string{anyObject: `{}`, sms: `{"From":"","Body":""}`} {
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sink := newSink(t)
	t.Setenv("HOOKGATE_TEST_GITHUB_SECRET", "It's a Secret to Everybody")
	site := fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow github {
			sample %[1]s
			key %[3]s
			verify github {env.HOOKGATE_TEST_GITHUB_SECRET}
			forward %[4]s/github
		}
		workflow stripe {
			sample %[1]s
			key %[3]s
			verify stripe whsec_new {
				secret whsec_old
				tolerance 2m
			}
			forward %[4]s/stripe
		}
		workflow slack {
			sample %[1]s
			key %[3]s
			verify slack slack-signing-secret
			forward %[4]s/slack
		}
		workflow zoom {
			sample %[1]s
			key %[3]s
			verify zoom zoom-secret-token
			forward %[4]s/zoom
		}
		workflow twilio {
			sample %[2]s
			strict
			key %[3]s
			verify twilio twilio-auth-token
			forward %[4]s/twilio
		}
	}
`, anyObject, sms, pinnedKey, sink.URL)
	cfg := strings.Replace(testCaddyfile(t.TempDir(), "", site), "\tgrace_period 1s\n",
		"\tgrace_period 1s\n\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n", 1)
	newTester(t).InitServer(cfg, "caddyfile")
	http.DefaultClient.CloseIdleConnections()
	if t.Failed() {
		t.FailNow()
	}
	hook := func(id string) string { return base + "/hooks/" + id + "/" + pinnedKey }
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)

	// GitHub: verified and forwarded; tampered: 401, not forwarded.
	ghBody := `{"action":"opened","number":1}`
	ghSig := "sha256=" + e2eHMAC("It's a Secret to Everybody", ghBody)
	if status, body := call(t, "POST", hook("github"), ghBody, "X-Hub-Signature-256", ghSig); status != 202 || body["status"] != "accepted" {
		t.Fatalf("github: %d %v", status, body)
	}
	if status, body := call(t, "POST", hook("github"), `{"action":"closed"}`, "X-Hub-Signature-256", ghSig); status != 401 || body["error"] != "signature: no matching signature" {
		t.Fatalf("github tampered: %d %v", status, body)
	}
	if status, body := call(t, "POST", hook("github"), ghBody); status != 401 || body["error"] != "signature: missing header X-Hub-Signature-256" {
		t.Fatalf("github unsigned: %d %v", status, body)
	}

	// Stripe: the previous secret still verifies; a timestamp older than
	// the workflow's 2m tolerance is a replay.
	stBody := `{"id":"evt_1","type":"charge.succeeded"}`
	if status, body := call(t, "POST", hook("stripe"), stBody, "Stripe-Signature", "t="+ts+",v1="+e2eHMAC("whsec_old", ts+"."+stBody)); status != 202 {
		t.Fatalf("stripe: %d %v", status, body)
	}
	old := strconv.FormatInt(now.Add(-3*time.Minute).Unix(), 10)
	status, body := call(t, "POST", hook("stripe"), stBody, "Stripe-Signature", "t="+old+",v1="+e2eHMAC("whsec_new", old+"."+stBody))
	if msg, _ := body["error"].(string); status != 401 || !strings.HasPrefix(msg, "signature timestamp outside the tolerance") {
		t.Fatalf("stripe stale: %d %v", status, body)
	}

	// Slack url_verification: answered with the challenge, never forwarded.
	challenge := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	status, body = call(t, "POST", hook("slack"), challenge,
		"X-Slack-Request-Timestamp", ts, "X-Slack-Signature", "v0="+e2eHMAC("slack-signing-secret", "v0:"+ts+":"+challenge))
	if status != 200 || body["challenge"] != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || len(body) != 1 {
		t.Fatalf("slack url_verification: %d %v", status, body)
	}
	if status, _ := call(t, "POST", hook("slack"), challenge, "X-Slack-Request-Timestamp", ts, "X-Slack-Signature", "v0="+e2eHMAC("wrong", "v0:"+ts+":"+challenge)); status != 401 {
		t.Fatalf("unsigned slack url_verification answered %d", status)
	}

	// Zoom endpoint.url_validation.
	zoomBody := `{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`
	status, body = call(t, "POST", hook("zoom"), zoomBody,
		"x-zm-request-timestamp", ts, "x-zm-signature", "v0="+e2eHMAC("zoom-secret-token", "v0:"+ts+":"+zoomBody))
	if status != 200 || body["plainToken"] != "qgg8vlvZRS6UYooatFL8Aw" || body["encryptedToken"] != e2eHMAC("zoom-secret-token", "qgg8vlvZRS6UYooatFL8Aw") {
		t.Fatalf("zoom url_validation: %d %v", status, body)
	}

	// Twilio: signed over the https URL the proxy received.
	form := "From=%2B15551234567&Body=hello+there"
	m := hmac.New(sha1.New, []byte("twilio-auth-token"))
	m.Write([]byte(fmt.Sprintf("https://127.0.0.1:%d/hooks/twilio/%s", testHTTPPort, pinnedKey) + "Bodyhello there" + "From+15551234567"))
	twSig := base64.StdEncoding.EncodeToString(m.Sum(nil))
	postForm := func(headers ...string) (int, string) {
		req, _ := http.NewRequest("POST", hook("twilio"), strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twSig)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = fmt.Fprint(b, resp.Status)
		return resp.StatusCode, b.String()
	}
	if status, s := postForm(); status != 401 {
		t.Fatalf("twilio over plain http without the proxy's header: %s", s)
	}
	if status, s := postForm("X-Forwarded-Proto", "https"); status != 202 {
		t.Fatalf("twilio through the trusted proxy: %s", s)
	}

	waitFor(t, "three deliveries", 10*time.Second, func() bool { return len(sink.received()) >= 3 })
	time.Sleep(300 * time.Millisecond) // nothing more may come
	byPath := map[string][]string{}
	for _, r := range sink.received() {
		byPath[r.Path] = append(byPath[r.Path], string(r.Body))
	}
	if len(sink.received()) != 3 || len(byPath["/github"]) != 1 || len(byPath["/stripe"]) != 1 || len(byPath["/twilio"]) != 1 {
		t.Fatalf("deliveries: %v", byPath)
	}
	if byPath["/github"][0] != ghBody || byPath["/stripe"][0] != stBody {
		t.Errorf("forwarded bodies: %v", byPath)
	}
	if got := byPath["/twilio"][0]; !jsonEqual([]byte(got), []byte(`{"From":"+15551234567","Body":"hello there"}`)) {
		t.Errorf("twilio form forwarded as %s", got)
	}
}
