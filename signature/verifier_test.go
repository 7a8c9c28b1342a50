package signature

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The vectors of these tests are computed here, from each provider's
// documented algorithm, with crypto/hmac directly: a code path independent
// of the verifiers under test.

func macOf(h func() hash.Hash, key string, parts ...string) []byte {
	m := hmac.New(h, []byte(key))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func hexMAC(key string, parts ...string) string {
	return hex.EncodeToString(macOf(sha256.New, key, parts...))
}

func b64MAC(key string, parts ...string) string {
	return base64.StdEncoding.EncodeToString(macOf(sha256.New, key, parts...))
}

// req builds a POST request to target with body and header pairs.
func req(target, contentType, body string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

type verifyCase struct {
	name    string
	secrets []string
	r       *http.Request
	body    string // verified body; default: the request's
	now     time.Time
	wantErr error
}

func runVerifyCases(t *testing.T, provider string, tolerance time.Duration, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(provider, tc.secrets, tolerance)
			if err != nil {
				t.Fatal(err)
			}
			body := tc.body
			if body == "" && tc.r.Body != nil {
				b := new(strings.Builder)
				buf := make([]byte, 4096)
				for {
					n, err := tc.r.Body.Read(buf)
					b.Write(buf[:n])
					if err != nil {
						break
					}
				}
				body = b.String()
			}
			err = v.Verify(tc.r, []byte(body), tc.now)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestGitHub(t *testing.T) {
	// GitHub's documented test vector (docs: "Validating webhook deliveries").
	const secret = "It's a Secret to Everybody"
	const doc = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	body := `{"action":"opened"}`
	sig := "sha256=" + hexMAC(secret, body)
	runVerifyCases(t, ProviderGitHub, 0, []verifyCase{
		{name: "documented example", secrets: []string{secret}, r: req("/", "", "Hello, World!", HeaderGitHub, doc)},
		{name: "valid", secrets: []string{secret}, r: req("/", "application/json", body, HeaderGitHub, sig)},
		{name: "upper-case hex", secrets: []string{secret}, r: req("/", "application/json", body, HeaderGitHub, "sha256="+strings.ToUpper(sig[7:]))},
		{name: "second secret (rotation)", secrets: []string{"new", secret}, r: req("/", "application/json", body, HeaderGitHub, sig)},
		{name: "tampered body", secrets: []string{secret}, r: req("/", "application/json", body, HeaderGitHub, sig), body: `{"action":"closed"}`, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"other"}, r: req("/", "application/json", body, HeaderGitHub, sig), wantErr: ErrNoMatchingSignature},
		{name: "missing header", secrets: []string{secret}, r: req("/", "application/json", body), wantErr: ErrMissingHeader},
		{name: "sha1 header value", secrets: []string{secret}, r: req("/", "application/json", body, HeaderGitHub, "sha1="+sig[7:]), wantErr: ErrMalformedSignature},
		{name: "no prefix", secrets: []string{secret}, r: req("/", "application/json", body, HeaderGitHub, sig[7:]), wantErr: ErrMalformedSignature},
		{name: "truncated", secrets: []string{secret}, r: req("/", "application/json", body, HeaderGitHub, sig[:70]), wantErr: ErrMalformedSignature},
	})
}

func TestGitLab(t *testing.T) {
	const secret = "gl-token-123"
	runVerifyCases(t, ProviderGitLab, 0, []verifyCase{
		{name: "valid", secrets: []string{secret}, r: req("/", "application/json", `{}`, HeaderGitLab, secret)},
		{name: "second secret", secrets: []string{"new-token", secret}, r: req("/", "application/json", `{}`, HeaderGitLab, secret)},
		{name: "wrong token", secrets: []string{secret}, r: req("/", "application/json", `{}`, HeaderGitLab, "gl-token-124"), wantErr: ErrNoMatchingSignature},
		{name: "prefix of the token", secrets: []string{secret}, r: req("/", "application/json", `{}`, HeaderGitLab, "gl-token"), wantErr: ErrNoMatchingSignature},
		{name: "missing header", secrets: []string{secret}, r: req("/", "application/json", `{}`), wantErr: ErrMissingHeader},
	})
}

func TestStripe(t *testing.T) {
	const secret = "whsec_test_secret" // Stripe keys the HMAC with the whole string
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"id":"evt_1","object":"event"}`
	v1 := hexMAC(secret, ts, ".", body)
	header := "t=" + ts + ",v1=" + v1 + ",v0=" + strings.Repeat("0", 64)
	runVerifyCases(t, ProviderStripe, 0, []verifyCase{
		{name: "valid", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, header), now: now},
		{name: "any v1 may match", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, "t="+ts+",v1="+strings.Repeat("ab", 32)+",v1="+v1), now: now},
		{name: "second secret", secrets: []string{"whsec_new", secret}, r: req("/", "application/json", body, HeaderStripe, header), now: now},
		{name: "within the tolerance", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, header), now: now.Add(5 * time.Minute)},
		{name: "stale", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, header), now: now.Add(5*time.Minute + time.Second), wantErr: ErrOutsideTolerance},
		{name: "from the future", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, header), now: now.Add(-6 * time.Minute), wantErr: ErrTimestampTooNew},
		{name: "tampered body", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, header), body: `{"id":"evt_2"}`, now: now, wantErr: ErrNoMatchingSignature},
		{name: "tampered timestamp", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, "t="+strconv.FormatInt(now.Unix()+1, 10)+",v1="+v1), now: now, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"whsec_other"}, r: req("/", "application/json", body, HeaderStripe, header), now: now, wantErr: ErrNoMatchingSignature},
		{name: "only v0", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, "t="+ts+",v0="+v1), now: now, wantErr: ErrMalformedSignature},
		{name: "no timestamp", secrets: []string{secret}, r: req("/", "application/json", body, HeaderStripe, "v1="+v1), now: now, wantErr: ErrMalformedSignature},
		{name: "missing header", secrets: []string{secret}, r: req("/", "application/json", body), now: now, wantErr: ErrMissingHeader},
	})
}

func TestShopify(t *testing.T) {
	const secret = "shpss_secret"
	body := `{"id":820982911946154508}`
	sig := b64MAC(secret, body)
	runVerifyCases(t, ProviderShopify, 0, []verifyCase{
		{name: "valid", secrets: []string{secret}, r: req("/", "application/json", body, HeaderShopify, sig)},
		{name: "second secret", secrets: []string{"x", secret}, r: req("/", "application/json", body, HeaderShopify, sig)},
		{name: "tampered body", secrets: []string{secret}, r: req("/", "application/json", body, HeaderShopify, sig), body: `{"id":1}`, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"other"}, r: req("/", "application/json", body, HeaderShopify, sig), wantErr: ErrNoMatchingSignature},
		{name: "hex instead of base64", secrets: []string{secret}, r: req("/", "application/json", body, HeaderShopify, hexMAC(secret, body)), wantErr: ErrMalformedSignature},
		{name: "missing header", secrets: []string{secret}, r: req("/", "application/json", body), wantErr: ErrMissingHeader},
	})
}

func TestSlack(t *testing.T) {
	// Slack's documented example ("Verifying requests from Slack").
	const docSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	const docTS = "1531420618"
	const docBody = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	const docSig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	docNow := time.Unix(1531420618, 0).Add(time.Minute)

	const secret = "slack-signing-secret"
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"type":"event_callback","event":{"type":"app_mention"}}`
	sig := "v0=" + hexMAC(secret, "v0:", ts, ":", body)
	signed := func(h ...string) *http.Request {
		return req("/", "application/json", body, append([]string{HeaderSlackTimestamp, ts}, h...)...)
	}
	runVerifyCases(t, ProviderSlack, 0, []verifyCase{
		{name: "documented example", secrets: []string{docSecret}, r: req("/", "application/x-www-form-urlencoded", docBody, HeaderSlackTimestamp, docTS, HeaderSlackSignature, docSig), now: docNow},
		{name: "valid", secrets: []string{secret}, r: signed(HeaderSlackSignature, sig), now: now},
		{name: "second secret", secrets: []string{"new", secret}, r: signed(HeaderSlackSignature, sig), now: now},
		{name: "stale", secrets: []string{secret}, r: signed(HeaderSlackSignature, sig), now: now.Add(6 * time.Minute), wantErr: ErrOutsideTolerance},
		{name: "tampered body", secrets: []string{secret}, r: signed(HeaderSlackSignature, sig), body: `{"type":"x"}`, now: now, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"other"}, r: signed(HeaderSlackSignature, sig), now: now, wantErr: ErrNoMatchingSignature},
		{name: "missing signature", secrets: []string{secret}, r: signed(), now: now, wantErr: ErrMissingHeader},
		{name: "missing timestamp", secrets: []string{secret}, r: req("/", "application/json", body, HeaderSlackSignature, sig), now: now, wantErr: ErrMissingHeader},
		{name: "bad timestamp", secrets: []string{secret}, r: req("/", "application/json", body, HeaderSlackSignature, sig, HeaderSlackTimestamp, "yesterday"), now: now, wantErr: ErrInvalidTimestamp},
		{name: "no v0 prefix", secrets: []string{secret}, r: signed(HeaderSlackSignature, sig[3:]), now: now, wantErr: ErrMalformedSignature},
	})
}

