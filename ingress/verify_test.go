package ingress

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

func hmacHex(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// TestProviderPresets runs signed, unsigned, stale and handshake requests
// through the request path: the signature is checked before the content
// type and the contract, a handshake is answered without being forwarded,
// and a form body meets the contract as an object of strings.
func TestProviderPresets(t *testing.T) {
	e := newEnv(t)
	now := time.Unix(1_700_000_000, 0)
	e.in.Now = func() time.Time { return now }
	ts := strconv.FormatInt(now.Unix(), 10)
	verify := func(p string, secrets ...string) *registry.Verify {
		return &registry.Verify{Provider: p, Secrets: secrets}
	}
	e.declare(t,
		registry.Workflow{ID: "stripe", Sample: []byte(`{"type":"x"}`), Verify: verify("stripe", "whsec_s"),
			Targets: []registry.Target{{URL: "http://127.0.0.1:1/sink"}}},
		registry.Workflow{ID: "slack", Sample: []byte(`{"type":"x"}`), Verify: verify("slack", "slack-secret")},
		registry.Workflow{ID: "zoom", Sample: []byte(`{"event":"x"}`), Verify: verify("zoom", "old-token", "zoom-token")},
		registry.Workflow{ID: "paddle", Sample: []byte(`{}`), Verify: &registry.Verify{Provider: "paddle", Secrets: []string{"pdl"}, Tolerance: registry.Duration(time.Minute)}},
		registry.Workflow{ID: "twilio", Sample: []byte(`{"From":"","Body":""}`), Strict: true, Verify: verify("twilio", "auth-token"),
			Filter: `body.Body != "STOP"`},
	)
	stripeBody := `{"type":"charge.succeeded"}`
	stripeSig := "t=" + ts + ",v1=" + hmacHex("whsec_s", ts+"."+stripeBody)
	slackSigned := func(body string, at time.Time) *http.Request {
		t := strconv.FormatInt(at.Unix(), 10)
		return post("/", "application/json", body, signature.HeaderSlackTimestamp, t,
			signature.HeaderSlackSignature, "v0="+hmacHex("slack-secret", "v0:"+t+":"+body))
	}
	challenge := `{"token":"x","challenge":"abc123","type":"url_verification"}`
	zoomBody := `{"event":"endpoint.url_validation","payload":{"plainToken":"ptok"}}`
	zoomReq := post("/", "application/json", zoomBody, "x-zm-request-timestamp", ts, "x-zm-signature", "v0="+hmacHex("zoom-token", "v0:"+ts+":"+zoomBody))
	paddleBody := `{"event_type":"x"}`
	old := strconv.FormatInt(now.Add(-2*time.Minute).Unix(), 10)
	paddleStale := post("/", "application/json", paddleBody, signature.HeaderPaddle, "ts="+old+";h1="+hmacHex("pdl", old+":"+paddleBody))

	twilioForm := func(body string) *http.Request {
		// Twilio signs the URL followed by the sorted parameters.
		vals := map[string]string{}
		for kv := range strings.SplitSeq(body, "&") {
			k, v, _ := strings.Cut(kv, "=")
			vals[k] = strings.ReplaceAll(v, "%2B", "+")
		}
		m := hmac.New(sha1.New, []byte("auth-token"))
		m.Write([]byte("https://gw.example/hooks/twilio/k"))
		for _, k := range []string{"Body", "From"} {
			m.Write([]byte(k + vals[k]))
		}
		r := post("https://gw.example/hooks/twilio/k", "application/x-www-form-urlencoded", body,
			signature.HeaderTwilio, base64.StdEncoding.EncodeToString(m.Sum(nil)))
		return r
	}

	tests := []struct {
		name    string
		id      string
		req     *http.Request
		status  int
		outcome string
		answer  string // the JSON answer, when checked
	}{
		{"stripe signed", "stripe", post("/", "application/json", stripeBody, signature.HeaderStripe, stripeSig), 202, OutcomeAccepted, ""},
		{"stripe unsigned", "stripe", post("/", "application/json", stripeBody), 401, OutcomeSignature, `{"error":"signature: missing header Stripe-Signature"}`},
		{"stripe tampered", "stripe", post("/", "application/json", `{"type":"charge.refunded"}`, signature.HeaderStripe, stripeSig), 401, OutcomeSignature, `{"error":"signature: no matching signature"}`},
		{"signature before content type", "stripe", post("/", "text/plain", "x"), 401, OutcomeSignature, ""},
		{"slack event passes", "slack", slackSigned(`{"type":"event_callback"}`, now), 0, OutcomePassed, ""},
		{"slack url_verification answered", "slack", slackSigned(challenge, now), 200, OutcomeHandshake, `{"challenge":"abc123"}`},
		{"slack url_verification unsigned", "slack", post("/", "application/json", challenge), 401, OutcomeSignature, ""},
		{"slack stale", "slack", slackSigned(`{"type":"event_callback"}`, now.Add(-6*time.Minute)), 401, OutcomeStale, ""},
		{"zoom url_validation answered with the signing secret", "zoom", zoomReq, 200, OutcomeHandshake,
			`{"plainToken":"ptok","encryptedToken":"` + hmacHex("zoom-token", "ptok") + `"}`},
		{"paddle outside its 1m tolerance", "paddle", paddleStale, 401, OutcomeStale, ""},
		{"twilio form meets the contract", "twilio", twilioForm("From=%2B15551234567&Body=hello"), 0, OutcomePassed, ""},
		{"twilio form filtered", "twilio", twilioForm("From=%2B15551234567&Body=STOP"), 202, OutcomeFiltered, ""},
		{"twilio form tampered", "twilio", func() *http.Request {
			r := twilioForm("From=%2B15551234567&Body=hello")
			r2 := post("https://gw.example/hooks/twilio/k", "application/x-www-form-urlencoded", "From=%2B15551234567&Body=bye")
			r2.Header = r.Header
			return r2
		}(), 401, OutcomeSignature, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.in.Handle(tc.req, tc.id, testKey)
			if res.Status != tc.status || res.Outcome != tc.outcome {
				t.Fatalf("status %d outcome %q, want %d %q (response %+v)", res.Status, res.Outcome, tc.status, tc.outcome, res.Response)
			}
			if tc.answer != "" {
				if b, _ := json.Marshal(res.Response); string(b) != tc.answer {
					t.Errorf("answer %s, want %s", b, tc.answer)
				}
			}
			if tc.outcome == OutcomeStale {
				if msg := res.Response.(ErrorBody).Error; !strings.HasPrefix(msg, "signature timestamp outside the tolerance") {
					t.Errorf("stale answer %q", msg)
				}
			}
		})
	}
}

