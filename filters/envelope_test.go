package filters

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// decode decodes a JSON document for comparison.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

// assertJSON compares got with the expected document after decoding both.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	g, w := decode(t, got), decode(t, []byte(want))
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body mismatch\n got: %s\nwant: %s", got, want)
	}
}

func build(t *testing.T, spec string, in *EnvelopeInput) []byte {
	t.Helper()
	e, err := CompileEnvelope(spec)
	if err != nil {
		t.Fatalf("CompileEnvelope(%q): %v", spec, err)
	}
	b, err := e.Build(in)
	if err != nil {
		t.Fatalf("Build(%q): %v", spec, err)
	}
	return b
}

// Expected documents, transcribed from the seed pages.
const (
	// ACTIVATE, "USER_CREATED" example (activate-org-webhooks.txt).
	activateUserCreated = `{
		"type": "USER_CREATED",
		"webhook": {
			"id": "66ec434e84b4103f670cb617",
			"organization": "parallelworks",
			"name": "demo"
		},
		"payload": {
			"username": "demo",
			"email": "demo@parallelworks.com",
			"userId": "66ec445884b4103f670d0c86",
			"organization": "parallelworks",
			"remainingSeats": 5
		}
	}`
	// Orange Logic body fields table (orangelogic-webhooks.txt).
	orangeLogicDeleted = `{
		"EventId": "773bdd63-29be-4e77-8f39-fb0b572a7a88",
		"Topic": "document.deleted",
		"EventDateUtc": "2024-12-30T19:18:23.8711593Z",
		"Data": {"RecordID": "2QDTWAW4499"},
		"Tenant": "ZZ1",
		"UserId": "K8OEC0ALO_H"
	}`
	// Orchestry outgoing payload (orchestry-outgoing-webhooks.txt): the
	// documented fields, with the secret as a body property.
	orchestryData = `{
		"tenantId": "1840b34e-6fe7-4a56-9ad3-0b7b58c49dc7",
		"requestId": "b0f6c5a1-3f0e-4c8e-9a55-2d1c2a7e9f10",
		"templateId": "fc6ffbd8-f7f0-4c05-b707-227d233b9e1b",
		"groupId": "94e8ab15-d134-4936-a260-7f862b6eac52",
		"sharePointUrl": "https://nuborocks.sharepoint.com/sites/intranetsite?a=1&b=<2>"
	}`
	orchestryBody = `{
		"tenantId": "1840b34e-6fe7-4a56-9ad3-0b7b58c49dc7",
		"requestId": "b0f6c5a1-3f0e-4c8e-9a55-2d1c2a7e9f10",
		"templateId": "fc6ffbd8-f7f0-4c05-b707-227d233b9e1b",
		"groupId": "94e8ab15-d134-4936-a260-7f862b6eac52",
		"sharePointUrl": "https://nuborocks.sharepoint.com/sites/intranetsite?a=1&b=<2>",
		"Secret": "s3cr3t-orchestry"
	}`
)

func activateInput(t *testing.T) *EnvelopeInput {
	return &EnvelopeInput{
		Event:        *activateEvent(t),
		Subscription: Subscription{ID: "66ec434e84b4103f670cb617", Name: "demo", Description: "demo hook"},
	}
}

func orangeLogicInput() *EnvelopeInput {
	return &EnvelopeInput{
		Event:        *orangeLogicEvent(),
		Subscription: Subscription{ID: "sub_ol", Name: "dam-sync", Secret: "whsec_x"},
	}
}

