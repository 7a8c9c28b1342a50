package registry

import "testing"

func TestKeepSecrets(t *testing.T) {
	old := Workflow{
		Targets: []Target{{URL: "http://a/", Secret: "sa"}, {URL: "http://b/", Secret: "sb"}},
		Verify:  &Verify{HMACHeader: "X-Sig", HMACSecret: "h", StandardSecret: "whsec_x"},
	}
	w := Workflow{
		Targets: []Target{{URL: "http://b/"}, {URL: "http://c/"}, {URL: "http://a/", Secret: "new"}},
		Verify:  &Verify{HMACHeader: "X-Sig"},
	}
	keepSecrets(&w, &old)
	for i, want := range []string{"sb", "", "new"} {
		if w.Targets[i].Secret != want {
			t.Errorf("targets[%d].secret = %q, want %q", i, w.Targets[i].Secret, want)
		}
	}
	if w.Verify.HMACSecret != "h" || w.Verify.StandardSecret != "whsec_x" {
		t.Errorf("verify secrets not kept: %+v", w.Verify)
	}
}
