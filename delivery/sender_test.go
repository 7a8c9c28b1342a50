package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/hookgate/hookgate/delivery/destination"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{"120", 2 * time.Minute},
		{"-3", 0},
		{"1.5", 0},
		{"soon", 0},
		{"5s", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},            // obsolete form accepted by http.ParseTime
		{now.Add(2 * time.Second).Format(time.ANSIC), 2 * time.Second}, // asctime
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},             // in the past
		{now.Format(http.TimeFormat), 0},
		{"Mon, 32 Foo 2024 99:00:00 GMT", 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidTraceparent(t *testing.T) {
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		in   string
		want bool
	}{
		{ok, true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true}, // not sampled
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true}, // a later version
		{"", false},
		{ok[:54], false},
		{ok + "0", false},
		{strings.ToUpper(ok), false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false}, // zero trace id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false}, // zero parent id
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, // version ff is invalid
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7--1", false},
	}
	for _, tc := range tests {
		if got := validTraceparent(tc.in); got != tc.want {
			t.Errorf("validTraceparent(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if ValidTraceparent(tc.in) != validTraceparent(tc.in) {
			t.Errorf("ValidTraceparent disagrees on %q", tc.in)
		}
	}
}

func TestNewTraceparent(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tp := newTraceparent()
		if !validTraceparent(tp) || !strings.HasPrefix(tp, "00-") || !strings.HasSuffix(tp, "-01") {
			t.Fatalf("newTraceparent = %q", tp)
		}
		if seen[tp[3:35]] || seen[tp[36:52]] {
			t.Fatalf("repeated trace or parent id in %q", tp)
		}
		seen[tp[3:35]], seen[tp[36:52]] = true, true
	}
	if n := testing.AllocsPerRun(100, func() { _ = newTraceparent() }); n != 1 {
		t.Errorf("%v allocations a traceparent, want 1", n)
	}
}

