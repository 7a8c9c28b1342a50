package netguard

// SAFETY: these tests never send traffic outside 127.0.0.0/8. Decisions on
// other addresses are tested by calling Check, CheckURL and Control directly
// (Control with a nil RawConn: nothing is dialled). The only dials go to
// httptest servers or listeners bound on 127.0.0.1 / 127.0.0.2, and every
// URL handed to a client is first asserted to be on 127.0.0.0/8.

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustAllow(t *testing.T, entries ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseAllow(entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	none := New(nil)
	tests := []struct {
		addr   string
		reason string // "" = allowed
	}{
		{"169.254.169.254", "cloud metadata"},
		{"169.254.1.1", "link-local"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "reserved"},
		{"192.0.0.8", "reserved"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"::ffff:10.1.2.3", "private"},
		{"::127.0.0.1", "reserved"},
		{"fd00:ec2::254", "cloud metadata"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"ff02::1", "multicast"},
		{"64:ff9b::7f00:1", "loopback (via NAT64)"},
		{"64:ff9b::a9fe:a9fe", "cloud metadata (via NAT64)"},
		{"2002:7f00:1::1", "loopback (via 6to4)"},
		{"2002:a00:1::", "private (via 6to4)"},
		{"2001:db8::1", "documentation"},
		{"2001:0:4136:e378::1", "Teredo"},
		{"100::1", "reserved"},
		{"4000::1", "not global unicast"},

		// Public: allowed decisions only — never dialled.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
		{"2002:808:808::1", ""},
		{"2606:4700:4700::1111", ""},
		{"2a00:1450:4001:80b::200e", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := none.Check(netip.MustParseAddr(tt.addr))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tt.addr, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) = nil, want blocked (%s)", tt.addr, tt.reason)
			}
			var be *BlockedError
			if !errors.Is(err, ErrBlocked) || !errors.As(err, &be) {
				t.Fatalf("error %v is not a *BlockedError wrapping ErrBlocked", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.reason) || !strings.Contains(msg, netip.MustParseAddr(tt.addr).String()) {
				t.Fatalf("error %q does not name the address and %q", msg, tt.reason)
			}
		})
	}
	if err := (*Guard)(nil).Check(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatal("nil guard allowed loopback")
	}
	if err := none.Check(netip.Addr{}); err == nil {
		t.Fatal("invalid address allowed")
	}
}

