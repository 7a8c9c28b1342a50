package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadEasyLife decodes one of the EasyLife provisioning payloads the way the
// ingress handler does (encoding/json into any).
func loadEasyLife(tb testing.TB, name string) any {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "examples", "easylife", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var body any
	if err := json.Unmarshal(raw, &body); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return body
}

var easyLifeFiles = []string{"groupcreated", "sharepointcreated", "vivaengagecreated", "plannercreated", "onenotecreated"}

// checkError asserts that err is an *Error of the given kind whose text is
// `kind "src": <message containing want> (line:col)`.
func checkError(t *testing.T, err error, kind, src, want, pos string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%q: no error, want one containing %q", src, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %T (%v), want *Error", src, err, err)
	}
	prefix := fmt.Sprintf("%s %q: ", kind, src)
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("error %q does not start with %q", msg, prefix)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not contain %q", msg, want)
	}
	if pos != "" && !strings.HasSuffix(msg, "("+pos+")") {
		t.Errorf("error %q does not end with position (%s)", msg, pos)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans several lines", msg)
	}
}

func TestCompileRequestPredicateErrors(t *testing.T) {
	tests := []struct {
		name, src, want, pos string
	}{
		{"syntax: missing operand", `body.x ==`, "unexpected token EOF", "1:9"},
		{"syntax: unclosed bracket", `body.eventType in ["a", "b"`, "unexpected token EOF", ""},
		{"syntax: second line", "body.x == 1 &&\n  (", "unexpected token EOF", "2:3"},
		{"syntax: bad token", `body.x === 1`, "unexpected token", "1:10"},
		{"not boolean: arithmetic", `1 + 1`, "expected bool, but got int", "1:1"},
		{"not boolean: string field", `method`, "expected bool, but got string", "1:1"},
		{"not boolean: map", `headers`, "expected bool", "1:1"},
		// Issue #8 (7): a body field's type is known only at run time.
		{"not boolean: body field", `body.eventType`, "the result must be boolean", "1:1"},
		{"not boolean: missing body field", `body.missing`, "the result must be boolean", "1:1"},
		{"not boolean: coalesced body field", `body.flag ?? false`, "the result must be boolean", "1:1"},
		{"type: string compared to int", `method > 3`, "mismatched types string and int", "1:8"},
		{"type: header compared to int", `headers["x"] == 1`, "mismatched types string and int", ""},
		{"unknown variable", `foo == 1`, "unknown name foo", "1:1"},
		{"unknown variable: event field", `topic == "x"`, "unknown name topic", "1:1"},
		{"unknown workflow field", `workflow.nope == "x"`, "has no field nope", "1:10"},
		{"unknown function", `nope(body)`, "unknown name nope", "1:1"},
		{"empty", ``, "empty expression", "1:1"},
		{"blank", " \n\t", "empty expression", "1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileRequestPredicate(tt.src)
			if p != nil {
				t.Errorf("got a predicate with an error")
			}
			checkError(t, err, "filter", tt.src, tt.want, tt.pos)
		})
	}
}

