// Package h1 is a lean HTTP/1.1 client transport for webhook delivery.
//
// net/http's Transport runs two goroutines a connection and hands every
// request and response between them over channels; for a delivery (one
// small POST, one small answer) that machinery costs about as much as the
// request itself. Transport here writes the request and reads the answer on
// the caller's goroutine, over a pool of kept-alive connections, with
// net/http's own wire format code (Request.Write, ReadResponse). It speaks
// HTTP/1.1 only (over TLS for https), follows no proxy, and leaves
// redirects to the http.Client that uses it.
package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the zero Transport's limits.
const (
	DefaultMaxIdleConnsPerHost    = 256
	DefaultMaxIdleConns           = 1024
	DefaultIdleConnTimeout        = 90 * time.Second
	DefaultTLSHandshakeTimeout    = 10 * time.Second
	DefaultMaxResponseHeaderBytes = 1 << 20
)

// Transport is an http.RoundTripper speaking HTTP/1.1 over kept-alive
// connections. Its zero value is not usable: DialContext is required. It is
// safe for concurrent use; share one, as each has its own pool.
type Transport struct {
	// DialContext opens the TCP connections (the SSRF guard's dialer).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSClientConfig is the base of every https connection's config
	// (ServerName is set to the URL's host, NextProtos to http/1.1).
	TLSClientConfig *tls.Config
	// TLSHandshakeTimeout bounds a TLS handshake. Default 10 s.
	TLSHandshakeTimeout time.Duration
	// IdleConnTimeout is how long a connection is kept idle. Default 90 s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept to one host.
	// Default 256.
	MaxIdleConnsPerHost int
	// MaxIdleConns bounds the idle connections kept in all. Default 1024.
	MaxIdleConns int
	// MaxResponseHeaderBytes bounds a response's status line and header.
	// Default 1 MiB.
	MaxResponseHeaderBytes int64

	mu        sync.Mutex
	idle      map[string][]*conn // by scheme://host:port, most recent last
	idleCount int
	lastPrune time.Time
}

var _ http.RoundTripper = (*Transport)(nil)

// conn is one connection with its buffers.
type conn struct {
	net.Conn
	key    string
	r      *countingReader
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// countingReader reads the connection within a limit (the response
// header's, while it is read) and counts what it read (a failure before any
// byte of an answer is safe to retry on another connection).
type countingReader struct {
	c     net.Conn
	limit int64 // bytes left; < 0: no limit
	read  int64
}

var errHeaderTooLarge = errors.New("h1: response header too large")

func (r *countingReader) Read(p []byte) (int, error) {
	if r.limit == 0 {
		return 0, errHeaderTooLarge
	}
	if r.limit > 0 && int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.c.Read(p)
	r.read += int64(n)
	if r.limit > 0 {
		r.limit -= int64(n)
	}
	return n, err
}

// RoundTrip sends req and returns its answer. The answer's body must be
// read to its end or closed; a connection whose answer was read to its end
// goes back to the pool. A request sent on a kept-alive connection that
// fails before any byte of an answer (the server had closed it) is sent
// once more on a new connection when its body can be read again, and the
// other idle connections to that server are dropped.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("h1: nil request URL")
	}
	switch req.URL.Scheme {
	case "http", "https":
	default:
		closeBody(req)
		return nil, fmt.Errorf("h1: unsupported scheme %q", req.URL.Scheme)
	}
	if req.URL.Host == "" {
		closeBody(req)
		return nil, errors.New("h1: no host in request URL")
	}
	key := req.URL.Scheme + "://" + hostPort(req.URL.Scheme, req.URL.Host)
	ctx := req.Context()
	for retried := false; ; retried = true {
		var c *conn
		reused := false
		if !retried {
			c = t.take(key)
			reused = c != nil
		}
		if c == nil {
			var err error
			if c, err = t.dial(ctx, key, req); err != nil {
				closeBody(req)
				return nil, err
			}
		}
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		if retried || !reused || c.r.read > 0 || req.GetBody == nil || ctx.Err() != nil {
			return nil, err
		}
		// The server closed this kept-alive connection; the others it
		// kept idle as long or longer (taken last, it is the freshest)
		// are most likely closed too: the request goes out again on a new
		// connection, and they are dropped.
		t.dropIdle(key)
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		again := *req
		again.Body = body
		req = &again
	}
}

