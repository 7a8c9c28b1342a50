// Package netguard keeps outgoing webhook requests away from internal
// networks (SSRF protection).
//
// A Guard refuses every address that is not public unicast — loopback,
// private, link-local, cloud metadata, CGNAT, documentation, multicast,
// reserved and the like — unless an allowlist entry covers it. Target URLs
// are checked when they are configured (CheckURL), and, because a hostname
// can resolve to anything (including a different answer at dial time: DNS
// rebinding), the actual IP of every connection is checked again just before
// it is made (Control, used by Transport and Client).
package netguard

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/internal/h1"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by every refusal of the guard; test with errors.Is.
var ErrBlocked = errors.New("netguard: address not allowed")

// BlockedError reports an address the guard refuses and why.
type BlockedError struct {
	// Addr is the address that was refused, as given.
	Addr netip.Addr
	// Via is the IPv4 address embedded in Addr (IPv4-mapped, NAT64, 6to4)
	// that the decision was made on; zero when the decision was on Addr.
	Via netip.Addr
	// Reason names the range: "loopback", "private", "link-local",
	// "cloud metadata", "CGNAT", "unspecified", "multicast", "reserved", ...
	Reason string
}

// Error implements error.
func (e *BlockedError) Error() string {
	if e.Via.IsValid() {
		return fmt.Sprintf("netguard: address %s is not allowed: it embeds %s, which is %s", e.Addr, e.Via, e.Reason)
	}
	return fmt.Sprintf("netguard: address %s is not allowed: %s", e.Addr, e.Reason)
}

// Unwrap returns ErrBlocked.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

// Guard decides which addresses outgoing webhook requests may reach. The zero
// value and a nil *Guard refuse every non-public address. A Guard is safe
// for concurrent use; SetAllow swaps its allowlist atomically (a config
// reload), so clients built from it keep working.
type Guard struct {
	allow atomic.Pointer[[]netip.Prefix]
}

// New returns a guard that refuses non-public addresses except those inside
// allow. Prefixes are normalised (masked; IPv4-mapped IPv6 prefixes become
// IPv4 prefixes, as addresses are compared unmapped); invalid ones are ignored
// (use ParseAllow to validate user input).
func New(allow []netip.Prefix) *Guard {
	g := &Guard{}
	g.SetAllow(allow)
	return g
}

// SetAllow replaces the allowlist (normalised as in New).
func (g *Guard) SetAllow(allow []netip.Prefix) {
	list := make([]netip.Prefix, 0, len(allow))
	for _, p := range allow {
		if p, ok := normalise(p); ok {
			list = append(list, p)
		}
	}
	g.allow.Store(&list)
}

func (g *Guard) allowList() []netip.Prefix {
	if g == nil {
		return nil
	}
	if l := g.allow.Load(); l != nil {
		return *l
	}
	return nil
}

// Allow returns a copy of the guard's (normalised) allowlist.
func (g *Guard) Allow() []netip.Prefix {
	if g == nil {
		return nil
	}
	return append([]netip.Prefix(nil), g.allowList()...)
}

func normalise(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a := p.Addr().WithZone("")
	bits := p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			// Covers more than the mapped range; keep it as IPv6. It can only
			// match through its mapped part, which Check never sees, so it is
			// harmless but also useless.
			return netip.PrefixFrom(a, bits).Masked(), true
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}

