package ingress

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/registry"
)

// The request path decides a JSON body with a sample contract on the parsed
// document (the contract checks it as it is, the filter gets only the
// members of body it reads). These tests hold every such decision equal to
// the decision on the whole decoded tree (Check.decodeAll): status,
// outcome, response body, contract errors, filter verdict and error.

// parsedFilters are the filters the workflows of the tests run: each kind
// of use of body (selected members, members read whole, body read whole),
// with run-time errors and an evaluation bound among their outcomes.
var parsedFilters = []string{
	"",
	benchFilter,
	`body.eventType == "groupcreated" && body.user.accountEnabled`,
	`body.user.id startsWith "d3" || body.group.displayName contains "Team"`,
	`body.group.metadata.tId == body.group.metadata.additionalData.tId`,
	`body?.user?.manager?.id == nil`,
	`len(body.user.businessPhones) == 0`,
	`"mail" in body.user`,
	`body.user.nope.deeper == 1`,
	`body.eventType.x == 1`,
	`body.tenantId + "x" == "y"`,
	`body.user == body.group`,
	`len(repeat(body.eventType, 100000000)) > 0`,
	`body.a[0] == 1 || body["b"]?.c == nil`,
	`len(body) == 4`,
	`"eventType" in body`,
	`body == nil`,
	`let u = body.user; u.givenName == "Patrick"`,
	`headers["x-event"] == "push" || query.source == "gh" || body.eventType == "plannercreated"`,
	// More names than a pooled object holds, on objects with more members
	// than names are looked up one by one among.
	manyNames(12),
}

// manyNames is a filter reading n members k0, k1, ... of body, and one of
// each of its object members.
func manyNames(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf("body.k%d == %d || body.k%d?.k%d == %d", i, i, i, i+1, i))
	}
	return strings.Join(parts, " || ")
}

// manyMembers is an object of n members k0, k1, ..., with duplicates and
// objects among them; value v is the value of the member with the i of
// every third.
func manyMembers(n int, v string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, `"k%d":%d,"k%d":%s`, i, i, i, v)
		case 1:
			fmt.Fprintf(&b, `"k%d":{"k%d":%d,"x":[1]}`, i, i+1, i)
		default:
			fmt.Fprintf(&b, `"k%d":"s%d"`, i, i)
		}
	}
	b.WriteString(`,"eventType":"groupcreated"}`)
	return b.String()
}

// parsedWorkflows compiles a workflow for each sample (the EasyLife
// payloads and small ones), strict or not, and each filter.
func parsedWorkflows(t testing.TB) []*registry.CompiledWorkflow {
	t.Helper()
	samples := [][]byte{
		[]byte(`{"a":[{"b":1}],"c":{"d":"x","e":null}}`),
		[]byte(`[{"eventType":"x"}]`),
		[]byte(`"s"`),
		[]byte(`{}`),
		[]byte(`null`),
	}
	files, _ := filepath.Glob("../examples/easylife/*.json")
	for _, f := range files[:2] {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, b)
	}
	var ws []*registry.CompiledWorkflow
	for i, sample := range samples {
		for j, filter := range parsedFilters {
			strict := (i+j)%2 == 0
			cw, err := registry.CompileWorkflow(registry.Workflow{
				ID: fmt.Sprintf("w%d-%d", i, j), Sample: sample, Strict: strict, Filter: filter, FixedKey: testKey,
			}, testenv.LoopbackGuard())
			if err != nil {
				t.Fatalf("sample %d filter %q: %v", i, filter, err)
			}
			ws = append(ws, cw)
		}
	}
	return ws
}

// parsedBodies are the EasyLife payloads and variants: members missing,
// null, duplicated or of another type, escaped keys, other roots, and
// bodies that are not JSON.
func parsedBodies(t testing.TB) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob("../examples/easylife/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	group := out[0]
	out = append(out,
		strings.Replace(group, `"eventType": "groupcreated"`, `"eventType": 7`, 1),
		strings.Replace(group, `"eventType": "groupcreated"`, `"eventType": "x", "eventType": "groupcreated"`, 1),
		strings.Replace(group, `"eventType": "groupcreated"`, `"eventType": "groupcreated", "eventType": "x"`, 1),
		strings.Replace(group, `"eventType"`, `"event\u0054ype"`, 1),
		strings.Replace(group, `"accountEnabled": true`, `"accountEnabled": "yes"`, 1),
		strings.Replace(group, `"businessPhones": []`, `"businessPhones": [1, "2", null]`, 1),
		strings.Replace(group, `"user": {`, `"user": null, "u": {`, 1),
		strings.Replace(group, `"id": "d3c2ced5`, `"manager": {"id": null}, "id": "d3c2ced5`, 1),
		group[:len(group)/2], group+"x", "",
		`{"a":[{"b":1},{"b":"x"}],"c":{"d":"x","e":{"f":1}}}`,
		`{"a":[1],"b":{"c":null},"eventType":{"x":1}}`,
		`{"a":"s","c":[]}`, `[{"eventType":"x"},{"eventType":1},2]`, `[]`, `{}`, `"s"`, `1`, `null`, `true`,
		`{"a":1,}`, `{"a":"\ud83d\ude00","b":"\xff"}`, `{"eventType":"\u0067roupcreated"}`,
		manyMembers(60, "-1"), manyMembers(60, "0"), manyMembers(5, "null"),
	)
	return out
}

