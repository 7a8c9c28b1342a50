package registry

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue #8, finding 5: custom headers are checked where they are
// configured, so a bad one cannot make every delivery fail later.
func TestCheckHeader(t *testing.T) {
	tests := []struct {
		name, header, value, want string // want "" = accepted
	}{
		{"plain", "X-Source", "hookgate", ""},
		{"token chars", "X-A!#$%&'*+-.^_`|~1", "v", ""},
		{"tab in value", "X-A", "a\tb", ""},
		{"utf-8 value", "X-A", "Grüße", ""},
		{"empty value", "X-A", "", ""},
		{"space in name", "X Source", "v", `' ' is not allowed`},
		{"colon in name", "X-A:", "v", `':' is not allowed`},
		{"empty name", "", "v", "empty header name"},
		{"long name", strings.Repeat("x", MaxHeaderName+1), "v", "over the maximum of 256"},
		{"CR LF in value", "X-A", "v\r\nX-Injected: 1", `control character '\r'`},
		{"LF in value", "X-A", "v\nw", `control character '\n'`},
		{"NUL in value", "X-A", "v\x00", `control character '\x00'`},
		{"DEL in value", "X-A", "v\x7f", `control character`},
		{"long value", "X-A", strings.Repeat("v", MaxHeaderValue+1), "over the maximum of 8192"},
		{"reserved", "Content-Length", "1", "set by hookgate"},
		{"signature forged", "webhook-signature", "v1,x", "set by hookgate"},
		{"redacted placeholder", "Authorization", Redacted, "stands for a stored value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHeader(tt.header, tt.value)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSensitiveHeaderAndRedaction(t *testing.T) {
	for name, want := range map[string]bool{
		"Authorization": true, "proxy-authorization": true, "Cookie": true, "X-Api-Key": true,
		"X-Auth-Token": true, "X-Client-Secret": true, "Api-KEY": true, "X-Authentication": true,
		"X-Source": false, "Content-Type": false, "X-Tenant": false, "Accept": false,
	} {
		if got := SensitiveHeader(name); got != want {
			t.Errorf("SensitiveHeader(%q) = %v, want %v", name, got, want)
		}
	}
	h := map[string]string{"Authorization": "Bearer s3cret", "X-Source": "hookgate", "X-Api-Key": "k"}
	got := RedactHeaders(h)
	if got["Authorization"] != Redacted || got["X-Api-Key"] != Redacted || got["X-Source"] != "hookgate" {
		t.Errorf("RedactHeaders = %v", got)
	}
	if h["Authorization"] != "Bearer s3cret" {
		t.Error("RedactHeaders changed its argument")
	}
	plain := map[string]string{"X-Source": "a"}
	if got := RedactHeaders(plain); got["X-Source"] != "a" {
		t.Errorf("RedactHeaders(plain) = %v", got)
	}

	back := map[string]string{"authorization": Redacted, "X-Api-Key": "new", "X-Other": Redacted}
	RestoreRedacted(back, h)
	if back["authorization"] != "Bearer s3cret" || back["X-Api-Key"] != "new" || back["X-Other"] != Redacted {
		t.Errorf("RestoreRedacted = %v", back)
	}
}

// Issue #8, findings 5 and 9: out-of-bound values and bad headers are
// refused with the field named.
func TestCompileBounds(t *testing.T) {
	dur := func(d time.Duration) Duration { return Duration(d) }
	target := func(f func(*Target)) Workflow {
		tg := Target{URL: "http://127.0.0.1:9/"}
		f(&tg)
		return Workflow{ID: "w", Targets: []Target{tg}}
	}
	wfTests := []struct {
		name  string
		w     Workflow
		field string // "" = accepted
		want  string
	}{
		{"bounds at the maximum", target(func(t *Target) {
			t.Timeout = dur(MaxTimeout)
			t.RetrySchedule = []Duration{dur(MaxRetryWait)}
		}), "", ""},
		{"timeout 100000h", target(func(t *Target) { t.Timeout = dur(100000 * time.Hour) }), "targets[0].timeout", "over the maximum of 5m0s"},
		{"negative timeout", target(func(t *Target) { t.Timeout = -1 }), "targets[0].timeout", "negative"},
		{"retry wait over 24h", target(func(t *Target) { t.RetrySchedule = []Duration{dur(25 * time.Hour)} }), "targets[0].retry_schedule", "over the maximum of 24h0m0s"},
		{"too many retries", target(func(t *Target) { t.RetrySchedule = make([]Duration, MaxRetryWaits+1) }), "targets[0].retry_schedule", "over the maximum of 99"},
		{"header CRLF", target(func(t *Target) { t.Headers = map[string]string{"X-A": "a\r\nb"} }), "targets[0].headers", "control character"},
		{"header name space", target(func(t *Target) { t.Headers = map[string]string{"X A": "a"} }), "targets[0].headers", "not allowed"},
		{"too many headers", target(func(t *Target) {
			t.Headers = map[string]string{}
			for i := range MaxHeaders + 1 {
				t.Headers["X-H"+strings.Repeat("x", i)] = "v"
			}
		}), "targets[0].headers", "over the maximum of 50"},
		{"grace over 7 days", Workflow{ID: "w", Grace: dur(8 * 24 * time.Hour)}, "grace", "over the maximum"},
		{"bad idempotency header", Workflow{ID: "w", IdempotencyHeader: "X Request Id"}, "idempotency_header", "not allowed"},
		{"tolerance over 1h", Workflow{ID: "w", Verify: &Verify{Provider: "zoom", Secrets: []string{"s"}, Tolerance: dur(61 * time.Minute)}}, "verify.tolerance", "over the maximum of 1h0m0s"},
		{"too many targets", Workflow{ID: "w", Targets: make([]Target, MaxTargets+1)}, "targets", "over the maximum of 50"},
	}
	for _, tt := range wfTests {
		t.Run("workflow/"+tt.name, func(t *testing.T) {
			_, err := CompileWorkflow(tt.w, testGuard())
			checkInvalid(t, err, tt.field, tt.want)
		})
	}

	sub := func(f func(*Subscription)) Subscription {
		s := Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}
		f(&s)
		return s
	}
	subTests := []struct {
		name  string
		s     Subscription
		field string
		want  string
	}{
		{"max attempts at the maximum", sub(func(s *Subscription) { s.MaxAttempts = MaxAttempts }), "", ""},
		{"max attempts 1e9", sub(func(s *Subscription) { s.MaxAttempts = 1000000000 }), "max_attempts", "over the maximum of 100"},
		{"timeout 100000h", sub(func(s *Subscription) { s.Timeout = dur(100000 * time.Hour) }), "timeout", "over the maximum"},
		{"retry wait 48h", sub(func(s *Subscription) { s.RetrySchedule = []Duration{dur(time.Second), dur(48 * time.Hour)} }), "retry_schedule", "over the maximum"},
		{"header LF", sub(func(s *Subscription) { s.Headers = map[string]string{"Authorization": "Bearer x\ny"} }), "headers", "control character"},
		{"bad secret header", sub(func(s *Subscription) { s.SecretHeader = "X Secret" }), "secret_header", "not allowed"},
		{"too many topics", sub(func(s *Subscription) {
			s.Topics = nil
			for i := range MaxTopicPatterns + 1 {
				s.Topics = append(s.Topics, "t"+strings.Repeat("x", i))
			}
		}), "topics", "over the maximum of 256"},
	}
	for _, tt := range subTests {
		t.Run("subscription/"+tt.name, func(t *testing.T) {
			_, err := CompileSubscription(tt.s, "", testGuard())
			checkInvalid(t, err, tt.field, tt.want)
		})
	}
}

func checkInvalid(t *testing.T, err error, field, want string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	got, ok := invalidField(err)
	if !ok || got != field || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v (field %q), want field %q and %q", err, got, field, want)
	}
}

