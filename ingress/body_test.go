package ingress

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// TestReadBody: the limit holds whether the length is announced or the body
// streams, and an announced length is read exactly.
func TestReadBody(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		size, limit int64
		want        string
		err         error
	}{
		{"announced, exact", "hello", 5, 10, "hello", nil},
		{"announced at the limit", "0123456789", 10, 10, "0123456789", nil},
		{"streamed within", "hello", -1, 10, "hello", nil},
		{"streamed at the limit", "0123456789", -1, 10, "0123456789", nil},
		{"streamed over", "0123456789x", -1, 10, "", errTooLarge},
		{"streamed far over", strings.Repeat("x", 1<<20), -1, 1000, "", errTooLarge},
		{"announced over (no Content-Length check before)", "0123456789x", 11, 10, "", errTooLarge},
		{"announced, fewer bytes came", "abc", 5, 10, "", io.ErrUnexpectedEOF},
		{"empty", "", 0, 10, "", nil},
		{"streamed, grows past the first buffers", strings.Repeat("y", 100_000), -1, 1 << 20, strings.Repeat("y", 100_000), nil},
		{"announced, grows past the preallocation", strings.Repeat("z", 200_000), 200_000, 1 << 20, strings.Repeat("z", 200_000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readBody(iotestOneByteChunks(strings.NewReader(tt.body)), tt.size, tt.limit)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// iotestOneByteChunks returns r read in small pieces, as a slow client sends.
func iotestOneByteChunks(r io.Reader) io.Reader { return &chunkReader{r} }

type chunkReader struct{ r io.Reader }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > 7919 {
		p = p[:7919]
	}
	return c.r.Read(p)
}

// TestReadBodyAllocatesWhatArrives is the max_body 200GB finding of issue
// #8: a request announcing 200 GB and sending a few bytes allocated the
// announced length up front and ended the process. Now memory follows the
// bytes that arrive.
func TestReadBodyAllocatesWhatArrives(t *testing.T) {
	const announced = 200_000_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readBody(strings.NewReader("only a few bytes"), announced, announced)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes for a 16-byte body", d)
	}
}

// TestReadBodyMaxBytesReader: a limit set in front (http.MaxBytesReader, as
// Caddy's request_body does) reads as too large.
func TestReadBodyMaxBytesReader(t *testing.T) {
	rc := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), 10)
	if _, err := readBody(rc, -1, 1000); !errors.Is(err, errTooLarge) {
		t.Fatalf("err %v", err)
	}
}
