package filters

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
)

// project is a decoded value projected on s, as the request path projects
// a parsed body (see Selection).
func project(v any, s *Selection) any {
	m, ok := v.(map[string]any)
	if s.Whole || !ok {
		return v
	}
	out := map[string]any{}
	for name, sub := range s.Members {
		if mv, ok := m[name]; ok {
			out[name] = project(mv, sub)
		}
	}
	return out
}

// TestBodySelection: what each kind of use of body selects.
func TestBodySelection(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`body.eventType in ["groupcreated", "sharepointcreated"]`, `{"eventType":*}`},
		{`body.a.b == 1 && body.a.c == 2`, `{"a":{"b":*,"c":*}}`},
		{`body.a.b == 1 && body.a == nil`, `{"a":*}`},
		{`body["a"]["b"] == 1`, `{"a":{"b":*}}`},
		{`body?.a?.b == 1`, `{"a":{"b":*}}`},
		{`(body?.a).b == 1`, `{"a":{"b":*}}`},
		{`(body.a?.b ?? "none") == "none"`, `{"a":{"b":*}}`},
		{`body.items[0].x == 1`, `{"items":*}`},
		{`all(body.items, .x > 1)`, `{"items":*}`},
		{`len(body.a) > 0`, `{"a":*}`},
		{`"k" in body.a`, `{"a":*}`},
		{`body.a[body.b] == 1`, `{"a":*,"b":*}`},
		{`method == "POST"`, `{}`},
		{`headers["x"] == "y"`, `{}`},
		// body itself read: all of it.
		{`len(body) > 0`, `*`},
		{`"k" in body`, `*`},
		{`body[method] == 1`, `*`},
		{`body == nil`, `*`},
		{`let b = body; b.a == 1`, `*`},
		{`toJSON(body) != ""`, `*`},
		{`$env.body.a == 1`, `*`},
		{`$env["body"] != nil`, `*`},
		{`body[0] == 1`, `*`},
		{`body[0:1] == []`, `*`},
		{`any(1..3, body.a == #)`, `{"a":*}`},
	} {
		p, err := CompileRequestPredicate(tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if got := selString(p.BodySelection()); got != tc.want {
			t.Errorf("%s: selection %s, want %s", tc.src, got, tc.want)
		}
	}
	var nilPred *RequestPredicate
	if got := selString(nilPred.BodySelection()); got != `{}` {
		t.Errorf("nil predicate: selection %s", got)
	}
}

// selString writes a Selection compactly: * for Whole, else its members
// in sorted order.
func selString(s *Selection) string {
	if s.Whole {
		return "*"
	}
	out := "{"
	for i, k := range slices.Sorted(maps.Keys(s.Members)) {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf("%q:%s", k, selString(s.Members[k]))
	}
	return out + "}"
}

// selectionPrograms are filters over the EasyLife payloads and their
// variants, with every kind of use of body: each is evaluated on whole
// bodies and on bodies projected on its selection.
var selectionPrograms = []string{
	`body.eventType in ["groupcreated", "sharepointcreated"]`,
	`body.eventType == "groupcreated" && body.user.accountEnabled`,
	`body.user.id startsWith "d3" || body.group.displayName contains "Team"`,
	`body.group.metadata.tId == body.group.metadata.additionalData.tId`,
	`body.group.metadata.additionalData.tId != nil`,
	`body?.user?.manager?.id == nil`,
	`(body.user.businessPhones ?? []) == []`,
	`len(body.user.businessPhones) == 0`,
	`len(body.user) > 3`,
	`"mail" in body.user`,
	`body.user.mail matches "@easymenu"`,
	`body.user.nope.deeper == 1`,
	`body.eventType.x == 1`,
	`body.tenantId + "x" == "y"`,
	`body.user + 1 == 2`,
	`body.user == body.group`,
	`toJSON(body.group) != ""`,
	`keys(body.user.onPremisesExtensionAttributes) == []`,
	`any(body.list, # == nil)`,
	`body.list[0] == 1`,
	`len(body) == 4`,
	`"eventType" in body`,
	`body == nil`,
	`(body.a?.b ?? "none") == "none"`,
	`let u = body.user; u.givenName == "Patrick"`,
	`method == "POST" && body.eventType != nil`,
}

// selectionBodies are the EasyLife payloads and variants where members
// are missing, null, of another type, or the body is not an object.
func selectionBodies(t *testing.T) []any {
	var out []any
	for _, name := range easyLifeFiles {
		out = append(out, loadEasyLife(t, name))
	}
	for _, s := range []string{
		`{"eventType":"groupcreated","user":null,"group":"x","list":[1,null,"s"]}`,
		`{"eventType":1,"user":{"id":7,"accountEnabled":"yes","businessPhones":null},"group":{"metadata":[]}}`,
		`{"eventType":{"x":1},"user":{"nope":{"deeper":1}},"a":{"b":"set"},"tenantId":"t"}`,
		`{"eventType":"sharepointcreated","user":{"mail":3},"group":{"metadata":{"tId":1,"additionalData":{"tId":1}}}}`,
		`{}`, `[]`, `[1,2]`, `"groupcreated"`, `12`, `true`, `null`,
	} {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestSelectionEquivalence holds a filter's verdict and error on a body
// projected on its selection to those on the whole body.
func TestSelectionEquivalence(t *testing.T) {
	bodies := selectionBodies(t)
	projected := 0
	for _, src := range selectionPrograms {
		p, err := CompileRequestPredicate(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		sel := p.BodySelection()
		if !sel.Whole {
			projected++
		}
		for _, body := range bodies {
			checkSameVerdict(t, p, body, project(body, sel))
		}
	}
	if projected < len(selectionPrograms)/2 {
		t.Errorf("only %d of %d programs read selected members", projected, len(selectionPrograms))
	}
}

func checkSameVerdict(t *testing.T, p *RequestPredicate, body, part any) {
	t.Helper()
	env := func(b any) *Request {
		return &Request{Body: b, Method: "POST", Workflow: WorkflowInfo{ID: "w"}}
	}
	m1, err1 := p.Match(env(body))
	m2, err2 := p.Match(env(part))
	if m1 != m2 || fmt.Sprint(err1) != fmt.Sprint(err2) || reflect.TypeOf(err1) != reflect.TypeOf(err2) {
		b, _ := json.Marshal(body)
		t.Fatalf("%s on %.200s:\nwhole     %v, %v\nprojected %v, %v", p, b, m1, err1, m2, err2)
	}
}

// FuzzSelectionEquivalence: any filter that compiles gives the same verdict
// and error on a body projected on its selection as on the whole body.
func FuzzSelectionEquivalence(f *testing.F) {
	for _, src := range selectionPrograms {
		f.Add(src, `{"eventType":"groupcreated","user":{"id":"x","mail":null},"list":[1]}`)
	}
	f.Add(`body.a.b == body.c`, `{"a":{"b":1,"b":2},"c":2}`)
	f.Fuzz(func(t *testing.T, src, doc string) {
		p, err := CompileRequestPredicate(src)
		if err != nil {
			return
		}
		var body any
		if json.Unmarshal([]byte(doc), &body) != nil {
			return
		}
		checkSameVerdict(t, p, body, project(body, p.BodySelection()))
	})
}
