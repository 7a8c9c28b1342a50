// Package module holds hookgate's Caddy modules: the hookgate app (global
// option), which owns the engine, and the hookgate_ingress and hookgate_api
// HTTP handlers. They are thin glue over the core packages.
package module

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/ingress"
	"github.com/hookgate/hookgate/internal/idlemem"
	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
)

func init() {
	caddy.RegisterModule(App{})
}

// Bounds of the hookgate app's options; a value over its bound is a load
// error naming it.
const (
	// MaxDedupeWindow bounds dedupe_window (default 24h): JetStream keeps
	// the ids of the window's events in memory.
	MaxDedupeWindow = 7 * 24 * time.Hour
	// MaxRetention bounds retention (default 168h).
	MaxRetention = 366 * 24 * time.Hour
	// MaxConcurrency bounds concurrency (default 128).
	MaxConcurrency = 4096
	// MaxPerDestination bounds per_destination (default 64).
	MaxPerDestination = 1024
	// MaxConnectTimeout bounds nats connect_timeout (default 10s).
	MaxConnectTimeout = 5 * time.Minute
)

// NATS configures cluster mode: hookgate connects to an existing NATS
// JetStream cluster instead of embedding a server.
type NATS struct {
	// URLs of the cluster's servers, e.g. nats://n1:4222.
	URLs []string `json:"urls,omitempty"`
	// Creds is a NATS credentials file (JWT and NKey seed).
	Creds string `json:"creds,omitempty"`
	// TLS names client TLS files.
	TLS *engine.TLS `json:"tls,omitempty"`
	// Replicas of every bucket and stream: 1, 3 or 5. Default: 1; use 3 on
	// a three-node cluster.
	Replicas int `json:"replicas,omitempty"`
	// ConnectTimeout bounds connecting at start. Default: 10s; at most 5m.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`
}

// App is the hookgate Caddy app: it owns the state and queue engine
// (embedded NATS JetStream by default), the registry of workflows, topics and
// subscriptions, and the delivery pipeline. Handlers reach it in Provision.
//
// The engine outlives config reloads: it is shared through a usage pool keyed
// by its identity (storage directory, or cluster URLs and credentials).
type App struct {
	// StorageDir is where the embedded engine keeps its data.
	// Default: {caddy.AppDataDir()}/hookgate.
	StorageDir string `json:"storage_dir,omitempty"`
	// NATS, when set, connects to a cluster instead of embedding a server.
	NATS *NATS `json:"nats,omitempty"`
	// Sync is "interval" (the default: writes reach the OS before the 2xx
	// and are fsynced every 2 minutes; a process crash loses nothing) or
	// "always" (fsync before every 2xx; survives a machine crash, about 9×
	// slower). Embedded engine only.
	Sync string `json:"sync,omitempty"`
	// AllowTargets lists CIDRs that outgoing requests may reach although
	// they are loopback, private or link-local. Default: none.
	AllowTargets []string `json:"allow_targets,omitempty"`
	// DedupeWindow is how long event ids (published ids and workflows'
	// idempotency header values) are remembered. Default: 24h; at most 168h.
	DedupeWindow caddy.Duration `json:"dedupe_window,omitempty"`
	// Retention is how long events and delivery records are kept.
	// Default: 168h (7 days); at most 8784h (366 days).
	Retention caddy.Duration `json:"retention,omitempty"`
	// Concurrency bounds the HTTP deliveries in flight. Default: 128; at
	// most 4096.
	Concurrency int `json:"concurrency,omitempty"`
	// PerDestination bounds the deliveries in flight to one destination.
	// Default: 64; at most 1024.
	PerDestination int `json:"per_destination,omitempty"`
	// Topics declared in the configuration (read-only in the API).
	Topics []TopicConfig `json:"topics,omitempty"`
	// Subscriptions declared in the configuration (read-only in the API).
	Subscriptions []SubscriptionConfig `json:"subscriptions,omitempty"`

	engineCfg engine.Config
	allow     []netip.Prefix
	topics    []*registry.CompiledTopic
	subs      []*registry.CompiledSubscription
	mu        *sync.Mutex
	workflows []*registry.CompiledWorkflow
	prefixes  []string
	rt        *atomic.Pointer[runtime]
	started   chan struct{} // closed once Start has stored rt
	listening chan struct{} // closed at Caddy's "started" event: servers listen
	stopped   *atomic.Bool
	config    *registry.ConfigSet
	tokenReqs []tokenRequest // token files to create at Start
	logger    *zap.Logger
	metrics   *metrics
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "hookgate",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the configuration and compiles the declared topics and
// subscriptions. It starts nothing: `caddy validate` provisions too.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.mu = new(sync.Mutex)
	a.rt = new(atomic.Pointer[runtime])
	a.started = make(chan struct{})
	a.stopped = new(atomic.Bool)
	a.metrics = registerMetrics(ctx.GetMetricsRegistry())
	a.listening = make(chan struct{})
	if err := a.followStarted(ctx); err != nil {
		return err
	}
	repl := caddy.NewReplacer()

	if err := a.checkBounds(); err != nil {
		return err
	}
	cfg := engine.Config{
		StorageDir:   repl.ReplaceAll(a.StorageDir, ""),
		DedupeWindow: time.Duration(a.DedupeWindow),
		Retention:    time.Duration(a.Retention),
	}
	if cfg.StorageDir == "" {
		cfg.StorageDir = filepath.Join(caddy.AppDataDir(), "hookgate")
	}
	switch a.Sync {
	case "", "interval":
	case "always":
		cfg.SyncAlways = true
	default:
		return fmt.Errorf("sync: %q is not one of always, interval", a.Sync)
	}
	if n := a.NATS; n != nil {
		if len(n.URLs) == 0 {
			return errors.New("nats: at least one URL is required")
		}
		for _, u := range n.URLs {
			cfg.URLs = append(cfg.URLs, repl.ReplaceAll(u, ""))
		}
		cfg.CredsFile = repl.ReplaceAll(n.Creds, "")
		cfg.TLS = n.TLS
		cfg.Replicas = n.Replicas
		cfg.ConnectTimeout = time.Duration(n.ConnectTimeout)
	}
	a.engineCfg = cfg

	allow, err := netguard.ParseAllow(a.AllowTargets)
	if err != nil {
		return fmt.Errorf("allow_targets: %w", err)
	}
	a.allow = allow
	guard := netguard.New(allow)

	for i, t := range a.Topics {
		ct, err := t.compile()
		if err != nil {
			return fmt.Errorf("topics[%d] %q: %w", i, t.Name, err)
		}
		a.topics = append(a.topics, ct)
	}
	names := map[string]bool{}
	for i, s := range a.Subscriptions {
		cs, err := s.compile(repl, guard)
		if err != nil {
			return fmt.Errorf("subscriptions[%d] %q: %w", i, s.Name, err)
		}
		if names[cs.Def.Name] {
			return fmt.Errorf("subscriptions[%d]: name %q declared twice", i, s.Name)
		}
		names[cs.Def.Name] = true
		a.subs = append(a.subs, cs)
	}
	return nil
}