// ParseAllow parses allowlist entries: CIDR prefixes ("10.0.0.0/8",
// "127.0.0.1/32", "fd00::/8") or single addresses ("127.0.0.1", "::1"),
// surrounding spaces ignored. Host bits of a prefix are cleared. Errors name
// the bad entry.
func ParseAllow(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		var (
			p   netip.Prefix
			err error
		)
		switch {
		case e == "":
			return nil, fmt.Errorf("netguard: allow entry %q: empty", raw)
		case strings.Contains(e, "/"):
			p, err = netip.ParsePrefix(e)
		default:
			var a netip.Addr
			a, err = netip.ParseAddr(e)
			if err == nil {
				if a.Zone() != "" {
					err = errors.New("zones are not allowed")
				} else {
					p = netip.PrefixFrom(a, a.BitLen())
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("netguard: allow entry %q: not an IP address or CIDR prefix: %v", raw, err)
		}
		p, _ = normalise(p)
		out = append(out, p)
	}
	return out, nil
}

func (g *Guard) allowed(a netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allowList() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Check returns nil if ip may be dialled, else a *BlockedError (wrapping
// ErrBlocked) naming the address and why. An address inside the allowlist is
// always permitted (IPv4-mapped IPv6 addresses are compared as IPv4).
// Addresses embedding an IPv4 address — IPv4-mapped (::ffff:a.b.c.d), NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) — are decided on that IPv4 address.
func (g *Guard) Check(ip netip.Addr) error {
	if !ip.IsValid() {
		return &BlockedError{Addr: ip, Reason: "invalid address"}
	}
	a := ip.WithZone("").Unmap()
	if g.allowed(a) {
		return nil
	}
	if a.Is4() {
		if r := reason4(a); r != "" {
			e := &BlockedError{Addr: ip, Reason: r}
			if ip.Is4In6() {
				e.Via = a
			}
			return e
		}
		return nil
	}
	if v4, kind, ok := embedded4(a); ok {
		if g.allowed(v4) {
			return nil
		}
		if r := reason4(v4); r != "" {
			return &BlockedError{Addr: ip, Via: v4, Reason: r + " (via " + kind + ")"}
		}
		return nil
	}
	if r := reason6(a); r != "" {
		return &BlockedError{Addr: ip, Reason: r}
	}
	return nil
}

type rangeReason struct {
	p      netip.Prefix
	reason string
}

func mustPrefixes(rs []struct{ cidr, reason string }) []rangeReason {
	out := make([]rangeReason, len(rs))
	for i, r := range rs {
		out[i] = rangeReason{netip.MustParsePrefix(r.cidr), r.reason}
	}
	return out
}

// blocked4 lists the non-public IPv4 ranges (IANA special-purpose registry,
// RFC 6890 and successors). Order matters only for the reason reported.
var blocked4 = mustPrefixes([]struct{ cidr, reason string }{
	{"0.0.0.0/32", "unspecified"},
	{"0.0.0.0/8", "reserved (this network)"},
	{"10.0.0.0/8", "private"},
	{"100.64.0.0/10", "CGNAT (shared address space)"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.169.254/32", "cloud metadata"},
	{"169.254.0.0/16", "link-local"},
	{"172.16.0.0/12", "private"},
	{"192.0.0.0/24", "reserved (IETF protocol assignments)"},
	{"192.0.2.0/24", "documentation"},
	{"192.88.99.0/24", "reserved (6to4 relay anycast)"},
	{"192.168.0.0/16", "private"},
	{"198.18.0.0/15", "reserved (benchmarking)"},
	{"198.51.100.0/24", "documentation"},
	{"203.0.113.0/24", "documentation"},
	{"224.0.0.0/4", "multicast"},
	{"255.255.255.255/32", "broadcast"},
	{"240.0.0.0/4", "reserved"},
})

// blocked6 lists the non-public IPv6 ranges checked before the catch-all
// "outside global unicast 2000::/3" rule.
var blocked6 = mustPrefixes([]struct{ cidr, reason string }{
	{"::/128", "unspecified"},
	{"::1/128", "loopback"},
	{"fd00:ec2::254/128", "cloud metadata"},
	{"fc00::/7", "private (unique local)"},
	{"fe80::/10", "link-local"},
	{"fec0::/10", "private (deprecated site-local)"},
	{"ff00::/8", "multicast"},
	{"::/96", "reserved (IPv4-compatible)"},
	{"::ffff:0:0:0/96", "reserved (IPv4-translated)"},
	{"64:ff9b:1::/48", "private (local-use NAT64)"},
	{"100::/64", "reserved (discard-only)"},
	{"2001::/32", "reserved (Teredo)"},
	{"2001:2::/48", "reserved (benchmarking)"},
	{"2001:10::/28", "reserved (ORCHID)"},
	{"2001:20::/28", "reserved (ORCHIDv2)"},
	{"2001:db8::/32", "documentation"},
	{"3fff::/20", "documentation"},
	{"5f00::/16", "reserved (SRv6 SIDs)"},
})

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixto4  = netip.MustParsePrefix("2002::/16")
	global6 = netip.MustParsePrefix("2000::/3")
)

func reason4(a netip.Addr) string {
	for _, r := range blocked4 {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	return ""
}

func reason6(a netip.Addr) string {
	for _, r := range blocked6 {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	if !global6.Contains(a) {
		return "reserved (not global unicast)"
	}
	return ""
}

// embedded4 returns the IPv4 address carried by a NAT64 (64:ff9b::/96, last
// 32 bits) or 6to4 (2002:AABB:CCDD::/48) IPv6 address.
func embedded4(a netip.Addr) (netip.Addr, string, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case sixto4.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	}
	return netip.Addr{}, "", false
}

// Control is a net.Dialer Control function. It runs after name resolution,
// just before each connection attempt, with the literal IP and port being
// dialled, and refuses (with a *BlockedError) any address Check refuses — so
// a hostname cannot reach an internal address by resolving to one, including
// by DNS rebinding between CheckURL and the dial. Only TCP is permitted. It
// never uses c, which may be nil.
func (g *Guard) Control(network, address string, c syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q is not permitted", ErrBlocked, network)
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dial address %q: %v", ErrBlocked, address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: dial address %q is not an IP address", ErrBlocked, address)
	}
	return g.Check(ip)
}

// Dialer returns the net.Dialer used by Transport: 10 s connect timeout,
// 30 s TCP keep-alive, and Control as its Control function.
func (g *Guard) Dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   g.Control,
	}
}

// Transport returns a new transport for webhook delivery: a lean HTTP/1.1
// one (package h1) whose dialer checks every connection with Control; it
// follows no proxy (a proxy would dial on our behalf, past the guard); it
// has connect (10 s), TLS handshake (10 s) and idle (90 s) timeouts, a 1 MiB
// bound on a response's header, and keeps up to 256 idle connections per
// host (1024 in all) for high-throughput delivery. Per-request deadlines are
// the caller's (use a context). Create one and share it: each Transport has
// its own pool.
func (g *Guard) Transport() *h1.Transport {
	return &h1.Transport{
		DialContext:            g.Dialer().DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// Client returns an *http.Client using a new Transport that never follows
// redirects: a 3xx response is returned to the caller as is (a redirect could
// otherwise point a delivery at any URL, and each hop would need its own
// check). It has no overall timeout; bound each request with a context.
func (g *Guard) Client() *http.Client {
	return &http.Client{
		Transport: g.Transport(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
