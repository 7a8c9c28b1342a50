package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTransport dials only 127.0.0.0/8, as every test here must.
func newTransport(t *testing.T) *Transport {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return nil, fmt.Errorf("test dialled %s", addr)
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// server is an httptest server counting the connections it accepted.
type server struct {
	*httptest.Server
	conns atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func post(t *testing.T, tr *Transport, ctx context.Context, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return tr.RoundTrip(req)
}

// postAtOnce makes n requests at the same time and returns their answers,
// bodies unread (each holds its connection until read).
func postAtOnce(t *testing.T, tr *Transport, url string, n int) []*http.Response {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var resps []*http.Response
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := post(t, tr, context.Background(), url, "{}")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			resps = append(resps, resp)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return resps
}

// idleCount is how many connections tr keeps idle.
func idleCount(tr *Transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.idleCount
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Answers of every framing are read whole, and a connection is reused when
// the answer allows it.
func TestAnswers(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		status    int
		body      string
		wantConns int64 // connections the server saw over three requests
	}{
		{"content-length", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			_, _ = w.Write(b)
		}, 200, `{"a":1}`, 1},
		{"chunked", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "part one,")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
		}, 200, "part one,part two", 1},
		{"no body (204)", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}, 204, "", 1},
		{"empty 200", func(w http.ResponseWriter, r *http.Request) {}, 200, "", 1},
		{"connection: close", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}, 200, "bye", 3},
		{"error status", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusServiceUnavailable)
		}, 503, "nope\n", 1},
		{"1xx before the answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "final")
		}, 200, "final", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.handler)
			tr := newTransport(t)
			for i := range 3 {
				resp, err := post(t, tr, context.Background(), s.URL+"/x", `{"a":1}`)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got := readAll(t, resp); resp.StatusCode != tc.status || got != tc.body {
					t.Fatalf("request %d: %d %q, want %d %q", i, resp.StatusCode, got, tc.status, tc.body)
				}
			}
			if n := s.conns.Load(); n != tc.wantConns {
				t.Errorf("the server saw %d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// The request arrives as sent: method, path, query, host, headers, body.
func TestRequestAsSent(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan string, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- string(b)
	})
	tr := newTransport(t)
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/hooks/a?x=1&y=2", strings.NewReader(`{"id":"evt_1"}`))
	req.Header.Set("Webhook-Id", "evt_1")
	req.Header.Set("User-Agent", "hookgate/test")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	r := <-got
	if r.Method != http.MethodPut || r.URL.Path != "/hooks/a" || r.URL.RawQuery != "x=1&y=2" ||
		r.Host != strings.TrimPrefix(s.URL, "http://") || r.Header.Get("Webhook-Id") != "evt_1" ||
		r.UserAgent() != "hookgate/test" || r.ContentLength != 14 || <-bodies != `{"id":"evt_1"}` {
		t.Errorf("server got %s %s %q host %q headers %v length %d", r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header, r.ContentLength)
	}
}

// A kept-alive connection the server closed meanwhile costs nothing: the
// request goes out again on a new connection.
func TestServerClosedIdleConnection(t *testing.T) {
	var served atomic.Int64
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.WriteString(w, "ok")
	})
	tr := newTransport(t)
	resp, err := post(t, tr, context.Background(), s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	s.CloseClientConnections() // the idle connection is closed by the server
	time.Sleep(20 * time.Millisecond)
	resp, err = post(t, tr, context.Background(), s.URL, "{}")
	if err != nil {
		t.Fatalf("after the server closed the idle connection: %v", err)
	}
	if got := readAll(t, resp); got != "ok" || served.Load() != 2 {
		t.Errorf("answer %q, served %d, want ok and 2", got, served.Load())
	}
}

// A request whose body cannot be read again is not sent twice.
func TestNoRetryWithoutGetBody(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	tr := newTransport(t)
	resp, err := post(t, tr, context.Background(), s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	s.CloseClientConnections()
	time.Sleep(20 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodPost, s.URL, io.NopCloser(strings.NewReader("{}")))
	req.ContentLength = 2
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("a request without GetBody was sent again on a new connection")
	}
}

// Deadlines and cancellation end a request, whatever the server does.
func TestDeadlineAndCancel(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) }) // before the server's Close
	tr := newTransport(t)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := post(t, tr, ctx, s.URL, "{}")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a 100 ms deadline took %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = post(t, tr, ctx, s.URL, "{}")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a cancel after 100 ms took %v", d)
	}
}