func checkParsedDecision(t *testing.T, w *registry.CompiledWorkflow, body string) {
	t.Helper()
	req := func() *http.Request {
		r := post("/hooks/x?source=gh", "application/json", body, "X-Event", "pull")
		return r
	}
	now := time.Unix(1700000000, 0)
	fast := Decide(req(), w, Check{Now: now})
	full := Decide(req(), w, Check{Now: now, decodeAll: true})
	if fast.Status != full.Status || fast.Outcome != full.Outcome ||
		!reflect.DeepEqual(fast.Response, full.Response) ||
		!reflect.DeepEqual(fast.ContractErrors, full.ContractErrors) ||
		fast.FilterMatched != full.FilterMatched ||
		fmt.Sprint(fast.FilterErr) != fmt.Sprint(full.FilterErr) ||
		string(fast.Body) != string(full.Body) {
		fr, _ := json.Marshal(fast.Response)
		wr, _ := json.Marshal(full.Response)
		t.Fatalf("workflow %s (filter %q) body %.200q:\nparsed  %d %s %s matched=%v err=%v\ndecoded %d %s %s matched=%v err=%v",
			w.Def.ID, w.Def.Filter, body,
			fast.Status, fast.Outcome, fr, fast.FilterMatched, fast.FilterErr,
			full.Status, full.Outcome, wr, full.FilterMatched, full.FilterErr)
	}
}

// TestParsedDecisionsMatchDecoded runs every workflow on every body.
func TestParsedDecisionsMatchDecoded(t *testing.T) {
	ws := parsedWorkflows(t)
	bodies := parsedBodies(t)
	outcomes := map[string]int{}
	for _, w := range ws {
		for _, body := range bodies {
			checkParsedDecision(t, w, body)
			d := Decide(post("/", "application/json", body), w, Check{Now: time.Now()})
			outcomes[d.Outcome]++
		}
	}
	// The table reaches every outcome of these checks.
	for _, o := range []string{"", OutcomeFiltered, OutcomeInvalid, OutcomeBadJSON, OutcomeOverBound} {
		if outcomes[o] == 0 {
			t.Errorf("no decision had outcome %q: %v", o, outcomes)
		}
	}
	t.Logf("%d decisions agree: %v", len(ws)*len(bodies), outcomes)
}

// TestParsedPathUsed: the parsed-document path is the one taken where it
// applies (Decoded is not built), and not in a dry run or for a JSON
// Schema contract.
func TestParsedPathUsed(t *testing.T) {
	body := string(readFile(t, "groupcreated.json"))
	for _, tc := range []struct {
		w       registry.Workflow
		dryRun  bool
		decoded bool
	}{
		{registry.Workflow{ID: "s", Sample: []byte(body), Filter: benchFilter}, false, false},
		{registry.Workflow{ID: "d", Sample: []byte(body), Filter: benchFilter}, true, true},
		{registry.Workflow{ID: "j", Schema: []byte(`{"type":"object"}`), Filter: benchFilter}, false, true},
	} {
		tc.w.FixedKey = testKey
		cw, err := registry.CompileWorkflow(tc.w, testenv.LoopbackGuard())
		if err != nil {
			t.Fatal(err)
		}
		d := Decide(post("/", "application/json", body), cw, Check{Now: time.Now(), DryRun: tc.dryRun})
		if !d.Passed() || !d.FilterMatched || (d.Decoded != nil) != tc.decoded {
			t.Errorf("%s (dry run %v): passed %v, matched %v, decoded %v", tc.w.ID, tc.dryRun, d.Passed(), d.FilterMatched, d.Decoded != nil)
		}
	}
}

// FuzzParsedDecision holds the decision on the parsed document to the one
// on the decoded tree for any body, on any of the workflows of the tests.
func FuzzParsedDecision(f *testing.F) {
	ws := parsedWorkflows(f)
	for i, body := range parsedBodies(f) {
		f.Add([]byte(body), uint16(i*7))
	}
	f.Fuzz(func(t *testing.T, body []byte, pick uint16) {
		checkParsedDecision(t, ws[int(pick)%len(ws)], string(body))
	})
}

// TestParsedDecisionsConcurrent: decisions made at once (the parsed
// documents, projected objects and filter machines they reuse) each get
// the verdict of their own body.
func TestParsedDecisionsConcurrent(t *testing.T) {
	ws := parsedWorkflows(t)
	bodies := parsedBodies(t)
	type want struct {
		status  int
		matched bool
		err     string
	}
	w := ws[len(parsedFilters)+2] // a small sample, a filter of selected members
	wants := make([]want, len(bodies))
	for i, body := range bodies {
		d := Decide(post("/", "application/json", body), w, Check{Now: time.Now(), decodeAll: true})
		wants[i] = want{d.Status, d.FilterMatched, fmt.Sprint(d.FilterErr)}
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for n := range 200 {
				i := (n*7 + g) % len(bodies)
				d := Decide(post("/", "application/json", bodies[i]), w, Check{Now: time.Now()})
				if got := (want{d.Status, d.FilterMatched, fmt.Sprint(d.FilterErr)}); got != wants[i] {
					errs <- fmt.Errorf("body %d: %+v, want %+v", i, got, wants[i])
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
