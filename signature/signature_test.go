package signature

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func mustSecret(t testing.TB) (string, []byte) {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	if !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("missing prefix: %q", a)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if err != nil || len(raw) != 32 {
		t.Fatalf("want 32 base64 bytes, got %d (%v)", len(raw), err)
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr bool
	}{
		{"whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", mustB64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), false},
		{"whsec unpadded", "whsec_YWJjZA", []byte("abcd"), false},
		{"whsec padded", "whsec_YWJjZA==", []byte("abcd"), false},
		{"raw", "It's a Secret to Everybody", []byte("It's a Secret to Everybody"), false},
		{"raw looks like base64", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), false},
		{"empty", "", nil, true},
		{"whsec bad base64", "whsec_not*base64!", nil, true},
		{"whsec empty", "whsec_", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if tt.in != "" && strings.Contains(err.Error(), strings.TrimPrefix(tt.in, "whsec_")) && len(tt.in) > len("whsec_") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if string(got) != string(tt.want) {
				t.Fatalf("got %q want %q", got, tt.want)
			}
		})
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestSignVerifiedByLibrary: our signatures are accepted by the independent
// Standard Webhooks Go library.
func TestSignVerifiedByLibrary(t *testing.T) {
	secret, key := mustSecret(t)
	now := time.Now()
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		id   string
		body []byte
	}{
		{"json", "msg_p5jXN8AQM9LWM0D4loKWxJek", []byte(`{"test": 2432232314}`)},
		{"empty body", "msg_1", nil},
		{"binary body", "msg_2", []byte{0, 1, 2, 0xff, '.', '\n'}},
		{"long id", long, []byte(`{"a":1}`)},
		{"id with dots", "a.b.c", []byte("x.y")},
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	signer := NewSigner(key)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, via := range []string{"Sign", "SetHeaders", "Signer"} {
				h := http.Header{}
				switch via {
				case "Sign":
					h.Set(standardwebhooks.HeaderWebhookID, tt.id)
					h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
					h.Set(standardwebhooks.HeaderWebhookSignature, Sign(key, tt.id, now, tt.body))
				case "SetHeaders":
					SetHeaders(h, [][]byte{key}, tt.id, now, tt.body)
				case "Signer":
					signer.SetHeaders(h, tt.id, now, tt.body)
				}
				if err := wh.Verify(tt.body, h); err != nil {
					t.Fatalf("%s: library rejected our signature: %v", via, err)
				}
				libSig, _ := wh.Sign(tt.id, now, tt.body)
				if got := h.Get(HeaderSignature); got != libSig {
					t.Fatalf("%s: signature %q, library %q", via, got, libSig)
				}
				if err := wh.Verify(append([]byte("x"), tt.body...), h); err == nil {
					t.Fatalf("%s: library accepted a tampered body", via)
				}
			}
		})
	}
}

// TestRotationVerifiedByLibrary: a header with two signatures is accepted by
// the library when it knows either secret alone, and refused by a third.
func TestRotationVerifiedByLibrary(t *testing.T) {
	oldSecret, oldKey := mustSecret(t)
	newSecret, newKey := mustSecret(t)
	otherSecret, _ := mustSecret(t)
	id, now, body := "msg_rot", time.Now(), []byte(`{"type":"rotated"}`)

	headers := map[string]http.Header{}
	h1 := http.Header{}
	SetHeaders(h1, [][]byte{newKey, oldKey}, id, now, body)
	headers["SetHeaders"] = h1
	h2 := http.Header{}
	NewSigner(newKey, oldKey).SetHeaders(h2, id, now, body)
	headers["Signer"] = h2

	for via, h := range headers {
		sig := h.Get(HeaderSignature)
		if parts := strings.Split(sig, " "); len(parts) != 2 || parts[0] != Sign(newKey, id, now, body) || parts[1] != Sign(oldKey, id, now, body) {
			t.Fatalf("%s: header %q is not the two signatures in order", via, sig)
		}
		if sig != Header([][]byte{newKey, oldKey}, id, now, body) {
			t.Fatalf("%s: Header differs", via)
		}
		tests := []struct {
			name   string
			secret string
			ok     bool
		}{
			{"old secret alone", oldSecret, true},
			{"new secret alone", newSecret, true},
			{"unrelated secret", otherSecret, false},
		}
		for _, tt := range tests {
			t.Run(via+"/"+tt.name, func(t *testing.T) {
				wh, err := standardwebhooks.NewWebhook(tt.secret)
				if err != nil {
					t.Fatal(err)
				}
				err = wh.Verify(body, h)
				if (err == nil) != tt.ok {
					t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
				}
			})
		}
	}
}