func orchestryInput(t *testing.T, secret string) *EnvelopeInput {
	var data any
	if err := json.Unmarshal([]byte(orchestryData), &data); err != nil {
		t.Fatal(err)
	}
	return &EnvelopeInput{
		Event: Event{ID: "evt_orch", Topic: "workspace.provisioning.completed", Data: data,
			Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		Subscription: Subscription{ID: "sub_orch", Name: "orchestry", Secret: secret},
	}
}

func TestEnvelopeShapes(t *testing.T) {
	ol := orangeLogicInput()
	tests := []struct {
		name, spec string
		in         *EnvelopeInput
		want       string
	}{
		{"activate USER_CREATED", "activate", activateInput(t), activateUserCreated},
		{"orangelogic document.deleted", "orangelogic", ol, orangeLogicDeleted},
		{"orchestry with secret", "orchestry", orchestryInput(t, "s3cr3t-orchestry"), orchestryBody},
		{"orchestry without secret", "orchestry", orchestryInput(t, ""), orchestryData},
		{"orchestry non-object data", "orchestry",
			&EnvelopeInput{Event: Event{Data: []any{"a", 1.0}}, Subscription: Subscription{Secret: "s"}},
			`{"data": ["a", 1], "Secret": "s"}`},
		{"orchestry nil data", "orchestry",
			&EnvelopeInput{Subscription: Subscription{Secret: "s"}}, `{"data": null, "Secret": "s"}`},
		{"standard", "standard", ol,
			`{"type": "document.deleted", "timestamp": "2024-12-30T19:18:23.8711593Z", "data": {"RecordID": "2QDTWAW4499"}}`},
		{"standard by default", "", ol,
			`{"type": "document.deleted", "timestamp": "2024-12-30T19:18:23.8711593Z", "data": {"RecordID": "2QDTWAW4499"}}`},
		{"standard nil data", "standard", &EnvelopeInput{Event: Event{Topic: "t", Time: time.Unix(0, 0)}},
			`{"type": "t", "timestamp": "1970-01-01T00:00:00Z", "data": null}`},
		{"raw", "raw", ol, `{"RecordID": "2QDTWAW4499"}`},
		{"raw activate payload", "raw", activateInput(t),
			`{"username": "demo", "email": "demo@parallelworks.com", "userId": "66ec445884b4103f670d0c86", "organization": "parallelworks", "remainingSeats": 5}`},
		{"raw nil data", "raw", &EnvelopeInput{}, `null`},
		{"raw string data", "raw", &EnvelopeInput{Event: Event{Data: "hello"}}, `"hello"`},
		{"raw json.RawMessage data", "raw", &EnvelopeInput{Event: Event{Data: json.RawMessage(`{"a": [1, 2]}`)}}, `{"a":[1,2]}`},
		{"custom object", `{id: event.id, sub: subscription.name, desc: subscription.description, record: event.data.RecordID}`, ol,
			`{"id": "773bdd63-29be-4e77-8f39-fb0b572a7a88", "sub": "dam-sync", "desc": "", "record": "2QDTWAW4499"}`},
		{"custom scalar", `event.data.RecordID`, ol, `"2QDTWAW4499"`},
		{"custom array", `[event.topic, event.tenant, event.user]`, ol, `["document.deleted", "ZZ1", "K8OEC0ALO_H"]`},
		{"custom merge", `merge(event.data, {tenant: lower(event.tenant), at: rfc3339(event.time)})`, ol,
			`{"RecordID": "2QDTWAW4499", "tenant": "zz1", "at": "2024-12-30T19:18:23.8711593Z"}`},
		{"custom merge override", `merge({a: 1, b: 2}, {b: 3})`, ol, `{"a": 1, "b": 3}`},
		{"custom conditional", `event.topic startsWith "document." ? {kind: "doc", id: event.data.RecordID} : event.data`, ol,
			`{"kind": "doc", "id": "2QDTWAW4499"}`},
		{"custom time method", `{unix: event.time.Unix(), year: event.time.Year()}`, ol, `{"unix": 1735586303, "year": 2024}`},
		{"preset source as expression", Presets["activate"], activateInput(t), activateUserCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertJSON(t, build(t, tt.spec, tt.in), tt.want)
		})
	}
}

// Orange Logic's EventDateUtc is UTC with a Z, whatever the event's location,
// and keeps the sub-second digits (.NET prints 7).
func TestEnvelopeTimestamps(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	in := orangeLogicInput()
	in.Event.Time = in.Event.Time.In(paris)
	for _, spec := range []string{"orangelogic", "standard", Presets["standard"]} {
		b := build(t, spec, in)
		if !bytes.Contains(b, []byte(`"2024-12-30T19:18:23.8711593Z"`)) {
			t.Errorf("%s: %s lacks the UTC timestamp", spec, b)
		}
	}
	in.Event.Time = time.Date(2024, 12, 30, 19, 18, 23, 0, time.UTC)
	if b := build(t, "orangelogic", in); !bytes.Contains(b, []byte(`"EventDateUtc":"2024-12-30T19:18:23Z"`)) {
		t.Errorf("whole second: %s", b)
	}
}

