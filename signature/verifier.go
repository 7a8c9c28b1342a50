package signature

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Verifier checks the signature of an incoming webhook. Implementations are
// built once per workflow by New and are safe for concurrent use.
type Verifier interface {
	// Verify checks the signature of r, whose body (already read) is body,
	// at time now (time.Now() when zero). It returns nil for a request
	// signed with one of the verifier's secrets; otherwise an error that
	// wraps one of the package's Err values and contains no secret.
	Verify(r *http.Request, body []byte, now time.Time) error
}

// Handshaker is implemented by the verifiers of providers that check a
// webhook endpoint with a handshake request that the endpoint itself must
// answer (Slack's url_verification, Zoom's endpoint.url_validation).
type Handshaker interface {
	// Handshake returns the answer to r when it is a handshake request, and
	// true; false for any other request. Call it only after Verify accepted
	// r: the provider signs its handshakes too.
	Handshake(r *http.Request, body []byte) (answer any, ok bool)
}

// Provider names accepted by New.
const (
	ProviderGitHub   = "github"
	ProviderGitLab   = "gitlab"
	ProviderStripe   = "stripe"
	ProviderShopify  = "shopify"
	ProviderSlack    = "slack"
	ProviderTwilio   = "twilio"
	ProviderZoom     = "zoom"
	ProviderPaddle   = "paddle"
	ProviderStandard = "standard"
)

// Providers lists the provider presets, in the order the documentation
// shows them.
var Providers = []string{
	ProviderGitHub, ProviderGitLab, ProviderStripe, ProviderShopify, ProviderSlack,
	ProviderTwilio, ProviderZoom, ProviderPaddle, ProviderStandard,
}

// MaxSecrets is the most secrets a verifier takes (a secret and the ones
// it rotates away from).
const MaxSecrets = 4

// MaxTolerance is the largest tolerance New accepts for a timestamped
// provider.
const MaxTolerance = time.Hour

// ErrUnknownProvider is returned (wrapped) by New for a provider name that is
// not one of Providers.
var ErrUnknownProvider = errors.New("signature: unknown provider")

// Timestamped reports whether provider signs a timestamp, so that a request
// is refused as a replay outside the tolerance.
func Timestamped(provider string) bool {
	switch provider {
	case ProviderStripe, ProviderSlack, ProviderZoom, ProviderPaddle, ProviderStandard:
		return true
	}
	return false
}

// New returns the verifier of provider for secrets (1 to MaxSecrets; a
// request signed with any of them is accepted). tolerance bounds the
// distance between a signed timestamp and the current time for the
// providers that sign one (see Timestamped): DefaultTolerance when zero, at
// most MaxTolerance; it must be zero for the others.
//
// Secrets are used as their raw bytes, as the providers do (Stripe's
// "whsec_…" signing secrets included), except for ProviderStandard where a
// "whsec_" secret is base64 (see ParseSecret).
func New(provider string, secrets []string, tolerance time.Duration) (Verifier, error) {
	known := false
	for _, p := range Providers {
		known = known || p == provider
	}
	if !known {
		return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownProvider, truncate(provider, 32), strings.Join(Providers, ", "))
	}
	if len(secrets) == 0 {
		return nil, ErrNoKeys
	}
	if len(secrets) > MaxSecrets {
		return nil, fmt.Errorf("signature: %d secrets is over the maximum of %d", len(secrets), MaxSecrets)
	}
	switch {
	case tolerance < 0:
		return nil, errors.New("signature: the tolerance must be positive")
	case tolerance > MaxTolerance:
		return nil, fmt.Errorf("signature: a tolerance of %s is over the maximum of %s", tolerance, MaxTolerance)
	case tolerance != 0 && !Timestamped(provider):
		return nil, fmt.Errorf("signature: %s signatures carry no timestamp: a tolerance does not apply", provider)
	case tolerance == 0:
		tolerance = DefaultTolerance
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		var err error
		if provider == ProviderStandard {
			if keys[i], err = ParseSecret(s); err != nil {
				return nil, err
			}
			continue
		}
		if s == "" {
			return nil, errors.New("signature: empty secret")
		}
		keys[i] = []byte(s)
	}
	switch provider {
	case ProviderGitHub:
		return github{keys}, nil
	case ProviderGitLab:
		return newGitLab(keys), nil
	case ProviderStripe:
		return stripe{keys, tolerance}, nil
	case ProviderShopify:
		return shopify{keys}, nil
	case ProviderSlack:
		return slack{keys, tolerance}, nil
	case ProviderTwilio:
		return twilio{keys}, nil
	case ProviderZoom:
		return zoom{keys, tolerance}, nil
	case ProviderPaddle:
		return paddle{keys, tolerance}, nil
	default:
		return standard{keys, tolerance}, nil
	}
}

// header returns the first value of header name, or an error wrapping
// ErrMissingHeader when it is absent or blank.
func header(r *http.Request, name string) (string, error) {
	v := strings.TrimSpace(r.Header.Get(name))
	if v == "" {
		return "", fmt.Errorf("%w %s", ErrMissingHeader, name)
	}
	return v, nil
}

