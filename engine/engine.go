// Package engine owns hookgate's state and queue engine: NATS JetStream, either
// embedded in the process (the default) or reached over the network in a
// cluster. It creates the key-value buckets and streams the rest of hookgate
// stands on, idempotently and within a bounded time, and closes them again.
//
// The package imports nothing from Caddy: the Caddy app in module/ is glue.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Bucket and stream names. They are part of the operational contract: an
// operator inspecting a cluster with the nats CLI sees these.
const (
	BucketWorkflows     = "hookgate_workflows"
	BucketKeys          = "hookgate_keys"
	BucketTopics        = "hookgate_topics"
	BucketSubscriptions = "hookgate_subscriptions"
	// BucketEventIDs maps event ids chosen by publishers to the stream
	// sequence of their event, for the dedupe window only.
	BucketEventIDs = "hookgate_event_ids"
	// BucketIdempotency remembers, for the dedupe window, the idempotency
	// header values of requests passed on to the next handler (workflows
	// without targets). Forwarded events are deduplicated by the event
	// stream instead (Nats-Msg-Id).
	BucketIdempotency = "hookgate_idempotency"
	// BucketFlow keeps, per failing destination, since when it fails
	// without a success (RFC 3339), so that auto-disable survives restarts.
	BucketFlow = "hookgate_flow"

	// StreamEvents keeps every accepted event for the retention period.
	StreamEvents = "HOOKGATE_EVENTS"
	// StreamQueue is the work queue of fanned-out deliveries and replays.
	StreamQueue = "HOOKGATE_QUEUE"
	// StreamRecords is the delivery log: one message per attempt or outcome.
	StreamRecords = "HOOKGATE_RECORDS"

	// SubjectDirect + "." + partition holds events with exactly one
	// destination: the stored event is also its delivery message.
	SubjectDirect = "hookgate.in"
	// SubjectFanout holds events that go to several destinations (or none).
	SubjectFanout = "hookgate.fan"
	// SubjectQueue + "." + partition holds queued deliveries.
	SubjectQueue = "hookgate.q"
	// SubjectRecords + "." + status + "." + bucket holds delivery records.
	SubjectRecords = "hookgate.rec"
)

// Partitions is the number of delivery partitions. A destination belongs to
// one partition (by a hash of its id); each partition has one consumer on the
// event stream and one on the queue, so the number of consumers does not grow
// with the number of destinations. It is part of the storage layout.
const Partitions = 16

// The layout written by earlier versions: an event subject per event, delivery
// records in a KV bucket, a consumer per destination. It is refused at start.
const (
	legacySubjectEvents = "hookgate.events.>"
	legacyStreamQueue   = "HOOKGATE_DELIVERIES"
	legacyBucketRecords = "hookgate_deliveries"
)

// Default limits.
const (
	DefaultDedupeWindow   = 24 * time.Hour
	DefaultRetention      = 7 * 24 * time.Hour
	DefaultConnectTimeout = 10 * time.Second
	DefaultCreateTimeout  = 30 * time.Second
)

// TLS names the files of a TLS client configuration for cluster mode.
type TLS struct {
	// CA is a PEM file of root certificates to trust.
	CA string `json:"ca,omitempty"`
	// Cert is the client certificate PEM file.
	Cert string `json:"cert,omitempty"`
	// Key is the client private key PEM file.
	Key string `json:"key,omitempty"`
}

// Config selects and tunes the engine.
type Config struct {
	// StorageDir is the embedded server's JetStream store directory.
	// Ignored in cluster mode.
	StorageDir string
	// URLs of an existing NATS cluster; empty means embedded.
	URLs []string
	// CredsFile is a NATS credentials file for cluster mode.
	CredsFile string
	// TLS is the client TLS configuration for cluster mode.
	TLS *TLS
	// Replicas is the replication factor of buckets and streams. Default: 1.
	Replicas int
	// SyncAlways makes the embedded server fsync every write before
	// acknowledging it (machine-crash safe, much slower).
	SyncAlways bool
	// DedupeWindow is how long event ids are remembered for dedupe.
	DedupeWindow time.Duration
	// Retention is how long events and delivery records are kept.
	Retention time.Duration
	// ConnectTimeout bounds connecting to a cluster or starting the
	// embedded server.
	ConnectTimeout time.Duration
	// CreateTimeout bounds creating all buckets and streams (retried
	// within it).
	CreateTimeout time.Duration
}

// Embedded reports whether the configuration runs an in-process server.
func (c Config) Embedded() bool { return len(c.URLs) == 0 }

