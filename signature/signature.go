// Package signature signs outgoing webhooks and verifies incoming ones.
//
// Outgoing requests follow the Standard Webhooks specification
// (https://www.standardwebhooks.com): the signed content is
// "<webhook-id>.<unix seconds>.<body>", the MAC is HMAC-SHA256, and the
// webhook-signature header carries one or more space-separated "v1,<base64>"
// values (several during secret rotation).
//
// Incoming requests are verified by a Verifier built by New for one of the
// provider presets (Providers): GitHub, GitLab, Stripe, Shopify, Slack,
// Twilio, Zoom, Paddle and Standard Webhooks. Each follows the provider's
// documented algorithm; every comparison is constant-time; the timestamped
// providers refuse a signature whose time is outside a tolerance (a
// replay). Slack and Zoom verifiers also answer the providers' endpoint
// handshakes (Handshaker).
//
// No error returned by this package contains a secret, a key or a computed
// signature.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Standard Webhooks header names (as sent; HTTP header names are
// case-insensitive and http.Header canonicalises them).
const (
	// HeaderID carries the message id, unique per message (the same on retries).
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the signing time in Unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries the space-separated "v1,<base64>" signatures.
	HeaderSignature = "webhook-signature"
)

// SecretPrefix is the prefix of Standard Webhooks secrets ("whsec_" followed
// by the base64 encoding of the key bytes).
const SecretPrefix = "whsec_"

// DefaultTolerance is the maximum distance between a signed timestamp and the
// current time that a verifier accepts when given a zero tolerance.
const DefaultTolerance = 5 * time.Minute

// secretBytes is the number of random key bytes in a secret made by NewSecret.
const secretBytes = 32

// Errors returned (wrapped) by the verification functions; test with errors.Is.
var (
	// ErrNoKeys means verification was attempted without any key.
	ErrNoKeys = errors.New("signature: no verification key configured")
	// ErrMissingHeader means a required header is absent or empty.
	ErrMissingHeader = errors.New("signature: missing header")
	// ErrInvalidTimestamp means webhook-timestamp is not a Unix time in seconds.
	ErrInvalidTimestamp = errors.New("signature: invalid timestamp")
	// ErrOutsideTolerance means the signed timestamp is further from the
	// current time than the tolerance: the request may be a replay.
	ErrOutsideTolerance = errors.New("signature timestamp outside the tolerance")
	// ErrTimestampTooOld means the signed timestamp is older than the
	// tolerance; it wraps ErrOutsideTolerance.
	ErrTimestampTooOld = fmt.Errorf("%w: too old", ErrOutsideTolerance)
	// ErrTimestampTooNew means the signed timestamp is further in the
	// future than the tolerance; it wraps ErrOutsideTolerance.
	ErrTimestampTooNew = fmt.Errorf("%w: too new", ErrOutsideTolerance)
	// ErrMalformedSignature means the signature header could not be parsed.
	ErrMalformedSignature = errors.New("signature: malformed signature")
	// ErrNoMatchingSignature means no signature in the header matches any key.
	ErrNoMatchingSignature = errors.New("signature: no matching signature")
)

// NewSecret returns a fresh Standard Webhooks secret: "whsec_" followed by
// the standard base64 encoding of 32 bytes from crypto/rand.
func NewSecret() (string, error) {
	var key [secretBytes]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("signature: generating secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:]), nil
}

// ParseSecret returns the HMAC key bytes of a secret.
//
// A secret starting with "whsec_" is a Standard Webhooks secret: the rest must
// be standard base64 (padding optional) and its decoded bytes are the key.
// Any other non-empty string is used as the key as is (its raw bytes), which
// is what providers such as GitHub expect ("It's a Secret to Everybody" is a
// valid secret). The empty string is an error.
func ParseSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("signature: empty secret")
	}
	if len(s) < len(SecretPrefix) || s[:len(SecretPrefix)] != SecretPrefix {
		return []byte(s), nil
	}
	enc := s[len(SecretPrefix):]
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		// Do not wrap err: base64 errors quote the offending byte offset only,
		// but keep the message free of anything derived from the secret.
		return nil, errors.New(`signature: secret has the "whsec_" prefix but is not valid base64`)
	}
	if len(key) == 0 {
		return nil, errors.New(`signature: "whsec_" secret has an empty key`)
	}
	return key, nil
}

// sigLen is the length of one "v1,<base64 of 32 bytes>" value.
const sigLen = len("v1,") + 44

