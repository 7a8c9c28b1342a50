package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// hdrRequest carries the stored request of a fallback event: its request
// line and headers in HTTP/1.1 form, base64-encoded, so that every byte of a
// header value survives.
const hdrRequest = "Hookgate-Request"

// Request is the request a passthrough workflow passed on to the app, kept
// when the app did not take it: a fallback event delivers it again, to the
// workflow's fallback. The event's Data is its body.
type Request struct {
	// Method of the request.
	Method string
	// Path is the escaped path the request was passed on with (the
	// workflow URL without the key), and Query its raw query.
	Path  string
	Query string
	// Header holds the headers passed on, without the key and without
	// hop-by-hop headers.
	Header http.Header
}

// FallbackStatus reports whether status, answered by the app behind a
// passthrough workflow (or by the proxy in front of it), means the app did
// not take the request: 502, 503 or 504.
func FallbackStatus(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// hopHeaders are the hop-by-hop headers (RFC 9110 7.6.1), and the ones the
// next hop computes itself: they are not stored.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "Content-Length",
}

// CaptureRequest keeps r, as it is about to be passed on to the app, for a
// later delivery to the fallback: the method, path, query and headers, with
// the hop-by-hop headers (and those named in Connection) left out, and the
// X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host a proxy would add.
// The caller has removed the key already.
func CaptureRequest(r *http.Request) *Request {
	h := r.Header.Clone()
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", ip)
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	if r.Host != "" {
		h.Set("X-Forwarded-Host", r.Host)
	}
	return &Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: h}
}

// URI is the request's path and query.
func (q *Request) URI() string {
	if q.Query == "" {
		return q.Path
	}
	return q.Path + "?" + q.Query
}

// encode writes the request line and headers in HTTP/1.1 form, base64.
func (q *Request) encode() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", q.Method, q.URI())
	_ = q.Header.Write(&b)
	b.WriteString("\r\n")
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// decodeRequest reads what encode wrote.
func decodeRequest(s string) (*Request, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("stored request: %w", err)
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, fmt.Errorf("stored request: %w", err)
	}
	return &Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header}, nil
}

// sendRequest delivers a fallback event: the stored request, its method,
// headers and body as they were passed on, to the fallback's base URL joined
// with the stored path and query. The fallback's host is dialed and named in
// Host; the original host is in X-Forwarded-Host.
func (s *Sender) sendRequest(ctx context.Context, dest *destination.Destination, ev *Event) *Result {
	start := time.Now()
	res := &Result{}
	ctx, cancel := context.WithTimeout(ctx, dest.Timeout)
	defer cancel()
	q := ev.Request
	req, err := http.NewRequestWithContext(ctx, q.Method, dest.URL+q.URI(), bytes.NewReader(ev.Data))
	if err != nil {
		res.Err = err
		return res
	}
	req.Header = q.Header.Clone()
	return s.do(req, dest, res, start)
}