// Identity returns the part of the configuration that identifies the engine
// instance: two configurations with the same identity share one engine. Limits
// such as retention are applied to the running engine instead (Apply).
func (c Config) Identity() string {
	if c.Embedded() {
		dir, err := filepath.Abs(c.StorageDir)
		if err != nil {
			dir = c.StorageDir
		}
		return "embedded:" + dir
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|", strings.Join(c.URLs, ","), c.CredsFile)
	if c.TLS != nil {
		fmt.Fprintf(h, "%s|%s|%s", c.TLS.CA, c.TLS.Cert, c.TLS.Key)
	}
	return "cluster:" + hex.EncodeToString(h.Sum(nil))
}

func (c *Config) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.CreateTimeout <= 0 {
		c.CreateTimeout = DefaultCreateTimeout
	}
}

// Engine is a connection to JetStream with hookgate's buckets and streams.
type Engine struct {
	cfg    Config
	server *server.Server // nil in cluster mode
	conn   *nats.Conn
	js     jetstream.JetStream
	log    *zap.Logger

	handles
}

// handles are the engine's buckets and streams.
type handles struct {
	Workflows     jetstream.KeyValue
	Keys          jetstream.KeyValue
	Topics        jetstream.KeyValue
	Subscriptions jetstream.KeyValue
	EventIDs      jetstream.KeyValue
	Idempotency   jetstream.KeyValue
	Flow          jetstream.KeyValue
	EventStream   jetstream.Stream
	QueueStream   jetstream.Stream
	RecordStream  jetstream.Stream
	// EventEpoch identifies this event stream among streams of the same
	// name: generated event ids carry it with the event's sequence.
	EventEpoch uint32
}

