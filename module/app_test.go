package module

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A request that arrives while the app is still starting waits for it,
// rather than being refused; a cancelled request stops waiting.
func TestAwaitRuntime(t *testing.T) {
	a := &App{rt: new(atomic.Pointer[runtime]), started: make(chan struct{})}
	want := &runtime{}
	go func() {
		time.Sleep(100 * time.Millisecond)
		a.rt.Store(want)
		close(a.started)
	}()
	if got := a.awaitRuntime(context.Background()); got != want {
		t.Fatalf("awaitRuntime = %p, want the started runtime %p", got, want)
	}

	b := &App{rt: new(atomic.Pointer[runtime]), started: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if got := b.awaitRuntime(ctx); got != nil {
		t.Fatalf("awaitRuntime before start = %p, want nil", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a cancelled request waited %s", d)
	}
}
