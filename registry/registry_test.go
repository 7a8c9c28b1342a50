package registry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestAuthenticate(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)

	_, key, err := r.CreateWorkflow(ctx, Workflow{ID: "gen"})
	if err != nil {
		t.Fatal(err)
	}
	_, offKey, err := r.CreateWorkflow(ctx, Workflow{ID: "off", Enabled: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	const pinned = "pinned-key-0123456789"
	r.DeclareConfig([]*CompiledWorkflow{
		mustCompileWorkflow(t, Workflow{ID: "pin", FixedKey: pinned}),
		mustCompileWorkflow(t, Workflow{ID: "keyless"}),
		mustCompileWorkflow(t, Workflow{ID: "pinoff", FixedKey: pinned, Enabled: ptr(false)}),
	}, nil, nil)

	now := time.Now()
	tests := []struct {
		name, id, key string
		want          bool
	}{
		{"generated key", "gen", key, true},
		{"wrong key", "gen", key[:42] + "x", false},
		{"empty key", "gen", "", false},
		{"another workflow's key", "gen", offKey, false},
		{"pinned key", "pin", pinned, true},
		{"wrong pinned key", "pin", pinned + "x", false},
		{"generated key on a pinned workflow", "pin", key, false},
		{"unknown workflow", "nope", key, false},
		{"unknown workflow, empty key", "nope", "", false},
		{"disabled workflow, right key", "off", offKey, false},
		{"disabled pinned workflow", "pinoff", pinned, false},
		{"keyless config workflow", "keyless", "", false},
		{"keyless config workflow, some key", "keyless", key, false},
	}
	for _, tc := range tests {
		w, ok := r.Authenticate(tc.id, tc.key, now)
		if ok != tc.want {
			t.Errorf("%s: Authenticate(%q) = %v, want %v", tc.name, tc.id, ok, tc.want)
		}
		if ok && (w == nil || w.Def.ID != tc.id) {
			t.Errorf("%s: returned workflow %+v", tc.name, w)
		}
		if !ok && w != nil {
			t.Errorf("%s: refused but returned a workflow", tc.name)
		}
	}
	for id, want := range map[string]bool{"gen": true, "off": true, "pin": true, "keyless": false, "nope": false} {
		if got := r.HasKey(id); got != want {
			t.Errorf("HasKey(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestAuthenticateGrace(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	_, old, err := r.CreateWorkflow(ctx, Workflow{ID: "w"})
	if err != nil {
		t.Fatal(err)
	}

	// Without grace the old key is refused at once.
	k1, err := r.Regenerate(ctx, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Authenticate("w", old, time.Now()); ok {
		t.Error("old key accepted after a regeneration without grace")
	}
	if _, ok := r.Authenticate("w", k1, time.Now()); !ok {
		t.Error("new key refused")
	}

	// With grace: both keys until it ends, then the new one only.
	const grace = 300 * time.Millisecond
	start := time.Now()
	k2, err := r.Regenerate(ctx, "w", grace)
	if err != nil {
		t.Fatal(err)
	}
	if k2 == k1 {
		t.Fatal("Regenerate returned the same key")
	}
	if _, ok := r.Authenticate("w", k1, time.Now()); !ok {
		t.Error("previous key refused within the grace period")
	}
	if _, ok := r.Authenticate("w", k2, time.Now()); !ok {
		t.Error("new key refused")
	}
	if _, ok := r.Authenticate("w", k1, start.Add(grace+time.Second)); ok {
		t.Error("previous key accepted after the grace period (given now)")
	}
	time.Sleep(time.Until(start.Add(grace + 50*time.Millisecond)))
	if _, ok := r.Authenticate("w", k1, time.Now()); ok {
		t.Error("previous key accepted after the grace period (waited)")
	}
	if _, ok := r.Authenticate("w", k2, time.Now()); !ok {
		t.Error("new key refused after the grace period")
	}
	// The key before the previous one never comes back.
	if _, ok := r.Authenticate("w", old, time.Now()); ok {
		t.Error("first key accepted")
	}

	// A workflow's own grace applies when the call gives none.
	if _, err := r.UpdateWorkflow(ctx, "w", []byte(`{"grace":"1h"}`)); err != nil {
		t.Fatal(err)
	}
	k3, err := r.Regenerate(ctx, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Authenticate("w", k2, time.Now()); !ok {
		t.Error("previous key refused within the workflow's own grace")
	}
	if _, ok := r.Authenticate("w", k2, time.Now().Add(2*time.Hour)); ok {
		t.Error("previous key accepted after the workflow's grace")
	}
	if _, ok := r.Authenticate("w", k3, time.Now()); !ok {
		t.Error("new key refused")
	}
}

func TestDeclareConfigOwnership(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)

	topic := func(name, desc string) *CompiledTopic {
		ct, err := CompileTopic(Topic{Name: name, Description: desc, Source: SourceConfig})
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	sub := func(id, desc string) *CompiledSubscription {
		cs, err := CompileSubscription(Subscription{ID: id, Name: id, Description: desc, Topics: []string{"*"},
			URL: "http://127.0.0.1:9/", Source: SourceConfig}, "", testGuard())
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	old := r.DeclareConfig(
		[]*CompiledWorkflow{mustCompileWorkflow(t, Workflow{ID: "c", Description: "v1"}), mustCompileWorkflow(t, Workflow{ID: "only-old"})},
		[]*CompiledTopic{topic("t.c", "v1")},
		[]*CompiledSubscription{sub("s", "v1")},
	)
	if w, ok := r.Workflow("c"); !ok || w.Def.Description != "v1" {
		t.Fatalf("declared workflow: %v %v", w, ok)
	}
	if _, ok := r.Destination("s"); !ok {
		t.Error("declared subscription has no destination")
	}
	// A newer configuration (a reload) declares the same ids.
	newer := r.DeclareConfig(
		[]*CompiledWorkflow{mustCompileWorkflow(t, Workflow{ID: "c", Description: "v2"})},
		[]*CompiledTopic{topic("t.c", "v2")},
		[]*CompiledSubscription{sub("s", "v2")},
	)
	// The old configuration is released after the new one started.
	old.Release()
	if w, ok := r.Workflow("c"); !ok || w.Def.Description != "v2" {
		t.Errorf("workflow after the old release: %v %v", w, ok)
	}
	if tp, ok := r.Topic("t.c"); !ok || tp.Def.Description != "v2" {
		t.Errorf("topic after the old release: %v %v", tp, ok)
	}
	if s, ok := r.Subscription("s"); !ok || s.Def.Description != "v2" {
		t.Errorf("subscription after the old release: %v %v", s, ok)
	}
	if _, ok := r.Workflow("only-old"); ok {
		t.Error("a workflow only the old configuration declared survived its release")
	}
	// Config resources are read-only through the store.
	if _, err := r.UpdateWorkflow(ctx, "c", []byte(`{}`)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("UpdateWorkflow(config) = %v", err)
	}
	if err := r.DeleteWorkflow(ctx, "c"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("DeleteWorkflow(config) = %v", err)
	}
	if _, err := r.PutTopic(ctx, Topic{Name: "t.c"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("PutTopic(config) = %v", err)
	}
	if err := r.DeleteTopic(ctx, "t.c"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("DeleteTopic(config) = %v", err)
	}
	if _, err := r.UpdateSubscription(ctx, "s", []byte(`{}`)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("UpdateSubscription(config) = %v", err)
	}
	// The gateway may disable a configuration subscription (410 Gone): the
	// state is kept beside it, the subscription itself is not written.
	if err := r.SetSubscriptionEnabled(ctx, "s", false, "x"); err != nil {
		t.Errorf("SetSubscriptionEnabled(config) = %v", err)
	} else if cs, _ := r.Subscription("s"); cs.Def.IsEnabled() || cs.Def.Source != SourceConfig {
		t.Errorf("config subscription after SetSubscriptionEnabled: %+v", cs.Def)
	}
	if err := r.SetSubscriptionEnabled(ctx, "s", true, ""); err != nil {
		t.Errorf("SetSubscriptionEnabled(config, true) = %v", err)
	}
	if _, err := r.RotateSecret(ctx, "s", 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("RotateSecret(config) = %v", err)
	}
	if err := r.DeleteSubscription(ctx, "s"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("DeleteSubscription(config) = %v", err)
	}

	newer.Release()
	if _, ok := r.Workflow("c"); ok {
		t.Error("workflow survived the release of its owner")
	}
	if _, ok := r.Topic("t.c"); ok {
		t.Error("topic survived the release of its owner")
	}
	if _, ok := r.Subscription("s"); ok {
		t.Error("subscription survived the release of its owner")
	}
	if _, ok := r.Destination("s"); ok {
		t.Error("destination survived the release of its owner")
	}
	var nilSet *ConfigSet
	nilSet.Release() // no panic
}

// A configuration entry wins over an API entry of the same id while it is
// declared; the API one shows again once it is released.
func TestConfigShadowsAPI(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	if _, _, err := r.CreateWorkflow(ctx, Workflow{ID: "x", Description: "api"}); err != nil {
		t.Fatal(err)
	}
	set := r.DeclareConfig([]*CompiledWorkflow{mustCompileWorkflow(t, Workflow{ID: "x", Description: "config"})}, nil, nil)
	if w, _ := r.Workflow("x"); w.Def.Description != "config" || w.Def.Source != SourceConfig {
		t.Errorf("while declared: %+v", w.Def)
	}
	set.Release()
	if w, ok := r.Workflow("x"); !ok || w.Def.Description != "api" || w.Def.Source != SourceAPI {
		t.Errorf("after release: %+v %v", w, ok)
	}
}

func TestListsSorted(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	for _, id := range []string{"c", "a", "b"} {
		if _, _, err := r.CreateWorkflow(ctx, Workflow{ID: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PutTopic(ctx, Topic{Name: "t." + id}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateSubscription(ctx, Subscription{ID: "s" + id, Name: "n" + id, Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, w := range r.Workflows() {
		ids = append(ids, w.Def.ID)
	}
	for _, tp := range r.Topics() {
		ids = append(ids, tp.Def.Name)
	}
	for _, s := range r.Subscriptions() {
		ids = append(ids, s.Def.ID)
	}
	want := []string{"a", "b", "c", TopicSubscriptionDisabled, "t.a", "t.b", "t.c", "sa", "sb", "sc"}
	if len(ids) != len(want) {
		t.Fatalf("lists = %v", ids)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("lists = %v, want %v", ids, want)
		}
	}
}

// Start loads what the buckets already hold; entries that do not read or
// compile are logged and skipped.
func TestStartLoadsExisting(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	first := New(eng, testGuard(), nil)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, key, err := first.CreateWorkflow(ctx, Workflow{ID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.PutTopic(ctx, Topic{Name: "ns:topic"}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	first.Stop()
	// Broken entries written behind the registry's back.
	if _, err := eng.Workflows.Put(ctx, "broken", []byte(`{not json`)); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Workflows.Put(ctx, "bad-id", []byte(`{"id":"bad id"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Keys.Put(ctx, "w2", []byte(`{"hash":"nothex"}`)); err != nil {
		t.Fatal(err)
	}

	core, logs := observer.New(zapcore.ErrorLevel)
	second := startRegistry(t, eng, zap.New(core))
	if _, ok := second.Authenticate("w", key, time.Now()); !ok {
		t.Error("key not loaded at start")
	}
	if _, ok := second.Topic("ns:topic"); !ok {
		t.Error("topic not loaded at start")
	}
	if _, ok := second.Subscription("s"); !ok {
		t.Error("subscription not loaded at start")
	}
	if _, ok := second.Workflow("broken"); ok {
		t.Error("unreadable workflow loaded")
	}
	if n := len(second.Workflows()); n != 1 {
		t.Errorf("%d workflows loaded, want 1", n)
	}
	if n := logs.Len(); n != 3 {
		t.Errorf("%d errors logged, want 3: %v", n, logs.All())
	}
}

// A stored resource that no longer compiles never stops a start: it is
// logged once, kept aside as broken (not served), the others are served,
// and it leaves Broken once fixed or deleted.
func TestBrokenStoredResources(t *testing.T) {
	eng := openEngine(t)
	ctx := testCtx(t)
	first := startRegistry(t, eng, nil)
	_, key, err := first.CreateWorkflow(ctx, Workflow{ID: "ok", Targets: []Target{{URL: "http://127.0.0.1:9/ok"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.CreateSubscription(ctx, Subscription{ID: "sok", Name: "sok", Topics: []string{"t.*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	first.Stop()
	// Written behind the registry's back: a target the guard now refuses,
	// a duplicate target id, unreadable JSON, a subscription to a refused
	// URL, a topic whose schema does not compile.
	raw := []struct {
		kv       jetstream.KeyValue
		key, doc string
	}{
		{eng.Workflows, "refused", `{"id":"refused","targets":[{"url":"http://10.0.0.1/x"}]}`},
		{eng.Workflows, "twice", `{"id":"twice","targets":[{"id":"a","url":"http://127.0.0.1:9/a"},{"id":"a","url":"http://127.0.0.1:9/b"}]}`},
		{eng.Workflows, "garbled", `{not json`},
		{eng.Subscriptions, "sbad", `{"id":"sbad","name":"sbad","topics":["t.*"],"url":"http://10.0.0.1/"}`},
		{eng.Topics, "t.bad", `{"name":"t.bad","schema":{"type":12}}`},
	}
	for _, e := range raw {
		if _, err := e.kv.Put(ctx, e.key, []byte(e.doc)); err != nil {
			t.Fatal(err)
		}
	}

	core, logs := observer.New(zapcore.ErrorLevel)
	r := startRegistry(t, eng, zap.New(core))
	if _, ok := r.Authenticate("ok", key, time.Now()); !ok {
		t.Error("the workflow that compiles is not served")
	}
	if subs := r.SubscriptionsForTopic("t.x"); len(subs) != 1 || subs[0].Def.ID != "sok" {
		t.Errorf("SubscriptionsForTopic(t.x) = %v, want sok only", subs)
	}
	for _, id := range []string{"refused", "twice", "garbled"} {
		if _, ok := r.Workflow(id); ok {
			t.Errorf("broken workflow %q is served", id)
		}
	}
	if _, ok := r.Destination("sbad"); ok {
		t.Error("broken subscription has a destination")
	}
	if _, ok := r.Topic("t.bad"); ok {
		t.Error("broken topic is served")
	}
	wantBroken := map[string]map[string]string{
		KindWorkflow:     {"refused": "targets[0].url", "twice": "targets[1].id", "garbled": "unreadable"},
		KindSubscription: {"sbad": "url"},
		KindTopic:        {"t.bad": "schema"},
	}
	for kind, want := range wantBroken {
		got := r.Broken(kind)
		if len(got) != len(want) {
			t.Errorf("Broken(%s) = %v, want %d entries", kind, got, len(want))
		}
		for id, prefix := range want {
			if !strings.HasPrefix(got[id], prefix) {
				t.Errorf("Broken(%s)[%s] = %q, want it to start with %q", kind, id, got[id], prefix)
			}
		}
	}
	// Logged once each, naming the resource.
	if n := logs.Len(); n != 5 {
		t.Errorf("%d errors logged, want 5: %v", n, logs.All())
	}
	for _, e := range logs.All() {
		m := e.ContextMap()
		if m["workflow"] == nil && m["subscription"] == nil && m["topic"] == nil {
			t.Errorf("log %q names no resource: %v", e.Message, m)
		}
	}

	// Fixed, deleted: no longer broken.
	if _, err := eng.Workflows.Put(ctx, "refused", []byte(`{"id":"refused","targets":[{"url":"http://127.0.0.1:9/x"}]}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteWorkflow(ctx, "garbled"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool { _, ok := r.Workflow("refused"); return ok }) {
		t.Fatal("fixed workflow not served")
	}
	if got := r.Broken(KindWorkflow); len(got) != 1 || got["twice"] == "" {
		t.Errorf("Broken(workflow) after the fixes = %v, want twice only", got)
	}
}