// checkBounds refuses options over their bounds (the Caddyfile adapter
// checks them too, with the line; this covers JSON configurations).
func (a *App) checkBounds() error {
	durations := []struct {
		name     string
		val, max time.Duration
	}{
		{"dedupe_window", time.Duration(a.DedupeWindow), MaxDedupeWindow},
		{"retention", time.Duration(a.Retention), MaxRetention},
	}
	if a.NATS != nil {
		durations = append(durations, struct {
			name     string
			val, max time.Duration
		}{"nats.connect_timeout", time.Duration(a.NATS.ConnectTimeout), MaxConnectTimeout})
		if r := a.NATS.Replicas; r != 0 && r != 1 && r != 3 && r != 5 {
			return fmt.Errorf("nats.replicas: %d; use 1, 3 or 5", r)
		}
	}
	for _, d := range durations {
		if d.val < 0 || d.val > d.max {
			return fmt.Errorf("%s: %s is not between 0 and the maximum of %s", d.name, d.val, d.max)
		}
	}
	counts := []struct {
		name     string
		val, max int
	}{{"concurrency", a.Concurrency, MaxConcurrency}, {"per_destination", a.PerDestination, MaxPerDestination}}
	for _, c := range counts {
		if c.val < 0 || c.val > c.max {
			return fmt.Errorf("%s: %d is not between 0 and the maximum of %d", c.name, c.val, c.max)
		}
	}
	return nil
}

// loadApp returns the configuration's hookgate app (provisioned with
// defaults when the Caddyfile has no hookgate option).
func loadApp(ctx caddy.Context) (*App, error) {
	app, err := ctx.App("hookgate")
	if err != nil {
		return nil, fmt.Errorf("loading hookgate app: %w", err)
	}
	return app.(*App), nil
}

// guard returns the SSRF guard for this configuration.
func (a *App) guard() *netguard.Guard { return netguard.New(a.allow) }

// addWorkflows is called by ingress handlers in their Provision.
func (a *App) addWorkflows(prefix string, ws []*registry.CompiledWorkflow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, w := range a.workflows {
		seen[w.Def.ID] = true
	}
	for _, w := range ws {
		if seen[w.Def.ID] {
			return fmt.Errorf("workflow %q is declared twice", w.Def.ID)
		}
		seen[w.Def.ID] = true
	}
	a.workflows = append(a.workflows, ws...)
	a.prefixes = append(a.prefixes, prefix)
	return nil
}

