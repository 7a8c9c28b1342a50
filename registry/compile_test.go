package registry

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/netguard"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"provisioning", true},
		{"wf_ABC-123", true},
		{"_", true},
		{"-", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{"a*", false},
		{"é", false},
		{"a\n", false},
		{"../x", false},
	}
	for _, tc := range tests {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^sub_[a-z2-7]{16}$`) // 10 bytes = 16 base32 characters
	seen := map[string]bool{}
	for range 1000 {
		id := NewID("sub_")
		if !re.MatchString(id) || !ValidID(id) {
			t.Fatalf("NewID = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
	if id := NewID(""); len(id) != 16 || !ValidID(id) {
		t.Errorf("NewID(\"\") = %q", id)
	}
}

func TestTopicsMatch(t *testing.T) {
	tests := []struct {
		patterns []string
		topic    string
		want     bool
	}{
		{[]string{"document.deleted"}, "document.deleted", true},
		{[]string{"document.deleted"}, "document.created", false},
		{[]string{"document.deleted"}, "document.deleted.x", false},
		{[]string{"document.deleted"}, "Document.deleted", false}, // case-sensitive
		{[]string{"USER_CREATED"}, "USER_CREATED", true},
		{[]string{"document.*"}, "document.deleted", true},
		{[]string{"document.*"}, "document.a.b", true},
		{[]string{"document.*"}, "document.", true},
		{[]string{"document.*"}, "document", false},
		{[]string{"document.*"}, "documents.x", false},
		{[]string{"document.*"}, "xdocument.deleted", false},
		{[]string{"a.b.*"}, "a.b.c", true},
		{[]string{"a.b.*"}, "a.bc", false},
		{[]string{"*"}, "anything", true},
		{[]string{"*"}, "", true},
		{[]string{"user.created", "document.*"}, "document.x", true},
		{[]string{"user.created", "document.*"}, "user.created", true},
		{[]string{"user.created", "document.*"}, "user.deleted", false},
		{nil, "x", false},
		{[]string{}, "x", false},
	}
	for _, tc := range tests {
		if got := TopicsMatch(tc.patterns, tc.topic); got != tc.want {
			t.Errorf("TopicsMatch(%q, %q) = %v, want %v", tc.patterns, tc.topic, got, tc.want)
		}
	}
	cs := &CompiledSubscription{Def: Subscription{Topics: []string{"document.*"}}}
	if !cs.MatchesTopic("document.deleted") || cs.MatchesTopic("documents.deleted") {
		t.Error("MatchesTopic disagrees with TopicsMatch")
	}
}

func TestCompileWorkflowErrors(t *testing.T) {
	okTarget := Target{URL: "http://127.0.0.1:9/hook"}
	tests := []struct {
		name  string
		w     Workflow
		guard URLChecker
		field string
	}{
		{"empty id", Workflow{}, nil, "id"},
		{"id with space", Workflow{ID: "a b"}, nil, "id"},
		{"id too long", Workflow{ID: strings.Repeat("a", 129)}, nil, "id"},
		{"sample and schema", Workflow{ID: "w", Sample: json.RawMessage(`{"a":1}`), Schema: json.RawMessage(`{"type":"object"}`)}, nil, "sample"},
		{"sample not JSON", Workflow{ID: "w", Sample: json.RawMessage(`{"a":`)}, nil, "sample"},
		{"schema not JSON", Workflow{ID: "w", Schema: json.RawMessage(`{"type":`)}, nil, "schema"},
		{"schema invalid", Workflow{ID: "w", Schema: json.RawMessage(`{"type":"no-such-type"}`)}, nil, "schema"},
		{"filter syntax", Workflow{ID: "w", Filter: `body.a ==`}, nil, "filter"},
		{"filter not boolean", Workflow{ID: "w", Filter: `1 + 1`}, nil, "filter"},
		{"filter unknown variable", Workflow{ID: "w", Filter: `nosuchvar == 1`}, nil, "filter"},
		{"filter nested 520,000 parentheses (issue #8)", Workflow{ID: "w", Filter: strings.Repeat("(", 520_000) + "true" + strings.Repeat(")", 520_000)}, nil, "filter"},
		{"filter nested over the depth bound", Workflow{ID: "w", Filter: strings.Repeat("(", 65) + "true" + strings.Repeat(")", 65)}, nil, "filter"},
		{"max_body over the ceiling (issue #8)", Workflow{ID: "w", MaxBody: 200_000_000_000}, nil, "max_body"},
		{"max_body just over the ceiling", Workflow{ID: "w", MaxBody: MaxBodyCeiling + 1}, nil, "max_body"},
		{"method with space", Workflow{ID: "w", Methods: []string{"GE T"}}, nil, "methods"},
		{"method empty", Workflow{ID: "w", Methods: []string{"POST", " "}}, nil, "methods"},
		{"method with slash", Workflow{ID: "w", Methods: []string{"a/b"}}, nil, "methods"},
		{"negative grace", Workflow{ID: "w", Grace: Duration(-time.Second)}, nil, "grace"},
		{"verify without provider", Workflow{ID: "w", Verify: &Verify{Secrets: []string{"s"}}}, nil, "verify.provider"},
		{"verify unknown provider", Workflow{ID: "w", Verify: &Verify{Provider: "bitbucket", Secrets: []string{"s"}}}, nil, "verify.provider"},
		{"verify without secret", Workflow{ID: "w", Verify: &Verify{Provider: "github"}}, nil, "verify.secrets"},
		{"verify empty secret", Workflow{ID: "w", Verify: &Verify{Provider: "github", Secrets: []string{"a", ""}}}, nil, "verify.secrets[1]"},
		{"verify too many secrets", Workflow{ID: "w", Verify: &Verify{Provider: "github", Secrets: []string{"a", "b", "c", "d", "e"}}}, nil, "verify.secrets"},
		{"bad standard secret", Workflow{ID: "w", Verify: &Verify{Provider: "standard", Secrets: []string{"whsec_!!!"}}}, nil, "verify.secrets"},
		{"tolerance without timestamp", Workflow{ID: "w", Verify: &Verify{Provider: "github", Secrets: []string{"s"}, Tolerance: Duration(time.Minute)}}, nil, "verify.tolerance"},
		{"tolerance over 1h", Workflow{ID: "w", Verify: &Verify{Provider: "stripe", Secrets: []string{"s"}, Tolerance: Duration(2 * time.Hour)}}, nil, "verify.tolerance"},
		{"negative tolerance", Workflow{ID: "w", Verify: &Verify{Provider: "slack", Secrets: []string{"s"}, Tolerance: Duration(-time.Minute)}}, nil, "verify.tolerance"},
		{"target without url", Workflow{ID: "w", Targets: []Target{{}}}, nil, "targets[0].url"},
		{"target refused by the guard", Workflow{ID: "w", Targets: []Target{{URL: "http://10.0.0.1/x"}}}, refuse10, "targets[0].url"},
		{"target loopback refused by default", Workflow{ID: "w", Targets: []Target{{URL: "http://127.0.0.1/x"}}}, refuse10, "targets[0].url"},
		{"target bad scheme", Workflow{ID: "w", Targets: []Target{{URL: "ftp://127.0.0.1/x"}}}, testGuard(), "targets[0].url"},
		{"second target bad", Workflow{ID: "w", Targets: []Target{okTarget, {URL: "http://10.0.0.1/"}}}, testGuard(), "targets[1].url"},
		{"target envelope", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL, Envelope: "{a: "}}}, nil, "targets[0].envelope"},
		{"target envelope unknown variable", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL, Envelope: "nosuch.thing"}}}, nil, "targets[0].envelope"},
		{"target zero wait", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL, RetrySchedule: []Duration{Duration(time.Second), 0}}}}, nil, "targets[0].retry_schedule"},
		{"target negative wait", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL, RetrySchedule: []Duration{Duration(-time.Second)}}}}, nil, "targets[0].retry_schedule"},
		{"target bad secret", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL, Secret: "whsec_!!"}}}, nil, "targets[0].secret"},
		{"target bad id", Workflow{ID: "w", Targets: []Target{{ID: "a.b", URL: okTarget.URL}}}, nil, "targets[0].id"},
		{"target ids given twice", Workflow{ID: "w", Targets: []Target{{ID: "x", URL: okTarget.URL}, {ID: "y", URL: okTarget.URL + "b"}, {ID: "x", URL: okTarget.URL + "c"}}}, nil, "targets[2].id"},
		{"same target twice", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL}, {URL: okTarget.URL, Method: "post"}}}, nil, "targets[1].id"},
		{"respond status 302", Workflow{ID: "w", Respond: &Respond{Accepted: &Answer{Status: 302}}}, nil, "respond.accepted.status"},
		{"respond status 0", Workflow{ID: "w", Respond: &Respond{Filtered: &Answer{}}}, nil, "respond.filtered.status"},
		{"respond status 300", Workflow{ID: "w", Respond: &Respond{Duplicate: &Answer{Status: 300}}}, nil, "respond.duplicate.status"},
		{"respond body over 4 KiB", Workflow{ID: "w", Respond: &Respond{Accepted: &Answer{Status: 200, Body: strings.Repeat("a", MaxAnswerBody+1)}}}, nil, "respond.accepted.body"},
		{"given id equal to a derived one", Workflow{ID: "w", Targets: []Target{{URL: okTarget.URL}, {ID: TargetID("", okTarget.URL), URL: okTarget.URL + "b"}}}, nil, "targets[1].id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cw, err := CompileWorkflow(tc.w, tc.guard)
			if err == nil {
				t.Fatalf("compiled %+v", cw.Def)
			}
			field, ok := invalidField(err)
			if !ok || field != tc.field {
				t.Fatalf("error %v: field %q (InvalidError %v), want %q", err, field, ok, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field) {
				t.Errorf("message %q does not start with the field", err.Error())
			}
		})
	}
	// The guard's refusal is kept in the chain.
	_, err := CompileWorkflow(Workflow{ID: "w", Targets: []Target{{URL: "http://10.0.0.1/x"}}}, refuse10)
	if !strings.Contains(err.Error(), "10.0.0.1") {
		t.Errorf("guard error %q does not name the address", err)
	}
}

func TestCompileWorkflowDefaults(t *testing.T) {
	cw, err := CompileWorkflow(Workflow{ID: "prov", Targets: []Target{{URL: "http://127.0.0.1:9/a"}}}, testGuard())
	if err != nil {
		t.Fatal(err)
	}
	if cw.Def.Name != "prov" || cw.Info.ID != "prov" || cw.Info.Name != "prov" {
		t.Errorf("name defaults: %+v %+v", cw.Def.Name, cw.Info)
	}
	if len(cw.Methods) != 1 || cw.Methods[0] != http.MethodPost || !cw.AllowsMethod("POST") || cw.AllowsMethod("GET") {
		t.Errorf("methods = %v", cw.Methods)
	}
	if cw.MaxBody != 1<<20 {
		t.Errorf("max body = %d", cw.MaxBody)
	}
	if cw.Contract != nil || cw.Filter != nil || cw.Verifier != nil || cw.fixedHash != nil {
		t.Errorf("unexpected optional parts: %+v", cw)
	}
	d := cw.Targets[0]
	if d.ID != "wf=prov="+TargetID("POST", "http://127.0.0.1:9/a") || d.WorkflowID != "prov" || d.SubscriptionID != "" {
		t.Errorf("target ids: %q %q %q", d.ID, d.WorkflowID, d.SubscriptionID)
	}
	if d.Method != http.MethodPost || d.Timeout != 10*time.Second || d.MaxAttempts != 6 || d.Schedule != nil {
		t.Errorf("target defaults: method %q timeout %v attempts %d schedule %v", d.Method, d.Timeout, d.MaxAttempts, d.Schedule)
	}
	if !d.PassBody || d.Envelope == nil || !d.Envelope.Raw() || !d.Enabled || d.Keys != nil {
		t.Errorf("target body: pass %v envelope %v enabled %v keys %v", d.PassBody, d.Envelope, d.Enabled, d.Keys)
	}

	// Everything set.
	w := Workflow{
		ID: "full", Name: "Full", Sample: json.RawMessage(`{"eventType":"x"}`), Strict: true,
		Filter: `body.eventType == "x"`, Methods: []string{" post", "put "}, MaxBody: 4096,
		Grace:  Duration(time.Minute),
		Verify: &Verify{Provider: "stripe", Secrets: []string{"whsec_a", "whsec_b"}, Tolerance: Duration(10 * time.Minute)},
		Targets: []Target{
			{URL: "http://127.0.0.1:9/a", Method: "put", Headers: map[string]string{"X-A": "1"},
				Timeout: Duration(3 * time.Second), RetrySchedule: []Duration{Duration(time.Second), Duration(time.Minute)},
				Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Envelope: "standard"},
			{URL: "http://127.0.0.1:9/b", Envelope: "raw"},
		},
		FixedKey: "pinned-key-0123456789",
	}
	cw, err = CompileWorkflow(w, testGuard())
	if err != nil {
		t.Fatal(err)
	}
	if cw.Def.Name != "Full" || cw.Contract == nil || cw.Filter == nil || cw.MaxBody != 4096 {
		t.Errorf("compiled %+v", cw)
	}
	if !cw.AllowsMethod("POST") || !cw.AllowsMethod("PUT") || cw.AllowsMethod("post") {
		t.Errorf("methods = %v", cw.Methods)
	}
	if cw.Verifier == nil {
		t.Error("no verifier")
	}
	if cw.fixedHash == nil || *cw.fixedHash != HashKey("pinned-key-0123456789") {
		t.Error("pinned key hash not set")
	}
	a, b := cw.Targets[0], cw.Targets[1]
	if a.ID != "wf=full="+TargetID("PUT", "http://127.0.0.1:9/a") || b.ID != "wf=full="+TargetID("", "http://127.0.0.1:9/b") {
		t.Errorf("target ids %q %q", a.ID, b.ID)
	}
	if a.Method != "PUT" || a.Timeout != 3*time.Second || a.Headers["X-A"] != "1" {
		t.Errorf("target a: %+v", a)
	}
	if len(a.Schedule) != 2 || a.Schedule[1] != time.Minute || a.MaxAttempts != 3 {
		t.Errorf("schedule %v, max attempts %d (want the schedule's length + 1)", a.Schedule, a.MaxAttempts)
	}
	if a.PassBody || a.Envelope.Raw() || len(a.Keys) != 1 || a.Secret == "" {
		t.Errorf("target a body/keys: pass %v keys %d", a.PassBody, len(a.Keys))
	}
	if !b.PassBody || !b.Envelope.Raw() {
		t.Errorf("target b: raw envelope should pass the body: %+v", b)
	}
}

func TestCompileTopic(t *testing.T) {
	for _, name := range []string{"", "a b", "a\tb", "a\nb", "x.*", "*", "a>b", ">", strings.Repeat("t", 257)} {
		_, err := CompileTopic(Topic{Name: name})
		if f, ok := invalidField(err); !ok || f != "name" {
			t.Errorf("CompileTopic(%q) = %v, want an InvalidError on name", name, err)
		}
	}
	_, err := CompileTopic(Topic{Name: "t", Schema: json.RawMessage(`{"type":`)})
	if f, _ := invalidField(err); f != "schema" {
		t.Errorf("bad schema: %v", err)
	}
	for _, name := range []string{"document.deleted", "USER_CREATED", "ns:topic", "x/y", "é", strings.Repeat("t", 256)} {
		ct, err := CompileTopic(Topic{Name: name, Schema: json.RawMessage(`{"type":"object"}`)})
		if err != nil || ct.Contract == nil || ct.Def.Name != name {
			t.Errorf("CompileTopic(%q) = %v, %v", name, ct, err)
		}
	}
}

func TestCompileSubscriptionErrors(t *testing.T) {
	base := func() Subscription {
		return Subscription{ID: "s1", Name: "sub", Topics: []string{"document.*"}, URL: "http://127.0.0.1:9/hook"}
	}
	with := func(f func(*Subscription)) Subscription { s := base(); f(&s); return s }
	tests := []struct {
		name     string
		s        Subscription
		previous string
		guard    URLChecker
		field    string
	}{
		{"empty id", with(func(s *Subscription) { s.ID = "" }), "", nil, "id"},
		{"bad id", with(func(s *Subscription) { s.ID = "a.b" }), "", nil, "id"},
		{"no name", with(func(s *Subscription) { s.Name = "  " }), "", nil, "name"},
		{"no topics", with(func(s *Subscription) { s.Topics = nil }), "", nil, "topics"},
		{"empty topic", with(func(s *Subscription) { s.Topics = []string{"a", ""} }), "", nil, "topics"},
		{"inner wildcard", with(func(s *Subscription) { s.Topics = []string{"a*b"} }), "", nil, "topics"},
		{"leading wildcard", with(func(s *Subscription) { s.Topics = []string{"*.deleted"} }), "", nil, "topics"},
		{"double wildcard", with(func(s *Subscription) { s.Topics = []string{"a.*.*"} }), "", nil, "topics"},
		{"wildcard without dot", with(func(s *Subscription) { s.Topics = []string{"doc*"} }), "", nil, "topics"},
		{"no url", with(func(s *Subscription) { s.URL = "" }), "", nil, "url"},
		{"url refused", with(func(s *Subscription) { s.URL = "http://10.0.0.1/hook" }), "", refuse10, "url"},
		{"url metadata", with(func(s *Subscription) { s.URL = "http://169.254.169.254/latest" }), "", testGuard(), "url"},
		{"url scheme", with(func(s *Subscription) { s.URL = "file:///etc/passwd" }), "", testGuard(), "url"},
		{"negative attempts", with(func(s *Subscription) { s.MaxAttempts = -1 }), "", nil, "max_attempts"},
		{"include syntax", with(func(s *Subscription) { s.Include = Predicates{`tenant ==`} }), "", nil, "include"},
		{"include not boolean", with(func(s *Subscription) { s.Include = Predicates{`tenant`} }), "", nil, "include"},
		{"exclude syntax", with(func(s *Subscription) { s.Exclude = Predicates{`(`} }), "", nil, "exclude"},
		{"envelope", with(func(s *Subscription) { s.Envelope = `{type: ` }), "", nil, "envelope"},
		{"secret", with(func(s *Subscription) { s.Secret = "whsec_***" }), "", nil, "secret"},
		{"previous secret", base(), "whsec_***", nil, "secret"},
		{"zero wait", with(func(s *Subscription) { s.RetrySchedule = []Duration{0} }), "", nil, "retry_schedule"},
		{"negative wait", with(func(s *Subscription) { s.RetrySchedule = []Duration{Duration(time.Second), Duration(-1)} }), "", nil, "retry_schedule"},
		{"signature scheme", with(func(s *Subscription) { s.Signature = &Signature{Scheme: "jwt"} }), "", nil, "signature.scheme"},
		{"signature hmac without header", with(func(s *Subscription) { s.Signature = &Signature{Scheme: "hmac"} }), "", nil, "signature.header"},
		{"signature hmac bad header", with(func(s *Subscription) { s.Signature = &Signature{Scheme: "hmac", Header: "x ol"} }), "", nil, "signature.header"},
		{"signature hmac encoding", with(func(s *Subscription) {
			s.Signature = &Signature{Scheme: "hmac", Header: "x-ol-signature", Encoding: "base32"}
		}), "", nil, "signature.encoding"},
		{"signature hmac prefix with CR", with(func(s *Subscription) {
			s.Signature = &Signature{Scheme: "hmac", Header: "x-ol-signature", Prefix: "a\rb"}
		}), "", nil, "signature.prefix"},
		{"signature standard with header", with(func(s *Subscription) { s.Signature = &Signature{Scheme: "standard", Header: "x-ol-signature"} }), "", nil, "signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := CompileSubscription(tc.s, tc.previous, tc.guard)
			if err == nil {
				t.Fatalf("compiled %+v", cs.Def)
			}
			if f, ok := invalidField(err); !ok || f != tc.field {
				t.Fatalf("error %v: field %q, want %q", err, f, tc.field)
			}
		})
	}
}

func TestCompileSubscriptionDefaults(t *testing.T) {
	s := Subscription{ID: "s1", Name: "sub", Description: "d", Topics: []string{"*"}, URL: "http://127.0.0.1:9/hook"}
	cs, err := CompileSubscription(s, "", testGuard())
	if err != nil {
		t.Fatal(err)
	}
	d := cs.Dest
	if d.ID != "s1" || d.SubscriptionID != "s1" || d.WorkflowID != "" || d.URL != s.URL {
		t.Errorf("ids: %+v", d)
	}
	if d.Method != http.MethodPost || d.Timeout != 10*time.Second || d.MaxAttempts != 6 || d.Schedule != nil {
		t.Errorf("defaults: %q %v %d %v", d.Method, d.Timeout, d.MaxAttempts, d.Schedule)
	}
	if d.PassBody || d.Envelope == nil || d.Envelope.String() != "standard" {
		t.Errorf("envelope: pass %v %v", d.PassBody, d.Envelope)
	}
	if !d.Enabled || len(d.Keys) != 0 || cs.Include != nil || cs.Exclude != nil {
		t.Errorf("enabled %v keys %d", d.Enabled, len(d.Keys))
	}
	if d.Subscription != (filters.Subscription{ID: "s1", Name: "sub", Description: "d"}) {
		t.Errorf("envelope view %+v", d.Subscription)
	}

	s.Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s.Enabled = ptr(false)
	s.MaxAttempts = 2
	s.RetrySchedule = []Duration{Duration(time.Second), Duration(2 * time.Second)}
	s.Timeout = Duration(time.Second)
	s.Envelope = "orangelogic"
	s.Include, s.Exclude = Predicates{`tenant == "ZZ1"`}, Predicates{`data?.skip == true`}
	s.SecretHeader, s.SecretField = "X-Secret", "Secret"
	cs, err = CompileSubscription(s, "previous-raw-secret", testGuard())
	if err != nil {
		t.Fatal(err)
	}
	d = cs.Dest
	if d.Enabled || d.MaxAttempts != 2 || len(d.Schedule) != 2 || d.Timeout != time.Second {
		t.Errorf("set values: %+v", d)
	}
	// The schedule does not change max_attempts for subscriptions.
	if len(d.Keys) != 2 || string(d.Keys[1]) != "previous-raw-secret" {
		t.Fatalf("keys = %d (current first, then previous)", len(d.Keys))
	}
	if d.Secret != s.Secret || d.Subscription.Secret != s.Secret || d.SecretHeader != "X-Secret" || d.SecretField != "Secret" {
		t.Errorf("secret plumbing: %+v", d)
	}
	if cs.Include == nil || cs.Exclude == nil {
		t.Error("predicates not compiled")
	}
}

func TestPredicates(t *testing.T) {
	s := Subscription{ID: "s1", Name: "n", Topics: []string{"*"}, URL: "http://127.0.0.1/",
		Include: Predicates{`data.profile.email == "x"`}, Exclude: Predicates{`tenant == "skip"`}}
	cs, err := CompileSubscription(s, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &filters.Event{ID: "e", Topic: "t", Data: map[string]any{"RecordID": "1"}, Tenant: "skip"}
	inc, exc, err := cs.Predicates(ev)
	if inc || !exc || err == nil || !strings.HasPrefix(err.Error(), "include: ") {
		t.Errorf("include failing at run time: %v %v %v", inc, exc, err)
	}
	s.Include, s.Exclude = Predicates{`tenant == "ZZ1"`}, Predicates{`data.profile.email == "x"`}
	cs, _ = CompileSubscription(s, "", nil)
	ev.Tenant = "ZZ1"
	inc, exc, err = cs.Predicates(ev)
	if !inc || exc || err == nil || !strings.HasPrefix(err.Error(), "exclude: ") {
		t.Errorf("exclude failing at run time: %v %v %v", inc, exc, err)
	}
	s.Include, s.Exclude = nil, nil
	cs, _ = CompileSubscription(s, "", nil)
	if inc, exc, err = cs.Predicates(ev); !inc || exc || err != nil {
		t.Errorf("no predicates: %v %v %v", inc, exc, err)
	}
}

func TestTargetID(t *testing.T) {
	const u = "http://127.0.0.1:9/a"
	tests := []struct {
		name, method, url, want string
	}{
		// sha256("POST http://127.0.0.1:9/a"), first 4 bytes.
		{"default method", "", u, TargetID("POST", u)},
		{"method case", "post", u, TargetID("POST", u)},
		{"other method", "PUT", u, ""},
		{"other url", "", u + "b", ""},
	}
	base := TargetID("POST", u)
	if len(base) != 8 || !ValidID(base) {
		t.Fatalf("TargetID = %q: want 8 hex digits", base)
	}
	for _, tc := range tests {
		got := TargetID(tc.method, tc.url)
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: TargetID = %q, want %q", tc.name, got, tc.want)
		}
		if tc.want == "" && got == base {
			t.Errorf("%s: TargetID = %q, the same as for POST %s", tc.name, got, u)
		}
	}
}

// Reordering, adding or removing targets keeps every remaining target's
// destination id, so queued retries stay with their URL and secret.
func TestTargetIdentityStable(t *testing.T) {
	a := Target{URL: "http://127.0.0.1:9/a", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	b := Target{URL: "http://127.0.0.1:9/b"}
	c := Target{ID: "named", URL: "http://127.0.0.1:9/c"}
	ids := func(targets ...Target) map[string]string { // URL -> destination id
		t.Helper()
		cw := mustCompileWorkflow(t, Workflow{ID: "w", Targets: targets})
		out := map[string]string{}
		for i, d := range cw.Targets {
			if cw.Def.Targets[i].ID == "" {
				t.Errorf("targets[%d]: compiled definition has no id", i)
			}
			if d.ID != TargetDestinationID("w", cw.Def.Targets[i].ID) {
				t.Errorf("targets[%d]: destination %q, definition id %q", i, d.ID, cw.Def.Targets[i].ID)
			}
			out[d.URL] = d.ID
		}
		return out
	}
	first := ids(a, b, c)
	if first[c.URL] != "wf=w=named" {
		t.Errorf("named target: %q", first[c.URL])
	}
	if first[a.URL] == first[b.URL] {
		t.Errorf("two targets share %q", first[a.URL])
	}
	for name, targets := range map[string][]Target{
		"reordered":     {c, b, a},
		"first removed": {b, c},
		"one added":     {{URL: "http://127.0.0.1:9/new"}, a, b, c},
	} {
		for u, id := range ids(targets...) {
			if want, ok := first[u]; ok && id != want {
				t.Errorf("%s: %s has destination %q, was %q", name, u, id, want)
			}
		}
	}
	// A renamed URL keeps its destination when the id is given.
	moved := ids(Target{ID: "named", URL: "http://127.0.0.1:9/moved"})
	if moved["http://127.0.0.1:9/moved"] != "wf=w=named" {
		t.Errorf("moved named target: %v", moved)
	}
}

func TestPredicatesJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Predicates
		out  string
	}{
		{`"tenant == \"ZZ1\""`, Predicates{`tenant == "ZZ1"`}, `"tenant == \"ZZ1\""`},
		{`["tenant == \"ZZ1\"", "user == \"K8\""]`, Predicates{`tenant == "ZZ1"`, `user == "K8"`}, `["tenant == \"ZZ1\"","user == \"K8\""]`},
		{`""`, nil, `null`},
		{`[]`, Predicates{}, `[]`},
	}
	for _, tc := range tests {
		var p Predicates
		if err := json.Unmarshal([]byte(tc.in), &p); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !slices.Equal(p, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.in, p, tc.want)
		}
		if out, _ := json.Marshal(p); string(out) != tc.out {
			t.Errorf("%s: marshals to %s, want %s", tc.in, out, tc.out)
		}
	}
	var p Predicates
	if err := json.Unmarshal([]byte(`{"a":1}`), &p); err == nil {
		t.Error("an object was accepted")
	}
}

func TestSubscriptionMatchFirst(t *testing.T) {
	s := Subscription{ID: "s", Name: "s", Topics: []string{"*"}, URL: "http://127.0.0.1:9/",
		Include: Predicates{`tenant == "ZZ1"`, `data.profile.email == "x"`, `tenant startsWith "ZZ"`},
		Exclude: Predicates{`user == "bot"`, `data?.RecordID == "SKIP"`}}
	cs, err := CompileSubscription(s, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		ev               filters.Event
		include, exclude int
		incErr           bool
	}{
		{"first include", filters.Event{Tenant: "ZZ1", Data: map[string]any{}}, 0, -1, false},
		{"third include after a failing one", filters.Event{Tenant: "ZZ2", Data: map[string]any{}}, 2, -1, true},
		{"none, second exclude", filters.Event{Tenant: "XX", Data: map[string]any{"RecordID": "SKIP", "profile": map[string]any{}}}, -1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := cs.Match(&tc.ev)
			if m.IncludeIndex != tc.include || m.ExcludeIndex != tc.exclude || (m.IncludeErr != nil) != tc.incErr {
				t.Errorf("%+v", m)
			}
			inc, exc, _ := cs.Predicates(&tc.ev)
			if inc != (tc.include >= 0) || exc != (tc.exclude >= 0) {
				t.Errorf("Predicates: %v %v", inc, exc)
			}
		})
	}
	s.Include = Predicates{`tenant == "a"`, `tenant ==`}
	if _, err := CompileSubscription(s, "", nil); err == nil || !strings.HasPrefix(err.Error(), "include[1]") {
		t.Errorf("error %v does not name include[1]", err)
	}
}

// refuse10 is a guard that refuses private addresses: 10.0.0.1 is decided
// from the IP literal (CheckURL never dials).
var refuse10 = netguard.New(nil)