// Open starts (embedded) or connects to (cluster) the engine and ensures its
// buckets and streams exist. It fails within ConnectTimeout+CreateTimeout.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Engine, error) {
	cfg.setDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{cfg: cfg, log: log}
	var err error
	if cfg.Embedded() {
		err = e.startEmbedded()
	} else {
		err = e.connectCluster()
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	e.js, err = jetstream.New(e.conn)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := e.Apply(ctx, cfg); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Engine) startEmbedded() error {
	dir := e.cfg.StorageDir
	if dir == "" {
		return errors.New("embedded engine: storage directory is not set")
	}
	if err := checkWritableDir(dir); err != nil {
		return fmt.Errorf("embedded engine: storage directory %s is not usable: %w", dir, err)
	}
	opts := &server.Options{
		ServerName:         "hookgate",
		JetStream:          true,
		StoreDir:           dir,
		DontListen:         true,
		NoSigs:             true,
		SyncAlways:         e.cfg.SyncAlways,
		JetStreamMaxMemory: 64 << 20,
		MaxPayload:         8 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded engine in %s: %w", dir, err)
	}
	srv.SetLoggerV2(&natsLogger{log: e.log.Named("nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(e.cfg.ConnectTimeout) {
		srv.Shutdown()
		return fmt.Errorf("embedded engine in %s: not ready after %s", dir, e.cfg.ConnectTimeout)
	}
	e.server = srv
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("hookgate"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("embedded engine: connecting in-process: %w", err)
	}
	e.conn = nc
	return nil
}

func (e *Engine) connectCluster() error {
	urls := strings.Join(e.cfg.URLs, ",")
	opts := []nats.Option{
		nats.Name("hookgate"),
		nats.Timeout(e.cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}
	if e.cfg.CredsFile != "" {
		if _, err := os.Stat(e.cfg.CredsFile); err != nil {
			return fmt.Errorf("nats credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(e.cfg.CredsFile))
	}
	if t := e.cfg.TLS; t != nil {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" || t.Key != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(urls, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return fmt.Errorf("connecting to NATS at %s: %w", urls, r.err)
		}
		e.conn = r.nc
		return nil
	case <-time.After(e.cfg.ConnectTimeout + time.Second):
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return fmt.Errorf("connecting to NATS at %s: no answer within %s", urls, e.cfg.ConnectTimeout)
	}
}

// Apply creates or updates the buckets and streams for cfg's limits. It is
// idempotent; each call is retried until CreateTimeout, since two instances
// creating the same bucket on a fresh cluster have been seen to time out.
func (e *Engine) Apply(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	cfg.Replicas = e.cfg.Replicas
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.CreateTimeout)
	defer cancel()

	// A reload that changes nothing updates nothing: an update request
	// rewrites the stream's configuration on the server, and nats-server
	// reads that configuration unlocked while it creates a consumer on the
	// stream (a data race its race detector reports).
	kv := func(name, desc string, history uint8, ttl time.Duration) (jetstream.KeyValue, error) {
		if cur, ok := e.streamConfig(ctx, "KV_"+name); ok && cur.Description == desc &&
			cur.MaxMsgsPerSubject == int64(history) && cur.MaxAge == ttl && cur.Replicas == cfg.Replicas {
			if b, err := e.js.KeyValue(ctx, name); err == nil {
				return b, nil
			}
		}
		var b jetstream.KeyValue
		err := retry(ctx, "bucket "+name, func(ctx context.Context) (err error) {
			b, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      name,
				Description: desc,
				History:     history,
				TTL:         ttl,
				Storage:     jetstream.FileStorage,
				Replicas:    cfg.Replicas,
			})
			return err
		})
		return b, err
	}
	// Handles are built aside and published only by the first Apply (in
	// Open): later calls (config reloads) update the server-side objects while
	// delivery workers keep using the handles they have.
	var h handles
	var err error
	if h.Workflows, err = kv(BucketWorkflows, "hookgate workflows defined through the API", 1, 0); err != nil {
		return err
	}
	if h.Keys, err = kv(BucketKeys, "hookgate workflow key hashes", 1, 0); err != nil {
		return err
	}
	if h.Topics, err = kv(BucketTopics, "hookgate topics defined through the API", 1, 0); err != nil {
		return err
	}
	if h.Subscriptions, err = kv(BucketSubscriptions, "hookgate subscriptions defined through the API", 1, 0); err != nil {
		return err
	}
	if err := e.refuseLegacyLayout(ctx); err != nil {
		return err
	}
	if h.EventIDs, err = kv(BucketEventIDs, "hookgate publisher-chosen event ids (dedupe window)", 1, min(cfg.DedupeWindow, cfg.Retention)); err != nil {
		return err
	}
	if h.Idempotency, err = kv(BucketIdempotency, "hookgate idempotency header values of passed-on webhooks (dedupe window)", 1, cfg.DedupeWindow); err != nil {
		return err
	}
	if h.Flow, err = kv(BucketFlow, "hookgate: since when each failing destination fails without a success", 1, 0); err != nil {
		return err
	}

	stream := func(sc jetstream.StreamConfig) (jetstream.Stream, error) {
		if cur, ok := e.streamConfig(ctx, sc.Name); ok && cur.Description == sc.Description &&
			slices.Equal(cur.Subjects, sc.Subjects) && cur.Retention == sc.Retention && cur.MaxAge == sc.MaxAge &&
			cur.Duplicates == sc.Duplicates && cur.Storage == sc.Storage && cur.Replicas == sc.Replicas &&
			cur.AllowDirect == sc.AllowDirect {
			if st, err := e.js.Stream(ctx, sc.Name); err == nil {
				return st, nil
			}
		}
		var s jetstream.Stream
		err := retry(ctx, "stream "+sc.Name, func(ctx context.Context) (err error) {
			s, err = e.js.CreateOrUpdateStream(ctx, sc)
			return err
		})
		return s, err
	}
	direct := make([]string, 0, Partitions+1)
	for p := range Partitions {
		direct = append(direct, PartitionSubject(SubjectDirect, p))
	}
	if h.EventStream, err = stream(jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "hookgate accepted events (incoming and published)",
		Subjects:    append(direct, SubjectFanout),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.Retention,
		Duplicates:  min(cfg.DedupeWindow, cfg.Retention), // the server refuses a window longer than MaxAge
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		AllowDirect: true,
	}); err != nil {
		return err
	}
	if h.QueueStream, err = stream(jetstream.StreamConfig{
		Name:        StreamQueue,
		Description: "hookgate delivery queue (fanned-out deliveries and replays)",
		Subjects:    []string{SubjectQueue + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      cfg.Retention,
		Duplicates:  min(2*time.Minute, cfg.Retention),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		return err
	}
	if h.RecordStream, err = stream(jetstream.StreamConfig{
		Name:        StreamRecords,
		Description: "hookgate delivery log (one message per attempt or outcome)",
		Subjects:    []string{SubjectRecords + ".*.*"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.Retention,
		Duplicates:  min(2*time.Minute, cfg.Retention),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		AllowDirect: true,
	}); err != nil {
		return err
	}
	// A replicated stream just created may not have elected its leader
	// yet: the first writes would go unanswered. Wait for the leaders.
	for _, st := range []jetstream.Stream{h.EventStream, h.QueueStream, h.RecordStream} {
		if err := waitLeader(ctx, st); err != nil {
			return err
		}
	}
	info, err := h.EventStream.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", StreamEvents, err)
	}
	h.EventEpoch = uint32(info.Created.Unix())
	if e.Workflows == nil {
		e.handles = h
	}
	return nil
}

// streamConfig returns the configuration of stream name, when it exists
// and reads (reloads only: the first Apply, in Open, creates or updates).
func (e *Engine) streamConfig(ctx context.Context, name string) (*jetstream.StreamConfig, bool) {
	if e.Workflows == nil {
		return nil, false
	}
	st, err := e.js.Stream(ctx, name)
	if err != nil {
		return nil, false
	}
	cfg := st.CachedInfo().Config
	return &cfg, true
}

// waitLeader waits until a stream of a cluster has a leader (at once for a
// single server), or ctx ends.
func waitLeader(ctx context.Context, st jetstream.Stream) error {
	name := st.CachedInfo().Config.Name
	return retry(ctx, "stream "+name+" leader", func(ctx context.Context) error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster != nil && info.Cluster.Leader == "" && info.Config.Replicas > 1 {
			return errors.New("no leader elected yet")
		}
		return nil
	})
}

// PartitionSubject is prefix + "." + p.
func PartitionSubject(prefix string, p int) string { return prefix + "." + strconv.Itoa(p) }

// ErrLegacyLayout is returned by Open when the store holds data written by an
// earlier, incompatible storage layout.
var ErrLegacyLayout = errors.New("storage written by an earlier hookgate layout")

// refuseLegacyLayout fails when the store was written by the layout of
// earlier versions (an event subject per event, delivery records in a KV
// bucket, a consumer per destination): this version neither reads nor
// migrates it. The project has not been released; the error says what to do.
func (e *Engine) refuseLegacyLayout(ctx context.Context) error {
	var found []string
	if s, err := e.js.Stream(ctx, StreamEvents); err == nil && slices.Contains(s.CachedInfo().Config.Subjects, legacySubjectEvents) {
		found = append(found, "stream "+StreamEvents+" with subjects "+legacySubjectEvents)
	}
	if _, err := e.js.Stream(ctx, legacyStreamQueue); err == nil {
		found = append(found, "stream "+legacyStreamQueue)
	}
	if _, err := e.js.KeyValue(ctx, legacyBucketRecords); err == nil {
		found = append(found, "bucket "+legacyBucketRecords)
	}
	if len(found) == 0 {
		return nil
	}
	what := "stop hookgate, move the storage directory " + e.cfg.StorageDir + " away (it holds the old events and records), and start again"
	if !e.cfg.Embedded() {
		what = "stop every hookgate instance, delete " + strings.Join(found, ", ") + " with the nats CLI (nats stream rm / nats kv del), and start again"
	}
	return fmt.Errorf("%w (%s): this version stores events without a subject per event and delivery records in stream %s; %s",
		ErrLegacyLayout, strings.Join(found, "; "), StreamRecords, what)
}

// tryTimeout bounds one creation try. It is short on purpose: when two
// clients create the same stream at once on a cluster, nats-server 2.15.2
// creates it within milliseconds but answers neither request, so each racing
// try costs the whole bound. Two instances starting together race on every
// one of the seven assets in turn; with a 10s bound that took 70s, beyond
// CreateTimeout. A retry is cheap and idempotent (CreateOrUpdate finds the
// stream the unanswered try created).
const tryTimeout = 2 * time.Second

// retry runs op until it succeeds or ctx ends, each try bounded to tryTimeout.
func retry(ctx context.Context, what string, op func(context.Context) error) error {
	var last error
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 2*time.Second) {
		tctx, cancel := context.WithTimeout(ctx, tryTimeout)
		last = op(tctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating %s: %w (gave up: %v)", what, last, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Conn returns the NATS connection.
func (e *Engine) Conn() *nats.Conn { return e.conn }

// JetStream returns the JetStream context.
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// Server returns the embedded server, or nil in cluster mode.
func (e *Engine) Server() *server.Server { return e.server }

// Config returns the configuration the engine was opened with.
func (e *Engine) Config() Config { return e.cfg }

// Close drains the connection and shuts the embedded server down. It copes
// with a half-opened engine and is safe to call twice.
func (e *Engine) Close() error {
	if e.conn != nil {
		_ = e.conn.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !e.conn.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		e.conn.Close()
		e.conn = nil
	}
	if e.server != nil {
		e.server.Shutdown()
		e.server.WaitForShutdown()
		e.server = nil
	}
	return nil
}

func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// natsLogger forwards the embedded server's log lines to zap.
type natsLogger struct{ log *zap.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  {}
