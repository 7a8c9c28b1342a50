package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
)

// sinkServer is the delivery sink's HTTP/1.1 server: the least a server
// can do to take a webhook (read the request line, the header and a body of
// Content-Length bytes; answer 200 with no body), so that in the delivery
// measurement the cores go to the gateway, as wrk leaves them to the
// server it loads. It takes what hookgate sends (a POST with a
// Content-Length); anything else (a chunked body, a line too long) ends the
// connection, and the delivery is then retried by the gateway.
type sinkServer struct {
	ln      net.Listener
	receive func(body []byte)
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
}

func serveSink(ln net.Listener, receive func(body []byte)) *sinkServer {
	s := &sinkServer{ln: ln, receive: receive, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

// Close stops accepting and closes every connection.
func (s *sinkServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
}

var ok200 = []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

func (s *sinkServer) serve(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	br := bufio.NewReaderSize(c, 16<<10)
	bw := bufio.NewWriterSize(c, 4<<10)
	var body []byte
	for {
		if _, err := br.ReadSlice('\n'); err != nil { // request line
			return
		}
		length, closeAfter := 0, false
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break
			}
			name, value, found := bytes.Cut(line, []byte(":"))
			if !found {
				return
			}
			value = bytes.TrimSpace(value)
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				n, err := strconv.Atoi(string(value))
				if err != nil || n < 0 || n > 1<<20 {
					return
				}
				length = n
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				return // hookgate sends a Content-Length
			case bytes.EqualFold(name, []byte("Connection")):
				closeAfter = bytes.EqualFold(value, []byte("close"))
			}
		}
		if cap(body) < length {
			body = make([]byte, length)
		}
		body = body[:length]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		s.receive(body)
		if _, err := bw.Write(ok200); err != nil {
			return
		}
		if br.Buffered() == 0 || closeAfter {
			if err := bw.Flush(); err != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// scanBench reads run, seq and sent_ns from a delivered body without
// decoding it (the first occurrence of each, wherever the envelope put the
// event's data); ok is false when one is missing.
func scanBench(b []byte) (d benchData, ok bool) {
	run, ok1 := scanValue(b, `"run":"`)
	seq, ok2 := scanValue(b, `"seq":`)
	sent, ok3 := scanValue(b, `"sent_ns":`)
	if !ok1 || !ok2 || !ok3 {
		return d, false
	}
	i := bytes.IndexByte(run, '"')
	if i < 0 {
		return d, false
	}
	n, err := strconv.Atoi(string(digits(seq)))
	if err != nil {
		return d, false
	}
	ns, err := strconv.ParseInt(string(digits(sent)), 10, 64)
	if err != nil {
		return d, false
	}
	return benchData{Run: string(run[:i]), Seq: n, SentNs: ns}, true
}

// scanValue returns what follows the first occurrence of key in b.
func scanValue(b []byte, key string) ([]byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	return b[i+len(key):], true
}

// digits is the leading run of ASCII digits of b.
func digits(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return b[:i]
}