// ingressPrefix is the path prefix of workflow URLs shown by the API.
func (a *App) ingressPrefix() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.prefixes) > 0 {
		return a.prefixes[0]
	}
	return DefaultIngressPrefix
}

// startWait bounds how long a request that arrives while the app is still
// starting (Caddy starts its apps in no set order, and opening the engine
// takes a moment) waits for it, instead of being refused.
const startWait = 10 * time.Second

// awaitRuntime returns the runtime, waiting for Start if it has not run
// yet; nil when the app is stopped or did not start in time.
func (a *App) awaitRuntime(ctx context.Context) *runtime {
	if rt := a.rt.Load(); rt != nil {
		return rt
	}
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case <-a.started:
	case <-t.C:
	case <-ctx.Done():
	}
	return a.rt.Load()
}

// tokenRequest is an API token file to create when the app starts.
type tokenRequest struct {
	path string
	use  func(token string)
}

// createTokenAtStart asks Start to create a missing token file and hand its
// token to use. Provision must not write it: it also runs for `caddy
// validate` and `caddy adapt`.
func (a *App) createTokenAtStart(path string, use func(string)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokenReqs = append(a.tokenReqs, tokenRequest{path: path, use: use})
}

// createTokenFiles creates the token files the API handlers asked for.
func (a *App) createTokenFiles() error {
	a.mu.Lock()
	reqs := a.tokenReqs
	a.mu.Unlock()
	for _, r := range reqs {
		tok, err := loadOrCreateToken(r.path, a.logger)
		if err != nil {
			return err
		}
		r.use(tok)
	}
	return nil
}

// Start opens (or, across a reload, reuses) the engine, declares the
// configuration's resources and starts delivering.
func (a *App) Start() error {
	if err := a.createTokenFiles(); err != nil {
		return err
	}
	val, loaded, err := runtimes.LoadOrNew(a.engineCfg.Identity(), func() (caddy.Destructor, error) {
		return openRuntime(a.engineCfg, a.allow, a.logger)
	})
	if err != nil {
		return err
	}
	rt := val.(*runtime)
	if loaded {
		if rt.eng.Config().SyncAlways != a.engineCfg.SyncAlways {
			a.logger.Warn("sync mode changed: it takes effect at the next restart of Caddy")
		}
		ctx, cancel := context.WithTimeout(context.Background(), engine.DefaultCreateTimeout)
		err := rt.eng.Apply(ctx, a.engineCfg) // also the idempotency bucket's TTL: the window may have changed
		cancel()
		if err != nil {
			_, _ = runtimes.Delete(a.engineCfg.Identity())
			return err
		}
	}
	allowChanged := loaded && !slices.Equal(rt.guard.Allow(), a.allow)
	rt.guard.SetAllow(a.allow)
	a.mu.Lock()
	a.config = rt.reg.DeclareConfig(a.workflows, a.topics, a.subs)
	a.mu.Unlock()
	if loaded && rt.pipe != nil && (a.Concurrency != rt.concurrency || a.PerDestination != rt.perDest) {
		a.logger.Warn("concurrency and per_destination changes take effect at the next restart of Caddy")
	}
	rt.startPipeline(a.Concurrency, a.PerDestination, a.metrics, a.listening)
	if allowChanged {
		// Pooled connections were dialled under the previous allowlist.
		rt.pipe.Sender().Client.CloseIdleConnections()
	}
	a.metrics.watchQueue(rt.pipe)
	a.rt.Store(rt)
	close(a.started)
	a.logger.Info("hookgate started",
		zap.Bool("embedded", a.engineCfg.Embedded()),
		zap.String("storage_dir", a.engineCfg.StorageDir),
		zap.Bool("reused_engine", loaded),
		zap.Int("workflows", len(a.workflows)),
		zap.Int("topics", len(a.topics)),
		zap.Int("subscriptions", len(a.subs)))
	return nil
}

// Stop releases the configuration's resources and the engine (closed when
// no newer configuration uses it). Requests still in flight on the old
// configuration's servers keep the runtime: with the engine shared by the
// new configuration they complete normally; with a closed engine they get a
// 503 (nothing is stored without its 2xx).
func (a *App) Stop() error {
	if a.rt.Load() == nil || !a.stopped.CompareAndSwap(false, true) {
		return nil
	}
	// The runtime goes first: when this was its last configuration, its
	// pipeline stops before the declared workflows leave the registry, so
	// that no delivery in flight finds its destination gone (and fails
	// for good) during a shutdown.
	_, err := runtimes.Delete(a.engineCfg.Identity())
	a.config.Release()
	return err
}

// Cleanup copes with a half-provisioned app; nothing was started.
func (a *App) Cleanup() error { return nil }

// runtimes holds the engines, shared across config reloads.
var runtimes = caddy.NewUsagePool()

