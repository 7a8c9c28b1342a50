package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidURL is wrapped by CheckURL errors about the URL itself (as
// opposed to the address it points at, which wrap ErrBlocked).
var ErrInvalidURL = errors.New("netguard: invalid target URL")

// CheckURL validates a target URL when it is configured (Caddyfile or API):
// the scheme must be http or https, a host must be present and any port must
// be 1–65535. Credentials in the URL (https://user:pass@host/) are permitted;
// the HTTP client sends them as basic auth.
//
// If the host is an IP literal it is decided now with Check. That includes
// IPv6 literals ("[::ffff:127.0.0.1]") and the legacy inet_aton forms some
// resolvers accept for IPv4 — "2130706433", "0x7f000001", "017700000001",
// "127.1", "0x7f.0.0.1", with an optional trailing dot. A host whose last
// label is numeric but is not a valid IPv4 address ("1.2.3.256", "08") is
// refused as ambiguous, as WHATWG URL parsers do. Other hostnames are not
// resolved here (no DNS traffic): they are decided at dial time by Control.
func (g *Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, which may hold credentials: report the
		// underlying reason only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrInvalidURL, u.Redacted())
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return fmt.Errorf("%w: %q has no scheme (want http or https)", ErrInvalidURL, u.Redacted())
	default:
		return fmt.Errorf("%w: scheme %q is not allowed (want http or https)", ErrInvalidURL, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: %q has no host", ErrInvalidURL, u.Redacted())
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port %q out of range", ErrInvalidURL, p)
		}
	}
	ip, isIP, err := hostIP(host)
	if err != nil {
		return fmt.Errorf("%w: host %q: %v", ErrInvalidURL, host, err)
	}
	if !isIP {
		return nil // a hostname: decided at dial time by Control
	}
	return g.Check(ip)
}

// hostIP reports whether host (as returned by url.URL.Hostname) is an IP
// literal, in any form a resolver might accept, and returns it.
func hostIP(host string) (netip.Addr, bool, error) {
	if strings.Contains(host, ":") { // IPv6 literal (brackets already removed)
		a, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, false, errors.New("invalid IPv6 literal")
		}
		return a, true, nil
	}
	h := strings.TrimSuffix(host, ".")
	if h == "" {
		return netip.Addr{}, false, errors.New("empty host")
	}
	last := h[strings.LastIndexByte(h, '.')+1:]
	if !numericLabel(last) {
		return netip.Addr{}, false, nil // a hostname
	}
	a, ok := parseInetAton(h)
	if !ok {
		return netip.Addr{}, false, errors.New("numeric host is not a valid IPv4 address")
	}
	return a, true, nil
}

// numericLabel reports whether a DNS label looks like a number: decimal
// digits, or "0x"/"0X" followed by hex digits (WHATWG "ends in a number").
func numericLabel(s string) bool {
	if s == "" {
		return false
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		for i := 2; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseInetAton parses the IPv4 forms accepted by inet_aton(3) and the WHATWG
// URL host parser: one to four dot-separated parts, each decimal, octal
// (leading 0) or hexadecimal (leading 0x); the last part fills all remaining
// bytes (a, a.b with b 24-bit, a.b.c with c 16-bit, a.b.c.d).
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals [4]uint64
	for i, p := range parts {
		v, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	n := len(parts)
	for i := 0; i < n-1; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
	}
	lastBits := uint(8 * (5 - n))
	if vals[n-1] >= 1<<lastBits {
		return netip.Addr{}, false
	}
	var v uint32
	for i := 0; i < n-1; i++ {
		v |= uint32(vals[i]) << (24 - 8*uint(i))
	}
	v |= uint32(vals[n-1])
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseAtonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base, digits := 10, p
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, digits = 16, p[2:]
		if digits == "" {
			return 0, true // "0x" is 0, as in WHATWG and inet_aton
		}
	case len(p) >= 2 && p[0] == '0':
		base, digits = 8, p[1:]
	}
	if len(digits) > 32 {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil || v > 0xffffffff {
		return 0, false
	}
	return v, true
}