func TestCompileRequestPredicateErrorFields(t *testing.T) {
	_, err := CompileRequestPredicate(`body.x ==`)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T", err)
	}
	if e.Kind != KindFilter || e.Expr != `body.x ==` || e.Line != 1 || e.Column != 9 ||
		e.Message != "unexpected token EOF" || !strings.Contains(e.Snippet, "^") || e.Unwrap() == nil {
		t.Errorf("unexpected error fields: %+v", e)
	}
	if got, want := err.Error(), `filter "body.x ==": unexpected token EOF (1:9)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCompileEventPredicateErrors(t *testing.T) {
	tests := []struct {
		name, src, want, pos string
	}{
		{"syntax", `topic ==`, "unexpected token EOF", "1:8"},
		{"not boolean", `tenant + user`, "expected bool, but got string", "1:1"},
		{"not boolean: data field", `data.enabled`, "the result must be boolean", "1:1"},
		{"type mismatch", `topic > 3`, "mismatched types string and int", "1:7"},
		{"time compared to string", `time == "x"`, "mismatched types", ""},
		{"unknown variable", `body.x == 1`, "unknown name body", "1:1"},
		{"empty", ``, "empty expression", "1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileEventPredicate(tt.src)
			if p != nil {
				t.Errorf("got a predicate with an error")
			}
			checkError(t, err, "predicate", tt.src, tt.want, tt.pos)
		})
	}
}

func TestRequestPredicateEasyLife(t *testing.T) {
	bodies := map[string]any{}
	for _, f := range easyLifeFiles {
		bodies[f] = loadEasyLife(t, f)
	}
	// want lists the payloads the predicate matches; every other payload
	// must evaluate to false without error.
	tests := []struct {
		src  string
		want []string
	}{
		{`body.eventType in ["groupcreated","sharepointcreated"]`,
			[]string{"groupcreated", "sharepointcreated", "vivaengagecreated"}},
		{`body.eventType not in ["plannercreated", "onenotecreated"]`,
			[]string{"groupcreated", "sharepointcreated", "vivaengagecreated"}},
		{`body.eventType == "sharepointcreated"`, []string{"sharepointcreated"}},
		{`body.group.metadata != nil`, easyLifeFiles},
		{`len(body.user.businessPhones) == 0`, easyLifeFiles},
		{`body.user.accountEnabled == true`, easyLifeFiles},
		{`body.user.accountEnabled == true && body.user.userType == "Member"`, easyLifeFiles},
		{`body.user.companyName == "NUBO"`, []string{"groupcreated", "sharepointcreated"}},
		{`body?.user?.id == "d3f0fe0f-ad34-4eb2-af61-953ea3a76031"`,
			[]string{"vivaengagecreated", "plannercreated", "onenotecreated"}},
		{`body.group?.easylife365_group?.resourceType == "CommunicationSite"`, []string{"sharepointcreated"}},
		{`body.group?.easylife365_group?.isCompliant == false`, []string{"sharepointcreated"}},
		{`body.group?.policy?.coSta == "compliant"`, []string{"vivaengagecreated"}},
		{`"yUrl" in body.group.metadata.additionalData`, []string{"vivaengagecreated"}},
		{`body.url startsWith "https://nuborocks.sharepoint.com/"`, []string{"sharepointcreated"}},
		{`(body.url ?? "") matches "^https://"`, []string{"sharepointcreated"}},
		{`body.group.description != nil`, []string{"sharepointcreated", "vivaengagecreated", "onenotecreated"}},
		{`date(body.group.createdDateTime) > date("2024-01-01T00:00:00Z")`,
			[]string{"vivaengagecreated", "plannercreated", "onenotecreated"}},
		{`body.tenantId == "1840b34e-6fe7-4a56-9ad3-0b7b58c49dc7"`, easyLifeFiles},
		{`len(body.user.onPremisesExtensionAttributes) == 0 && len(keys(body.user)) > 10`, easyLifeFiles},
	}
	for _, tt := range tests {
		p, err := CompileRequestPredicate(tt.src)
		if err != nil {
			t.Fatalf("compile %q: %v", tt.src, err)
		}
		if p.String() != tt.src {
			t.Errorf("String() = %q, want %q", p.String(), tt.src)
		}
		want := map[string]bool{}
		for _, f := range tt.want {
			want[f] = true
		}
		for _, f := range easyLifeFiles {
			t.Run(tt.src+"/"+f, func(t *testing.T) {
				r := &Request{Body: bodies[f], Method: "POST", Workflow: WorkflowInfo{ID: "wf1", Name: "provisioning"}}
				got, err := p.Match(r)
				if err != nil {
					t.Fatalf("Match: %v", err)
				}
				if got != want[f] {
					t.Errorf("Match = %v, want %v", got, want[f])
				}
			})
		}
	}
}

func TestRequestPredicateRuntimeErrors(t *testing.T) {
	group := loadEasyLife(t, "groupcreated")
	tests := []struct {
		name string
		src  string
		body any
		want string // in the error text
	}{
		{"nil member access", `body.owner.id == "x"`, group, "cannot fetch id from <nil>"},
		{"nil body", `body.user.id == "x"`, nil, "cannot fetch user from <nil>"},
		{"runtime type mismatch", `body.user.displayName > 3`, group, "invalid operation"},
		{"number compared to string at runtime", `body.user.accountEnabled + 1 > 0`, group, "invalid operation"},
		{"index out of range", `body.user.businessPhones[0] == "x"`, group, "index out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileRequestPredicate(tt.src)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			ok, err := p.Match(&Request{Body: tt.body})
			if ok {
				t.Errorf("matched despite the error")
			}
			checkError(t, err, "filter", tt.src, tt.want, "")
		})
	}
}

func TestRequestPredicateNilSafe(t *testing.T) {
	p, err := CompileRequestPredicate(`body?.user?.id == "d3c2ced5-6470-4be6-b655-9dd740be7135"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		body any
		want bool
	}{
		{"nil body", nil, false},
		{"no user", map[string]any{"eventType": "x"}, false},
		{"user without id", map[string]any{"user": map[string]any{}}, false},
		{"groupcreated", loadEasyLife(t, "groupcreated"), true},
	} {
		got, err := p.Match(&Request{Body: tt.body})
		if err != nil || got != tt.want {
			t.Errorf("%s: Match = %v, %v; want %v, nil", tt.name, got, err, tt.want)
		}
	}
}