// runtime is one engine with its registry and pipeline.
type runtime struct {
	eng   *engine.Engine
	reg   *registry.Registry
	guard *netguard.Guard
	pipe  *delivery.Pipeline
	dedup *ingress.Deduper
	log   *zap.Logger

	startOnce   sync.Once
	quit        chan struct{} // closed by Destruct
	delivering  sync.WaitGroup
	concurrency int // as configured when the pipeline started
	perDest     int
}

func openRuntime(cfg engine.Config, allow []netip.Prefix, log *zap.Logger) (*runtime, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout+engine.DefaultCreateTimeout+engine.DefaultConnectTimeout)
	defer cancel()
	eng, err := engine.Open(ctx, cfg, log.Named("engine"))
	if err != nil {
		return nil, err
	}
	// The allowlist is in place before the stored resources are loaded:
	// their URLs are checked against it.
	guard := netguard.New(allow)
	reg := registry.New(eng, guard, log.Named("registry"))
	if err := reg.Start(ctx); err != nil {
		eng.Close()
		return nil, err
	}
	dedup := ingress.NewDeduper(eng.Idempotency)
	return &runtime{eng: eng, reg: reg, guard: guard, dedup: dedup, log: log, quit: make(chan struct{})}, nil
}

// listenWait bounds how long deliveries wait for Caddy's servers to listen
// (the "started" event) before they start anyway.
var listenWait = 10 * time.Second

// startPipeline creates the pipeline once, after the first configuration
// declared its resources (so queued deliveries find their destinations):
// events can be published at once. Deliveries start once Caddy's servers
// listen (listening is closed), so that targets served by this same Caddy
// are up, and retry their start until they run or the runtime ends.
func (rt *runtime) startPipeline(concurrency, perDest int, m *metrics, listening <-chan struct{}) {
	rt.startOnce.Do(func() {
		rt.concurrency, rt.perDest = concurrency, perDest
		rt.pipe = delivery.New(rt.eng, rt.reg, rt.guard.Client(), rt.log.Named("delivery"), delivery.Options{
			Concurrency: concurrency, PerDestination: perDest, Observer: m,
		})
		rt.delivering.Add(1)
		go rt.deliver(listening)
		// Memory a burst left behind goes back to the OS once the
		// pipeline is idle (internal/idlemem).
		releaser := &idlemem.Releaser{Activity: rt.pipe.WorkDone, Log: rt.log.Named("memory")}
		rt.delivering.Add(1)
		go func() {
			defer rt.delivering.Done()
			releaser.Run(rt.quit)
		}()
	})
}

func (rt *runtime) deliver(listening <-chan struct{}) {
	defer rt.delivering.Done()
	select {
	case <-listening:
	case <-time.After(listenWait):
		rt.log.Warn("Caddy's servers did not report listening: deliveries start anyway", zap.Duration("waited", listenWait))
	case <-rt.quit:
		return
	}
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), engine.DefaultCreateTimeout)
		err := rt.pipe.Start(ctx)
		cancel()
		if err == nil {
			rt.log.Debug("deliveries started")
			return
		}
		rt.log.Error("starting deliveries failed; trying again", zap.Duration("in", wait), zap.Error(err))
		select {
		case <-time.After(wait):
		case <-rt.quit:
			return
		}
	}
}

// Destruct stops delivering and closes the engine.
func (rt *runtime) Destruct() error {
	close(rt.quit)
	rt.delivering.Wait()
	if rt.pipe != nil {
		rt.pipe.Stop()
	}
	rt.reg.Stop()
	return rt.eng.Close()
}

// followStarted subscribes to Caddy's "started" event, emitted once every
// app has started (the HTTP servers listen), to close a.listening.
func (a *App) followStarted(ctx caddy.Context) error {
	evApp, err := ctx.App("events")
	if err != nil {
		return fmt.Errorf("loading the events app: %w", err)
	}
	events, ok := evApp.(*caddyevents.App)
	if !ok {
		return fmt.Errorf("events app is %T", evApp)
	}
	var once sync.Once
	listening := a.listening
	return events.Subscribe(&caddyevents.Subscription{
		Events: []string{"started"},
		Handlers: []caddyevents.Handler{startedHandler(func() {
			once.Do(func() { close(listening) })
		})},
	})
}

// startedHandler runs a function on an event.
type startedHandler func()

// Handle implements caddyevents.Handler.
func (h startedHandler) Handle(context.Context, caddy.Event) error { h(); return nil }

// Interface guards.
var (
	_ caddy.App           = (*App)(nil)
	_ caddy.Provisioner   = (*App)(nil)
	_ caddy.CleanerUpper  = (*App)(nil)
	_ caddy.Destructor    = (*runtime)(nil)
	_ caddyevents.Handler = startedHandler(nil)
)
