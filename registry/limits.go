package registry

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds of configured values. A workflow or subscription over a bound is
// refused (an *InvalidError naming the field and the bound), whether it comes
// from the Caddyfile, the JSON config or the API: a hostile or mistaken value
// must not tie up a delivery worker for days or keep a delivery alive forever.
const (
	// MaxTimeout bounds the timeout of one delivery attempt (default 10s).
	MaxTimeout = 5 * time.Minute
	// MaxAttempts bounds a subscription's attempts (default 6).
	MaxAttempts = 100
	// MaxRetryWaits bounds the number of waits in a retry schedule.
	MaxRetryWaits = MaxAttempts - 1
	// MaxRetryWait bounds each wait of a retry schedule.
	MaxRetryWait = 24 * time.Hour
	// MaxGrace bounds how long a previous key or signing secret stays valid
	// after a regeneration or rotation (defaults: 0 for keys, 24h for
	// secrets).
	MaxGrace = 7 * 24 * time.Hour
	// MaxTargets bounds the targets of one workflow.
	MaxTargets = 50
	// MaxTopicPatterns bounds the topic patterns of one subscription.
	MaxTopicPatterns = 256
	// MaxHeaders bounds the custom headers of one target or subscription.
	MaxHeaders = 50
	// MaxHeaderName bounds the length of a header name.
	MaxHeaderName = 256
	// MaxHeaderValue bounds the length of a custom header value.
	MaxHeaderValue = 8 << 10
)

// Redacted replaces the value of a credential-like header in API answers. A
// write that sends it back keeps the stored value.
const Redacted = "***"

// checkMax refuses a duration over max.
func checkMax(field string, d Duration, max time.Duration) error {
	if d < 0 {
		return invalid(field, "must not be negative")
	}
	if d.Std() > max {
		return invalid(field, "%s is over the maximum of %s", d.Std(), max)
	}
	return nil
}

// checkSchedule checks a retry schedule: at most MaxRetryWaits waits, each
// positive and at most MaxRetryWait.
func checkSchedule(field string, s []Duration) error {
	if len(s) > MaxRetryWaits {
		return invalid(field, "%d waits is over the maximum of %d", len(s), MaxRetryWaits)
	}
	for _, w := range s {
		if w <= 0 {
			return invalid(field, "waits must be positive")
		}
		if w.Std() > MaxRetryWait {
			return invalid(field, "a wait of %s is over the maximum of %s", w.Std(), MaxRetryWait)
		}
	}
	return nil
}

// reservedHeaders are set by the HTTP client or by hookgate itself; a custom
// value would corrupt the request or forge its signature.
var reservedHeaders = map[string]bool{
	"connection": true, "content-length": true, "host": true, "keep-alive": true,
	"proxy-connection": true, "te": true, "trailer": true, "transfer-encoding": true,
	"upgrade": true, "webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
}

// CheckHeaderName reports whether name is an HTTP header name (an RFC 7230
// token of at most MaxHeaderName characters).
func CheckHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("empty header name")
	}
	if len(name) > MaxHeaderName {
		return fmt.Errorf("header name of %d characters is over the maximum of %d", len(name), MaxHeaderName)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("header name %q: %q is not allowed in a header name", name, name[i])
		}
	}
	return nil
}

// CheckHeaderValue reports whether v may be sent as a header value: no
// control character but tab (CR, LF and NUL would split or end the header),
// at most MaxHeaderValue bytes.
func CheckHeaderValue(v string) error {
	if len(v) > MaxHeaderValue {
		return fmt.Errorf("value of %d bytes is over the maximum of %d", len(v), MaxHeaderValue)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("value contains the control character %q", c)
		}
	}
	return nil
}

// CheckHeader checks one custom header: its name, its value, and that
// hookgate or the HTTP client does not own it.
func CheckHeader(name, value string) error {
	if err := CheckHeaderName(name); err != nil {
		return err
	}
	if reservedHeaders[strings.ToLower(name)] {
		return fmt.Errorf("header %s is set by hookgate and cannot be configured", name)
	}
	if err := CheckHeaderValue(value); err != nil {
		return fmt.Errorf("header %s: %w", name, err)
	}
	if value == Redacted {
		return fmt.Errorf("header %s: %q stands for a stored value, and there is none to keep", name, Redacted)
	}
	return nil
}

// checkHeaders checks a set of custom headers.
func checkHeaders(field string, h map[string]string) error {
	if len(h) > MaxHeaders {
		return invalid(field, "%d headers is over the maximum of %d", len(h), MaxHeaders)
	}
	for k, v := range h {
		if err := CheckHeader(k, v); err != nil {
			return &InvalidError{Field: field, Err: err}
		}
	}
	return nil
}

// checkHeaderName checks a field that names a header (idempotency_header,
// secret_header).
func checkHeaderName(field, name string) error {
	if name == "" {
		return nil
	}
	if err := CheckHeaderName(name); err != nil {
		return &InvalidError{Field: field, Err: err}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// SensitiveHeader reports whether a header's value is a credential that the
// API must not show: Authorization, Proxy-Authorization, Cookie, X-Api-Key,
// and any name containing "token", "secret", "key" or "auth" (any case).
func SensitiveHeader(name string) bool {
	if !isASCII(name) {
		n := strings.ToLower(name)
		return slices.Contains(sensitiveNames, n) || slices.ContainsFunc(sensitiveParts, func(s string) bool { return strings.Contains(n, s) })
	}
	// (Every attempt's headers pass here: ASCII names, the only valid
	// ones, are compared without a lower-case copy.)
	for _, s := range sensitiveNames {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	for _, s := range sensitiveParts {
		if containsFoldASCII(name, s) {
			return true
		}
	}
	return false
}

// sensitiveNames are credentials' header names; sensitiveParts make a
// header name a credential's wherever they appear in it. Both lower case.
var (
	sensitiveNames = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
	sensitiveParts = []string{"token", "secret", "key", "auth", "password", "session"}
)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// containsFoldASCII reports whether s contains lower, an ASCII lower-case
// word, in any case.
func containsFoldASCII(s, lower string) bool {
	for i := 0; i+len(lower) <= len(s); i++ {
		j := 0
		for ; j < len(lower); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == len(lower) {
			return true
		}
	}
	return false
}

// RedactHeaders returns h with the values of sensitive headers replaced by
// Redacted (h itself when it has none).
func RedactHeaders(h map[string]string) map[string]string {
	var out map[string]string
	for k := range h {
		if SensitiveHeader(k) {
			out = make(map[string]string, len(h))
			break
		}
	}
	if out == nil {
		return h
	}
	for k, v := range h {
		if SensitiveHeader(k) {
			v = Redacted
		}
		out[k] = v
	}
	return out
}

// RestoreRedacted replaces in h the values sent back as Redacted with the
// stored values of the same headers (names compared case-insensitively). A
// Redacted value with no stored value is left, and refused by validation.
func RestoreRedacted(h, stored map[string]string) {
	for k, v := range h {
		if v != Redacted {
			continue
		}
		for sk, sv := range stored {
			if strings.EqualFold(sk, k) {
				h[k] = sv
				break
			}
		}
	}
}