func TestZoom(t *testing.T) {
	const secret = "zoom-secret-token"
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"event":"meeting.started","payload":{}}`
	sig := "v0=" + hexMAC(secret, "v0:", ts, ":", body)
	signed := func(h ...string) *http.Request {
		return req("/", "application/json", body, append([]string{"x-zm-request-timestamp", ts}, h...)...)
	}
	runVerifyCases(t, ProviderZoom, 0, []verifyCase{
		{name: "valid", secrets: []string{secret}, r: signed("x-zm-signature", sig), now: now},
		{name: "second secret", secrets: []string{"new", secret}, r: signed("x-zm-signature", sig), now: now},
		{name: "stale", secrets: []string{secret}, r: signed("x-zm-signature", sig), now: now.Add(10 * time.Minute), wantErr: ErrOutsideTolerance},
		{name: "tampered body", secrets: []string{secret}, r: signed("x-zm-signature", sig), body: `{"event":"meeting.ended"}`, now: now, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"other"}, r: signed("x-zm-signature", sig), now: now, wantErr: ErrNoMatchingSignature},
		{name: "missing signature", secrets: []string{secret}, r: signed(), now: now, wantErr: ErrMissingHeader},
	})
}

func TestPaddle(t *testing.T) {
	const secret = "pdl_ntfset_01_secret"
	now := time.Unix(1_671_552_777, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"event_id":"evt_01","event_type":"subscription.created"}`
	h1 := hexMAC(secret, ts, ":", body)
	header := "ts=" + ts + ";h1=" + h1
	runVerifyCases(t, ProviderPaddle, 0, []verifyCase{
		{name: "valid", secrets: []string{secret}, r: req("/", "application/json", body, HeaderPaddle, header), now: now},
		{name: "any h1 may match (rotation)", secrets: []string{secret}, r: req("/", "application/json", body, HeaderPaddle, "ts="+ts+";h1="+strings.Repeat("cd", 32)+";h1="+h1), now: now},
		{name: "second secret", secrets: []string{"pdl_new", secret}, r: req("/", "application/json", body, HeaderPaddle, header), now: now},
		{name: "stale", secrets: []string{secret}, r: req("/", "application/json", body, HeaderPaddle, header), now: now.Add(time.Hour), wantErr: ErrOutsideTolerance},
		{name: "tampered body", secrets: []string{secret}, r: req("/", "application/json", body, HeaderPaddle, header), body: `{"event_id":"evt_02"}`, now: now, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"other"}, r: req("/", "application/json", body, HeaderPaddle, header), now: now, wantErr: ErrNoMatchingSignature},
		{name: "comma separated", secrets: []string{secret}, r: req("/", "application/json", body, HeaderPaddle, "ts="+ts+",h1="+h1), now: now, wantErr: ErrMalformedSignature},
		{name: "missing header", secrets: []string{secret}, r: req("/", "application/json", body), now: now, wantErr: ErrMissingHeader},
	})
}

