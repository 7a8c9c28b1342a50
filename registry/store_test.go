package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/signature"
)

// bucketContents returns every value of a bucket, by key.
func bucketContents(t *testing.T, kv jetstream.KeyValue) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = string(e.Value())
	}
	return out
}

func TestCreateWorkflow(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)

	cw, key, err := r.CreateWorkflow(ctx, Workflow{ID: "prov", Description: "d", Source: SourceConfig, FixedKey: "smuggled-pinned-key"})
	if err != nil {
		t.Fatal(err)
	}
	if cw.Def.Source != SourceAPI || cw.fixedHash != nil {
		t.Errorf("source %q, fixed hash %v: the API cannot pin keys", cw.Def.Source, cw.fixedHash)
	}
	if len(key) != 43 {
		t.Fatalf("key %q", key)
	}
	// Visible at once (the write waits for the watch).
	if w, ok := r.Workflow("prov"); !ok || w.Def.Description != "d" {
		t.Fatalf("Workflow after create: %v %v", w, ok)
	}
	if _, ok := r.Authenticate("prov", key, time.Now()); !ok {
		t.Error("the returned key is refused")
	}

	// Only the SHA-256 of the key is stored, and the key is nowhere.
	keys := bucketContents(t, eng.Keys)
	var rec keyRecord
	if err := json.Unmarshal([]byte(keys["prov"]), &rec); err != nil {
		t.Fatalf("keys bucket record %q: %v", keys["prov"], err)
	}
	if rec.Hash != hashHex(HashKey(key)) || rec.PreviousHash != "" {
		t.Errorf("stored record %+v, want the SHA-256 hex of the key", rec)
	}
	for name, kv := range map[string]jetstream.KeyValue{"keys": eng.Keys, "workflows": eng.Workflows} {
		for k, v := range bucketContents(t, kv) {
			if strings.Contains(v, key) || strings.Contains(k, key) {
				t.Errorf("bucket %s holds the key in clear under %q", name, k)
			}
		}
	}
	var stored map[string]any
	if err := json.Unmarshal([]byte(bucketContents(t, eng.Workflows)["prov"]), &stored); err != nil {
		t.Fatal(err)
	}
	if stored["id"] != "prov" || stored["source"] != SourceAPI {
		t.Errorf("stored workflow %v", stored)
	}

	// Duplicates and config ids conflict; invalid ones say which field.
	if _, _, err := r.CreateWorkflow(ctx, Workflow{ID: "prov"}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate: %v", err)
	}
	r.DeclareConfig([]*CompiledWorkflow{mustCompileWorkflow(t, Workflow{ID: "conf"})}, nil, nil)
	if _, _, err := r.CreateWorkflow(ctx, Workflow{ID: "conf"}); !errors.Is(err, ErrConflict) {
		t.Errorf("config id: %v", err)
	}
	if _, err := eng.Workflows.Get(ctx, "conf"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("a config id was written to the bucket: %v", err)
	}
	if _, _, err := r.CreateWorkflow(ctx, Workflow{ID: "x", Targets: []Target{{URL: "http://10.0.0.1/"}}}); err == nil {
		t.Error("a refused target was accepted")
	} else if f, _ := invalidField(err); f != "targets[0].url" {
		t.Errorf("refused target: %v", err)
	}

	// No id: one is generated.
	cw, key2, err := r.CreateWorkflow(ctx, Workflow{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cw.Def.ID, "wf_") || !ValidID(cw.Def.ID) || key2 == key {
		t.Errorf("generated id %q", cw.Def.ID)
	}
}

