package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testenv"
	"github.com/hookgate/hookgate/registry"
)

// FuzzAPIDecode feeds arbitrary bodies to the decoders and validation of the
// API's resources (workflow, subscription, topic, event, merge patch). None
// may panic, and a resource that validates must validate again after the
// round trip through its stored JSON form (the registry reloads it so).
func FuzzAPIDecode(f *testing.F) {
	seeds := []struct {
		kind byte
		body string
	}{
		{0, `{"id":"w","sample":{"eventType":"groupcreated","n":1},"strict":true,"filter":"body.eventType == \"groupcreated\"","idempotency_header":"X-Request-Id","targets":[{"url":"http://127.0.0.1:3000/x","headers":{"X-Source":"hookgate","Authorization":"Bearer t"},"timeout":"5s","retry_schedule":["1s","1m"],"envelope":"standard"}]}`},
		{0, `{"id":"s","schema":{"type":"object","properties":{"a":{"type":"string","format":"uri-template"}}},"methods":["POST","PUT"],"max_body":1024,"grace":"1h","verify":{"provider":"stripe","secrets":["s","t"],"tolerance":"10m"}}`},
		{0, `{"id":"x","targets":[{"url":"http://127.0.0.1/","headers":{"X-A":"a\r\nb"},"timeout":"100000h"}]}`},
		{1, `{"name":"dam","topics":["document.*","*"],"url":"http://127.0.0.1:9/","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","headers":{"X-Api-Key":"k"},"include":"tenant == \"ZZ1\"","exclude":"data.x == 1","envelope":"orangelogic","max_attempts":6,"retry_schedule":["10s"],"timeout":"10s"}`},
		{1, `{"name":"s","topics":["a"],"url":"http://127.0.0.1:9/","max_attempts":1000000000,"include":"data.enabled"}`},
		{2, `{"name":"document.deleted","description":"d","schema":{"type":"object","required":["RecordID"]}}`},
		{3, `{"id":"evt_1","topic":"document.deleted","data":{"RecordID":"2QDTWAW4499"},"tenant":"ZZ1","user":"u"}`},
		{4, `{"description":null,"targets":[{"url":"http://127.0.0.1:9/","headers":{"X-Auth-Token":"***"}}]}`},
		{4, `[1]`},
	}
	for _, s := range seeds {
		f.Add(s.kind, []byte(s.body))
	}
	guard := testenv.LoopbackGuard()
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		if len(body) > 64<<10 {
			return
		}
		switch kind % 5 {
		case 0:
			var w registry.Workflow
			if registry.StrictUnmarshal(body, &w) != nil {
				return
			}
			w.ID = validIDOr(w.ID, "w")
			cw, err := registry.CompileWorkflow(w, guard)
			if err != nil {
				return
			}
			doc, err := json.Marshal(cw.Def)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var again registry.Workflow
			if err := registry.StrictUnmarshal(doc, &again); err != nil {
				t.Fatalf("stored form does not decode: %v\n%s", err, doc)
			}
			if _, err := registry.CompileWorkflow(again, guard); err != nil {
				t.Fatalf("stored form does not compile: %v\n%s", err, doc)
			}
			for _, tg := range cw.Def.Targets {
				checkRedacted(t, tg.Headers)
			}
		case 1:
			var s registry.Subscription
			if registry.StrictUnmarshal(body, &s) != nil {
				return
			}
			s.ID = validIDOr(s.ID, "s")
			cs, err := registry.CompileSubscription(s, "", guard)
			if err != nil {
				return
			}
			doc, _ := json.Marshal(cs.Def)
			var again registry.Subscription
			if err := registry.StrictUnmarshal(doc, &again); err != nil {
				t.Fatalf("stored form does not decode: %v\n%s", err, doc)
			}
			if _, err := registry.CompileSubscription(again, "", guard); err != nil {
				t.Fatalf("stored form does not compile: %v\n%s", err, doc)
			}
			checkRedacted(t, viewSubscription(cs).Headers)
		case 2:
			var tp registry.Topic
			if registry.StrictUnmarshal(body, &tp) == nil {
				_, _ = registry.CompileTopic(tp)
			}
		case 3:
			var req eventRequest
			if registry.StrictUnmarshal(body, &req) == nil {
				if ev, err := req.event(httptest.NewRequest("POST", "/events", nil), time.Now()); err == nil {
					_ = ev.Validate()
				}
			}
		case 4:
			r := httptest.NewRequest("PATCH", "/workflows/w", strings.NewReader(string(body)))
			_, _ = readPatch(r, &registry.Workflow{})
		}
	})
}

// validIDOr keeps a valid id and replaces another, so that the fuzzer gets
// past the id check to the rest of the resource.
func validIDOr(id, fallback string) string {
	if registry.ValidID(id) {
		return id
	}
	return fallback
}

// checkRedacted fails when a credential-like header would be shown as is.
func checkRedacted(t *testing.T, h map[string]string) {
	t.Helper()
	for k, v := range registry.RedactHeaders(h) {
		if registry.SensitiveHeader(k) && v != registry.Redacted {
			t.Fatalf("header %s shown unredacted", k)
		}
	}
}
