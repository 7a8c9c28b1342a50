package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

// Version is the product version sent in User-Agent.
const Version = "0.1.0"

// UserAgent is sent with every delivery.
const UserAgent = "hookgate/" + Version

// maxResponse is how much of a response body an attempt keeps.
const maxResponse = 4 << 10

// Result is the outcome of one HTTP attempt.
type Result struct {
	StatusCode int
	Header     http.Header
	Body       []byte // at most 4 KiB
	Duration   time.Duration
	Err        error
	// RetryAfter is the wait the target asked for (0: none).
	RetryAfter time.Duration
	// RequestHeader is what the attempt sent, as the delivery log keeps
	// it: signatures, secrets and credential-like values redacted.
	RequestHeader map[string]string
}

// Success reports a 2xx answer.
func (r *Result) Success() bool { return r.Err == nil && r.StatusCode >= 200 && r.StatusCode < 300 }

// Sender makes delivery attempts over an HTTP client (the SSRF-guarded one).
type Sender struct {
	Client *http.Client
	Now    func() time.Time
}

// Body builds the request body of ev for dest.
func Body(dest *destination.Destination, ev *Event) ([]byte, error) {
	var body []byte
	if dest.PassBody {
		body = ev.Data
		if len(body) == 0 {
			body = nil
		}
	} else {
		var data any
		if len(ev.Data) > 0 {
			if dest.Envelope.Raw() || strings.TrimSpace(dest.Envelope.String()) == filters.EnvelopeStandard {
				// Delivered as published: decoding into float64 would
				// round integers beyond 2^53 and refuse numbers such as 1e400.
				if !json.Valid(ev.Data) {
					return nil, errors.New("event data is not JSON")
				}
				data = json.RawMessage(ev.Data)
			} else if err := json.Unmarshal(ev.Data, &data); err != nil {
				return nil, fmt.Errorf("event data is not JSON: %w", err)
			}
		}
		topic := ev.Topic
		if topic == "" {
			topic = ev.Workflow
		}
		in := &filters.EnvelopeInput{
			Event: filters.Event{
				ID: ev.ID, Topic: topic, Data: data, Tenant: ev.Tenant, User: ev.User, Time: ev.Time,
			},
			Subscription: dest.Subscription,
			DataSize:     len(ev.Data),
		}
		var err error
		if body, err = dest.Envelope.Build(in); err != nil {
			return nil, fmt.Errorf("envelope: %w", err)
		}
	}
	if dest.SecretField != "" && dest.Secret != "" {
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // keep numbers as they are
		if dec.Decode(&obj) == nil && obj != nil {
			obj[dest.SecretField] = dest.Secret
			body, _ = json.Marshal(obj)
		}
	}
	return body, nil
}

// Attempt makes one HTTP request delivering ev to dest.
func (s *Sender) Attempt(ctx context.Context, dest *destination.Destination, ev *Event) *Result {
	if ev.Request != nil {
		return s.sendRequest(ctx, dest, ev) // a passthrough request kept for the fallback
	}
	body, err := Body(dest, ev)
	if err != nil {
		return &Result{Err: err}
	}
	return s.send(ctx, dest, ev, body, "application/json")
}

// AttemptBody makes one HTTP request to dest with body exactly as given
// (no envelope, no secret field), signed and with dest's headers as usual:
// a test delivery of custom text or JSON. The Content-Type is
// application/json when body is JSON, text/plain otherwise.
func (s *Sender) AttemptBody(ctx context.Context, dest *destination.Destination, ev *Event, body []byte) *Result {
	ct := "application/json"
	if !json.Valid(body) {
		ct = "text/plain; charset=utf-8"
	}
	return s.send(ctx, dest, ev, body, ct)
}

