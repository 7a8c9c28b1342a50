package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder keeps every write it is given, one element a call.
type recorder struct {
	mu     sync.Mutex
	writes []string
	closed bool
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func TestWritesOutTogether(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		lines []string
		// want is what the underlying writer got, a write each, before
		// the interval passed.
		want []string
	}{
		{"held until the interval", 64, []string{"a\n", "b\n", "c\n"}, nil},
		{"written out when the next line does not fit", 6, []string{"aa\n", "bb\n", "cc\n"}, []string{"aa\nbb\n"}},
		{"a line as large as the buffer fits", 3, []string{"aa\n", "bb\n"}, []string{"aa\n"}},
		{"a line larger than the buffer goes out at once, after what was held", 4, []string{"a\n", "bbbbbb\n", "c\n"}, []string{"a\n", "bbbbbb\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			w := New(rec, tt.size, time.Hour)
			for _, l := range tt.lines {
				if n, err := w.Write([]byte(l)); err != nil || n != len(l) {
					t.Fatalf("Write(%q) = %d, %v", l, n, err)
				}
			}
			if got := rec.got(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("written before the interval: %q, want %q", got, tt.want)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rec.got(), ""); got != strings.Join(tt.lines, "") {
				t.Fatalf("written in all: %q, want %q", got, strings.Join(tt.lines, ""))
			}
			if !rec.closed {
				t.Fatal("underlying writer not closed")
			}
		})
	}
}

func TestFlushedAfterTheInterval(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 1<<10, 20*time.Millisecond)
	defer w.Close()
	for round := range 3 {
		line := fmt.Sprintf("line %d\n", round)
		start := time.Now()
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		for len(rec.got()) <= round {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("round %d: nothing written 2 s after the line", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if took := time.Since(start); took < 20*time.Millisecond {
			t.Fatalf("round %d: written after %v, before the interval", round, took)
		}
		if got := rec.got()[round]; got != line {
			t.Fatalf("round %d: wrote %q, want %q", round, got, line)
		}
	}
}

func TestSyncAndWritesAfterClose(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 1<<10, time.Hour)
	_, _ = w.Write([]byte("a\n"))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 1 || got[0] != "a\n" {
		t.Fatalf("after Sync: %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, _ = w.Write([]byte("late\n"))
	if got := rec.got(); len(got) != 2 || got[1] != "late\n" {
		t.Fatalf("a write after Close was not passed through at once: %q", got)
	}
}

func TestSetDirect(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 1<<10, time.Hour)
	defer w.Close()
	_, _ = w.Write([]byte("held\n"))
	w.SetDirect(true)
	if got := rec.got(); len(got) != 1 || got[0] != "held\n" {
		t.Fatalf("SetDirect(true) did not write out what was held: %q", got)
	}
	_, _ = w.Write([]byte("direct\n"))
	if got := rec.got(); len(got) != 2 || got[1] != "direct\n" {
		t.Fatalf("a direct write was held: %q", got)
	}
	w.SetDirect(false)
	_, _ = w.Write([]byte("buffered again\n"))
	if got := rec.got(); len(got) != 2 {
		t.Fatalf("after SetDirect(false) a write went out at once: %q", got)
	}
}

func TestWriteErrorIsReported(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 4, time.Hour)
	_, _ = w.Write([]byte("aaa\n"))
	rec.mu.Lock()
	rec.fail = errors.New("disk full")
	rec.mu.Unlock()
	// "bbb\n" does not fit beside "aaa\n": writing that out fails.
	if _, err := w.Write([]byte("bbb\n")); err == nil {
		t.Fatal("the failed write out was not reported")
	}
	// "c" does not fit beside "bbb\n" either: writing that out fails too.
	if _, err := w.Write([]byte("c")); err == nil {
		t.Fatal("the second failed write out was not reported")
	}
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync after the writer recovered: %v", err)
	}
	if got := strings.Join(rec.got(), ""); got != "c" {
		t.Fatalf("written: %q, want the line held since the failure", got)
	}
}

// TestConcurrentWritesKeepLinesWhole writes from many goroutines through a
// small buffer: every line arrives once and whole, none split between two
// writes.
func TestConcurrentWritesKeepLinesWhole(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 100, time.Millisecond)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				_, _ = fmt.Fprintf(w, "writer %d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, chunk := range rec.got() {
		if !strings.HasSuffix(chunk, "\n") {
			t.Fatalf("a write ends inside a line: %q", chunk)
		}
		for _, l := range strings.Split(strings.TrimSuffix(chunk, "\n"), "\n") {
			if seen[l] {
				t.Fatalf("line %q written twice", l)
			}
			seen[l] = true
		}
	}
	if len(seen) != writers*lines {
		t.Fatalf("%d lines written, want %d", len(seen), writers*lines)
	}
}

func BenchmarkWrite(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 299)
	line = append(line, '\n')
	w := New(nopCloser{}, 0, 0)
	defer w.Close()
	b.SetBytes(int64(len(line)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = w.Write(line)
		}
	})
}

type nopCloser struct{}

func (nopCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopCloser) Close() error                { return nil }