func TestDecodeForm(t *testing.T) {
	got, err := DecodeForm([]byte("a=1&b=x+y&a=2&c="))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if string(b) != `{"a":"1","b":"x y","c":""}` {
		t.Errorf("decodeForm = %s", b)
	}
	if _, err := DecodeForm([]byte("a=%zz")); err == nil {
		t.Error("a bad escape decoded")
	}
	for ct, want := range map[string]bool{
		"application/x-www-form-urlencoded":                true,
		"application/x-www-form-urlencoded; charset=utf-8": true,
		"multipart/form-data; boundary=x":                  false,
		"":                                                 false,
	} {
		if IsForm(ct) != want {
			t.Errorf("IsForm(%q) != %v", ct, want)
		}
	}
}

// TestMediaTypeFastPath holds the values mediaType knows without parsing
// to what mime.ParseMediaType says of them.
func TestMediaTypeFastPath(t *testing.T) {
	for _, ct := range []string{
		"application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
		"application/json;charset=utf-8", "application/json;charset=UTF-8",
		"application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
		"application/x-www-form-urlencoded; charset=UTF-8", "application/x-www-form-urlencoded;charset=utf-8",
	} {
		j, f := mediaType(ct)
		wj, wf := parseMediaType(ct)
		if j != wj || f != wf || j == f {
			t.Errorf("mediaType(%q) = %v, %v; parsed: %v, %v", ct, j, f, wj, wf)
		}
	}
	for ct, want := range map[string][2]bool{
		"":                            {false, false},
		"APPLICATION/JSON":            {true, false},
		"application/vnd.github+json": {true, false},
		"application/json; charset":   {false, false},
		"text/plain":                  {false, false},
		"application/x-www-form-urlencoded ; charset=latin1": {false, true},
	} {
		if j, f := mediaType(ct); j != want[0] || f != want[1] {
			t.Errorf("mediaType(%q) = %v, %v, want %v", ct, j, f, want)
		}
	}
}