// send makes the request of one attempt with a built body.
func (s *Sender) send(ctx context.Context, dest *destination.Destination, ev *Event, body []byte, contentType string) *Result {
	start := time.Now()
	res := &Result{}
	ctx, cancel := context.WithTimeout(ctx, dest.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, dest.Method, dest.URL, bytes.NewReader(body))
	if err != nil {
		res.Err = err
		return res
	}
	h := req.Header
	for k, v := range dest.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", contentType)
	h.Set("User-Agent", UserAgent)
	tp := ev.Traceparent
	if !validTraceparent(tp) {
		tp = newTraceparent()
	}
	h.Set("Traceparent", tp)
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if dest.HMAC != nil {
		// webhook-id and webhook-timestamp still name the event; the
		// signature is the HMAC of the body in the scheme's header.
		signature.SetHeaders(h, nil, ev.ID, now(), body)
		if len(dest.Keys) > 0 {
			h.Set(dest.HMAC.Header, SignHMAC(dest.HMAC, dest.Keys[0], body))
		}
	} else {
		signature.SetHeaders(h, dest.Keys, ev.ID, now(), body)
	}
	if dest.SecretHeader != "" && dest.Secret != "" {
		h.Set(dest.SecretHeader, dest.Secret)
	}
	return s.do(req, dest, res, start)
}

// do sends req, an attempt to dest started at start, and fills res with
// the headers sent (as the log keeps them) and the answer: status,
// headers, the first maxResponse bytes of the body, Retry-After.
func (s *Sender) do(req *http.Request, dest *destination.Destination, res *Result, start time.Time) *Result {
	res.RequestHeader = loggedHeaders(req.Header, dest)
	resp, err := s.Client.Do(req)
	if err != nil {
		res.Err = err
		res.Duration = time.Since(start)
		return res
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	res.Header = resp.Header
	res.Body, _ = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	res.Duration = time.Since(start)
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now())
	return res
}

// loggedHeaders is the request's header as the delivery log keeps it: one
// value a name, with the values of the signature header, the secret header
// and every credential-like header (registry.SensitiveHeader) replaced by
// registry.Redacted, so that a log reader sees which headers were sent
// without learning a secret or being able to replay a signature.
func loggedHeaders(h http.Header, dest *destination.Destination) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		val := v[0]
		switch {
		case strings.EqualFold(k, "Webhook-Signature"),
			dest.HMAC != nil && strings.EqualFold(k, dest.HMAC.Header),
			dest.SecretHeader != "" && strings.EqualFold(k, dest.SecretHeader),
			registry.SensitiveHeader(k):
			val = registry.Redacted
		}
		out[k] = val
	}
	return out
}

// SignHMAC returns the value of an HMAC signature header: the prefix, then
// the HMAC-SHA256 of body under key in the scheme's encoding.
func SignHMAC(sig *destination.HMAC, key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	sum := mac.Sum(nil)
	if sig.Base64 {
		return sig.Prefix + base64.StdEncoding.EncodeToString(sum)
	}
	return sig.Prefix + hex.EncodeToString(sum)
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// validTraceparent checks the W3C traceparent shape version-traceid-spanid-flags.
func validTraceparent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	for i, c := range []byte(s) {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	// Version ff, an all-zero trace id and an all-zero parent id are
	// invalid (W3C Trace Context).
	return s[:2] != "ff" && s[3:35] != "00000000000000000000000000000000" && s[36:52] != "0000000000000000"
}

// newTraceparent starts a new sampled trace: "00-", a random 16-byte trace
// id, "-", a random 8-byte parent id, "-01", in one allocation. A trace id
// needs to be unique, not secret: math/rand/v2's generator (ChaCha8,
// seeded by the runtime) serves.
func newTraceparent() string {
	const digits = "0123456789abcdef"
	var b [55]byte
	copy(b[:], "00-")
	put := func(at int, v uint64) {
		for i := 15; i >= 0; i-- {
			b[at+i] = digits[v&0xf]
			v >>= 4
		}
	}
	hi, lo, parent := rand.Uint64(), rand.Uint64(), rand.Uint64()
	if hi|lo == 0 {
		lo = 1 // an all-zero trace id is invalid
	}
	if parent == 0 {
		parent = 1 // so is an all-zero parent id
	}
	put(3, hi)
	put(19, lo)
	b[35] = '-'
	put(36, parent)
	copy(b[52:], "-01")
	return string(b[:])
}

// ValidTraceparent reports whether s is a usable W3C traceparent.
func ValidTraceparent(s string) bool { return validTraceparent(s) }
