package signature

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"
)

// Header names of the timestamped providers.
const (
	// HeaderStripe carries "t=<unix>,v1=<hex>[,v1=<hex>…]".
	HeaderStripe = "Stripe-Signature"
	// HeaderSlackSignature carries "v0=<hex>".
	HeaderSlackSignature = "X-Slack-Signature"
	// HeaderSlackTimestamp carries the signing time in Unix seconds.
	HeaderSlackTimestamp = "X-Slack-Request-Timestamp"
	// HeaderZoomSignature carries "v0=<hex>".
	HeaderZoomSignature = "X-Zm-Signature"
	// HeaderZoomTimestamp carries the signing time in Unix seconds.
	HeaderZoomTimestamp = "X-Zm-Request-Timestamp"
	// HeaderPaddle carries "ts=<unix>;h1=<hex>[;h1=<hex>…]".
	HeaderPaddle = "Paddle-Signature"
)

// keyValues parses a signature header made of "key=value" items separated
// by sep (Stripe: ',', Paddle: ';'): the one value of tsKey, and the hex
// HMAC-SHA256 values of sigKey (at most maxSignatures of them are looked
// at; malformed ones are skipped, as other schemes are).
func keyValues(name, raw string, sep byte, tsKey, sigKey string) (ts string, sigs [][]byte, err error) {
	seen := 0
	for item := range strings.SplitSeq(raw, string(sep)) {
		if seen == maxSignatures*2 {
			break
		}
		seen++
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		switch k {
		case tsKey:
			ts = v
		case sigKey:
			if b, err := decodeHex(name, v, sha256.Size); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" {
		return "", nil, fmt.Errorf("%w: %s has no %s=", ErrMalformedSignature, name, tsKey)
	}
	if len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: %s has no well-formed %s= signature", ErrMalformedSignature, name, sigKey)
	}
	return ts, sigs, nil
}

// stripe verifies Stripe-Signature: any v1 is the hex HMAC-SHA256 of
// "<t>.<body>", t within the tolerance.
type stripe struct {
	keys      [][]byte
	tolerance time.Duration
}

// Verify implements Verifier.
func (v stripe) Verify(r *http.Request, body []byte, now time.Time) error {
	raw, err := header(r, HeaderStripe)
	if err != nil {
		return err
	}
	ts, sigs, err := keyValues(HeaderStripe, raw, ',', "t", "v1")
	if err != nil {
		return err
	}
	if err := unixTime(HeaderStripe+" t", ts, v.tolerance, now); err != nil {
		return err
	}
	return matchAny(v.keys, sha256.New, sigs, func(mac hash.Hash) {
		mac.Write([]byte(ts + "."))
		mac.Write(body)
	})
}

// paddle verifies Paddle-Signature: any h1 is the hex HMAC-SHA256 of
// "<ts>:<body>", ts within the tolerance.
type paddle struct {
	keys      [][]byte
	tolerance time.Duration
}

// Verify implements Verifier.
func (v paddle) Verify(r *http.Request, body []byte, now time.Time) error {
	raw, err := header(r, HeaderPaddle)
	if err != nil {
		return err
	}
	ts, sigs, err := keyValues(HeaderPaddle, raw, ';', "ts", "h1")
	if err != nil {
		return err
	}
	if err := unixTime(HeaderPaddle+" ts", ts, v.tolerance, now); err != nil {
		return err
	}
	return matchAny(v.keys, sha256.New, sigs, func(mac hash.Hash) {
		mac.Write([]byte(ts + ":"))
		mac.Write(body)
	})
}

// v0 checks the Slack and Zoom scheme: the signature header is "v0=" and
// the hex HMAC-SHA256 of "v0:<timestamp>:<body>", the timestamp header
// within the tolerance.
func v0(keys [][]byte, tolerance time.Duration, r *http.Request, body []byte, now time.Time, sigHeader, tsHeader string) error {
	ts, sig, err := v0Parse(r, sigHeader, tsHeader)
	if err != nil {
		return err
	}
	if err := unixTime(tsHeader, ts, tolerance, now); err != nil {
		return err
	}
	_, err = v0Key(keys, ts, sig, body)
	return err
}

// v0Parse reads the timestamp and the decoded signature of the v0 scheme.
func v0Parse(r *http.Request, sigHeader, tsHeader string) (ts string, sig []byte, err error) {
	raw, err := header(r, sigHeader)
	if err != nil {
		return "", nil, err
	}
	if ts, err = header(r, tsHeader); err != nil {
		return "", nil, err
	}
	hexSig, ok := strings.CutPrefix(raw, "v0=")
	if !ok {
		return "", nil, fmt.Errorf(`%w: %s does not start with "v0="`, ErrMalformedSignature, sigHeader)
	}
	sig, err = decodeHex(sigHeader, hexSig, sha256.Size)
	return ts, sig, err
}

// v0Key returns the key whose v0 signature of ts and body is sig.
func v0Key(keys [][]byte, ts string, sig, body []byte) ([]byte, error) {
	sign := func(mac hash.Hash) {
		mac.Write([]byte("v0:" + ts + ":"))
		mac.Write(body)
	}
	for _, k := range keys {
		if matchKey(k, sha256.New, [][]byte{sig}, sign) {
			return k, nil
		}
	}
	return nil, ErrNoMatchingSignature
}

// slack verifies X-Slack-Signature over X-Slack-Request-Timestamp and the
// body, and answers url_verification handshakes.
type slack struct {
	keys      [][]byte
	tolerance time.Duration
}

// Verify implements Verifier.
func (v slack) Verify(r *http.Request, body []byte, now time.Time) error {
	return v0(v.keys, v.tolerance, r, body, now, HeaderSlackSignature, HeaderSlackTimestamp)
}

// zoom verifies x-zm-signature over x-zm-request-timestamp and the body,
// and answers endpoint.url_validation handshakes.
type zoom struct {
	keys      [][]byte
	tolerance time.Duration
}

// Verify implements Verifier.
func (v zoom) Verify(r *http.Request, body []byte, now time.Time) error {
	return v0(v.keys, v.tolerance, r, body, now, HeaderZoomSignature, HeaderZoomTimestamp)
}

// standard verifies Standard Webhooks (and Svix) signatures with
// VerifyStandard.
type standard struct {
	keys      [][]byte
	tolerance time.Duration
}

// Verify implements Verifier.
func (v standard) Verify(r *http.Request, body []byte, now time.Time) error {
	return VerifyStandard(v.keys, r.Header, body, v.tolerance, now)
}