// exchange writes req on c and reads its answer.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request) (*http.Response, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	} else {
		_ = c.SetDeadline(time.Time{})
	}
	// A cancelled context ends whatever the connection is doing.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The connection's deadline is the context's: it may pass just
		// before the context says so.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	c.r.read = 0
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	var resp *http.Response
	for {
		c.r.limit = t.maxHeader()
		var err error
		resp, err = http.ReadResponse(c.br, req)
		c.r.limit = -1
		if err != nil {
			return fail(err)
		}
		// 1xx answers before the final one are skipped (not 101: this
		// transport upgrades nothing).
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		_ = resp.Body.Close()
	}
	b := &body{rc: resp.Body, c: c, t: t, stop: stop, keep: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

func (t *Transport) maxHeader() int64 {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

// body is an answer's body: read to its end, its connection goes back to
// the pool; closed before, the connection is closed.
type body struct {
	rc   io.ReadCloser
	c    *conn
	t    *Transport
	stop func() bool
	keep bool
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish releases the connection: back to the pool when the body was read
// to its end and the connection may be kept, closed otherwise.
func (b *body) finish(atEOF bool) {
	b.done = true
	// A context ended meanwhile has set, or is setting, the connection's
	// deadline in the past: the connection is not kept then.
	stopped := b.stop()
	if atEOF && b.keep && stopped {
		b.t.put(b.c)
		return
	}
	_ = b.c.Close() // first: a body closed early is not drained
	_ = b.rc.Close()
}

// dropIdle closes the idle connections of key.
func (t *Transport) dropIdle(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.idle[key] {
		_ = c.Close()
		t.idleCount--
	}
	delete(t.idle, key)
}

// take pops the most recently used idle connection of key that has not
// been idle too long.
func (t *Transport) take(key string) *conn {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[key]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		t.idleCount--
		if now.Sub(c.idleAt) < t.idleTimeout() {
			t.setIdle(key, list)
			return c
		}
		_ = c.Close()
	}
	t.setIdle(key, list)
	return nil
}

func (t *Transport) setIdle(key string, list []*conn) {
	if len(list) == 0 {
		delete(t.idle, key)
		return
	}
	t.idle[key] = list
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout > 0 {
		return t.IdleConnTimeout
	}
	return DefaultIdleConnTimeout
}

// put keeps c for its next request, within the idle bounds; from time to
// time it closes the connections idle for too long.
func (t *Transport) put(c *conn) {
	now := time.Now()
	_ = c.SetDeadline(time.Time{})
	c.idleAt = now
	perHost, all := t.MaxIdleConnsPerHost, t.MaxIdleConns
	if perHost <= 0 {
		perHost = DefaultMaxIdleConnsPerHost
	}
	if all <= 0 {
		all = DefaultMaxIdleConns
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastPrune) > t.idleTimeout()/2 {
		t.lastPrune = now
		t.pruneLocked(now)
	}
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	if len(t.idle[c.key]) >= perHost || t.idleCount >= all {
		_ = c.Close()
		return
	}
	t.idle[c.key] = append(t.idle[c.key], c)
	t.idleCount++
}

// pruneLocked closes the connections idle for longer than the idle
// timeout.
func (t *Transport) pruneLocked(now time.Time) {
	for key, list := range t.idle {
		kept := list[:0]
		for _, c := range list {
			if now.Sub(c.idleAt) < t.idleTimeout() {
				kept = append(kept, c)
				continue
			}
			_ = c.Close()
			t.idleCount--
		}
		clear(list[len(kept):])
		t.setIdle(key, kept)
	}
}

// CloseIdleConnections closes the connections kept idle.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, list := range t.idle {
		for _, c := range list {
			_ = c.Close()
		}
		delete(t.idle, key)
	}
	t.idleCount = 0
}

// dial opens a connection for key (TLS for https).
func (t *Transport) dial(ctx context.Context, key string, req *http.Request) (*conn, error) {
	if t.DialContext == nil {
		return nil, errors.New("h1: Transport without DialContext")
	}
	addr := hostPort(req.URL.Scheme, req.URL.Host)
	nc, err := t.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme == "https" {
		cfg := &tls.Config{}
		if t.TLSClientConfig != nil {
			cfg = t.TLSClientConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		timeout := t.TLSHandshakeTimeout
		if timeout <= 0 {
			timeout = DefaultTLSHandshakeTimeout
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	r := &countingReader{c: nc, limit: -1}
	return &conn{
		Conn: nc,
		key:  key,
		r:    r,
		br:   bufio.NewReaderSize(r, 4<<10),
		bw:   bufio.NewWriterSize(nc, 4<<10),
	}, nil
}

// hostPort is host with the scheme's default port when it names none.
func hostPort(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, port)
}

// closeBody closes a request's body that will not be sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
