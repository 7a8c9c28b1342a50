package engine

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// testCtx returns a context bounded to d and cancelled at the end of the test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// openEmbedded opens an embedded engine on dir and closes it at the end of
// the test (closing twice is safe, so tests may close it earlier).
func openEmbedded(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.CreateTimeout == 0 {
		cfg.CreateTimeout = 15 * time.Second
	}
	e, err := Open(testCtx(t, 30*time.Second), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.StorageDir, err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func streamInfo(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info
}

func kvConfig(t *testing.T, ctx context.Context, js jetstream.JetStream, bucket string) jetstream.KeyValueConfig {
	t.Helper()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatalf("bucket %s status: %v", bucket, err)
	}
	return st.Config()
}

// eventSubjects are the event stream's subjects.
func eventSubjects() []string {
	var out []string
	for p := range Partitions {
		out = append(out, PartitionSubject(SubjectDirect, p))
	}
	return append(out, SubjectFanout)
}

func eventMsg(id, data string) *nats.Msg {
	m := nats.NewMsg(SubjectFanout)
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = []byte(data)
	return m
}

// checkLayout asserts that every bucket and both streams exist with the
// configuration derived from want.
func checkLayout(t *testing.T, ctx context.Context, e *Engine, want Config) {
	t.Helper()
	js := e.JetStream()
	buckets := []struct {
		name  string
		field jetstream.KeyValue
		ttl   time.Duration
	}{
		{BucketWorkflows, e.Workflows, 0},
		{BucketKeys, e.Keys, 0},
		{BucketTopics, e.Topics, 0},
		{BucketSubscriptions, e.Subscriptions, 0},
		{BucketEventIDs, e.EventIDs, min(want.DedupeWindow, want.Retention)},
		{BucketIdempotency, e.Idempotency, want.DedupeWindow},
		{BucketFlow, e.Flow, 0},
	}
	for _, b := range buckets {
		if b.field == nil {
			t.Errorf("engine field for bucket %s is nil", b.name)
		} else if b.field.Bucket() != b.name {
			t.Errorf("engine field for bucket %s holds bucket %s", b.name, b.field.Bucket())
		}
		c := kvConfig(t, ctx, js, b.name)
		if c.History != 1 || c.TTL != b.ttl || c.Storage != jetstream.FileStorage || c.Replicas != want.Replicas {
			t.Errorf("bucket %s: history=%d ttl=%s storage=%s replicas=%d, want 1, %s, file, %d",
				b.name, c.History, c.TTL, c.Storage, c.Replicas, b.ttl, want.Replicas)
		}
	}

	streams := []struct {
		name      string
		field     jetstream.Stream
		subjects  []string
		retention jetstream.RetentionPolicy
		dupes     time.Duration
		perSubj   int64
	}{
		// The server refuses a dedupe window longer than the stream's max age.
		{StreamEvents, e.EventStream, eventSubjects(), jetstream.LimitsPolicy, min(want.DedupeWindow, want.Retention), -1},
		{StreamQueue, e.QueueStream, []string{SubjectQueue + ".*"}, jetstream.WorkQueuePolicy, min(2*time.Minute, want.Retention), -1},
		{StreamRecords, e.RecordStream, []string{SubjectRecords + ".*.*"}, jetstream.LimitsPolicy, min(2*time.Minute, want.Retention), -1},
	}
	for _, s := range streams {
		if s.field == nil {
			t.Errorf("engine field for stream %s is nil", s.name)
		} else if got := s.field.CachedInfo().Config.Name; got != s.name {
			t.Errorf("engine field for stream %s holds stream %s", s.name, got)
		}
		c := streamInfo(t, ctx, js, s.name).Config
		if !slices.Equal(c.Subjects, s.subjects) {
			t.Errorf("stream %s subjects %v, want %v", s.name, c.Subjects, s.subjects)
		}
		if c.Retention != s.retention {
			t.Errorf("stream %s retention policy %s, want %s", s.name, c.Retention, s.retention)
		}
		if c.MaxAge != want.Retention {
			t.Errorf("stream %s max age %s, want %s", s.name, c.MaxAge, want.Retention)
		}
		if c.Duplicates != s.dupes {
			t.Errorf("stream %s dedupe window %s, want %s", s.name, c.Duplicates, s.dupes)
		}
		if c.Storage != jetstream.FileStorage || c.Replicas != want.Replicas {
			t.Errorf("stream %s storage=%s replicas=%d, want file, %d", s.name, c.Storage, c.Replicas, want.Replicas)
		}
		if c.MaxMsgsPerSubject != s.perSubj {
			t.Errorf("stream %s max msgs per subject %d, want %d", s.name, c.MaxMsgsPerSubject, s.perSubj)
		}
	}
}

func TestEmbeddedLayoutAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store") // created by Open
	ctx := testCtx(t, 40*time.Second)

	e := openEmbedded(t, Config{StorageDir: dir})
	cfg := e.Config()
	if !cfg.Embedded() || cfg.Replicas != 1 || cfg.DedupeWindow != DefaultDedupeWindow ||
		cfg.Retention != DefaultRetention || cfg.ConnectTimeout != DefaultConnectTimeout {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if e.Server() == nil || e.Conn() == nil || e.JetStream() == nil {
		t.Fatal("embedded engine without server, connection or JetStream context")
	}
	if addr := e.Server().Addr(); addr != nil {
		t.Errorf("embedded server listens on %s, want no listener", addr)
	}
	checkLayout(t, ctx, e, cfg)

	if _, err := e.Workflows.Put(ctx, "wf1", []byte("v1")); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	ack, err := e.JetStream().PublishMsg(ctx, eventMsg("ev1", `{"n":1}`))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Stream != StreamEvents || ack.Duplicate {
		t.Fatalf("first publish ack %+v, want stream %s, not duplicate", ack, StreamEvents)
	}
	if ack, err := e.JetStream().Publish(ctx, SubjectQueue+".1", []byte("d1"), jetstream.WithMsgID("ev1:sub1")); err != nil || ack.Stream != StreamQueue {
		t.Fatalf("delivery publish: ack %+v, err %v", ack, err)
	}

	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if e.Conn() != nil || e.Server() != nil {
		t.Fatal("Close left the connection or server in place")
	}

	// Same directory again: everything acknowledged before is still there.
	e2 := openEmbedded(t, Config{StorageDir: dir})
	checkLayout(t, ctx, e2, cfg)
	ent, err := e2.Workflows.Get(ctx, "wf1")
	if err != nil || string(ent.Value()) != "v1" {
		t.Fatalf("kv after restart: %v, %v", ent, err)
	}
	msg, err := e2.EventStream.GetLastMsgForSubject(ctx, SubjectFanout)
	if err != nil {
		t.Fatalf("event after restart: %v", err)
	}
	if string(msg.Data) != `{"n":1}` || msg.Header.Get(jetstream.MsgIDHeader) != "ev1" {
		t.Fatalf("event after restart: data %q, msg id %q", msg.Data, msg.Header.Get(jetstream.MsgIDHeader))
	}
	if info := streamInfo(t, ctx, e2.JetStream(), StreamQueue); info.State.Msgs != 1 {
		t.Fatalf("delivery queue after restart holds %d messages, want 1", info.State.Msgs)
	}

	// The dedupe window survives the restart.
	ack2, err := e2.JetStream().PublishMsg(ctx, eventMsg("ev1", `{"n":2}`))
	if err != nil {
		t.Fatalf("re-publish: %v", err)
	}
	if !ack2.Duplicate || ack2.Sequence != ack.Sequence {
		t.Fatalf("re-publish ack %+v, want duplicate of seq %d", ack2, ack.Sequence)
	}
	if msg, _ := e2.EventStream.GetLastMsgForSubject(ctx, SubjectFanout); msg == nil || string(msg.Data) != `{"n":1}` {
		t.Fatalf("duplicate overwrote the stored event: %v", msg)
	}
	// A new id is accepted.
	if ack3, err := e2.JetStream().PublishMsg(ctx, eventMsg("ev2", `{}`)); err != nil || ack3.Duplicate {
		t.Fatalf("new event: ack %+v, err %v", ack3, err)
	}
	if err := e2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestApplyIdempotentAndUpdates(t *testing.T) {
	ctx := testCtx(t, 40*time.Second)
	cfg := Config{StorageDir: t.TempDir(), Retention: 72 * time.Hour, DedupeWindow: 12 * time.Hour}
	e := openEmbedded(t, cfg)
	want := e.Config()
	checkLayout(t, ctx, e, want)
	if _, err := e.Keys.Put(ctx, "k", []byte("h")); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name                string
		retention, dedupe   time.Duration
		wantRet, wantDedupe time.Duration
	}{
		{"same config", 72 * time.Hour, 12 * time.Hour, 72 * time.Hour, 12 * time.Hour},
		{"same config again", 72 * time.Hour, 12 * time.Hour, 72 * time.Hour, 12 * time.Hour},
		{"longer retention", 14 * 24 * time.Hour, 12 * time.Hour, 14 * 24 * time.Hour, 12 * time.Hour},
		{"shorter dedupe window", 14 * 24 * time.Hour, time.Hour, 14 * 24 * time.Hour, time.Hour},
		{"both changed", 48 * time.Hour, 30 * time.Minute, 48 * time.Hour, 30 * time.Minute},
		{"zero means defaults", 0, 0, DefaultRetention, DefaultDedupeWindow},
		{"retention shorter than dedupe window", time.Hour, 0, time.Hour, DefaultDedupeWindow},
		{"retention shorter than queue dedupe window", 5 * time.Minute, time.Minute, 5 * time.Minute, time.Minute},
		{"back to long retention", 72 * time.Hour, 12 * time.Hour, 72 * time.Hour, 12 * time.Hour},
	}
	// Stream updates, as the server announces them: a reload that changes
	// nothing updates nothing.
	var updates atomic.Int64
	sub, err := e.Conn().Subscribe("$JS.EVENT.ADVISORY.STREAM.UPDATED.>", func(*nats.Msg) { updates.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	prevRet, prevDedupe := cfg.Retention, cfg.DedupeWindow
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			unchanged := st.wantRet == prevRet && st.wantDedupe == prevDedupe
			prevRet, prevDedupe = st.wantRet, st.wantDedupe
			before := updates.Load()
			defer func() {
				_ = e.Conn().Flush()
				time.Sleep(50 * time.Millisecond) // advisories are published asynchronously
				if n := updates.Load() - before; unchanged && n != 0 {
					t.Errorf("Apply with an unchanged configuration updated %d streams", n)
				} else if !unchanged && n == 0 {
					t.Error("Apply with a changed configuration updated no stream")
				}
			}()
			c := cfg
			c.Retention, c.DedupeWindow = st.retention, st.dedupe
			c.Replicas = 3 // ignored: replicas are fixed by Open
			c.CreateTimeout = 10 * time.Second
			start := time.Now()
			if err := e.Apply(ctx, c); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Apply took %s", d)
			}
			w := want
			w.Retention, w.DedupeWindow = st.wantRet, st.wantDedupe
			checkLayout(t, ctx, e, w)
			ent, err := e.Keys.Get(ctx, "k")
			if err != nil || string(ent.Value()) != "h" {
				t.Fatalf("value lost across Apply: %v, %v", ent, err)
			}
		})
	}
}

