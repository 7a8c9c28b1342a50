package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/signature"
)

// CreateWorkflow stores a new API workflow and its first key, which is
// returned once and never stored in clear.
func (r *Registry) CreateWorkflow(ctx context.Context, w Workflow) (*CompiledWorkflow, string, error) {
	if w.ID == "" {
		w.ID = NewID("wf_")
	}
	w.Source = SourceAPI
	w.SchemaLocation, w.FixedKey = "", ""
	cw, err := CompileWorkflow(w, r.guard)
	if err != nil {
		return nil, "", err
	}
	if r.isConfigWorkflow(w.ID) {
		return nil, "", fmt.Errorf("workflow %q: %w", w.ID, ErrConflict)
	}
	doc, err := json.Marshal(cw.Def)
	if err != nil {
		return nil, "", err
	}
	r.noteFresh(cw, doc)
	rev, err := r.eng.Workflows.Create(ctx, w.ID, doc)
	if err != nil {
		r.fresh.Delete(w.ID)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, "", fmt.Errorf("workflow %q: %w", w.ID, ErrConflict)
		}
		return nil, "", err
	}
	key, err := r.putKey(ctx, w.ID, 0)
	if err != nil {
		return nil, "", err
	}
	r.waitApplied(ctx, r.eng.Workflows.Bucket(), rev)
	return cw, key, nil
}

// UpdateWorkflow applies a JSON merge patch (RFC 7386) to an API workflow.
func (r *Registry) UpdateWorkflow(ctx context.Context, id string, patch []byte) (*CompiledWorkflow, error) {
	if r.isConfigWorkflow(id) {
		return nil, ErrReadOnly
	}
	e, err := r.eng.Workflows.Get(ctx, id)
	if err != nil {
		return nil, kvError(err)
	}
	merged, err := mergePatch(e.Value(), patch)
	if err != nil {
		return nil, err
	}
	var w Workflow
	if err := strictUnmarshal(merged, &w); err != nil {
		return nil, &InvalidError{Field: "body", Err: err}
	}
	w.ID, w.Source = id, SourceAPI
	var old Workflow
	if json.Unmarshal(e.Value(), &old) == nil {
		keepSecrets(&w, &old)
	}
	cw, err := CompileWorkflow(w, r.guard)
	if err != nil {
		return nil, err
	}
	doc, _ := json.Marshal(cw.Def)
	r.noteFresh(cw, doc)
	rev, err := r.eng.Workflows.Update(ctx, id, doc, e.Revision())
	if err != nil {
		r.fresh.Delete(id)
		return nil, kvError(err)
	}
	r.waitApplied(ctx, r.eng.Workflows.Bucket(), rev)
	return cw, nil
}

// freshWorkflow is a workflow this instance has just compiled and is
// writing. When the watch applies exactly that document, it takes the
// compiled value instead of compiling the same document a second time
// (issue #8: a costly schema was compiled twice per create).
type freshWorkflow struct {
	doc []byte
	cw  *CompiledWorkflow
}

// noteFresh records cw, about to be written as doc.
func (r *Registry) noteFresh(cw *CompiledWorkflow, doc []byte) {
	r.fresh.Store(cw.Def.ID, freshWorkflow{doc: doc, cw: cw})
}

// compileStored compiles a workflow read from the bucket as doc, or returns
// the one noted by noteFresh for that very document.
func (r *Registry) compileStored(w Workflow, doc []byte) (*CompiledWorkflow, error) {
	if v, ok := r.fresh.LoadAndDelete(w.ID); ok {
		if f := v.(freshWorkflow); bytes.Equal(f.doc, doc) {
			return f.cw, nil
		}
	}
	return CompileWorkflow(w, r.guard)
}