// The fast paths of "standard" and "raw" give the same documents as the
// preset expressions that describe them.
func TestEnvelopeFastPathsMatchPresets(t *testing.T) {
	inputs := []*EnvelopeInput{
		orangeLogicInput(), activateInput(t), orchestryInput(t, "x"), {},
		{Event: Event{Topic: "x", Data: []any{1.0, "two", nil, true}, Time: time.Date(2030, 5, 6, 7, 8, 9, 10, time.FixedZone("X", -7*3600))}},
	}
	for _, name := range []string{"standard", "raw"} {
		fast, err := CompileEnvelope(name)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := CompileEnvelope(Presets[name])
		if err != nil {
			t.Fatal(err)
		}
		if fast.p != nil || slow.p == nil {
			t.Fatalf("%s: fast path not taken or preset not compiled", name)
		}
		for i, in := range inputs {
			a, err := fast.Build(in)
			if err != nil {
				t.Fatal(err)
			}
			b, err := slow.Build(in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decode(t, a), decode(t, b)) {
				t.Errorf("%s input %d: fast %s != expression %s", name, i, a, b)
			}
		}
	}
}

func TestEnvelopeBytes(t *testing.T) {
	ol := orangeLogicInput()
	tests := []struct {
		spec string
		in   *EnvelopeInput
		want string
	}{
		// The standard envelope keeps its documented key order.
		{"standard", ol, `{"type":"document.deleted","timestamp":"2024-12-30T19:18:23.8711593Z","data":{"RecordID":"2QDTWAW4499"}}`},
		{"raw", ol, `{"RecordID":"2QDTWAW4499"}`},
		{"raw", &EnvelopeInput{}, `null`},
		// Expression results are maps: keys come out sorted.
		{"orangelogic", ol, `{"Data":{"RecordID":"2QDTWAW4499"},"EventDateUtc":"2024-12-30T19:18:23.8711593Z","EventId":"773bdd63-29be-4e77-8f39-fb0b572a7a88","Tenant":"ZZ1","Topic":"document.deleted","UserId":"K8OEC0ALO_H"}`},
		// No HTML escaping of &, < and >.
		{"raw", &EnvelopeInput{Event: Event{Data: map[string]any{"u": "https://x/?a=1&b=<2>"}}}, `{"u":"https://x/?a=1&b=<2>"}`},
		{`{u: "a&b<c>"}`, ol, `{"u":"a&b<c>"}`},
	}
	for _, tt := range tests {
		got := build(t, tt.spec, tt.in)
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.spec, got, tt.want)
		}
	}
}

// The same input always gives the same bytes, and a built body is not
// aliased by later builds.
func TestEnvelopeDeterministic(t *testing.T) {
	for _, spec := range []string{"standard", "raw", "activate", "orangelogic", "orchestry"} {
		e, err := CompileEnvelope(spec)
		if err != nil {
			t.Fatal(err)
		}
		in := orchestryInput(t, "s")
		first, err := e.Build(in)
		if err != nil {
			t.Fatal(err)
		}
		keep := bytes.Clone(first)
		for range 20 {
			b, err := e.Build(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, keep) {
				t.Fatalf("%s: %s != %s", spec, b, keep)
			}
		}
		if !bytes.Equal(first, keep) {
			t.Errorf("%s: first body was overwritten", spec)
		}
	}
}