func TestAllowlist(t *testing.T) {
	tests := []struct {
		name  string
		allow []string
		addr  string
		ok    bool
	}{
		{"exact host allowed", []string{"127.0.0.1/32"}, "127.0.0.1", true},
		{"neighbour refused", []string{"127.0.0.1/32"}, "127.0.0.2", false},
		{"mapped form of allowed host", []string{"127.0.0.1/32"}, "::ffff:127.0.0.1", true},
		{"other loopback family refused", []string{"127.0.0.1/32"}, "::1", false},
		{"private range", []string{"10.0.0.0/8"}, "10.20.30.40", true},
		{"outside private range", []string{"10.0.0.0/8"}, "192.168.1.1", false},
		{"single v6 address", []string{"::1"}, "::1", true},
		{"single v4 address", []string{"127.0.0.1"}, "127.0.0.1", true},
		{"mapped allow entry", []string{"::ffff:192.168.0.0/112"}, "192.168.4.5", true},
		{"metadata not implied by loopback", []string{"127.0.0.0/8"}, "169.254.169.254", false},
		{"NAT64 to allowed v4", []string{"10.0.0.0/8"}, "64:ff9b::a00:1", true},
		{"ULA range", []string{"fd00::/8"}, "fd12::1", true},
		{"public always allowed", []string{"127.0.0.1/32"}, "8.8.8.8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(mustAllow(t, tt.allow...))
			err := g.Check(netip.MustParseAddr(tt.addr))
			if (err == nil) != tt.ok {
				t.Fatalf("allow %v: Check(%s) = %v, want ok=%v", tt.allow, tt.addr, err, tt.ok)
			}
		})
	}
}

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: []string{"127.0.0.1/32", "10.0.0.0/8", "::1"}, want: []string{"127.0.0.1/32", "10.0.0.0/8", "::1/128"}},
		{in: []string{" 192.168.1.7 "}, want: []string{"192.168.1.7/32"}},
		{in: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}},
		{in: []string{"::ffff:10.0.0.0/104"}, want: []string{"10.0.0.0/8"}},
		{in: nil, want: []string{}},
		{in: []string{"127.0.0.1/32", "localhost"}, wantErr: `"localhost"`},
		{in: []string{"10.0.0.0/33"}, wantErr: `"10.0.0.0/33"`},
		{in: []string{"256.0.0.1"}, wantErr: `"256.0.0.1"`},
		{in: []string{""}, wantErr: `""`},
		{in: []string{"fe80::1%eth0"}, wantErr: `"fe80::1%eth0"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			got, err := ParseAllow(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("got %v want %v", s, tt.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	none := New(nil)
	loop1 := New(mustAllow(t, "127.0.0.1/32"))
	tests := []struct {
		name    string
		g       *Guard
		url     string
		wantErr error // nil = accepted
		want    string
	}{
		{"metadata", none, "http://169.254.169.254/latest/meta-data/", ErrBlocked, "cloud metadata"},
		{"private", none, "http://10.0.0.1/", ErrBlocked, "private"},
		{"private 192.168", none, "https://192.168.1.1:8443/hook", ErrBlocked, "private"},
		{"CGNAT", none, "http://100.64.0.1/", ErrBlocked, "CGNAT"},
		{"v6 loopback", none, "http://[::1]:8080/", ErrBlocked, "loopback"},
		{"v4-mapped loopback", none, "http://[::ffff:127.0.0.1]/", ErrBlocked, "loopback"},
		{"v4-mapped metadata", none, "http://[::ffff:169.254.169.254]/", ErrBlocked, "cloud metadata"},
		{"AWS v6 metadata", none, "http://[fd00:ec2::254]/", ErrBlocked, "cloud metadata"},
		{"decimal", none, "http://2130706433/", ErrBlocked, "127.0.0.1"},
		{"hex", none, "http://0x7f000001/", ErrBlocked, "127.0.0.1"},
		{"octal", none, "http://017700000001/", ErrBlocked, "127.0.0.1"},
		{"short form", none, "http://127.1/", ErrBlocked, "127.0.0.1"},
		{"hex first octet", none, "http://0x7f.0.0.1/", ErrBlocked, "127.0.0.1"},
		{"three parts", none, "http://169.254.43518/", ErrBlocked, "169.254.169.254"},
		{"upper hex", none, "http://0X7F000001/", ErrBlocked, "127.0.0.1"},
		{"trailing dot", none, "http://127.0.0.1./", ErrBlocked, "loopback"},
		{"percent-encoded host", none, "http://%31%32%37.0.0.1/", ErrInvalidURL, "escape"},
		{"unspecified", none, "http://0.0.0.0:80/", ErrBlocked, "unspecified"},
		{"zero", none, "http://0/", ErrBlocked, "unspecified"},
		{"userinfo confusion", none, "http://8.8.8.8@127.0.0.1/", ErrBlocked, "loopback"},
		{"v6 link-local zone", none, "http://[fe80::1%25eth0]/", ErrBlocked, "link-local"},
		{"allowlisted loopback", loop1, "http://127.0.0.1:3000/provisioned", nil, ""},
		{"allowlist neighbour", loop1, "http://127.0.0.2:3000/", ErrBlocked, "loopback"},
		{"allowlisted decimal form", loop1, "http://2130706433/", nil, ""},

		{"public IP", none, "https://8.8.8.8/hook", nil, ""},
		{"public v6", none, "https://[2606:4700:4700::1111]/hook", nil, ""},
		{"hostname decided at dial", none, "https://hooks.example.com/x?y=1", nil, ""},
		{"localhost decided at dial", none, "http://localhost:3000/", nil, ""},
		{"numeric-looking hostname", none, "http://127.0.0.1.nip.io/", nil, ""},
		{"credentials allowed", none, "https://user:pa55@hooks.example.com/", nil, ""},

		{"bad octet", none, "http://1.2.3.256/", ErrInvalidURL, "not a valid IPv4"},
		{"too many parts", none, "http://1.2.3.4.5/", ErrInvalidURL, "not a valid IPv4"},
		{"bad octal", none, "http://08/", ErrInvalidURL, "not a valid IPv4"},
		{"decimal overflow", none, "http://4294967296/", ErrInvalidURL, "not a valid IPv4"},
		{"ftp scheme", none, "ftp://example.com/", ErrInvalidURL, "scheme"},
		{"file scheme", none, "file:///etc/passwd", ErrInvalidURL, "scheme"},
		{"gopher scheme", none, "gopher://127.0.0.1:6379/_", ErrInvalidURL, "scheme"},
		{"no scheme", none, "example.com/hook", ErrInvalidURL, "scheme"},
		{"no host", none, "http:///path", ErrInvalidURL, "no host"},
		{"opaque", none, "http:example.com", ErrInvalidURL, "absolute"},
		{"port zero", none, "http://example.com:0/", ErrInvalidURL, "port"},
		{"port too big", none, "http://example.com:70000/", ErrInvalidURL, "port"},
		{"unparseable", none, "http://[::1/", ErrInvalidURL, ""},
		{"empty", none, "", ErrInvalidURL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.CheckURL(tt.url)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want ok", tt.url, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckURL(%q) = %v, want %v", tt.url, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckURL(%q) = %q, want it to mention %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestCheckURLHidesPassword(t *testing.T) {
	for _, raw := range []string{
		"ftp://user:hunter2@example.com/",
		"http://user:hunter2@[::1/",
		"http://user:hunter2@10.0.0.1/",
	} {
		err := New(nil).CheckURL(raw)
		if err == nil {
			t.Fatalf("CheckURL(%q) = nil", raw)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
}

func TestParseInetAton(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = invalid
	}{
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0177.0.0.01", "127.0.0.1"},
		{"10.0x10203", "10.1.2.3"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"256.1", ""},
		{"1.16777216", ""},
		{"1.2.65536", ""},
		{"1..2", ""},
		{"09", ""},
		{"0xg", ""},
		{"1.2.3.4.5", ""},
		{"+1", ""},
		{"1_000", ""},
	}
	for _, tt := range tests {
		a, ok := parseInetAton(tt.in)
		switch {
		case tt.want == "" && ok:
			t.Errorf("parseInetAton(%q) = %s, want invalid", tt.in, a)
		case tt.want != "" && (!ok || a.String() != tt.want):
			t.Errorf("parseInetAton(%q) = %s, %v; want %s", tt.in, a, ok, tt.want)
		}
	}
}

// TestControl calls Control directly with fake dial addresses and a nil
// RawConn: decisions only, nothing is dialled.
func TestControl(t *testing.T) {
	none := New(nil)
	loop1 := New(mustAllow(t, "127.0.0.1/32"))
	tests := []struct {
		name    string
		g       *Guard
		network string
		address string
		ok      bool
	}{
		{"metadata", none, "tcp4", "169.254.169.254:80", false},
		{"private", none, "tcp4", "10.0.0.1:443", false},
		{"private 192.168", none, "tcp4", "192.168.1.1:443", false},
		{"CGNAT", none, "tcp4", "100.64.0.1:443", false},
		{"v6 loopback", none, "tcp6", "[::1]:8080", false},
		{"v4-mapped loopback", none, "tcp6", "[::ffff:127.0.0.1]:80", false},
		{"v4-mapped metadata", none, "tcp6", "[::ffff:169.254.169.254]:80", false},
		{"AWS v6 metadata", none, "tcp6", "[fd00:ec2::254]:80", false},
		{"link-local with zone", none, "tcp6", "[fe80::1%eth0]:80", false},
		{"unspecified", none, "tcp4", "0.0.0.0:80", false},
		{"loopback without allow", none, "tcp4", "127.0.0.1:80", false},
		{"allowlisted", loop1, "tcp4", "127.0.0.1:80", true},
		{"allowlist neighbour", loop1, "tcp4", "127.0.0.2:80", false},
		{"public", none, "tcp4", "8.8.8.8:443", true},
		{"public v6", none, "tcp6", "[2606:4700:4700::1111]:443", true},
		{"plain tcp network", none, "tcp", "8.8.8.8:443", true},
		{"udp refused", none, "udp4", "8.8.8.8:53", false},
		{"unix refused", none, "unix", "/var/run/docker.sock", false},
		{"hostname refused", none, "tcp", "example.com:80", false},
		{"no port", none, "tcp4", "8.8.8.8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Control(tt.network, tt.address, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("Control(%s, %s) = %v, want ok=%v", tt.network, tt.address, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBlocked) {
				t.Fatalf("error %v does not wrap ErrBlocked", err)
			}
		})
	}
}

func TestTransportSettings(t *testing.T) {
	tr := New(nil).Transport()
	if tr.MaxIdleConnsPerHost != 256 {
		t.Errorf("MaxIdleConnsPerHost = %d, want 256", tr.MaxIdleConnsPerHost)
	}
	if tr.MaxIdleConns < tr.MaxIdleConnsPerHost {
		t.Errorf("MaxIdleConns %d < MaxIdleConnsPerHost", tr.MaxIdleConns)
	}
	if tr.DialContext == nil || tr.TLSHandshakeTimeout == 0 || tr.IdleConnTimeout == 0 {
		t.Error("Transport lacks a dialer or timeouts")
	}
	if tr.MaxResponseHeaderBytes <= 0 {
		t.Error("Transport does not bound a response's header")
	}
	if d := New(nil).Dialer(); d.Control == nil || d.Timeout == 0 {
		t.Error("Dialer lacks Control or a timeout")
	}
	if New(nil).Client().CheckRedirect == nil {
		t.Error("Client follows redirects")
	}
}

// loopbackURL fails the test unless raw points at 127.0.0.0/8 — the only
// addresses these tests may send traffic to.
func loopbackURL(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil || !a.Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(a) {
		t.Fatalf("SAFETY: refusing to send traffic to %s (not 127.0.0.0/8)", raw)
	}
	return raw
}

func newLoopbackServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no 127.0.0.1 listener: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	loopbackURL(t, srv.URL)
	return srv
}

// TestClientReachesAllowlistedLoopback is an end-to-end dial to a server on
// 127.0.0.1 with allow = 127.0.0.1/32.
func TestClientReachesAllowlistedLoopback(t *testing.T) {
	srv := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong")
	}))
	g := New(mustAllow(t, "127.0.0.1/32"))
	if err := g.CheckURL(srv.URL); err != nil {
		t.Fatalf("CheckURL(%s) = %v", srv.URL, err)
	}
	c := g.Client()
	c.Timeout = 5 * time.Second
	defer c.CloseIdleConnections()
	resp, err := c.Post(loopbackURL(t, srv.URL+"/hook"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("allowlisted request failed: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "pong" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}

	// The same server is refused without the allowlist.
	c2 := New(nil).Client()
	c2.Timeout = 5 * time.Second
	defer c2.CloseIdleConnections()
	if resp, err := c2.Get(loopbackURL(t, srv.URL)); err == nil {
		resp.Body.Close()
		t.Fatal("request to loopback succeeded without an allowlist")
	} else if !errors.Is(err, ErrBlocked) {
		t.Fatalf("error %v does not wrap ErrBlocked", err)
	}
}

// TestClientRefusedBeforeConnecting: with allow = 127.0.0.1/32, a request to
// a listener on 127.0.0.2 is refused by Control before any connection is
// made — the listener accepts nothing.
func TestClientRefusedBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2 (not Linux?): %v", err)
	}
	defer ln.Close()
	target := loopbackURL(t, "http://"+ln.Addr().String()+"/hook")

	g := New(mustAllow(t, "127.0.0.1/32"))
	if err := g.CheckURL(target); !errors.Is(err, ErrBlocked) {
		t.Fatalf("CheckURL(%s) = %v, want ErrBlocked", target, err)
	}
	c := g.Client()
	c.Timeout = 2 * time.Second // a broken guard must fail the test, not hang it
	defer c.CloseIdleConnections()
	resp, err := c.Post(target, "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("request to 127.0.0.2 succeeded")
	}
	if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "127.0.0.2") {
		t.Fatalf("error %v: want ErrBlocked naming 127.0.0.2", err)
	}

	// A completed TCP handshake would sit in the accept queue even after the
	// client gave up, so Accept with a deadline proves nothing connected.
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err == nil {
		conn.Close()
		t.Fatal("listener on 127.0.0.2 received a connection; Control did not refuse the dial")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Accept: %v, want a timeout", err)
	}
}

// TestClientDoesNotFollowRedirects: a 302 to another path on the same
// 127.0.0.1 server is returned as is.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
	})
	srv := newLoopbackServer(t, mux)
	c := New(mustAllow(t, "127.0.0.1/32")).Client()
	c.Timeout = 5 * time.Second
	defer c.CloseIdleConnections()
	resp, err := c.Post(loopbackURL(t, srv.URL+"/start"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/elsewhere" {
		t.Fatalf("Location %q", loc)
	}
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
}

func TestSetAllowSwapsDecision(t *testing.T) {
	g := New(nil)
	lo := netip.MustParseAddr("127.0.0.1")
	if g.Check(lo) == nil {
		t.Fatal("loopback allowed without allowlist")
	}
	g.SetAllow([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	if err := g.Check(lo); err != nil {
		t.Fatalf("after SetAllow: %v", err)
	}
	g.SetAllow(nil)
	if g.Check(lo) == nil {
		t.Fatal("loopback still allowed after clearing")
	}
}
