package filters

import "testing"

// BenchmarkRequestPredicate evaluates the documented workflow filter on an
// EasyLife provisioning payload, as the ingress hot path does.
func BenchmarkRequestPredicate(b *testing.B) {
	p, err := CompileRequestPredicate(`body.eventType in ["groupcreated", "sharepointcreated"]`)
	if err != nil {
		b.Fatal(err)
	}
	r := &Request{
		Body:     loadEasyLife(b, "sharepointcreated"),
		Headers:  map[string]string{"content-type": "application/json"},
		Method:   "POST",
		Workflow: WorkflowInfo{ID: "wf1", Name: "provisioning"},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ok, err := p.Match(r)
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkRequestPredicateNested is a heavier filter: nil-safe navigation,
// len() and a header.
func BenchmarkRequestPredicateNested(b *testing.B) {
	p, err := CompileRequestPredicate(`body?.group?.easylife365_group?.resourceType == "CommunicationSite" && len(body.user.businessPhones) == 0 && headers["content-type"] startsWith "application/json"`)
	if err != nil {
		b.Fatal(err)
	}
	r := &Request{Body: loadEasyLife(b, "sharepointcreated"), Headers: map[string]string{"content-type": "application/json"}}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := p.Match(r); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkEventPredicate evaluates a subscription include predicate.
func BenchmarkEventPredicate(b *testing.B) {
	p, err := CompileEventPredicate(`topic startsWith "document." && tenant == "ZZ1"`)
	if err != nil {
		b.Fatal(err)
	}
	ev := orangeLogicEvent()
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := p.Match(ev); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkEnvelopeStandard builds the default envelope.
func BenchmarkEnvelopeStandard(b *testing.B) {
	e, err := CompileEnvelope("standard")
	if err != nil {
		b.Fatal(err)
	}
	in := orangeLogicInput()
	in.Event.Data = loadEasyLife(b, "sharepointcreated")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopePreset builds an expression envelope (Orange Logic).
func BenchmarkEnvelopePreset(b *testing.B) {
	e, err := CompileEnvelope("orangelogic")
	if err != nil {
		b.Fatal(err)
	}
	in := orangeLogicInput()
	in.Event.Data = loadEasyLife(b, "sharepointcreated")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
