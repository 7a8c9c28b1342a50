// Package testenv holds what the core packages' tests share: a real
// embedded engine in a temporary directory, and an SSRF guard that lets
// tests reach 127.0.0.1 and nothing else.
package testenv

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/netguard"
)

// LoopbackGuard permits 127.0.0.1 only; every other non-public address is
// refused, as in production.
func LoopbackGuard() *netguard.Guard {
	return netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
}

// Context is bounded well below a package's time budget and cancelled at
// cleanup.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Engine opens an embedded engine in a temporary directory, closed at
// cleanup.
func Engine(t testing.TB) *engine.Engine {
	t.Helper()
	return EngineAt(t, t.TempDir())
}

// EngineAt opens an embedded engine on the storage in dir, closed at
// cleanup (and safe to close before: a restart opens it again on dir).
func EngineAt(t testing.TB, dir string) *engine.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	eng, err := engine.Open(ctx, engine.Config{StorageDir: dir, CreateTimeout: 15 * time.Second}, nil)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}
