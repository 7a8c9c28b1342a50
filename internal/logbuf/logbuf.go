// Package logbuf buffers log lines in memory and writes them out together,
// so that a process logging a line per event makes one write system call
// per batch of lines instead of one per line.
//
// Each Write is taken to be one whole log entry (as zap writes them) and is
// never split across two writes to the underlying writer, so that lines from
// writers sharing a file or a stream do not tear.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Defaults of New.
const (
	DefaultSize          = 256 << 10
	DefaultFlushInterval = 100 * time.Millisecond
)

// Writer is an io.WriteCloser that holds what it is given for at most its
// flush interval, or until it holds its size, then writes it to the
// underlying writer in one call. It is safe for concurrent use.
type Writer struct {
	mu       sync.Mutex
	out      io.WriteCloser
	buf      []byte
	size     int
	interval time.Duration
	timer    *time.Timer // armed while buf holds something
	direct   bool        // writes go straight to out (SetDirect)
	closed   bool
	err      error // the last write error, returned by the next Write
}

// New returns a Writer to out holding up to size bytes for up to interval;
// zero or negative values take the defaults.
func New(out io.WriteCloser, size int, interval time.Duration) *Writer {
	if size <= 0 {
		size = DefaultSize
	}
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	return &Writer{out: out, size: size, interval: interval, buf: make([]byte, 0, size)}
}

// Write buffers p. What is already held is written out first when p does
// not fit beside it; p is written at once, unbuffered, when it is larger
// than the buffer, when the Writer is direct, or when it is closed. The
// error of an earlier write out, if any, is returned once.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.direct {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > w.size {
		w.flushLocked()
	}
	if len(p) > w.size {
		if _, err := w.out.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if w.timer == nil {
		w.timer = time.AfterFunc(w.interval, w.flushDue)
	} else if len(w.buf) == len(p) {
		w.timer.Reset(w.interval)
	}
	if err := w.err; err != nil {
		w.err = nil
		return len(p), err
	}
	return len(p), nil
}

// flushDue writes out what the buffer holds when the interval has passed.
func (w *Writer) flushDue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.flushLocked()
	}
}

func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.out.Write(w.buf); err != nil {
		w.err = err
	}
	w.buf = w.buf[:0]
}

// SetDirect makes writes go straight to the underlying writer (true),
// writing out what the buffer holds first, or buffers them again (false).
// A process that stops using the Writer without closing it sets it direct,
// so that nothing it logs from then on waits in the buffer.
func (w *Writer) SetDirect(direct bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if direct {
		w.flushLocked()
	}
	w.direct = direct
}

// Sync writes out what the buffer holds (zap calls it before a fatal
// entry ends the process).
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

// Close writes out what the buffer holds and closes the underlying writer.
// Writes after Close go straight to the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.flushLocked()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	flushErr := w.err
	w.err = nil
	if err := w.out.Close(); err != nil {
		return err
	}
	return flushErr
}
