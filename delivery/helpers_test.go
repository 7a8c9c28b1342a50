package delivery

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
)

// testGuard permits 127.0.0.1 only.
func testGuard() *netguard.Guard { return testenv.LoopbackGuard() }

func testCtx(t *testing.T) context.Context { return testenv.Context(t) }

// env is a real embedded engine, a registry and a pipeline over them.
type env struct {
	t     *testing.T
	ctx   context.Context
	dir   string // the engine's storage
	eng   *engine.Engine
	reg   *registry.Registry
	pipe  *Pipeline
	stops sync.Map // *Pipeline -> *sync.Once
}

// newEnv opens an engine and a registry; start runs a pipeline.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: testCtx(t), dir: t.TempDir()}
	e.open()
	return e
}

// open opens the engine on e.dir and starts a registry over it.
func (e *env) open() {
	e.t.Helper()
	eng := testenv.EngineAt(e.t, e.dir)
	reg := registry.New(eng, testGuard(), nil)
	if err := reg.Start(e.ctx); err != nil {
		e.t.Fatalf("registry.Start: %v", err)
	}
	e.t.Cleanup(reg.Stop)
	e.eng, e.reg = eng, reg
}

// restartEngine stops the registry and closes the engine (stop the
// pipelines first), then opens both again on the same storage, as a
// process restart does.
func (e *env) restartEngine() {
	e.t.Helper()
	e.reg.Stop()
	_ = e.eng.Close()
	e.open()
}

// newPipeline returns a pipeline (not started), stopped at cleanup unless
// stopped before with stopPipeline.
func (e *env) newPipeline(opts Options) *Pipeline {
	p := New(e.eng, e.reg, testGuard().Client(), nil, opts)
	once := new(sync.Once)
	e.stops.Store(p, once)
	e.t.Cleanup(func() { once.Do(p.Stop) })
	return p
}

// stopPipeline stops p once.
func (e *env) stopPipeline(p *Pipeline) {
	once, _ := e.stops.Load(p)
	once.(*sync.Once).Do(p.Stop)
}

// start runs a new pipeline as e.pipe.
func (e *env) start(opts Options) *Pipeline {
	e.t.Helper()
	e.pipe = e.newPipeline(opts)
	if err := e.pipe.Start(e.ctx); err != nil {
		e.t.Fatalf("Pipeline.Start: %v", err)
	}
	return e.pipe
}

// subscribe creates an API subscription to the sink.
func (e *env) subscribe(s registry.Subscription) *registry.CompiledSubscription {
	e.t.Helper()
	if s.Name == "" {
		s.Name = s.ID
	}
	cs, err := e.reg.CreateSubscription(e.ctx, s)
	if err != nil {
		e.t.Fatalf("CreateSubscription(%s): %v", s.ID, err)
	}
	return cs
}

// publish publishes an event or fails the test.
func (e *env) publish(ev *Event) {
	e.t.Helper()
	if _, err := e.pipe.Publish(e.ctx, ev); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
}

// waitRecord waits until the record exists and cond holds.
func (e *env) waitRecord(id string, d time.Duration, cond func(*Record) bool) *Record {
	e.t.Helper()
	var last *Record
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if rec, err := e.pipe.Record(e.ctx, id); err == nil {
			last = rec
			if cond(rec) {
				return rec
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("record %s: condition not met within %v; last %+v", id, d, last)
	return nil
}

func statusIs(s string) func(*Record) bool { return func(r *Record) bool { return r.Status == s } }

// request is what a sink received.
type request struct {
	At     time.Time
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// sink is an HTTP server on 127.0.0.1 that records requests and answers
// with reply (200 when nil). n is the 1-based number of the request.
type sink struct {
	srv      *httptest.Server
	URL      string
	mu       sync.Mutex
	reqs     []request
	inflight atomic.Int32
	maxIn    atomic.Int32
	reply    func(w http.ResponseWriter, r *http.Request, n int)
}

func newSink(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, n int)) *sink {
	t.Helper()
	s := &sink{reply: reply}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	in := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		m := s.maxIn.Load()
		if in <= m || s.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, request{At: time.Now(), Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	n := len(s.reqs)
	s.mu.Unlock()
	if s.reply != nil {
		s.reply(w, r, n)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *sink) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// waitCount waits until the sink received at least n requests.
func (s *sink) waitCount(t *testing.T, n int, d time.Duration) []request {
	t.Helper()
	if !waitFor(d, func() bool { return s.count() >= n }) {
		t.Fatalf("sink received %d requests within %v, want %d", s.count(), d, n)
	}
	return s.requests()
}

// block holds a request until release is closed, the client gives up or
// the test's bound passes.
func block(r *http.Request, release <-chan struct{}, bound time.Duration) {
	select {
	case <-release:
	case <-r.Context().Done():
	case <-time.After(bound):
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