// Sign returns the Standard Webhooks signature "v1,<base64(HMAC-SHA256(key,
// id + "." + unix-seconds(ts) + "." + body))>".
//
// Sign keys a new HMAC on every call; on a hot path with a fixed key, a
// Signer (which reuses keyed HMAC state) allocates less.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	st := scratchPool.Get().(*scratch)
	st.mac = hmac.New(sha256.New, key)
	var buf [sigLen]byte
	sig := string(st.appendSig(buf[:0], id, ts, body))
	st.mac = nil
	scratchPool.Put(st)
	return sig
}

// Header returns the webhook-signature header value for several keys (secret
// rotation): the space-separated "v1,..." signatures, one per key, in the
// order given. It returns "" for no keys.
func Header(keys [][]byte, id string, ts time.Time, body []byte) string {
	switch len(keys) {
	case 0:
		return ""
	case 1:
		return Sign(keys[0], id, ts, body)
	}
	st := scratchPool.Get().(*scratch)
	buf := make([]byte, 0, len(keys)*(sigLen+1))
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ' ')
		}
		st.mac = hmac.New(sha256.New, k)
		buf = st.appendSig(buf, id, ts, body)
	}
	st.mac = nil
	scratchPool.Put(st)
	return string(buf)
}

// SetHeaders sets the Standard Webhooks headers on h: webhook-id and
// webhook-timestamp always, webhook-signature only when keys is non-empty
// (an unsigned delivery carries no signature header).
func SetHeaders(h http.Header, keys [][]byte, id string, ts time.Time, body []byte) {
	setIDAndTimestamp(h, id, ts)
	if len(keys) > 0 {
		h.Set(HeaderSignature, Header(keys, id, ts, body))
	}
}

func setIDAndTimestamp(h http.Header, id string, ts time.Time) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
}

// scratch holds an HMAC and the buffers used around it. Buffers passed to
// hash.Hash methods escape to the heap, so they live here, pooled, rather
// than on the stack of each call.
type scratch struct {
	mac hash.Hash
	buf [96]byte // "<id>.<unix>." when the id is short enough
	sum [sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// appendSig computes the signature of "id.ts.body" with st.mac (freshly keyed
// or Reset) and appends "v1,<base64>" to dst.
func (st *scratch) appendSig(dst []byte, id string, ts time.Time, body []byte) []byte {
	st.write(id, ts.Unix(), body)
	s := st.mac.Sum(st.sum[:0])
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, s)
}

// write feeds "id.unix.body" (the Standard Webhooks signed content) to st.mac.
func (st *scratch) write(id string, unix int64, body []byte) {
	b := st.buf[:0]
	if len(id) <= len(st.buf)-24 { // room left for ".<int64>."
		b = append(b, id...)
	} else {
		st.mac.Write([]byte(id))
	}
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '.')
	st.mac.Write(b)
	st.mac.Write(body)
}

// Signer signs with a fixed set of keys, reusing keyed HMAC state between
// calls so that signing allocates only the returned string. It is safe for
// concurrent use. Build one per subscription secret set and keep it.
type Signer struct {
	pools []sync.Pool // of *scratch whose mac is keyed with keys[i]
}

// NewSigner returns a Signer for keys (several during rotation, in the order
// their signatures appear in the header). The key bytes are copied.
func NewSigner(keys ...[]byte) *Signer {
	s := &Signer{pools: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		k := append([]byte(nil), k...)
		s.pools[i].New = func() any { return &scratch{mac: hmac.New(sha256.New, k)} }
	}
	return s
}

// Len reports the number of keys.
func (s *Signer) Len() int { return len(s.pools) }

// Header returns the webhook-signature header value, as the package-level
// Header does for the Signer's keys; "" when it has no keys.
func (s *Signer) Header(id string, ts time.Time, body []byte) string {
	switch len(s.pools) {
	case 0:
		return ""
	case 1:
		var buf [sigLen]byte
		return string(s.appendSig(buf[:0], 0, id, ts, body))
	}
	buf := make([]byte, 0, len(s.pools)*(sigLen+1))
	for i := range s.pools {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = s.appendSig(buf, i, id, ts, body)
	}
	return string(buf)
}

// SetHeaders sets webhook-id, webhook-timestamp and, when the Signer has
// keys, webhook-signature on h.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	setIDAndTimestamp(h, id, ts)
	if len(s.pools) > 0 {
		h.Set(HeaderSignature, s.Header(id, ts, body))
	}
}

func (s *Signer) appendSig(dst []byte, i int, id string, ts time.Time, body []byte) []byte {
	st := s.pools[i].Get().(*scratch)
	st.mac.Reset()
	dst = st.appendSig(dst, id, ts, body)
	s.pools[i].Put(st)
	return dst
}