func TestUpdateWorkflow(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	_, key, err := r.CreateWorkflow(ctx, Workflow{
		ID: "w", Description: "old", Filter: `body.a == 1`, Methods: []string{"POST", "PUT"},
		Targets: []Target{{URL: "http://127.0.0.1:9/a", Headers: map[string]string{"X-A": "1", "X-B": "2"}}},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Merge patch: change a field, remove another with null, patch a nested
	// object (an array is replaced whole).
	cw, err := r.UpdateWorkflow(ctx, "w", []byte(`{"description":"new","filter":null,"name":"W","id":"ignored","source":"config"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cw.Def.Description != "new" || cw.Def.Filter != "" || cw.Filter != nil || cw.Def.Name != "W" {
		t.Errorf("patched: %+v", cw.Def)
	}
	if cw.Def.ID != "w" || cw.Def.Source != SourceAPI {
		t.Errorf("id %q source %q must not change", cw.Def.ID, cw.Def.Source)
	}
	if got, _ := r.Workflow("w"); got.Def.Description != "new" || len(got.Def.Methods) != 2 {
		t.Errorf("registry after patch: %+v", got.Def)
	}
	cw, err = r.UpdateWorkflow(ctx, "w", []byte(`{"targets":[{"url":"http://127.0.0.1:9/b","timeout":"2s"}],"methods":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cw.Targets) != 1 || cw.Targets[0].URL != "http://127.0.0.1:9/b" || cw.Targets[0].Timeout != 2*time.Second ||
		cw.Targets[0].Headers != nil || len(cw.Methods) != 1 {
		t.Errorf("patched targets: %+v methods %v", cw.Targets[0], cw.Methods)
	}
	// The key is untouched by updates.
	if _, ok := r.Authenticate("w", key, time.Now()); !ok {
		t.Error("key refused after an update")
	}
	// Disable.
	if _, err := r.UpdateWorkflow(ctx, "w", []byte(`{"enabled":false}`)); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Authenticate("w", key, time.Now()); ok {
		t.Error("disabled workflow accepted its key")
	}

	tests := []struct {
		name, patch, field string
	}{
		{"unknown field", `{"bogus":1}`, "body"},
		{"wrong type", `{"max_body":"big"}`, "body"},
		{"not an object", `[1]`, "body"},
		{"not JSON", `{`, "body"},
		{"invalid value", `{"methods":["G T"]}`, "methods"},
		{"refused target", `{"targets":[{"url":"http://10.0.0.1/"}]}`, "targets[0].url"},
		{"bad duration", `{"grace":"soon"}`, "body"},
	}
	before := bucketContents(t, eng.Workflows)["w"]
	for _, tc := range tests {
		_, err := r.UpdateWorkflow(ctx, "w", []byte(tc.patch))
		if f, ok := invalidField(err); !ok || f != tc.field {
			t.Errorf("%s: %v (field %q), want field %q", tc.name, err, f, tc.field)
		}
	}
	if after := bucketContents(t, eng.Workflows)["w"]; after != before {
		t.Errorf("failed patches changed the stored workflow:\n%s\n%s", before, after)
	}

	if _, err := r.UpdateWorkflow(ctx, "nope", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	r.DeclareConfig([]*CompiledWorkflow{mustCompileWorkflow(t, Workflow{ID: "conf"})}, nil, nil)
	if _, err := r.UpdateWorkflow(ctx, "conf", []byte(`{"description":"x"}`)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("config: %v", err)
	}
}

func TestDeleteWorkflow(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	_, key, err := r.CreateWorkflow(ctx, Workflow{ID: "w", Targets: []Target{{URL: "http://127.0.0.1:9/"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Destination(TargetDestinationID("w", TargetID("", "http://127.0.0.1:9/"))); !ok {
		t.Fatal("target destination missing")
	}
	if err := r.DeleteWorkflow(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Workflow("w"); ok {
		t.Error("workflow still in the registry")
	}
	if _, ok := r.Destination(TargetDestinationID("w", TargetID("", "http://127.0.0.1:9/"))); ok {
		t.Error("target destination still in the registry")
	}
	if _, err := eng.Keys.Get(ctx, "w"); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		t.Errorf("key record still stored: %v", err)
	}
	if !waitFor(time.Second, func() bool { return !r.HasKey("w") }) {
		t.Error("key still in the registry")
	}
	if _, ok := r.Authenticate("w", key, time.Now()); ok {
		t.Error("deleted workflow authenticates")
	}
	if err := r.DeleteWorkflow(ctx, "w"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// The id can be used again, with a new key.
	_, key2, err := r.CreateWorkflow(ctx, Workflow{ID: "w"})
	if err != nil {
		t.Fatalf("recreate: %v", err)
	}
	if _, ok := r.Authenticate("w", key, time.Now()); ok {
		t.Error("the deleted workflow's key works on its successor")
	}
	if _, ok := r.Authenticate("w", key2, time.Now()); !ok {
		t.Error("new key refused")
	}
}

func TestRegenerate(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	_, k0, err := r.CreateWorkflow(ctx, Workflow{ID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := r.Regenerate(ctx, "w", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var rec keyRecord
	e, err := eng.Keys.Get(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Hash != hashHex(HashKey(k1)) || rec.PreviousHash != hashHex(HashKey(k0)) ||
		rec.PreviousUntil.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("stored record %+v", rec)
	}
	if strings.Contains(string(e.Value()), k0) || strings.Contains(string(e.Value()), k1) {
		t.Error("a key is stored in clear")
	}

	if _, err := r.Regenerate(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	r.DeclareConfig([]*CompiledWorkflow{mustCompileWorkflow(t, Workflow{ID: "pin", FixedKey: "pinned-key-0123456789"})}, nil, nil)
	if _, err := r.Regenerate(ctx, "pin", 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("pinned: %v", err)
	}
	if _, err := eng.Keys.Get(ctx, "pin"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("a key was stored for a pinned workflow: %v", err)
	}
}

func TestTopicKeyEncoding(t *testing.T) {
	tests := []struct {
		name    string
		encoded bool
	}{
		{"document.deleted", false},
		{"USER_CREATED", false},
		{"x/y", false}, // '/' is a valid KV key character
		{"a-b_c=d", false},
		{"ns:topic", true},
		{".leading", true},
		{"trailing.", true},
		{"a..b", true},
		{"b64=looks-encoded", true}, // would be decoded otherwise
		{"é", true},
		{"a+b", true},
		{"a@b#c", true},
	}
	for _, tc := range tests {
		key := encodeTopicKey(tc.name)
		if got := strings.HasPrefix(key, "b64="); got != tc.encoded {
			t.Errorf("encodeTopicKey(%q) = %q, encoded %v, want %v", tc.name, key, got, tc.encoded)
		}
		if !tc.encoded && key != tc.name {
			t.Errorf("encodeTopicKey(%q) = %q, want it unchanged", tc.name, key)
		}
		back, err := decodeTopicKey(key)
		if err != nil || back != tc.name {
			t.Errorf("decodeTopicKey(%q) = %q, %v; want %q", key, back, err, tc.name)
		}
	}
	if _, err := decodeTopicKey("b64=!!!"); err == nil {
		t.Error("decodeTopicKey accepted bad base64")
	}
}

func TestTopics(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	names := []string{"document.deleted", "USER_CREATED", "x/y", "ns:topic", "b64=x", "é.créé", "a..b"}
	for _, name := range names {
		ct, err := r.PutTopic(ctx, Topic{Name: name, Description: "v1", Source: SourceConfig, SchemaLocation: "/etc/x"})
		if err != nil {
			t.Fatalf("PutTopic(%q): %v", name, err)
		}
		if ct.Def.Source != SourceAPI || ct.Def.SchemaLocation != "" {
			t.Errorf("PutTopic(%q) def %+v", name, ct.Def)
		}
		if got, ok := r.Topic(name); !ok || got.Def.Description != "v1" {
			t.Errorf("Topic(%q) = %v, %v", name, got, ok)
		}
		if _, err := eng.Topics.Get(ctx, encodeTopicKey(name)); err != nil {
			t.Errorf("stored key of %q: %v", name, err)
		}
	}
	// Put replaces.
	if _, err := r.PutTopic(ctx, Topic{Name: "ns:topic", Description: "v2", Schema: json.RawMessage(`{"type":"object"}`)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Topic("ns:topic"); got.Def.Description != "v2" || got.Contract == nil {
		t.Errorf("replaced topic %+v", got.Def)
	}
	if n := len(r.Topics()); n != len(names)+len(builtinTopics) {
		t.Errorf("%d topics, want %d and the built-in ones", n, len(names))
	}
	for _, bad := range []Topic{{Name: "a b"}, {Name: ""}, {Name: "x.*"}, {Name: "t", Schema: json.RawMessage(`[`)}} {
		if _, err := r.PutTopic(ctx, bad); err == nil {
			t.Errorf("PutTopic(%+v) accepted", bad)
		} else if _, ok := invalidField(err); !ok {
			t.Errorf("PutTopic(%+v): %v is not an InvalidError", bad, err)
		}
	}
	for _, name := range names {
		if err := r.DeleteTopic(ctx, name); err != nil {
			t.Errorf("DeleteTopic(%q): %v", name, err)
		}
		if _, ok := r.Topic(name); ok {
			t.Errorf("Topic(%q) after delete", name)
		}
	}
	if err := r.DeleteTopic(ctx, "ns:topic"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := r.DeleteTopic(ctx, "a b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of an invalid name: %v", err)
	}
}

func TestCreateSubscription(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	base := Subscription{Topics: []string{"document.*"}, URL: "http://127.0.0.1:9/hook"}

	for _, secret := range []string{"", "generate"} {
		s := base
		s.Name, s.Secret = "gen-"+secret, secret
		cs, err := r.CreateSubscription(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cs.Def.Secret, signature.SecretPrefix) || len(cs.Dest.Keys) != 1 || len(cs.Dest.Keys[0]) != 32 {
			t.Errorf("secret %q: got %q, %d keys", secret, cs.Def.Secret, len(cs.Dest.Keys))
		}
		if !strings.HasPrefix(cs.Def.ID, "sub_") || cs.Def.Source != SourceAPI || cs.Def.CreatedAt.IsZero() {
			t.Errorf("defaults: %+v", cs.Def)
		}
		got, ok := r.Subscription(cs.Def.ID)
		if !ok || got.Def.Secret != cs.Def.Secret || len(got.Dest.Keys) != 1 {
			t.Errorf("registry view: %+v %v", got, ok)
		}
		// Stored once, in the stored form's own field.
		raw := bucketContents(t, eng.Subscriptions)[cs.Def.ID]
		if strings.Count(raw, cs.Def.Secret) != 1 {
			t.Errorf("stored %s", raw)
		}
	}
	s := base
	s.ID, s.Name, s.Secret = "unsigned", "unsigned", "none"
	cs, err := r.CreateSubscription(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Def.Secret != "" || len(cs.Dest.Keys) != 0 {
		t.Errorf("none: secret %q, %d keys", cs.Def.Secret, len(cs.Dest.Keys))
	}
	s.ID, s.Name, s.Secret = "given", "given", "It's a raw secret"
	if cs, err = r.CreateSubscription(ctx, s); err != nil || cs.Def.Secret != "It's a raw secret" || string(cs.Dest.Keys[0]) != "It's a raw secret" {
		t.Errorf("given secret: %+v %v", cs, err)
	}

	// Names are unique; ids too.
	s.ID, s.Name, s.Secret = "other", "unsigned", ""
	_, err = r.CreateSubscription(ctx, s)
	if !errors.Is(err, ErrConflict) {
		t.Errorf("name taken: %v", err)
	} else if f, _ := invalidField(err); f != "name" {
		t.Errorf("name taken: field %q", f)
	}
	s.ID, s.Name = "unsigned", "fresh-name"
	if _, err = r.CreateSubscription(ctx, s); !errors.Is(err, ErrConflict) {
		t.Errorf("id taken: %v", err)
	}
	cfg, err := CompileSubscription(Subscription{ID: "conf", Name: "conf", Topics: []string{"*"}, URL: "http://127.0.0.1:9/", Source: SourceConfig}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.DeclareConfig(nil, nil, []*CompiledSubscription{cfg})
	s.ID, s.Name = "conf", "another"
	if _, err = r.CreateSubscription(ctx, s); !errors.Is(err, ErrConflict) {
		t.Errorf("config id: %v", err)
	}
	s.ID, s.Name = "", "conf" // a config subscription's name is taken too
	if _, err = r.CreateSubscription(ctx, s); !errors.Is(err, ErrConflict) {
		t.Errorf("config name: %v", err)
	}
	s.Name, s.URL = "refused", "http://10.0.0.1/"
	if _, err = r.CreateSubscription(ctx, s); err == nil {
		t.Error("refused url accepted")
	} else if f, _ := invalidField(err); f != "url" {
		t.Errorf("refused url: %v", err)
	}
}

func TestUpdateSubscription(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	cs, err := r.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Description: "old", Topics: []string{"a"},
		URL: "http://127.0.0.1:9/", Include: Predicates{`tenant == "x"`}, Headers: map[string]string{"X-A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	secret, created := cs.Def.Secret, cs.Def.CreatedAt
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "t", Name: "taken", Topics: []string{"a"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}

	cs, err = r.UpdateSubscription(ctx, "s", []byte(`{"description":"new","include":null,"topics":["b.*","c"],"headers":{"X-B":"2"},"max_attempts":2}`))
	if err != nil {
		t.Fatal(err)
	}
	d := cs.Def
	if d.Description != "new" || len(d.Include) != 0 || cs.Include != nil || len(d.Topics) != 2 || d.MaxAttempts != 2 {
		t.Errorf("patched %+v", d)
	}
	if d.Headers["X-A"] != "1" || d.Headers["X-B"] != "2" {
		t.Errorf("headers are merged: %v", d.Headers)
	}
	if d.Secret != secret || !d.CreatedAt.Equal(created) || len(cs.Dest.Keys) != 1 {
		t.Errorf("secret or creation time changed: %q %v", d.Secret, d.CreatedAt)
	}
	if got, _ := r.Subscription("s"); !got.MatchesTopic("b.x") || got.MatchesTopic("a") || got.Def.Secret != secret {
		t.Errorf("registry after patch: %+v", got.Def)
	}

	for _, tc := range []struct{ patch, field string }{
		{`{"secret":"whsec_AAAA"}`, "secret"},
		{`{"id":"x"}`, "id"},
		{`{"source":"config"}`, "source"},
		{`{"created_at":"2020-01-01T00:00:00Z"}`, "created_at"},
		{`{"nope":1}`, "body"},
		{`not json`, "body"},
		{`{"topics":[]}`, "topics"},
		{`{"url":"http://10.0.0.1/"}`, "url"},
		{`{"name":"taken"}`, "name"},
	} {
		_, err := r.UpdateSubscription(ctx, "s", []byte(tc.patch))
		if f, ok := invalidField(err); !ok || f != tc.field {
			t.Errorf("patch %s: %v, want field %q", tc.patch, err, tc.field)
		}
	}
	if _, err := r.UpdateSubscription(ctx, "s", []byte(`{"name":"taken"}`)); !errors.Is(err, ErrConflict) {
		t.Errorf("name taken: %v", err)
	}
	if _, err := r.UpdateSubscription(ctx, "nope", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	if got, _ := r.Subscription("s"); got.Def.Secret != secret {
		t.Error("secret changed by a refused patch")
	}
}

func TestSetSubscriptionEnabled(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSubscriptionEnabled(ctx, "s", false, "the subscriber answered 410 Gone"); err != nil {
		t.Fatal(err)
	}
	got, _ := r.Subscription("s")
	if got.Def.IsEnabled() || got.Dest.Enabled || got.Def.DisabledReason != "the subscriber answered 410 Gone" {
		t.Errorf("disabled: %+v enabled=%v", got.Def, got.Dest.Enabled)
	}
	if d, _ := r.Destination("s"); d.Enabled {
		t.Error("destination still enabled")
	}
	// Re-enabling through a patch clears the reason.
	if _, err := r.UpdateSubscription(ctx, "s", []byte(`{"enabled":true}`)); err != nil {
		t.Fatal(err)
	}
	got, _ = r.Subscription("s")
	if !got.Dest.Enabled || got.Def.DisabledReason != "" {
		t.Errorf("re-enabled by patch: %+v", got.Def)
	}
	if err := r.SetSubscriptionEnabled(ctx, "s", false, "manual"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSubscriptionEnabled(ctx, "s", true, "ignored"); err != nil {
		t.Fatal(err)
	}
	got, _ = r.Subscription("s")
	if !got.Dest.Enabled || got.Def.DisabledReason != "" {
		t.Errorf("re-enabled: %+v", got.Def)
	}
	if err := r.SetSubscriptionEnabled(ctx, "nope", false, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestRotateSecret(t *testing.T) {
	eng, r := newTestRegistry(t)
	ctx := testCtx(t)
	cs, err := r.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"})
	if err != nil {
		t.Fatal(err)
	}
	// A second subscription rotated with a long grace must keep its two
	// keys when the short grace of the first one ends.
	_, err = r.CreateSubscription(ctx, Subscription{ID: "long", Name: "long", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"})
	if err != nil {
		t.Fatal(err)
	}
	longNew, err := r.RotateSecret(ctx, "long", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	old := cs.Def.Secret
	const grace = 400 * time.Millisecond
	start := time.Now()
	secret, err := r.RotateSecret(ctx, "s", grace)
	if err != nil {
		t.Fatal(err)
	}
	if secret == old || !strings.HasPrefix(secret, signature.SecretPrefix) {
		t.Fatalf("new secret %q", secret)
	}
	oldKey, _ := signature.ParseSecret(old)
	newKey, _ := signature.ParseSecret(secret)
	got, _ := r.Subscription("s")
	if got.Def.Secret != secret || len(got.Dest.Keys) != 2 ||
		string(got.Dest.Keys[0]) != string(newKey) || string(got.Dest.Keys[1]) != string(oldKey) {
		t.Fatalf("during grace: secret %q, %d keys", got.Def.Secret, len(got.Dest.Keys))
	}
	var st storedSubscription
	e, err := eng.Subscriptions.Get(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Secret != secret || st.PreviousSecret != old || st.PreviousUntil.Before(start.Add(grace-time.Second)) {
		t.Errorf("stored %+v", st)
	}
	if elapsed := time.Since(start); elapsed > grace {
		t.Fatalf("test too slow to check the grace period (%v)", elapsed)
	}

	// After the grace period the old key stops signing, on its own.
	if !waitFor(grace+2*time.Second, func() bool {
		got, _ := r.Subscription("s")
		return len(got.Dest.Keys) == 1
	}) {
		t.Fatal("old key still signing after the grace period")
	}
	if time.Since(start) < grace {
		t.Errorf("old key dropped after %v, before the grace period (%v) ended", time.Since(start), grace)
	}
	got, _ = r.Subscription("s")
	if string(got.Dest.Keys[0]) != string(newKey) {
		t.Error("the remaining key is not the new one")
	}
	if d, _ := r.Destination("s"); len(d.Keys) != 1 {
		t.Error("destination still has two keys")
	}
	if l, _ := r.Subscription("long"); len(l.Dest.Keys) != 2 || l.Def.Secret != longNew {
		t.Errorf("a subscription rotated with 1h grace lost its previous key after another one's grace ended: %d keys", len(l.Dest.Keys))
	}

	// Default grace: 24h.
	before := time.Now()
	if _, err := r.RotateSecret(ctx, "s", 0); err != nil {
		t.Fatal(err)
	}
	e, _ = eng.Subscriptions.Get(ctx, "s")
	_ = json.Unmarshal(e.Value(), &st)
	if d := st.PreviousUntil.Sub(before); d < 24*time.Hour-time.Minute || d > 24*time.Hour+time.Minute {
		t.Errorf("default grace = %v", d)
	}

	// An unsigned subscription has nothing to keep.
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "u", Name: "u", Secret: "none", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateSecret(ctx, "u", time.Hour); err != nil {
		t.Fatal(err)
	}
	if u, _ := r.Subscription("u"); len(u.Dest.Keys) != 1 || u.Def.Secret == "" {
		t.Errorf("unsigned rotated: %d keys", len(u.Dest.Keys))
	}
	if _, err := r.RotateSecret(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestDeleteSubscription(t *testing.T) {
	_, r := newTestRegistry(t)
	ctx := testCtx(t)
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteSubscription(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Subscription("s"); ok {
		t.Error("still there")
	}
	if _, ok := r.Destination("s"); ok {
		t.Error("destination still there")
	}
	if err := r.DeleteSubscription(ctx, "s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// The name is free again.
	if _, err := r.CreateSubscription(ctx, Subscription{ID: "s2", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/"}); err != nil {
		t.Errorf("name not freed: %v", err)
	}
}

func TestMergePatch(t *testing.T) {
	tests := []struct{ doc, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	}
	for _, tc := range tests {
		got, err := mergePatch([]byte(tc.doc), []byte(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("mergePatch(%s, %s) = %s, %v; want %s", tc.doc, tc.patch, got, err, tc.want)
		}
	}
	for _, bad := range []string{`[]`, `"x"`, `null`, `{`} {
		if _, err := mergePatch([]byte(`{}`), []byte(bad)); err == nil {
			t.Errorf("mergePatch accepted %s", bad)
		} else if f, _ := invalidField(err); f != "body" {
			t.Errorf("mergePatch(%s): %v", bad, err)
		}
	}
}

func TestStrictUnmarshal(t *testing.T) {
	var w Workflow
	if err := StrictUnmarshal([]byte(`{"id":"a"}`), &w); err != nil || w.ID != "a" {
		t.Errorf("%v %+v", err, w)
	}
	for _, bad := range []string{`{"id":"a","zzz":1}`, `{"id":"a"} {}`, `{"id":1}`, ``} {
		if err := StrictUnmarshal([]byte(bad), &w); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