func TestHeaderAndSetHeadersEdgeCases(t *testing.T) {
	if got := Header(nil, "id", time.Now(), nil); got != "" {
		t.Fatalf("Header(no keys) = %q", got)
	}
	if got := NewSigner().Header("id", time.Now(), nil); got != "" {
		t.Fatalf("Signer(no keys).Header = %q", got)
	}
	ts := time.Unix(1700000000, 999)
	for name, set := range map[string]func(http.Header){
		"SetHeaders": func(h http.Header) { SetHeaders(h, nil, "msg_x", ts, []byte("{}")) },
		"Signer":     func(h http.Header) { NewSigner().SetHeaders(h, "msg_x", ts, []byte("{}")) },
	} {
		h := http.Header{}
		set(h)
		if h.Get("webhook-id") != "msg_x" || h.Get("webhook-timestamp") != "1700000000" {
			t.Fatalf("%s: id/timestamp headers wrong: %v", name, h)
		}
		if _, ok := h[http.CanonicalHeaderKey(HeaderSignature)]; ok {
			t.Fatalf("%s: unsigned delivery has a signature header", name)
		}
	}
}

// libSigned returns headers signed by the independent library.
func libSigned(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

func TestVerifyStandard(t *testing.T) {
	secret, key := mustSecret(t)
	_, otherKey := mustSecret(t)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"user.created","data":{"id":1}}`)
	id := "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	good := func() http.Header { return libSigned(t, secret, id, now, body) }
	with := func(mod func(h http.Header)) http.Header { h := good(); mod(h); return h }

	tests := []struct {
		name    string
		keys    [][]byte
		h       http.Header
		body    []byte
		tol     time.Duration
		now     time.Time
		wantErr error
	}{
		{"library signed", [][]byte{key}, good(), body, 0, now, nil},
		{"second of two keys", [][]byte{otherKey, key}, good(), body, 0, now, nil},
		{"4m59s old", [][]byte{key}, good(), body, 0, now.Add(4*time.Minute + 59*time.Second), nil},
		{"4m59s new", [][]byte{key}, good(), body, 0, now.Add(-4*time.Minute - 59*time.Second), nil},
		{"several signatures, one matches", [][]byte{key},
			with(func(h http.Header) {
				h.Set(HeaderSignature, "v1a,abc v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" junk "+h.Get(HeaderSignature))
			}), body, 0, now, nil},
		{"signature on a second header line", [][]byte{key},
			with(func(h http.Header) {
				s := h.Get(HeaderSignature)
				h.Set(HeaderSignature, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
				h.Add(HeaderSignature, s)
			}), body, 0, now, nil},
		{"our own Signer", [][]byte{key}, func() http.Header {
			h := http.Header{}
			NewSigner(otherKey, key).SetHeaders(h, id, now, body)
			return h
		}(), body, 0, now, nil},

		{"tampered body", [][]byte{key}, good(), append([]byte(nil), append(body, ' ')...), 0, now, ErrNoMatchingSignature},
		{"wrong key", [][]byte{otherKey}, good(), body, 0, now, ErrNoMatchingSignature},
		{"tampered id", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderID, id+"x") }), body, 0, now, ErrNoMatchingSignature},
		{"tampered timestamp", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)) }), body, 0, now, ErrNoMatchingSignature},
		{"stale timestamp", [][]byte{key}, good(), body, 0, now.Add(5*time.Minute + time.Second), ErrTimestampTooOld},
		{"future timestamp", [][]byte{key}, good(), body, 0, now.Add(-5*time.Minute - time.Second), ErrTimestampTooNew},
		{"custom tolerance", [][]byte{key}, good(), body, time.Minute, now.Add(2 * time.Minute), ErrTimestampTooOld},
		{"missing id", [][]byte{key}, with(func(h http.Header) { h.Del(HeaderID) }), body, 0, now, ErrMissingHeader},
		{"missing timestamp", [][]byte{key}, with(func(h http.Header) { h.Del(HeaderTimestamp) }), body, 0, now, ErrMissingHeader},
		{"missing signature", [][]byte{key}, with(func(h http.Header) { h.Del(HeaderSignature) }), body, 0, now, ErrMissingHeader},
		{"blank signature", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderSignature, "  ") }), body, 0, now, ErrMissingHeader},
		{"no headers", [][]byte{key}, http.Header{}, body, 0, now, ErrMissingHeader},
		{"bad timestamp", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderTimestamp, "2023-01-01T00:00:00Z") }), body, 0, now, ErrInvalidTimestamp},
		{"negative timestamp", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderTimestamp, "-5") }), body, 0, now, ErrInvalidTimestamp},
		{"only other versions", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderSignature, "v2,"+strings.SplitN(h.Get(HeaderSignature), ",", 2)[1]) }), body, 0, now, ErrMalformedSignature},
		{"not base64", [][]byte{key}, with(func(h http.Header) { h.Set(HeaderSignature, "v1,!!!!") }), body, 0, now, ErrMalformedSignature},
		{"no keys", nil, good(), body, 0, now, ErrNoKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyStandard(tt.keys, tt.h, tt.body, tt.tol, tt.now)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			msg := err.Error()
			for _, leak := range []string{secret, strings.TrimPrefix(secret, "whsec_"), string(key), good().Get(HeaderSignature)} {
				if strings.Contains(msg, leak) {
					t.Fatalf("error %q leaks secret material", msg)
				}
			}
		})
	}
}

func TestVerifyStandardDefaultNow(t *testing.T) {
	secret, key := mustSecret(t)
	body := []byte("{}")
	if err := VerifyStandard([][]byte{key}, libSigned(t, secret, "m", time.Now(), body), body, 0, time.Time{}); err != nil {
		t.Fatalf("zero now should mean time.Now(): %v", err)
	}
	if err := VerifyStandard([][]byte{key}, libSigned(t, secret, "m", time.Now().Add(-time.Hour), body), body, 0, time.Time{}); !errors.Is(err, ErrTimestampTooOld) {
		t.Fatalf("err = %v, want too old", err)
	}
}

func TestSignerConcurrent(t *testing.T) {
	_, key := mustSecret(t)
	s := NewSigner(key)
	ts := time.Unix(1_700_000_000, 0)
	want := Sign(key, "id", ts, []byte("body"))
	done := make(chan string, 64)
	for range 64 {
		go func() { done <- s.Header("id", ts, []byte("body")) }()
	}
	for range 64 {
		if got := <-done; got != want {
			t.Fatalf("concurrent Signer = %q want %q", got, want)
		}
	}
}

func TestSignAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (sync.Pool drops items)")
	}
	_, key := mustSecret(t)
	ts := time.Now()
	body := []byte(`{"type":"x","data":{}}`)
	s := NewSigner(key)
	s.Header("msg_1", ts, body) // warm the pool
	if n := testing.AllocsPerRun(100, func() { _ = s.Header("msg_1", ts, body) }); n > 1 {
		t.Errorf("Signer.Header allocates %.0f times, want <= 1", n)
	}
}

var sink string

func benchBody() []byte { return []byte(strings.Repeat(`{"k":"v"},`, 100)) } // ~1 KiB

func BenchmarkSign(b *testing.B) {
	_, key := mustSecret(b)
	ts, body := time.Now(), benchBody()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sink = Sign(key, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
	}
}

func BenchmarkSignerHeader(b *testing.B) {
	_, key := mustSecret(b)
	s := NewSigner(key)
	ts, body := time.Now(), benchBody()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sink = s.Header("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
	}
}

func BenchmarkSignerHeaderParallel(b *testing.B) {
	_, key := mustSecret(b)
	s := NewSigner(key)
	ts, body := time.Now(), benchBody()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		var local string
		for pb.Next() {
			local = s.Header("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
		}
		_ = local
	})
}

func BenchmarkVerifyStandard(b *testing.B) {
	_, key := mustSecret(b)
	ts, body := time.Now(), benchBody()
	h := http.Header{}
	SetHeaders(h, [][]byte{key}, "msg_1", ts, body)
	keys := [][]byte{key}
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyStandard(keys, h, body, 0, ts); err != nil {
			b.Fatal(err)
		}
	}
}