// Envelopes run once per subscription on shared event data: merge must not
// modify it.
func TestEnvelopeDoesNotMutateEventData(t *testing.T) {
	in := orchestryInput(t, "secret")
	before := decode(t, mustMarshal(t, in.Event.Data))
	build(t, "orchestry", in)
	build(t, `merge(event.data, {tenantId: "changed"})`, in)
	if after := decode(t, mustMarshal(t, in.Event.Data)); !reflect.DeepEqual(before, after) {
		t.Errorf("event data changed: %v", after)
	}
	if _, ok := in.Event.Data.(map[string]any)["Secret"]; ok {
		t.Error("Secret leaked into the event data")
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnvelopeSpecNames(t *testing.T) {
	tests := []struct {
		spec, str string
		raw       bool
	}{
		{"", "standard", false},
		{"standard", "standard", false},
		{"raw", "raw", true},
		{" raw ", " raw ", true},
		{"activate", "activate", false},
		{"orangelogic", "orangelogic", false},
		{"orchestry", "orchestry", false},
		{"event.data", "event.data", false},
	}
	for _, tt := range tests {
		e, err := CompileEnvelope(tt.spec)
		if err != nil {
			t.Fatalf("%q: %v", tt.spec, err)
		}
		if e.String() != tt.str || e.Raw() != tt.raw {
			t.Errorf("%q: String() = %q, Raw() = %v; want %q, %v", tt.spec, e.String(), e.Raw(), tt.str, tt.raw)
		}
	}
	// Every preset compiles.
	for name, src := range Presets {
		if _, err := CompileEnvelope(src); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

func TestCompileEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name, spec, want, pos string
	}{
		{"syntax", `{type: event.topic`, "unexpected token EOF", ""},
		{"syntax second line", "{\n  a: event.id,\n  b: }", "unexpected token", "3:6"},
		{"unknown variable", `body`, "unknown name body", "1:1"},
		{"unknown preset name", `Activate`, "unknown name Activate", "1:1"},
		{"unknown event field", `{x: event.nope}`, "has no field nope", ""},
		{"unknown subscription field", `subscription.key`, "has no field key", ""},
		{"type error", `event.topic + 1`, "mismatched types string and int", ""},
		{"helper argument type", `rfc3339(event.topic)`, "cannot use string as argument", ""},
		{"merge argument type", `merge(event.topic, {})`, "cannot use string as argument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := CompileEnvelope(tt.spec)
			if e != nil {
				t.Error("got an envelope with an error")
			}
			checkError(t, err, "envelope", tt.spec, tt.want, tt.pos)
		})
	}
}

func TestEnvelopeBuildErrors(t *testing.T) {
	tests := []struct {
		name, spec string
		in         *EnvelopeInput
		want       string
	}{
		{"nil member access", `{x: event.data.user.id}`, &EnvelopeInput{}, "cannot fetch user from <nil>"},
		{"merge non-map at runtime", `merge(event.data, {a: 1})`, &EnvelopeInput{Event: Event{Data: "text"}}, "merge: expected maps with string keys, got string"},
		{"unmarshallable value", `raw`, &EnvelopeInput{Event: Event{Data: math.Inf(1)}}, "unsupported value"},
		{"unmarshallable expression result", `{x: event.data}`, &EnvelopeInput{Event: Event{Data: math.NaN()}}, "unsupported value"},
		{"nil input", "standard", nil, "no input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := CompileEnvelope(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.Build(tt.in)
			if b != nil {
				t.Errorf("got a body %s with an error", b)
			}
			checkError(t, err, "envelope", tt.spec, tt.want, "")
		})
	}
	// A runtime error in a preset names the preset.
	e, err := CompileEnvelope("orangelogic")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Build(&EnvelopeInput{Event: Event{Data: func() {}}})
	if err == nil || !strings.HasPrefix(err.Error(), `envelope "orangelogic": `) {
		t.Errorf("error %v does not name the preset", err)
	}
}

func TestMergeHelper(t *testing.T) {
	tests := []struct {
		name string
		a, b any
		want map[string]any
	}{
		{"both", map[string]any{"a": 1, "b": 2}, map[string]any{"b": 3}, map[string]any{"a": 1, "b": 3}},
		{"nil first", nil, map[string]any{"b": 3}, map[string]any{"b": 3}},
		{"nil both", nil, nil, map[string]any{}},
		{"typed map", map[string]string{"x": "y"}, map[string]any{"z": 1}, map[string]any{"x": "y", "z": 1}},
	}
	for _, tt := range tests {
		got, err := mergeFunc(tt.a, tt.b)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: merge = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range [][]any{{1, nil}, {map[int]any{}, nil}, {nil}} {
		if _, err := mergeFunc(bad...); err == nil {
			t.Errorf("merge(%v): no error", bad)
		}
	}
	if _, err := rfc3339Func("2024"); err == nil {
		t.Error("rfc3339(string): no error")
	}
}

// Envelopes are shared by all deliveries: build from many goroutines (run
// with -race).
func TestEnvelopeConcurrent(t *testing.T) {
	specs := []string{"standard", "raw", "activate", "orangelogic", "orchestry"}
	envs := make([]*Envelope, len(specs))
	want := make([][]byte, len(specs))
	in := orchestryInput(t, "s")
	for i, s := range specs {
		e, err := CompileEnvelope(s)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = e
		if want[i], err = e.Build(in); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				k := (g + j) % len(envs)
				b, err := envs[k].Build(in)
				if err != nil || !bytes.Equal(b, want[k]) {
					t.Errorf("%s: %s, %v", specs[k], b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
