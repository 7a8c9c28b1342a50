package registry

import (
	"testing"
	"time"
)

// TestConfigSubscriptionDisabledState: a configuration subscription the
// gateway disables (410 Gone) is disabled on every instance sharing the
// engine and after a restart of the registry, until enabled again or until
// its configuration changes.
func TestConfigSubscriptionDisabledState(t *testing.T) {
	eng := openEngine(t)
	a, b := startRegistry(t, eng, nil), startRegistry(t, eng, nil)
	compile := func(desc string) *CompiledSubscription {
		cs, err := CompileSubscription(Subscription{ID: "dam", Name: "dam", Description: desc, Topics: []string{"*"},
			URL: "http://127.0.0.1:9/hook", Source: SourceConfig}, "", testGuard())
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	declare := func(r *Registry, desc string) { r.DeclareConfig(nil, nil, []*CompiledSubscription{compile(desc)}) }
	enabled := func(r *Registry) (bool, string) {
		cs, ok := r.Subscription("dam")
		if !ok {
			t.Fatal("not served")
		}
		d, ok := r.Destination("dam")
		if !ok || d.Enabled != cs.Def.IsEnabled() {
			t.Fatalf("destination %+v does not follow the subscription", d)
		}
		return cs.Def.IsEnabled(), cs.Def.DisabledReason
	}
	declare(a, "v1")
	declare(b, "v1")

	const reason = "the subscriber answered 410 Gone: subscription disabled"
	if err := a.SetSubscriptionEnabled(testCtx(t), "dam", false, reason); err != nil {
		t.Fatal(err)
	}
	if on, why := enabled(a); on || why != reason {
		t.Fatalf("instance a: %v %q", on, why)
	}
	if !waitFor(time.Second, func() bool { on, _ := enabled(b); return !on }) {
		t.Fatal("instance b did not see the disabled state within a second")
	}
	// A restarted instance sees it.
	c := startRegistry(t, eng, nil)
	declare(c, "v1")
	if on, _ := enabled(c); on {
		t.Fatal("a restarted instance serves it enabled")
	}
	// Writes other than enabling stay refused.
	if _, err := a.UpdateSubscription(testCtx(t), "dam", []byte(`{"description":"x"}`)); err != ErrReadOnly {
		t.Errorf("patch description: %v", err)
	}
	if _, err := a.UpdateSubscription(testCtx(t), "dam", []byte(`{"enabled":true}`)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool { onB, _ := enabled(b); onC, _ := enabled(c); return onB && onC }) {
		t.Fatal("enabling did not reach every instance")
	}
	// A configuration change clears the state.
	if err := b.SetSubscriptionEnabled(testCtx(t), "dam", false, reason); err != nil {
		t.Fatal(err)
	}
	declare(b, "v2")
	if on, why := enabled(b); !on || why != "" {
		t.Errorf("after a configuration change: %v %q", on, why)
	}
}