func TestRequestPredicateRequestFields(t *testing.T) {
	r := &Request{
		Body:     map[string]any{"count": 3.0, "tags": []any{"a", "b"}},
		Headers:  map[string]string{"x-github-event": "push", "content-type": "application/json"},
		Query:    map[string]string{"env": "prod", "page": "2"},
		Method:   "POST",
		Workflow: WorkflowInfo{ID: "wf_123", Name: "provisioning"},
	}
	tests := []struct {
		src  string
		want bool
	}{
		{`headers["x-github-event"] == "push"`, true},
		{`headers["X-GitHub-Event"] == "push"`, false}, // names are lower-case
		{`headers.missing == ""`, true},
		{`"x-github-event" in headers`, true},
		{`headers["content-type"] startsWith "application/json"`, true},
		{`query.env == "prod"`, true},
		{`query["page"] == "2" && int(query.page) == 2`, true},
		{`query.env in ["dev", "staging"]`, false},
		{`method == "POST"`, true},
		{`method in ["PUT", "PATCH"]`, false},
		{`workflow.id == "wf_123"`, true},
		{`workflow.name == "provisioning" && method == "POST"`, true},
		{`body.count == 3`, true},
		{`body.count > 2.5`, true},
		{`body.count + 1 == 4`, true},
		{`"b" in body.tags`, true},
		{`len(body.tags) == 2`, true},
		{`true`, true},
		{`false`, false},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := CompileRequestPredicate(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Match(r)
			if err != nil || got != tt.want {
				t.Errorf("Match = %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}
	// Empty maps and a zero request are valid environments.
	p, err := CompileRequestPredicate(`headers.x == "" && query.y == "" && method == "" && body == nil`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Match(&Request{}); !ok || err != nil {
		t.Errorf("zero request: Match = %v, %v; want true, nil", ok, err)
	}
}

func TestNilPredicates(t *testing.T) {
	var rp *RequestPredicate
	if ok, err := rp.Match(&Request{}); !ok || err != nil {
		t.Errorf("nil RequestPredicate: Match = %v, %v", ok, err)
	}
	var ep *EventPredicate
	if ok, err := ep.Match(&Event{}); !ok || err != nil {
		t.Errorf("nil EventPredicate: Match = %v, %v", ok, err)
	}
	if rp.String() != "" || ep.String() != "" {
		t.Errorf("nil String() not empty")
	}
}

// Events drawn from the seeds: Orange Logic's document.deleted and ACTIVATE's
// USER_CREATED.
func orangeLogicEvent() *Event {
	return &Event{
		ID:     "773bdd63-29be-4e77-8f39-fb0b572a7a88",
		Topic:  "document.deleted",
		Data:   map[string]any{"RecordID": "2QDTWAW4499"},
		Tenant: "ZZ1",
		User:   "K8OEC0ALO_H",
		Time:   time.Date(2024, 12, 30, 19, 18, 23, 871159300, time.UTC),
	}
}

func activateEvent(t testing.TB) *Event {
	var data any
	err := json.Unmarshal([]byte(`{
		"username": "demo",
		"email": "demo@parallelworks.com",
		"userId": "66ec445884b4103f670d0c86",
		"organization": "parallelworks",
		"remainingSeats": 5
	}`), &data)
	if err != nil {
		t.Fatal(err)
	}
	return &Event{
		ID:     "evt_01",
		Topic:  "USER_CREATED",
		Data:   data,
		Tenant: "parallelworks",
		Time:   time.Date(2024, 9, 19, 15, 30, 0, 0, time.UTC),
	}
}

func TestEventPredicate(t *testing.T) {
	ol, act := orangeLogicEvent(), activateEvent(t)
	tests := []struct {
		src     string
		ol, act bool
	}{
		{`topic == "document.deleted"`, true, false},
		{`topic startsWith "document."`, true, false},
		{`topic in ["USER_CREATED", "USER_DISABLED"]`, false, true},
		{`topic matches "^USER_"`, false, true},
		{`tenant == "ZZ1"`, true, false},
		{`tenant == "parallelworks" && data.organization == "parallelworks"`, false, true},
		{`user == "K8OEC0ALO_H"`, true, false},
		{`user == ""`, false, true},
		{`id == "773bdd63-29be-4e77-8f39-fb0b572a7a88"`, true, false},
		{`data?.RecordID == "2QDTWAW4499"`, true, false},
		{`(data?.remainingSeats ?? 0) > 0`, false, true},
		{`data?.remainingSeats != nil && data.remainingSeats > 0`, false, true},
		{`(data?.remainingSeats ?? 0) >= 5`, false, true},
		{`data.email endsWith "@parallelworks.com" || data?.RecordID != nil`, true, true},
		{`time.Year() == 2024`, true, true},
		{`time > date("2024-10-01T00:00:00Z")`, true, false},
		{`not (topic == "document.deleted")`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := CompileEventPredicate(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != tt.src {
				t.Errorf("String() = %q", p.String())
			}
			for _, c := range []struct {
				name string
				ev   *Event
				want bool
			}{{"orangelogic", ol, tt.ol}, {"activate", act, tt.act}} {
				got, err := p.Match(c.ev)
				if err != nil || got != c.want {
					t.Errorf("%s: Match = %v, %v; want %v, nil", c.name, got, err, c.want)
				}
			}
		})
	}
}

func TestEventPredicateRuntimeError(t *testing.T) {
	src := `data.email endsWith "@parallelworks.com"`
	p, err := CompileEventPredicate(src)
	if err != nil {
		t.Fatal(err)
	}
	// Orange Logic data has no email: nil member access is not a runtime
	// error in expr for a map (missing keys are nil), but endsWith on nil is
	// false. A nested access on the missing key is an error.
	if ok, err := p.Match(orangeLogicEvent()); ok || err != nil {
		t.Errorf("Match = %v, %v; want false, nil", ok, err)
	}
	src = `data.profile.email == "x"`
	if p, err = CompileEventPredicate(src); err != nil {
		t.Fatal(err)
	}
	ok, err := p.Match(orangeLogicEvent())
	if ok {
		t.Error("matched")
	}
	checkError(t, err, "predicate", src, "cannot fetch email from <nil>", "1:14")
}

// Predicates are shared by all requests: evaluate one from many goroutines
// (run with -race).
func TestPredicateConcurrent(t *testing.T) {
	p, err := CompileRequestPredicate(`body.eventType in ["groupcreated","sharepointcreated"] && body?.user?.id != nil`)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]any{}
	for _, f := range easyLifeFiles {
		bodies[f] = loadEasyLife(t, f)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				f := easyLifeFiles[(i+j)%len(easyLifeFiles)]
				got, err := p.Match(&Request{Body: bodies[f]})
				want := f == "groupcreated" || f == "sharepointcreated" || f == "vivaengagecreated"
				if err != nil || got != want {
					t.Errorf("%s: Match = %v, %v", f, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A comparison with a missing field does not match, without error.
func TestRequestPredicateMissingField(t *testing.T) {
	p, err := CompileRequestPredicate(`body.missing == true`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Match(&Request{Body: loadEasyLife(t, "groupcreated")}); ok || err != nil {
		t.Errorf("Match = %v, %v; want false, nil", ok, err)
	}
}