// A retention shorter than the dedupe windows must not make Open spin until
// CreateTimeout on "duplicates window can not be larger then max age".
func TestOpenShortRetention(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	start := time.Now()
	e := openEmbedded(t, Config{StorageDir: t.TempDir(), Retention: 2 * time.Minute, CreateTimeout: 5 * time.Second})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open took %s", d)
	}
	checkLayout(t, ctx, e, e.Config())
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestOpenErrors(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	underFile := filepath.Join(file, "sub")
	deadURL := "nats://127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there any more
	missingCreds := filepath.Join(tmp, "missing.creds")

	cases := []struct {
		name    string
		cfg     Config
		want    []string // substrings of the error
		maxTime time.Duration
	}{
		{
			name:    "storage dir under a regular file",
			cfg:     Config{StorageDir: underFile},
			want:    []string{underFile},
			maxTime: 2 * time.Second,
		},
		{
			name:    "storage dir not set",
			cfg:     Config{},
			want:    []string{"storage directory"},
			maxTime: 2 * time.Second,
		},
		{
			name:    "cluster URL nothing listens on",
			cfg:     Config{URLs: []string{deadURL}, ConnectTimeout: time.Second},
			want:    []string{deadURL},
			maxTime: 4 * time.Second,
		},
		{
			name:    "missing credentials file",
			cfg:     Config{URLs: []string{deadURL}, CredsFile: missingCreds, ConnectTimeout: time.Second},
			want:    []string{"credentials", missingCreds},
			maxTime: 2 * time.Second,
		},
		{
			// A permanent JetStream error is retried, but only until CreateTimeout.
			name:    "replicas on a single embedded server",
			cfg:     Config{StorageDir: filepath.Join(tmp, "r3"), Replicas: 3, CreateTimeout: time.Second},
			want:    []string{BucketWorkflows, "replicas"},
			maxTime: 4 * time.Second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			e, err := Open(testCtx(t, 30*time.Second), tc.cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
			elapsed := time.Since(start)
			if err == nil {
				e.Close()
				t.Fatal("Open succeeded")
			}
			if e != nil {
				t.Errorf("Open returned an engine with error %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if elapsed > tc.maxTime {
				t.Errorf("Open failed after %s, want within %s", elapsed, tc.maxTime)
			}
		})
	}
}

func TestOpenHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	e, err := Open(ctx, Config{StorageDir: t.TempDir()}, nil)
	if err == nil {
		e.Close()
		t.Fatal("Open with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), context.Canceled.Error()) {
		t.Errorf("error %q does not say the context was cancelled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %s with a cancelled context", d)
	}
}

func TestIdentity(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223"}
	cluster := Config{URLs: urls, CredsFile: "/etc/hg.creds", TLS: &TLS{CA: "ca.pem", Cert: "c.pem", Key: "k.pem"}}
	with := func(f func(*Config)) Config {
		c := cluster
		c.URLs = append([]string(nil), cluster.URLs...)
		tls := *cluster.TLS
		c.TLS = &tls
		f(&c)
		return c
	}

	cases := []struct {
		name string
		a, b Config
		same bool
	}{
		{"embedded same dir", Config{StorageDir: "/var/hg"}, Config{StorageDir: "/var/hg"}, true},
		{"embedded relative vs absolute", Config{StorageDir: "data/hg"}, Config{StorageDir: filepath.Join(wd, "data", "hg")}, true},
		{"embedded unclean path", Config{StorageDir: "/var/x/../hg/"}, Config{StorageDir: "/var/hg"}, true},
		{"embedded other dir", Config{StorageDir: "/var/hg"}, Config{StorageDir: "/var/hg2"}, false},
		{"embedded limits ignored", Config{StorageDir: "/var/hg"},
			Config{StorageDir: "/var/hg", Retention: time.Hour, DedupeWindow: time.Minute, Replicas: 3, SyncAlways: true,
				ConnectTimeout: time.Second, CreateTimeout: time.Second, CredsFile: "x", TLS: &TLS{CA: "y"}}, true},
		{"embedded vs cluster", Config{StorageDir: "/var/hg"}, Config{StorageDir: "/var/hg", URLs: urls}, false},
		{"cluster same", cluster, with(func(*Config) {}), true},
		{"cluster storage dir and limits ignored", cluster, with(func(c *Config) {
			c.StorageDir, c.Retention, c.DedupeWindow, c.Replicas, c.ConnectTimeout = "/x", time.Hour, time.Minute, 3, time.Second
		}), true},
		{"cluster other URL", cluster, with(func(c *Config) { c.URLs[1] = "nats://127.0.0.1:4224" }), false},
		{"cluster fewer URLs", cluster, with(func(c *Config) { c.URLs = c.URLs[:1] }), false},
		{"cluster other creds", cluster, with(func(c *Config) { c.CredsFile = "/etc/other.creds" }), false},
		{"cluster no creds", cluster, with(func(c *Config) { c.CredsFile = "" }), false},
		{"cluster other CA", cluster, with(func(c *Config) { c.TLS.CA = "ca2.pem" }), false},
		{"cluster other cert", cluster, with(func(c *Config) { c.TLS.Cert = "c2.pem" }), false},
		{"cluster other key", cluster, with(func(c *Config) { c.TLS.Key = "k2.pem" }), false},
		{"cluster no TLS", cluster, with(func(c *Config) { c.TLS = nil }), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ia, ib := tc.a.Identity(), tc.b.Identity()
			if (ia == ib) != tc.same {
				t.Errorf("identities %q and %q: same=%v, want %v", ia, ib, ia == ib, tc.same)
			}
			if ia != tc.a.Identity() {
				t.Error("Identity is not stable")
			}
			wantPrefix := "cluster:"
			if tc.a.Embedded() {
				wantPrefix = "embedded:"
			}
			if !strings.HasPrefix(ia, wantPrefix) {
				t.Errorf("identity %q lacks prefix %q", ia, wantPrefix)
			}
			for _, secretish := range []string{"creds", "pem"} {
				if !tc.a.Embedded() && strings.Contains(ia, secretish) {
					t.Errorf("cluster identity %q shows file names", ia)
				}
			}
		})
	}
}

