package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxSignatures bounds how many signatures of a webhook-signature header are
// tried, so a hostile header cannot make verification arbitrarily expensive.
const maxSignatures = 16

// VerifyStandard verifies an incoming Standard Webhooks request.
//
// It requires the webhook-id, webhook-timestamp and webhook-signature headers;
// webhook-timestamp must be within tolerance of now (DefaultTolerance when
// tolerance <= 0; time.Now() when now is zero); and webhook-signature must hold
// at least one "v1,<base64>" value (space-separated, several header lines
// allowed) that matches the HMAC-SHA256 of "id.timestamp.body" under any of
// keys. Comparisons are constant-time (hmac.Equal).
//
// Errors wrap ErrNoKeys, ErrMissingHeader, ErrInvalidTimestamp,
// ErrTimestampTooOld, ErrTimestampTooNew, ErrMalformedSignature or
// ErrNoMatchingSignature, and never contain a key or a signature.
func VerifyStandard(keys [][]byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	id := h.Get(HeaderID)
	if id == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderID)
	}
	tsRaw := h.Get(HeaderTimestamp)
	if tsRaw == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderTimestamp)
	}
	sigLines := h.Values(HeaderSignature)
	blank := true
	for _, l := range sigLines {
		if strings.TrimSpace(l) != "" {
			blank = false
			break
		}
	}
	if blank {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderSignature)
	}

	sec, err := strconv.ParseInt(strings.TrimSpace(tsRaw), 10, 64)
	if err != nil || sec < 0 {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidTimestamp, HeaderTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if err := checkTime(HeaderTimestamp, sec, tolerance, now); err != nil {
		return err
	}

	// Collect the decoded v1 signatures.
	var (
		cands  [maxSignatures][sha256.Size]byte
		n      int
		seen   int
		b64buf [64]byte
	)
	for _, line := range sigLines {
		for _, tok := range strings.Fields(line) {
			if seen == maxSignatures {
				break
			}
			seen++
			version, val, ok := strings.Cut(tok, ",")
			if !ok || version != "v1" {
				continue // other schemes (e.g. v1a asymmetric) are not ours
			}
			if base64.StdEncoding.DecodedLen(len(val)) > len(b64buf) {
				continue
			}
			m, err := base64.StdEncoding.Strict().Decode(b64buf[:], []byte(val))
			if err != nil || m != sha256.Size {
				continue
			}
			copy(cands[n][:], b64buf[:m])
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: %s has no well-formed v1 signature", ErrMalformedSignature, HeaderSignature)
	}

	st := scratchPool.Get().(*scratch)
	defer func() { st.mac = nil; scratchPool.Put(st) }()
	for _, k := range keys {
		st.mac = hmac.New(sha256.New, k)
		st.write(id, sec, body)
		expected := st.mac.Sum(st.sum[:0])
		for i := range n {
			if hmac.Equal(cands[i][:], expected) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