// A server that never ends its body holds the caller only until its
// deadline; a body closed early closes its connection.
func TestEndlessBody(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 1000; i++ {
			if _, err := w.Write(bytes.Repeat([]byte("x"), 32<<10)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	tr := newTransport(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := post(t, tr, ctx, s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	start := time.Now()
	_ = resp.Body.Close()
	if len(b) != 4<<10 || time.Since(start) > time.Second {
		t.Errorf("read %d bytes, close took %v", len(b), time.Since(start))
	}
	resp, err = post(t, tr, ctx, s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: a body closed early must not return its connection", n)
	}
}

// A response header beyond MaxResponseHeaderBytes is refused.
func TestHeaderTooLarge(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("a", 8<<10))
		_, _ = io.WriteString(w, "ok")
	})
	tr := newTransport(t)
	tr.MaxResponseHeaderBytes = 4 << 10
	if _, err := post(t, tr, context.Background(), s.URL, "{}"); !errors.Is(err, errHeaderTooLarge) {
		t.Errorf("err = %v, want %v", err, errHeaderTooLarge)
	}
	tr.MaxResponseHeaderBytes = 64 << 10
	resp, err := post(t, tr, context.Background(), s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Errorf("answer %q", got)
	}
}

// https targets are reached over TLS, with the server's name checked.
func TestTLS(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	}))
	t.Cleanup(s.Close)
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	tr := newTransport(t)
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	for range 2 {
		resp, err := post(t, tr, context.Background(), s.URL, "{}")
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "HTTP/1.1 true" {
			t.Errorf("answer %q", got)
		}
	}
	// Not trusted: refused.
	tr2 := newTransport(t)
	if _, err := post(t, tr2, context.Background(), s.URL, "{}"); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

// Idle bounds: per host and idle time.
func TestIdleBounds(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	tr := newTransport(t)
	tr.MaxIdleConnsPerHost = 2
	for _, r := range postAtOnce(t, tr, s.URL, 5) {
		readAll(t, r)
	}
	if idle := idleCount(tr); idle != 2 {
		t.Errorf("%d idle connections, want 2", idle)
	}

	tr.IdleConnTimeout = 10 * time.Millisecond
	time.Sleep(20 * time.Millisecond)
	before := s.conns.Load()
	resp, err := post(t, tr, context.Background(), s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if s.conns.Load() != before+1 {
		t.Error("a connection idle for longer than IdleConnTimeout was reused")
	}
}

// Only http and https with a host are sent.
func TestRefusedRequests(t *testing.T) {
	tr := newTransport(t)
	for _, u := range []string{"ftp://127.0.0.1/x", "http:///x", "unix:///tmp/s"} {
		req, err := http.NewRequest(http.MethodPost, u, strings.NewReader("{}"))
		if err != nil {
			continue
		}
		if _, err := tr.RoundTrip(req); err == nil {
			t.Errorf("%s: sent", u)
		}
	}
	if (&Transport{}).DialContext != nil {
		t.Fatal("zero Transport has a dialer")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9/", nil)
	if _, err := (&Transport{}).RoundTrip(req); err == nil {
		t.Error("a Transport without DialContext sent a request")
	}
}

// An answer written in pieces slower than the header limit is not cut:
// the limit counts the header only, never the body.
func TestBodyNotLimitedByHeaderBound(t *testing.T) {
	big := strings.Repeat("b", 64<<10)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) })
	tr := newTransport(t)
	tr.MaxResponseHeaderBytes = 1 << 10
	resp, err := post(t, tr, context.Background(), s.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != big {
		t.Errorf("read %d bytes, want %d", len(got), len(big))
	}
}

// Many goroutines share one Transport (run with -race).
func TestConcurrent(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	tr := newTransport(t)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				resp, err := post(t, tr, context.Background(), s.URL, want)
				if err != nil {
					t.Error(err)
					return
				}
				if got := readAll(t, resp); got != want {
					t.Errorf("echo %q, want %q", got, want)
				}
			}
		}()
	}
	wg.Wait()
	if n := s.conns.Load(); n > 16 {
		t.Errorf("%d connections for 16 concurrent callers", n)
	}
}

// A raw server answering HTTP/1.0 without keep-alive: the connection is
// not reused.
func TestHTTP10Answer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	tr := newTransport(t)
	for range 2 {
		resp, err := post(t, tr, context.Background(), "http://"+ln.Addr().String(), "{}")
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Errorf("answer %q", got)
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (HTTP/1.0 closes)", n)
	}
}

// BenchmarkRoundTrip compares Transport with net/http's over loopback: one
// op is one small POST and its answer, client and server in this process.
//
//	go test -run '^$' -bench RoundTrip -benchmem ./internal/h1/
func BenchmarkRoundTrip(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer s.Close()
	body := []byte(`{"type":"groupcreated","data":{"id":"2f1c","name":"Sales"}}`)
	d := &net.Dialer{}
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"h1", &Transport{DialContext: d.DialContext}},
		{"net-http", &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 256}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := &http.Client{Transport: tc.rt}
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, s.URL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
		})
	}
}

// A server that restarted closed every kept-alive connection: the next
// request still gets through, on a new connection, and the dead ones are
// dropped.
func TestServerRestarted(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // keep several connections busy at once
		_, _ = io.WriteString(w, "ok")
	})
	tr := newTransport(t)
	for _, r := range postAtOnce(t, tr, s.URL, 8) {
		readAll(t, r)
	}
	if idle := idleCount(tr); idle < 2 {
		t.Fatalf("%d idle connections: the test needs several", idle)
	}
	s.CloseClientConnections()
	time.Sleep(20 * time.Millisecond)
	for i := range 3 {
		resp, err := post(t, tr, context.Background(), s.URL, "{}")
		if err != nil {
			t.Fatalf("request %d after the restart: %v", i, err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if idle := idleCount(tr); idle != 1 {
		t.Errorf("%d idle connections after the restart, want the new one", idle)
	}
}