// keepSecrets carries secrets over a patch that replaced the targets or the
// verify block without repeating them (the API never shows secrets, so a
// client cannot send them back): a target keeps the secret of the old target
// with the same id, or else of the old target with the same URL.
func keepSecrets(w, old *Workflow) {
	byID, byURL := map[string]string{}, map[string]string{}
	for _, t := range old.Targets {
		if t.Secret == "" {
			continue
		}
		id := t.ID
		if id == "" {
			id = TargetID(t.Method, t.URL)
		}
		byID[id] = t.Secret
		byURL[t.URL] = t.Secret
	}
	for i := range w.Targets {
		t := &w.Targets[i]
		if t.Secret != "" {
			continue
		}
		id := t.ID
		if id == "" {
			id = TargetID(t.Method, t.URL)
		}
		if s, ok := byID[id]; ok {
			t.Secret = s
		} else {
			t.Secret = byURL[t.URL]
		}
	}
	if w.Verify != nil && old.Verify != nil && len(w.Verify.Secrets) == 0 {
		w.Verify.Secrets = old.Verify.Secrets
	}
}

// DeleteWorkflow removes an API workflow and its key.
func (r *Registry) DeleteWorkflow(ctx context.Context, id string) error {
	if r.isConfigWorkflow(id) {
		return ErrReadOnly
	}
	if _, err := r.eng.Workflows.Get(ctx, id); err != nil {
		return kvError(err)
	}
	if err := r.eng.Workflows.Delete(ctx, id); err != nil {
		return err
	}
	_ = r.eng.Keys.Delete(ctx, id)
	r.waitUntil(ctx, func() bool { _, ok := r.Workflow(id); return !ok && !r.isBroken(KindWorkflow, id) })
	return nil
}

// Regenerate gives workflow id a new key and returns it. The old key is
// refused at once, or after grace when grace > 0. Workflows whose key is
// pinned in the Caddyfile cannot be regenerated.
func (r *Registry) Regenerate(ctx context.Context, id string, grace time.Duration) (string, error) {
	w, ok := r.Workflow(id)
	if !ok {
		return "", ErrNotFound
	}
	if w.fixedHash != nil {
		return "", fmt.Errorf("the key of workflow %q is pinned in the Caddyfile: %w", id, ErrReadOnly)
	}
	if grace == 0 {
		grace = w.Def.Grace.Std()
	}
	return r.putKey(ctx, id, grace)
}

func (r *Registry) putKey(ctx context.Context, id string, grace time.Duration) (string, error) {
	key, err := GenerateKey()
	if err != nil {
		return "", err
	}
	rec := keyRecord{Hash: hashHex(HashKey(key))}
	if grace > 0 {
		if old, ok := r.keys.get(id); ok {
			rec.PreviousHash = hashHex(old.current)
			rec.PreviousUntil = time.Now().Add(grace).UTC()
		}
	}
	doc, _ := json.Marshal(rec)
	rev, err := r.eng.Keys.Put(ctx, id, doc)
	if err != nil {
		return "", fmt.Errorf("storing key: %w", err)
	}
	r.waitApplied(ctx, r.eng.Keys.Bucket(), rev)
	return key, nil
}

// PutTopic creates or replaces an API topic.
func (r *Registry) PutTopic(ctx context.Context, t Topic) (*CompiledTopic, error) {
	t.Source, t.SchemaLocation = SourceAPI, ""
	ct, err := CompileTopic(t)
	if err != nil {
		return nil, err
	}
	if r.isConfigTopic(t.Name) {
		return nil, ErrReadOnly
	}
	doc, _ := json.Marshal(ct.Def)
	rev, err := r.eng.Topics.Put(ctx, encodeTopicKey(t.Name), doc)
	if err != nil {
		return nil, err
	}
	r.waitApplied(ctx, r.eng.Topics.Bucket(), rev)
	return ct, nil
}

// DeleteTopic removes an API topic.
func (r *Registry) DeleteTopic(ctx context.Context, name string) error {
	if r.isConfigTopic(name) {
		return ErrReadOnly
	}
	key := encodeTopicKey(name)
	if _, err := r.eng.Topics.Get(ctx, key); err != nil {
		return kvError(err)
	}
	if err := r.eng.Topics.Delete(ctx, key); err != nil {
		return err
	}
	r.waitUntil(ctx, func() bool { _, ok := r.Topic(name); return !ok && !r.isBroken(KindTopic, name) })
	return nil
}

