package signature

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// HeaderTwilio is Twilio's signature header.
const HeaderTwilio = "X-Twilio-Signature"

// twilio verifies X-Twilio-Signature, the base64 HMAC-SHA1, under the
// account's auth token, of the full URL Twilio requested followed by, for
// a form-encoded body, every parameter name and value sorted by name (the
// values of a repeated name sorted too), without separators. A JSON body is
// signed through the URL: Twilio adds a bodySHA256 query parameter, the hex
// SHA-256 of the body, and signs the URL alone.
//
// The URL is rebuilt as scheme://Host/path?query, the path and query as the
// request reached hookgate, the scheme from WithScheme or the connection.
// Twilio's own libraries accept a signature over the URL with or without
// the scheme's default port; so does this.
type twilio struct{ keys [][]byte }

// Verify implements Verifier.
func (v twilio) Verify(r *http.Request, body []byte, _ time.Time) error {
	raw, err := header(r, HeaderTwilio)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(sig) != sha1.Size {
		return fmt.Errorf("%w: %s is not the base64 of a SHA-1 HMAC", ErrMalformedSignature, HeaderTwilio)
	}
	var params []byte
	if want, ok := bodySHA256(r); ok {
		got := sha256.Sum256(body)
		wantb, err := decodeHex("bodySHA256", want, sha256.Size)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(got[:], wantb) != 1 {
			return fmt.Errorf("%w: the body does not match the bodySHA256 query parameter", ErrNoMatchingSignature)
		}
	} else if isForm(r.Header.Get("Content-Type")) {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return fmt.Errorf("%w: the form body does not parse", ErrMalformedSignature)
		}
		params = sortedParams(form)
	}
	for _, u := range twilioURLs(r) {
		err := matchAny(v.keys, sha1.New, [][]byte{sig}, func(mac hash.Hash) {
			mac.Write([]byte(u))
			mac.Write(params)
		})
		if err == nil {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

// bodySHA256 returns the bodySHA256 query parameter, if any.
func bodySHA256(r *http.Request) (string, bool) {
	if !strings.Contains(r.URL.RawQuery, "bodySHA256=") {
		return "", false
	}
	v := r.URL.Query().Get("bodySHA256")
	return v, v != ""
}

// sortedParams concatenates the names and values of form sorted by name,
// the values of one name sorted too.
func sortedParams(form url.Values) []byte {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	slices.Sort(names)
	var b []byte
	for _, k := range names {
		vals := slices.Clone(form[k])
		slices.Sort(vals)
		for _, v := range vals {
			b = append(b, k...)
			b = append(b, v...)
		}
	}
	return b
}

// twilioURLs returns the URL Twilio requested, as rebuilt from r, and the
// same URL with the scheme's default port added or removed.
func twilioURLs(r *http.Request) []string {
	scheme := requestScheme(r)
	defPort := "80"
	if scheme == "https" {
		defPort = "443"
	}
	uri := r.URL.RequestURI()
	host := r.Host
	alt := host + ":" + defPort
	if h, port, err := net.SplitHostPort(host); err == nil {
		if port != defPort {
			return []string{scheme + "://" + host + uri}
		}
		alt = h
		if strings.Contains(h, ":") {
			alt = "[" + h + "]"
		}
	}
	return []string{scheme + "://" + host + uri, scheme + "://" + alt + uri}
}

// isForm reports whether contentType is application/x-www-form-urlencoded.
func isForm(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-www-form-urlencoded"
}