// Issue #8, finding 9: a signing secret rotated away is not kept once its
// grace period is over: the next write of the subscription drops it.
func TestExpiredPreviousSecretDroppedAtNextWrite(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateSecret(ctx, "s", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stored := func() storedSubscription {
		t.Helper()
		e, err := eng.Subscriptions.Get(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		var st storedSubscription
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := stored(); st.PreviousSecret == "" {
		t.Fatal("the previous secret is not kept during its grace period")
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := r.UpdateSubscription(ctx, "s", []byte(`{"description":"later"}`)); err != nil {
		t.Fatal(err)
	}
	if st := stored(); st.PreviousSecret != "" || !st.PreviousUntil.IsZero() {
		t.Errorf("expired previous secret still stored: until %v", st.PreviousUntil)
	}
	if got, _ := r.Subscription("s"); len(got.Dest.Keys) != 1 {
		t.Errorf("%d signing keys after the grace period, want 1", len(got.Dest.Keys))
	}
}

// SensitiveHeader decides as the definition does (the name in lower case
// is one of the credentials' names or contains one of their parts), on
// names of every case, ASCII or not, without a lower-case copy of an ASCII
// name.
func TestSensitiveHeaderAsDefined(t *testing.T) {
	defined := func(name string) bool {
		n := strings.ToLower(name)
		return slices.Contains(sensitiveNames, n) || slices.ContainsFunc(sensitiveParts, func(s string) bool { return strings.Contains(n, s) })
	}
	names := []string{
		"", "Authorization", "AUTHORIZATION", "authorizatio", "X-Authorization-Hint", "Proxy-Authorization",
		"Cookie", "Set-Cookie", "Cookies", "X-Api-Key", "X-API-KEY", "Api-Ke", "Content-Type", "User-Agent",
		"Traceparent", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", "X-Hub-Signature-256",
		"X-Session-Id", "SESSION", "X-Secret", "X-Passwor", "X-Password", "Tokens", "X-TOKEN-2", "K",
		"X-\u212aey", "X-Ke\u00ff", "Se\u017fsion", "\u0130nfo", "X-Auth\u00e9", "X-\u00c4pi-Key",
	}
	for _, n := range names {
		if got, want := SensitiveHeader(n), defined(n); got != want {
			t.Errorf("SensitiveHeader(%q) = %v, want %v", n, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { SensitiveHeader("X-Hub-Signature-256") }); n != 0 {
		t.Errorf("%v allocations for an ASCII name, want 0", n)
	}
}
