package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/netguard"
)

// testGuard permits 127.0.0.1 only; everything else non-public is refused.
func testGuard() *netguard.Guard { return testenv.LoopbackGuard() }

// testCtx is a context bounded well below the package's time budget.
func testCtx(t *testing.T) context.Context { return testenv.Context(t) }

// openEngine opens an embedded engine in a temporary directory.
func openEngine(t *testing.T) *engine.Engine { return testenv.Engine(t) }

// startRegistry starts a registry over eng; it is stopped at cleanup
// (before the engine closes: cleanups run last-in first-out).
func startRegistry(t *testing.T, eng *engine.Engine, log *zap.Logger) *Registry {
	t.Helper()
	r := New(eng, testGuard(), log)
	if err := r.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// newTestRegistry is an embedded engine and a started registry over it.
func newTestRegistry(t *testing.T) (*engine.Engine, *Registry) {
	t.Helper()
	eng := openEngine(t)
	return eng, startRegistry(t, eng, nil)
}

// waitFor polls cond every millisecond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// invalidField returns the Field of err's *InvalidError, or "" and false.
func invalidField(err error) (string, bool) {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Field, true
	}
	return "", false
}

// mustCompileWorkflow compiles a configuration workflow or fails the test.
func mustCompileWorkflow(t *testing.T, w Workflow) *CompiledWorkflow {
	t.Helper()
	if w.Source == "" {
		w.Source = SourceConfig
	}
	cw, err := CompileWorkflow(w, testGuard())
	if err != nil {
		t.Fatalf("CompileWorkflow(%s): %v", w.ID, err)
	}
	return cw
}

func ptr[T any](v T) *T { return &v }