// A store written by the earlier layout (an event subject per event, the
// delivery queue HOOKGATE_DELIVERIES, records in a KV bucket) is refused at
// start with an error that names what was found and what to do.
func TestLegacyLayoutRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create func(context.Context, jetstream.JetStream) error
		want   string
	}{
		{"per-event subjects", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamEvents, Subjects: []string{legacySubjectEvents}})
			return err
		}, "subjects hookgate.events.>"},
		{"old queue", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: legacyStreamQueue, Subjects: []string{"hookgate.deliveries.>"}})
			return err
		}, "stream HOOKGATE_DELIVERIES"},
		{"records bucket", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: legacyBucketRecords})
			return err
		}, "bucket hookgate_deliveries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := testCtx(t, 30*time.Second)
			// An engine over a bare server writes what the old version wrote.
			bare := openEmbedded(t, Config{StorageDir: dir})
			for _, s := range []string{StreamEvents, StreamQueue, StreamRecords} {
				_ = bare.JetStream().DeleteStream(ctx, s)
			}
			if err := tc.create(ctx, bare.JetStream()); err != nil {
				t.Fatal(err)
			}
			bare.Close()
			_, err := Open(ctx, Config{StorageDir: dir, CreateTimeout: 5 * time.Second}, nil)
			if !errors.Is(err, ErrLegacyLayout) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Open over the old layout: %v", err)
			}
		})
	}
}