// unixTime parses the Unix seconds of header name and checks them against
// now and tolerance.
func unixTime(name, raw string, tolerance time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || sec < 0 {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidTimestamp, name)
	}
	return checkTime(name, sec, tolerance, now)
}

// checkTime refuses a signed time sec further than tolerance from now
// (time.Now() when zero).
func checkTime(name string, sec int64, tolerance time.Duration, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance {
		return fmt.Errorf("%w: %s is %s in the past (tolerance %s)", ErrTimestampTooOld, name, d.Truncate(time.Second), tolerance)
	}
	if d := ts.Sub(now); d > tolerance {
		return fmt.Errorf("%w: %s is %s in the future (tolerance %s)", ErrTimestampTooNew, name, d.Truncate(time.Second), tolerance)
	}
	return nil
}

// decodeHex decodes a hex MAC of size bytes, or reports it malformed.
func decodeHex(name, v string, size int) ([]byte, error) {
	if len(v) != hex.EncodedLen(size) {
		return nil, fmt.Errorf("%w: %s: want %d hex digits, got %d", ErrMalformedSignature, name, hex.EncodedLen(size), len(v))
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not hexadecimal", ErrMalformedSignature, name)
	}
	return b, nil
}

// matchAny computes the MAC of the parts under each key (sign feeds them to
// the keyed hash) and compares it, in constant time, with each candidate.
func matchAny(keys [][]byte, newHash func() hash.Hash, cands [][]byte, sign func(mac hash.Hash)) error {
	for _, k := range keys {
		if matchKey(k, newHash, cands, sign) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

// matchKey reports whether the MAC under key equals one of cands.
func matchKey(key []byte, newHash func() hash.Hash, cands [][]byte, sign func(mac hash.Hash)) bool {
	mac := hmac.New(newHash, key)
	sign(mac)
	sum := mac.Sum(nil)
	for _, c := range cands {
		if hmac.Equal(c, sum) {
			return true
		}
	}
	return false
}

// github verifies X-Hub-Signature-256: "sha256=" and the hex HMAC-SHA256 of
// the body.
type github struct{ keys [][]byte }

// HeaderGitHub is GitHub's signature header.
const HeaderGitHub = "X-Hub-Signature-256"

// Verify implements Verifier.
func (v github) Verify(r *http.Request, body []byte, _ time.Time) error {
	raw, err := header(r, HeaderGitHub)
	if err != nil {
		return err
	}
	hexSig, ok := strings.CutPrefix(raw, "sha256=")
	if !ok {
		return fmt.Errorf(`%w: %s does not start with "sha256="`, ErrMalformedSignature, HeaderGitHub)
	}
	sig, err := decodeHex(HeaderGitHub, hexSig, sha256.Size)
	if err != nil {
		return err
	}
	return matchAny(v.keys, sha256.New, [][]byte{sig}, func(mac hash.Hash) { mac.Write(body) })
}

// gitlab verifies X-Gitlab-Token, which carries the secret itself. The
// SHA-256 digests are compared, so that the comparison takes the same time
// whatever the lengths.
type gitlab struct{ digests [][sha256.Size]byte }

// HeaderGitLab is GitLab's secret token header.
const HeaderGitLab = "X-Gitlab-Token"

func newGitLab(keys [][]byte) gitlab {
	g := gitlab{digests: make([][sha256.Size]byte, len(keys))}
	for i, k := range keys {
		g.digests[i] = sha256.Sum256(k)
	}
	return g
}

// Verify implements Verifier.
func (v gitlab) Verify(r *http.Request, _ []byte, _ time.Time) error {
	raw := r.Header.Get(HeaderGitLab)
	if raw == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderGitLab)
	}
	got := sha256.Sum256([]byte(raw))
	match := 0
	for i := range v.digests {
		match |= subtle.ConstantTimeCompare(got[:], v.digests[i][:])
	}
	if match != 1 {
		return ErrNoMatchingSignature
	}
	return nil
}

// schemeKey is the context key of the scheme set by WithScheme.
type schemeKey struct{}

// WithScheme returns ctx carrying the scheme ("http" or "https") the sender
// used, for the verifiers that sign the URL (Twilio) when the request came
// through a trusted TLS-terminating proxy. Without it, the scheme is https
// when the request arrived over TLS, else http.
func WithScheme(ctx context.Context, scheme string) context.Context {
	return context.WithValue(ctx, schemeKey{}, scheme)
}

// requestScheme returns the scheme the sender used (see WithScheme).
func requestScheme(r *http.Request) string {
	if s, ok := r.Context().Value(schemeKey{}).(string); ok && s != "" {
		return s
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// shopify verifies X-Shopify-Hmac-Sha256: the base64 HMAC-SHA256 of the
// body.
type shopify struct{ keys [][]byte }

// HeaderShopify is Shopify's signature header.
const HeaderShopify = "X-Shopify-Hmac-Sha256"

// Verify implements Verifier.
func (v shopify) Verify(r *http.Request, body []byte, _ time.Time) error {
	raw, err := header(r, HeaderShopify)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: %s is not the base64 of a SHA-256 HMAC", ErrMalformedSignature, HeaderShopify)
	}
	return matchAny(v.keys, sha256.New, [][]byte{sig}, func(mac hash.Hash) { mac.Write(body) })
}
