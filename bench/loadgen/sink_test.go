package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestScanBench(t *testing.T) {
	tests := []struct {
		name string
		body string
		want benchData
		ok   bool
	}{
		{"standard envelope", `{"id":"bench-x-3","type":"bench.tick","timestamp":"2026-12-02T00:00:00Z","data":{"run":"abc","seq":3,"sent_ns":1764671000000000001}}`, benchData{"abc", 3, 1764671000000000001}, true},
		{"raw data", `{"run":"r1","seq":0,"sent_ns":5}`, benchData{"r1", 0, 5}, true},
		{"no seq", `{"run":"r1","sent_ns":5}`, benchData{}, false},
		{"not JSON", `hello`, benchData{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := scanBench([]byte(tc.body))
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("scanBench = %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// The sink answers what net/http's client sends, on kept-alive connections.
func TestSinkServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	s := serveSink(ln, func(b []byte) {
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	})
	defer s.Close()
	for i, body := range []string{`{"a":1}`, ``, strings.Repeat("x", 40<<10)} {
		resp, err := http.Post("http://"+ln.Addr().String()+"/", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		mu.Lock()
		if len(got) != i+1 || got[i] != body {
			t.Fatalf("request %d: the sink received %d bodies, last %.40q", i, len(got), got[len(got)-1])
		}
		mu.Unlock()
	}
}