// CreateSubscription stores a new API subscription. An empty secret or
// "generate" gets a new whsec_ secret; "none" leaves deliveries unsigned.
// The returned subscription carries the secret: show it once.
func (r *Registry) CreateSubscription(ctx context.Context, s Subscription) (*CompiledSubscription, error) {
	if s.ID == "" {
		s.ID = NewID("sub_")
	}
	s.Source = SourceAPI
	s.CreatedAt = time.Now().UTC()
	s.SecretGenerated = false
	switch s.Secret {
	case "", "generate":
		sec, err := signature.NewSecret()
		if err != nil {
			return nil, err
		}
		s.Secret, s.SecretGenerated = sec, true
	case "none":
		s.Secret = ""
	}
	cs, err := CompileSubscription(s, "", r.guard)
	if err != nil {
		return nil, err
	}
	if r.isConfigSubscription(s.ID) {
		return nil, fmt.Errorf("subscription %q: %w", s.ID, ErrConflict)
	}
	if r.nameTaken(s.Name, s.ID) {
		return nil, &InvalidError{Field: "name", Err: fmt.Errorf("%q is taken: %w", s.Name, ErrConflict)}
	}
	st := storedSubscription{Subscription: cs.Def, Secret: s.Secret, SecretGenerated: s.SecretGenerated}
	doc, _ := json.Marshal(st)
	rev, err := r.eng.Subscriptions.Create(ctx, s.ID, doc)
	if err != nil {
		return nil, kvError(err)
	}
	r.waitApplied(ctx, r.eng.Subscriptions.Bucket(), rev)
	return cs, nil
}

// nameTaken reports whether a served subscription other than exceptID is
// named name.
func (r *Registry) nameTaken(name, exceptID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.subNames[name] {
		if id != exceptID {
			return true
		}
	}
	return false
}

// updateStoredSubscription applies change to the stored form and writes it
// back with optimistic concurrency.
func (r *Registry) updateStoredSubscription(ctx context.Context, id string, change func(*storedSubscription) error) (*CompiledSubscription, error) {
	if r.isConfigSubscription(id) {
		return nil, ErrReadOnly
	}
	for range 5 {
		e, err := r.eng.Subscriptions.Get(ctx, id)
		if err != nil {
			return nil, kvError(err)
		}
		var st storedSubscription
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return nil, err
		}
		if err := change(&st); err != nil {
			return nil, err
		}
		st.ID, st.Source = id, SourceAPI
		if st.PreviousSecret != "" && !time.Now().Before(st.PreviousUntil) {
			// Its grace period is over: it signs nothing any more, so it
			// is not kept either.
			st.PreviousSecret, st.PreviousUntil = "", time.Time{}
		}
		s := st.Subscription
		s.Secret, s.SecretGenerated = st.Secret, st.SecretGenerated
		prev := st.PreviousSecret
		cs, err := CompileSubscription(s, prev, r.guard)
		if err != nil {
			return nil, err
		}
		if r.nameTaken(s.Name, id) {
			return nil, &InvalidError{Field: "name", Err: fmt.Errorf("%q is taken: %w", s.Name, ErrConflict)}
		}
		st.Subscription = cs.Def
		st.Subscription.Secret = ""
		doc, _ := json.Marshal(st)
		rev, err := r.eng.Subscriptions.Update(ctx, id, doc, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // lost a race: read again
		}
		if err != nil {
			return nil, kvError(err)
		}
		r.waitApplied(ctx, r.eng.Subscriptions.Bucket(), rev)
		return cs, nil
	}
	return nil, fmt.Errorf("subscription %q: %w (concurrent updates)", id, ErrConflict)
}