// subDest compiles a subscription destination (no guard: never dialled).
func subDest(t *testing.T, s registry.Subscription) *destination.Destination {
	t.Helper()
	if s.ID == "" {
		s.ID = "sub_1"
	}
	if s.Name == "" {
		s.Name = "subscriber"
	}
	if s.Topics == nil {
		s.Topics = []string{"*"}
	}
	if s.URL == "" {
		s.URL = "http://127.0.0.1:9/"
	}
	cs, err := registry.CompileSubscription(s, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cs.Dest
}

func wfDest(t *testing.T, tg registry.Target) *destination.Destination {
	t.Helper()
	if tg.URL == "" {
		tg.URL = "http://127.0.0.1:9/"
	}
	cw, err := registry.CompileWorkflow(registry.Workflow{ID: "wf", Targets: []registry.Target{tg}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cw.Targets[0]
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	return v
}

func TestBody(t *testing.T) {
	when := time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)
	ev := &Event{ID: "evt_1", Topic: "document.deleted", Tenant: "ZZ1", User: "u1", Time: when,
		Data: json.RawMessage("{\"RecordID\": \"2QDTWAW4499\",\n \"n\": 1}")}
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tests := []struct {
		name string
		dest *destination.Destination
		ev   *Event
		want string // JSON, compared decoded
	}{
		{"standard", subDest(t, registry.Subscription{}), ev,
			`{"type":"document.deleted","timestamp":"2024-05-06T07:08:09.0000005Z","data":{"RecordID":"2QDTWAW4499","n":1}}`},
		{"raw", subDest(t, registry.Subscription{Envelope: "raw"}), ev, `{"RecordID":"2QDTWAW4499","n":1}`},
		{"orangelogic", subDest(t, registry.Subscription{Envelope: "orangelogic"}), ev,
			`{"EventId":"evt_1","Topic":"document.deleted","EventDateUtc":"2024-05-06T07:08:09.0000005Z","Data":{"RecordID":"2QDTWAW4499","n":1},"Tenant":"ZZ1","UserId":"u1"}`},
		{"activate", subDest(t, registry.Subscription{Envelope: "activate", ID: "s9", Name: "acme"}), ev,
			`{"type":"document.deleted","webhook":{"id":"s9","organization":"ZZ1","name":"acme"},"payload":{"RecordID":"2QDTWAW4499","n":1}}`},
		{"expression", subDest(t, registry.Subscription{Envelope: `{id: event.id, rid: event.data.RecordID, sub: subscription.name}`}), ev,
			`{"id":"evt_1","rid":"2QDTWAW4499","sub":"subscriber"}`},
		{"orchestry with secret", subDest(t, registry.Subscription{Envelope: "orchestry", Secret: secret}), ev,
			`{"RecordID":"2QDTWAW4499","n":1,"Secret":"` + secret + `"}`},
		{"secret field on an object", subDest(t, registry.Subscription{Envelope: "raw", Secret: secret, SecretField: "Secret"}), ev,
			`{"RecordID":"2QDTWAW4499","n":1,"Secret":"` + secret + `"}`},
		{"secret field on an array", subDest(t, registry.Subscription{Envelope: "raw", Secret: secret, SecretField: "Secret"}),
			&Event{ID: "e", Topic: "t", Data: json.RawMessage(`[1,2]`)}, `[1,2]`},
		{"secret field on a string", subDest(t, registry.Subscription{Envelope: "raw", Secret: secret, SecretField: "Secret"}),
			&Event{ID: "e", Topic: "t", Data: json.RawMessage(`"x"`)}, `"x"`},
		{"secret field without secret", subDest(t, registry.Subscription{Envelope: "raw", Secret: "", SecretField: "Secret"}), ev,
			`{"RecordID":"2QDTWAW4499","n":1}`},
		{"standard with workflow as type", wfDest(t, registry.Target{Envelope: "standard"}),
			&Event{ID: "e", Workflow: "prov", Time: when, Data: json.RawMessage(`{"a":true}`)},
			`{"type":"prov","timestamp":"2024-05-06T07:08:09.0000005Z","data":{"a":true}}`},
		{"no data", subDest(t, registry.Subscription{}), &Event{ID: "e", Topic: "t", Time: when},
			`{"type":"t","timestamp":"2024-05-06T07:08:09.0000005Z","data":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Body(tc.dest, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(decode(t, b))
			want, _ := json.Marshal(decode(t, []byte(tc.want)))
			if string(got) != string(want) {
				t.Errorf("body %s\nwant %s", b, tc.want)
			}
		})
	}

	// A workflow target's raw envelope passes the body byte for byte.
	pass := wfDest(t, registry.Target{})
	for _, data := range []string{"{\"a\" :  1,\n\"b\":[ ]}\n", `not json at all`, `12345678901234567890123`} {
		b, err := Body(pass, &Event{ID: "e", Workflow: "wf", Data: json.RawMessage(data)})
		if err != nil || string(b) != data {
			t.Errorf("PassBody(%q) = %q, %v", data, b, err)
		}
	}
	if b, err := Body(pass, &Event{ID: "e", Workflow: "wf"}); err != nil || b != nil {
		t.Errorf("PassBody(empty) = %q, %v; want no body", b, err)
	}

	// Data that is not JSON cannot go into an envelope.
	if _, err := Body(subDest(t, registry.Subscription{}), &Event{ID: "e", Topic: "t", Data: json.RawMessage(`{`)}); err == nil {
		t.Error("an envelope accepted data that is not JSON")
	}
	if _, err := Body(subDest(t, registry.Subscription{Envelope: "raw"}), &Event{ID: "e", Topic: "t", Data: json.RawMessage(`nope`)}); err == nil {
		t.Error("the raw envelope accepted data that is not JSON")
	}
}

// Numbers are delivered as published: integers beyond 2^53 keep every digit
// through the standard and raw envelopes and the secret field.
func TestBodyKeepsNumbers(t *testing.T) {
	const data = `{"id":12345678901234567891,"f":1.10,"huge":1e400}`
	ev := &Event{ID: "e", Topic: "t", Time: time.Unix(0, 0).UTC(), Data: json.RawMessage(data)}
	for _, d := range []*destination.Destination{
		subDest(t, registry.Subscription{}),
		subDest(t, registry.Subscription{Envelope: "raw"}),
		subDest(t, registry.Subscription{Envelope: "raw", Secret: "s3cr3t", SecretField: "Secret"}),
	} {
		b, err := Body(d, ev)
		if err != nil {
			t.Errorf("%s: %v", d.Envelope, err)
			continue
		}
		for _, want := range []string{"12345678901234567891", "1.10", "1e400"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s envelope (secret field %q): body %s lost %s", d.Envelope, d.SecretField, b, want)
			}
		}
	}
}

func TestSenderAttempt(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("X-Reply", "yes")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	secret, _ := signature.NewSecret()
	dest := subDest(t, registry.Subscription{
		URL: s.URL + "/hooks/in", Secret: secret, SecretHeader: "X-Orchestry-Secret",
		Headers: map[string]string{"X-Custom": "1", "Authorization": "Bearer t", "Content-Type": "text/plain"},
	})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev := &Event{ID: "evt_abc", Topic: "user.created", Time: time.Now().UTC(), Data: json.RawMessage(`{"u":1}`), Traceparent: tp}
	snd := &Sender{Client: testGuard().Client()}
	res := snd.Attempt(context.Background(), dest, ev)
	if res.Err != nil || res.StatusCode != http.StatusAccepted || !res.Success() {
		t.Fatalf("result %+v", res)
	}
	if string(res.Body) != `{"ok":true}` || res.Header.Get("X-Reply") != "yes" || res.Duration <= 0 || res.RetryAfter != 0 {
		t.Errorf("result %+v", res)
	}
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/hooks/in" {
		t.Errorf("%s %s", r.Method, r.Path)
	}
	want, _ := Body(dest, ev)
	if string(r.Body) != string(want) {
		t.Errorf("body %s, want %s", r.Body, want)
	}
	for h, v := range map[string]string{
		"Content-Type":       "application/json", // not overridable by custom headers
		"User-Agent":         "hookgate/" + Version,
		"Traceparent":        tp,
		"X-Custom":           "1",
		"Authorization":      "Bearer t",
		"X-Orchestry-Secret": secret,
		"Webhook-Id":         "evt_abc",
	} {
		if got := r.Header.Get(h); got != v {
			t.Errorf("header %s = %q, want %q", h, got, v)
		}
	}
	if ts := r.Header.Get("Webhook-Timestamp"); ts == "" {
		t.Error("no webhook-timestamp")
	}
	if err := signature.VerifyStandard(dest.Keys, r.Header, r.Body, 0, time.Now()); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	other, _ := signature.NewSecret()
	otherKey, _ := signature.ParseSecret(other)
	if err := signature.VerifyStandard([][]byte{otherKey}, r.Header, r.Body, 0, time.Now()); err == nil {
		t.Error("signature verifies under another key")
	}
}

func TestSenderHeaders(t *testing.T) {
	s := newSink(t, nil)
	snd := &Sender{Client: testGuard().Client()}
	fixed := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

	// Rotation: two signatures, each verifying with its own key; the
	// timestamp comes from Sender.Now.
	oldSecret, _ := signature.NewSecret()
	newSecret, _ := signature.NewSecret()
	cs, err := registry.CompileSubscription(registry.Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: s.URL, Secret: newSecret}, oldSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd.Now = func() time.Time { return fixed }
	ev := &Event{ID: "evt_rot", Topic: "t", Data: json.RawMessage(`{}`), Traceparent: "garbage"}
	if res := snd.Attempt(context.Background(), cs.Dest, ev); !res.Success() {
		t.Fatalf("%+v", res)
	}
	r := s.requests()[0]
	if r.Header.Get("Webhook-Timestamp") != "1714979289" {
		t.Errorf("timestamp %q, want Sender.Now", r.Header.Get("Webhook-Timestamp"))
	}
	if sigs := strings.Fields(r.Header.Get("Webhook-Signature")); len(sigs) != 2 {
		t.Errorf("signatures %q, want two during rotation", sigs)
	}
	for _, sec := range []string{oldSecret, newSecret} {
		k, _ := signature.ParseSecret(sec)
		if err := signature.VerifyStandard([][]byte{k}, r.Header, r.Body, 0, fixed); err != nil {
			t.Errorf("a rotation key does not verify: %v", err)
		}
	}
	// An invalid traceparent is replaced by a new valid one.
	if tp := r.Header.Get("Traceparent"); !validTraceparent(tp) {
		t.Errorf("traceparent %q", tp)
	}

	// Unsigned: id and timestamp, no signature; no traceparent: a new one.
	snd.Now = nil
	ev = &Event{ID: "evt_plain", Topic: "t", Data: json.RawMessage(`{}`)}
	if res := snd.Attempt(context.Background(), subDest(t, registry.Subscription{URL: s.URL}), ev); !res.Success() {
		t.Fatalf("%+v", res)
	}
	r = s.requests()[1]
	if _, ok := r.Header["Webhook-Signature"]; ok {
		t.Error("an unsigned delivery carries a signature header")
	}
	if r.Header.Get("Webhook-Id") != "evt_plain" || r.Header.Get("Webhook-Timestamp") == "" || !validTraceparent(r.Header.Get("Traceparent")) {
		t.Errorf("headers %v", r.Header)
	}

	// A workflow target: its method, the body as received.
	dest := wfDest(t, registry.Target{URL: s.URL + "/x", Method: "put"})
	if res := snd.Attempt(context.Background(), dest, &Event{ID: "e", Workflow: "wf", Data: json.RawMessage(" [1] ")}); !res.Success() {
		t.Fatalf("%+v", res)
	}
	r = s.requests()[2]
	if r.Method != http.MethodPut || string(r.Body) != " [1] " {
		t.Errorf("%s %q", r.Method, r.Body)
	}
}

func TestSenderResponseCap(t *testing.T) {
	big := strings.Repeat("x", 10<<10)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(big))
	})
	snd := &Sender{Client: testGuard().Client()}
	res := snd.Attempt(context.Background(), subDest(t, registry.Subscription{URL: s.URL}), &Event{ID: "e", Topic: "t"})
	if res.Err != nil || res.StatusCode != 500 || res.Success() {
		t.Fatalf("%+v", res.Err)
	}
	if len(res.Body) != 4096 || string(res.Body) != big[:4096] {
		t.Errorf("kept %d bytes of the response, want 4096", len(res.Body))
	}
}

func TestSenderTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) { block(r, release, 5*time.Second) })
	dest := subDest(t, registry.Subscription{URL: s.URL, Timeout: registry.Duration(150 * time.Millisecond)})
	snd := &Sender{Client: testGuard().Client()}
	start := time.Now()
	res := snd.Attempt(context.Background(), dest, &Event{ID: "e", Topic: "t"})
	took := time.Since(start)
	if res.Err == nil || !errors.Is(res.Err, context.DeadlineExceeded) || res.Success() {
		t.Errorf("err = %v, want a deadline error", res.Err)
	}
	if took < 150*time.Millisecond || took > 2*time.Second || res.Duration < 150*time.Millisecond {
		t.Errorf("attempt took %v (duration %v), want about the 150ms timeout", took, res.Duration)
	}
}

func TestSenderRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	values := []string{"7", now.Add(90 * time.Second).Format(http.TimeFormat), "garbage"}
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", values[n-1])
		w.WriteHeader(http.StatusTooManyRequests)
	})
	snd := &Sender{Client: testGuard().Client(), Now: func() time.Time { return now }}
	dest := subDest(t, registry.Subscription{URL: s.URL})
	for _, want := range []time.Duration{7 * time.Second, 90 * time.Second, 0} {
		res := snd.Attempt(context.Background(), dest, &Event{ID: "e", Topic: "t"})
		if res.StatusCode != 429 || res.RetryAfter != want {
			t.Errorf("status %d, RetryAfter %v, want %v", res.StatusCode, res.RetryAfter, want)
		}
	}
}

func TestSenderErrors(t *testing.T) {
	// The guard refuses loopback by default: decided at dial time, the
	// connection is never made.
	s := newSink(t, nil)
	snd := &Sender{Client: netguard.New(nil).Client()}
	res := snd.Attempt(context.Background(), subDest(t, registry.Subscription{URL: s.URL}), &Event{ID: "e", Topic: "t"})
	if !errors.Is(res.Err, netguard.ErrBlocked) || s.count() != 0 {
		t.Errorf("err = %v, %d requests", res.Err, s.count())
	}
	// An envelope that cannot be built fails before any request.
	snd = &Sender{Client: testGuard().Client()}
	res = snd.Attempt(context.Background(), subDest(t, registry.Subscription{URL: s.URL}), &Event{ID: "e", Topic: "t", Data: json.RawMessage(`{`)})
	if res.Err == nil || s.count() != 0 {
		t.Errorf("err = %v, %d requests", res.Err, s.count())
	}
	// Nothing listening.
	dead := newSink(t, nil)
	dead.srv.Close()
	res = snd.Attempt(context.Background(), subDest(t, registry.Subscription{URL: dead.URL}), &Event{ID: "e", Topic: "t"})
	if res.Err == nil || res.StatusCode != 0 || res.Success() {
		t.Errorf("closed port: %+v", res)
	}
}

func TestSignHMAC(t *testing.T) {
	key, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	// GitHub's documented example (X-Hub-Signature-256).
	const github = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	tests := []struct {
		name string
		sig  destination.HMAC
		want string
	}{
		{"hex, no prefix (x-ol-signature)", destination.HMAC{Header: "x-ol-signature"}, github},
		{"hex with sha256= (GitHub)", destination.HMAC{Header: "X-Hub-Signature-256", Prefix: "sha256="}, "sha256=" + github},
		{"base64", destination.HMAC{Header: "X-Signature", Base64: true}, "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SignHMAC(&tc.sig, key, body); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSenderHMACScheme(t *testing.T) {
	var got http.Header
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		gotBody, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	cs, err := registry.CompileSubscription(registry.Subscription{
		ID: "s", Name: "s", Topics: []string{"*"}, URL: srv.URL, Secret: "It's a Secret to Everybody",
		Signature: &registry.Signature{Scheme: "hmac", Header: "X-Hub-Signature-256", Prefix: "sha256="},
	}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{Client: http.DefaultClient}
	res := s.Attempt(context.Background(), cs.Dest, &Event{ID: "evt_1", Topic: "a", Data: []byte(`{"a":1}`)})
	if !res.Success() {
		t.Fatalf("attempt: %+v", res)
	}
	// Verified as a GitHub receiver would, by the ingress's own github preset.
	gh, err := signature.New("github", []string{"It's a Secret to Everybody"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("X-Hub-Signature-256", got.Get("X-Hub-Signature-256"))
	if err := gh.Verify(req, gotBody, time.Now()); err != nil {
		t.Errorf("X-Hub-Signature-256 %q: %v", got.Get("X-Hub-Signature-256"), err)
	}
	if got.Get("Webhook-Signature") != "" || got.Get("Webhook-Id") != "evt_1" {
		t.Errorf("standard headers: %v", got)
	}
}

// TestSenderRecordsRequestHeaders: an attempt's result carries the headers it
// sent for the delivery log, with every value that could authenticate or be
// replayed redacted, whatever the signing scheme.
func TestSenderRecordsRequestHeaders(t *testing.T) {
	s := newSink(t, nil)
	snd := &Sender{Client: testGuard().Client()}
	whsec, _ := signature.NewSecret()
	tests := []struct {
		name     string
		sub      registry.Subscription
		redacted []string // header names whose value must be Redacted
		kept     map[string]string
	}{
		{"standard signature", registry.Subscription{URL: s.URL, Secret: whsec, Headers: map[string]string{"X-Tenant": "ZZ1"}},
			[]string{"Webhook-Signature"}, map[string]string{"X-Tenant": "ZZ1", "Webhook-Id": "evt_h", "Content-Type": "application/json"}},
		{"hmac header", registry.Subscription{URL: s.URL, Secret: "ol-secret", Signature: &registry.Signature{Scheme: "hmac", Header: "x-ol-signature"}},
			[]string{"X-Ol-Signature"}, map[string]string{"Webhook-Id": "evt_h"}},
		{"secret in clear and a credential header", registry.Subscription{URL: s.URL, Secret: "s3cr3t", SecretHeader: "X-Orchestry-Secret", Headers: map[string]string{"Authorization": "Bearer abc", "X-Api-Key": "k1"}},
			[]string{"X-Orchestry-Secret", "Authorization", "X-Api-Key"}, map[string]string{"Webhook-Id": "evt_h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.sub.ID, tc.sub.Name, tc.sub.Topics = "s", "s", []string{"*"}
			cs, err := registry.CompileSubscription(tc.sub, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			res := snd.Attempt(context.Background(), cs.Dest, &Event{ID: "evt_h", Topic: "t", Data: json.RawMessage(`{}`)})
			if !res.Success() {
				t.Fatalf("%+v", res)
			}
			sent := s.requests()[len(s.requests())-1].Header
			for _, name := range tc.redacted {
				if sent.Get(name) == "" {
					t.Fatalf("%s was not sent: %v", name, sent)
				}
				if got := res.RequestHeader[http.CanonicalHeaderKey(name)]; got != registry.Redacted {
					t.Errorf("%s recorded as %q, want %q", name, got, registry.Redacted)
				}
			}
			for k, v := range tc.kept {
				if got := res.RequestHeader[k]; got != v {
					t.Errorf("%s recorded as %q, want %q", k, got, v)
				}
			}
			for k, v := range res.RequestHeader {
				for _, secret := range []string{whsec, "ol-secret", "s3cr3t", "Bearer abc", "k1"} {
					if v != registry.Redacted && strings.Contains(v, secret) {
						t.Errorf("%s: %q holds a secret", k, v)
					}
				}
			}
		})
	}
}