func TestStandardPreset(t *testing.T) {
	// The Standard Webhooks specification's example.
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232314}`
	const sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	now := time.Unix(1614265330, 0)
	signed := func(s string) *http.Request {
		return req("/", "application/json", body, "webhook-id", id, "webhook-timestamp", ts, "webhook-signature", s)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + body))
	computed := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	runVerifyCases(t, ProviderStandard, 0, []verifyCase{
		{name: "specification example", secrets: []string{secret}, r: signed(sig), now: now},
		{name: "computed here", secrets: []string{secret}, r: signed(computed), now: now},
		{name: "several signatures, second secret", secrets: []string{"whsec_YWJjZA==", secret}, r: signed("v1,AAAA " + sig), now: now},
		{name: "stale", secrets: []string{secret}, r: signed(sig), now: now.Add(6 * time.Minute), wantErr: ErrOutsideTolerance},
		{name: "tampered body", secrets: []string{secret}, r: signed(sig), body: `{"test": 1}`, now: now, wantErr: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{"whsec_YWJjZA=="}, r: signed(sig), now: now, wantErr: ErrNoMatchingSignature},
		{name: "missing header", secrets: []string{secret}, r: req("/", "application/json", body), now: now, wantErr: ErrMissingHeader},
	})
}

func twilioSig(token, fullURL string, params ...string) string {
	// Twilio's documented algorithm: the URL, then each POST parameter
	// name and value, sorted by name (params come here already sorted).
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(fullURL))
	for _, p := range params {
		m.Write([]byte(p))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestTwilio(t *testing.T) {
	const token = "12345"
	form := "To=%2B18005551212&From=%2B14158675310&CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234"
	// Sorted by name: CallSid, Caller, Digits, From, To.
	params := []string{"CallSid", "CA1234567890ABCDE", "Caller", "+14158675310", "Digits", "1234", "From", "+14158675310", "To", "+18005551212"}
	const target = "https://example.com/hooks/twilio/k?foo=1&bar=2"
	sig := twilioSig(token, target, params...)
	// httptest.NewRequest sets r.TLS for an https target.
	tlsReq := req
	const formType = "application/x-www-form-urlencoded"

	jsonBody := `{"status":"delivered"}`
	sum := sha256.Sum256([]byte(jsonBody))
	jsonURL := "https://example.com/hooks/twilio/k?bodySHA256=" + hex.EncodeToString(sum[:])
	jsonSig := twilioSig(token, jsonURL)

	behindProxy := req("http://example.com/hooks/twilio/k?foo=1&bar=2", formType, form, HeaderTwilio, sig)
	behindProxy = behindProxy.WithContext(WithScheme(behindProxy.Context(), "https"))

	// The example of Twilio's documentation and helper libraries' tests.
	docForm := "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212"
	docReq := tlsReq("https://mycompany.com/myapp.php?foo=1&bar=2", formType, docForm, HeaderTwilio, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")

	runVerifyCases(t, ProviderTwilio, 0, []verifyCase{
		{name: "documented example", secrets: []string{token}, r: docReq},
		{name: "form body", secrets: []string{token}, r: tlsReq(target, formType, form, HeaderTwilio, sig)},
		{name: "form body, charset", secrets: []string{token}, r: tlsReq(target, formType+"; charset=utf-8", form, HeaderTwilio, sig)},
		{name: "second secret", secrets: []string{"new", token}, r: tlsReq(target, formType, form, HeaderTwilio, sig)},
		{name: "signed with the default port", secrets: []string{token}, r: tlsReq(target, formType, form, HeaderTwilio, twilioSig(token, "https://example.com:443/hooks/twilio/k?foo=1&bar=2", params...))},
		{name: "scheme from a trusted proxy", secrets: []string{token}, r: behindProxy},
		{name: "plain http seen, https signed", secrets: []string{token}, r: req(strings.Replace(target, "https", "http", 1), formType, form, HeaderTwilio, sig), wantErr: ErrNoMatchingSignature},
		{name: "JSON body with bodySHA256", secrets: []string{token}, r: tlsReq(jsonURL, "application/json", jsonBody, HeaderTwilio, jsonSig)},
		{name: "JSON body tampered", secrets: []string{token}, r: tlsReq(jsonURL, "application/json", jsonBody, HeaderTwilio, jsonSig), body: `{"status":"failed"}`, wantErr: ErrNoMatchingSignature},
		{name: "tampered parameter", secrets: []string{token}, r: tlsReq(target, formType, strings.Replace(form, "1234", "9999", 1), HeaderTwilio, sig), wantErr: ErrNoMatchingSignature},
		{name: "other query", secrets: []string{token}, r: tlsReq(target+"&x=1", formType, form, HeaderTwilio, sig), wantErr: ErrNoMatchingSignature},
		{name: "wrong token", secrets: []string{"54321"}, r: tlsReq(target, formType, form, HeaderTwilio, sig), wantErr: ErrNoMatchingSignature},
		{name: "missing header", secrets: []string{token}, r: tlsReq(target, formType, form), wantErr: ErrMissingHeader},
		{name: "not base64", secrets: []string{token}, r: tlsReq(target, formType, form, HeaderTwilio, "%%%"), wantErr: ErrMalformedSignature},
	})
}

func TestSortedParams(t *testing.T) {
	// A repeated name contributes each of its values, sorted.
	got := string(sortedParams(map[string][]string{"b": {"2", "1"}, "a": {"z"}, "B": {"0"}}))
	if want := "B0azb1b2"; got != want {
		t.Fatalf("sortedParams = %q, want %q", got, want)
	}
}

func TestHandshakes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)

	slackBody := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	sv, _ := New(ProviderSlack, []string{"s"}, 0)
	r := req("/", "application/json", slackBody, HeaderSlackTimestamp, ts, HeaderSlackSignature, "v0="+hexMAC("s", "v0:", ts, ":", slackBody))
	if err := sv.Verify(r, []byte(slackBody), now); err != nil {
		t.Fatal(err)
	}
	ans, ok := sv.(Handshaker).Handshake(r, []byte(slackBody))
	if !ok || ans != (SlackChallenge{Challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}) {
		t.Fatalf("slack handshake = %v %v", ans, ok)
	}
	if _, ok := sv.(Handshaker).Handshake(r, []byte(`{"type":"event_callback","text":"url_verification"}`)); ok {
		t.Fatal("an event that mentions url_verification was taken for a handshake")
	}

	// Zoom: encryptedToken is the hex HMAC-SHA256 of plainToken under the
	// secret that signed the request (here the second one).
	zoomBody := `{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`
	zv, _ := New(ProviderZoom, []string{"first", "second"}, 0)
	r = req("/", "application/json", zoomBody, "x-zm-request-timestamp", ts, "x-zm-signature", "v0="+hexMAC("second", "v0:", ts, ":", zoomBody))
	if err := zv.Verify(r, []byte(zoomBody), now); err != nil {
		t.Fatal(err)
	}
	ans, ok = zv.(Handshaker).Handshake(r, []byte(zoomBody))
	want := ZoomValidation{PlainToken: "qgg8vlvZRS6UYooatFL8Aw", EncryptedToken: hexMAC("second", "qgg8vlvZRS6UYooatFL8Aw")}
	if !ok || ans != want {
		t.Fatalf("zoom handshake = %v %v, want %v", ans, ok, want)
	}
	if _, ok := zv.(Handshaker).Handshake(r, []byte(`{"event":"meeting.started"}`)); ok {
		t.Fatal("an event was taken for a handshake")
	}
	for _, p := range []string{ProviderGitHub, ProviderStripe, ProviderStandard} {
		v, _ := New(p, []string{"s"}, 0)
		if _, ok := v.(Handshaker); ok {
			t.Errorf("%s has a handshake", p)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		provider  string
		secrets   []string
		tolerance time.Duration
		wantErr   string
	}{
		{"every provider", ProviderGitHub, []string{"s"}, 0, ""},
		{"tolerance on a timestamped provider", ProviderStripe, []string{"s"}, time.Minute, ""},
		{"unknown provider", "bitbucket", []string{"s"}, 0, "unknown provider"},
		{"no secret", ProviderGitHub, nil, 0, "no verification key"},
		{"empty secret", ProviderGitHub, []string{""}, 0, "empty secret"},
		{"too many secrets", ProviderGitHub, []string{"a", "b", "c", "d", "e"}, 0, "over the maximum of 4"},
		{"tolerance without timestamp", ProviderGitHub, []string{"s"}, time.Minute, "carry no timestamp"},
		{"tolerance over the maximum", ProviderSlack, []string{"s"}, 2 * time.Hour, "over the maximum"},
		{"negative tolerance", ProviderSlack, []string{"s"}, -time.Second, "positive"},
		{"bad whsec", ProviderStandard, []string{"whsec_!!"}, 0, "not valid base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.provider, tc.secrets, tc.tolerance)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	for _, p := range Providers {
		if _, err := New(p, []string{"whsec_YWJjZA=="}, 0); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// BenchmarkVerifiers measures one verification of a 1 KiB body per preset
// that hashes the body (one secret).
func BenchmarkVerifiers(b *testing.B) {
	body := benchBody()
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	cases := map[string]*http.Request{
		ProviderGitHub:  req("/", "application/json", "", HeaderGitHub, "sha256="+hexMAC("s", string(body))),
		ProviderStripe:  req("/", "application/json", "", HeaderStripe, "t="+ts+",v1="+hexMAC("s", ts, ".", string(body))),
		ProviderSlack:   req("/", "application/json", "", HeaderSlackTimestamp, ts, HeaderSlackSignature, "v0="+hexMAC("s", "v0:", ts, ":", string(body))),
		ProviderShopify: req("/", "application/json", "", HeaderShopify, b64MAC("s", string(body))),
	}
	for _, p := range []string{ProviderGitHub, ProviderStripe, ProviderSlack, ProviderShopify} {
		v, err := New(p, []string{"s"}, 0)
		if err != nil {
			b.Fatal(err)
		}
		r := cases[p]
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(r, body, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