// UpdateSubscription applies a JSON merge patch to an API subscription. The
// secret cannot be patched: rotate it. A configuration subscription takes
// only {"enabled": true}, which enables it again after the gateway disabled
// it (410 Gone).
func (r *Registry) UpdateSubscription(ctx context.Context, id string, patch []byte) (*CompiledSubscription, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(patch, &probe); err != nil {
		return nil, &InvalidError{Field: "body", Err: err}
	}
	if r.isConfigSubscription(id) {
		if len(probe) != 1 || string(probe["enabled"]) != "true" {
			return nil, ErrReadOnly
		}
		if err := r.setConfigEnabled(ctx, id, true, ""); err != nil {
			return nil, err
		}
		cs, ok := r.Subscription(id)
		if !ok {
			return nil, fmt.Errorf("subscription %q: %w", id, ErrNotFound)
		}
		return cs, nil
	}
	for _, f := range []string{"secret", "id", "source", "created_at"} {
		if _, ok := probe[f]; ok {
			return nil, invalid(f, "cannot be changed with PATCH")
		}
	}
	return r.updateStoredSubscription(ctx, id, func(st *storedSubscription) error {
		cur, _ := json.Marshal(st.Subscription)
		merged, err := mergePatch(cur, patch)
		if err != nil {
			return err
		}
		var s Subscription
		if err := strictUnmarshal(merged, &s); err != nil {
			return &InvalidError{Field: "body", Err: err}
		}
		if s.IsEnabled() {
			s.DisabledReason = ""
		}
		st.Subscription = s
		return nil
	})
}

// SetSubscriptionEnabled enables or disables a subscription, recording why.
// A configuration subscription is not written: its disabled state is kept
// beside it (configstate.go) until enabled again or its configuration
// changes.
func (r *Registry) SetSubscriptionEnabled(ctx context.Context, id string, enabled bool, reason string) error {
	if r.isConfigSubscription(id) {
		return r.setConfigEnabled(ctx, id, enabled, reason)
	}
	_, err := r.updateStoredSubscription(ctx, id, func(st *storedSubscription) error {
		st.Enabled = &enabled
		st.DisabledReason = reason
		if enabled {
			st.DisabledReason = ""
		}
		return nil
	})
	return err
}

// RotateSecret gives a subscription a new secret and returns it. The old one
// keeps signing (a second signature) for grace. Default grace: 24h.
func (r *Registry) RotateSecret(ctx context.Context, id string, grace time.Duration) (string, error) {
	if grace <= 0 {
		grace = DefaultRotateGrace
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return "", err
	}
	_, err = r.updateStoredSubscription(ctx, id, func(st *storedSubscription) error {
		if st.Secret != "" {
			st.PreviousSecret = st.Secret
			st.PreviousUntil = time.Now().Add(grace).UTC()
		}
		st.Secret, st.SecretGenerated = secret, true
		return nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// DeleteSubscription removes an API subscription.
func (r *Registry) DeleteSubscription(ctx context.Context, id string) error {
	if r.isConfigSubscription(id) {
		return ErrReadOnly
	}
	if _, err := r.eng.Subscriptions.Get(ctx, id); err != nil {
		return kvError(err)
	}
	if err := r.eng.Subscriptions.Delete(ctx, id); err != nil {
		return err
	}
	r.waitUntil(ctx, func() bool { _, ok := r.Subscription(id); return !ok && !r.isBroken(KindSubscription, id) })
	return nil
}

// mergePatch applies an RFC 7386 JSON merge patch to doc.
func mergePatch(doc, patch []byte) ([]byte, error) {
	var d, p any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, &InvalidError{Field: "body", Err: err}
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, invalid("body", "a merge patch must be a JSON object")
	}
	return json.Marshal(mergeValue(d, p))
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

// strictUnmarshal decodes one JSON document, refusing unknown fields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON document")
	}
	return nil
}

// StrictUnmarshal decodes one JSON document into v, refusing unknown
// fields; the API uses it for request bodies.
func StrictUnmarshal(b []byte, v any) error { return strictUnmarshal(b, v) }

var kvKeyPattern = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// encodeTopicKey maps a topic name to a KV key: as is when it is a valid
// key, else base64url behind "b64=".
func encodeTopicKey(name string) string {
	if kvKeyPattern.MatchString(name) && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".") && !strings.HasPrefix(name, "b64=") && !strings.Contains(name, "..") {
		return name
	}
	return "b64=" + base64.RawURLEncoding.EncodeToString([]byte(name))
}

func decodeTopicKey(key string) (string, error) {
	if rest, ok := strings.CutPrefix(key, "b64="); ok {
		b, err := base64.RawURLEncoding.DecodeString(rest)
		return string(b), err
	}
	return key, nil
}
