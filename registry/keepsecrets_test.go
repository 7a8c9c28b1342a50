package registry

import "testing"

func TestKeepSecrets(t *testing.T) {
	old := Workflow{
		Targets: []Target{{URL: "http://a/", Secret: "sa"}, {URL: "http://b/", Secret: "sb"}},
		Verify:  &Verify{Provider: "github", Secrets: []string{"h1", "h2"}},
	}
	w := Workflow{
		Targets: []Target{{URL: "http://b/"}, {URL: "http://c/"}, {URL: "http://a/", Secret: "new"}},
		Verify:  &Verify{Provider: "github"},
	}
	old0 := old
	keepSecrets(&w, &old)
	for i, want := range []string{"sb", "", "new"} {
		if w.Targets[i].Secret != want {
			t.Errorf("targets[%d].secret = %q, want %q", i, w.Targets[i].Secret, want)
		}
	}
	// A target found by id keeps its secret when its URL changes.
	old = Workflow{Targets: []Target{{ID: "t1", URL: "http://a/", Secret: "s1"}}}
	w2 := Workflow{Targets: []Target{{ID: "t1", URL: "http://moved/"}}}
	keepSecrets(&w2, &old)
	if w2.Targets[0].Secret != "s1" {
		t.Errorf("secret not kept by id: %q", w2.Targets[0].Secret)
	}
	if len(w.Verify.Secrets) != 2 || w.Verify.Secrets[0] != "h1" {
		t.Errorf("verify secrets not kept: %+v", w.Verify)
	}
	// Secrets given replace the stored ones.
	w3 := Workflow{Verify: &Verify{Provider: "github", Secrets: []string{"new"}}}
	keepSecrets(&w3, &old0)
	if len(w3.Verify.Secrets) != 1 || w3.Verify.Secrets[0] != "new" {
		t.Errorf("verify secrets not replaced: %+v", w3.Verify)
	}
}
