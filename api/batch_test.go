package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
)

// batchAnswer is the answer of POST /events/batch.
type batchAnswer struct {
	Error  string `json:"error"`
	Events []struct {
		ID, Status, Error string
	} `json:"events"`
	Errors []struct {
		Index  int              `json:"index"`
		Error  string           `json:"error"`
		Field  string           `json:"field"`
		Errors []map[string]any `json:"errors"`
	} `json:"errors"`
}

// batchOf is a batch body of the given events (JSON texts).
func batchOf(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

func TestPublishBatch(t *testing.T) {
	e := newEnv(t)
	e.put("/topics/document.deleted", map[string]any{"schema": json.RawMessage(recordSchema)}).expect(http.StatusCreated)
	e.put("/topics/USER_CREATED", nil).expect(http.StatusCreated)
	reserved := delivery.EventRef(e.eng.EventEpoch, 1<<40)
	ol := func(id string) string {
		return `{"id":"` + id + `","topic":"document.deleted","data":` + orangeLogicData + `,"tenant":"ZZ1"}`
	}
	var thousand, tooMany []string
	for i := range MaxBatch + 1 {
		ev := fmt.Sprintf(`{"topic":"USER_CREATED","data":{"n":%d}}`, i)
		if i < MaxBatch {
			thousand = append(thousand, ev)
		}
		tooMany = append(tooMany, ev)
	}

	tests := []struct {
		name   string
		token  string
		body   string
		status int
		// want are the statuses of the events (202 and 503), or the
		// indexes of the invalid ones, as "3,5" (4xx).
		want   string
		ids    string // expected ids, "" where made by the gateway
		field  string // the first invalid event's field
		stored uint64 // events in the stream after the request
	}{
		{"Orange Logic and ACTIVATE", "", batchOf(ol("a-1"), `{"topic":"USER_CREATED","data":`+activateData+`}`, ol("a-2")),
			http.StatusAccepted, "accepted,accepted,accepted", "a-1,,a-2", "", 3},
		{"a duplicate inside the batch", "", batchOf(ol("b-1"), ol("b-1"), ol("b-2")),
			http.StatusAccepted, "accepted,duplicate,accepted", "b-1,b-1,b-2", "", 5},
		{"duplicates across batches", "", batchOf(ol("a-1"), ol("b-2"), ol("c-1")),
			http.StatusAccepted, "duplicate,duplicate,accepted", "a-1,b-2,c-1", "", 6},
		{"publish token", publishToken, batchOf(ol("d-1")), http.StatusAccepted, "accepted", "d-1", "", 7},
		{"1000 events", publishToken, batchOf(thousand...), http.StatusAccepted, strings.TrimSuffix(strings.Repeat("accepted,", MaxBatch), ","), "", "", 1007},
		{"unknown topic refuses all", "", batchOf(ol("e-1"), `{"topic":"nope"}`, ol("e-2")),
			http.StatusNotFound, "1", "", "", 1007},
		{"schema failure refuses all", "", batchOf(ol("e-1"), ol("e-2"), ol("e-3"), `{"topic":"document.deleted","data":{"RecordID":5}}`),
			http.StatusUnprocessableEntity, "3", "", "", 1007},
		{"several invalid, the first decides the status", "", batchOf(ol("e-1"), `{"data":{}}`, `{"topic":"nope"}`, `{"id":"bad id!","topic":"USER_CREATED"}`),
			http.StatusUnprocessableEntity, "1,2,3", "", "topic", 1007},
		{"invalid id", "", batchOf(`{"id":"bad id!","topic":"USER_CREATED"}`), http.StatusBadRequest, "0", "", "", 1007},
		{"bad time", "", batchOf(ol("e-1"), `{"topic":"USER_CREATED","time":"yesterday"}`), http.StatusUnprocessableEntity, "1", "", "time", 1007},
		{"unknown field in an event", "", batchOf(ol("e-1"), `{"topic":"USER_CREATED","payload":{}}`), http.StatusBadRequest, "1", "", "", 1007},
		{"not an object", "", batchOf(`"x"`), http.StatusBadRequest, "0", "", "", 1007},
		{"empty batch", "", `{"events":[]}`, http.StatusBadRequest, "", "", "events", 1007},
		{"no events", "", `{}`, http.StatusBadRequest, "", "", "events", 1007},
		{"empty body", "", ``, http.StatusBadRequest, "", "", "", 1007},
		{"unknown field", "", `{"events":[` + ol("e-1") + `],"more":1}`, http.StatusBadRequest, "", "", "", 1007},
		{"over 1000 events", publishToken, batchOf(tooMany...), http.StatusRequestEntityTooLarge, "", "", "events", 1007},
		{"over the body limit", "", batchOf(`{"topic":"USER_CREATED","data":"` + strings.Repeat("a", MaxBody) + `"}`),
			http.StatusRequestEntityTooLarge, "", "", "", 1007},
		{"stored in part", "", batchOf(ol("f-1"), `{"id":"`+reserved+`","topic":"USER_CREATED"}`, `{"topic":"USER_CREATED"}`),
			http.StatusServiceUnavailable, "accepted,failed,accepted", "f-1," + reserved + ",", "", 1009},
		{"the same batch again", "", batchOf(ol("f-1"), `{"topic":"USER_CREATED"}`),
			http.StatusAccepted, "duplicate,accepted", "f-1,", "", 1010},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: "POST", path: "/events/batch", token: tc.token, body: tc.body})
			var a batchAnswer
			switch tc.status {
			case http.StatusAccepted, http.StatusServiceUnavailable:
				r.expect(tc.status).decode(&a)
				var statuses, ids []string
				for _, ev := range a.Events {
					statuses = append(statuses, ev.Status)
					if tc.ids != "" && (ev.Status == "failed") != (ev.Error != "") {
						t.Errorf("event %+v: an error goes with failed", ev)
					}
					if tc.ids != "" {
						id := ev.ID
						if strings.HasPrefix(id, "evt_") && id != reserved {
							id = "" // made by the gateway
						}
						ids = append(ids, id)
					}
				}
				if got := strings.Join(statuses, ","); got != tc.want {
					t.Errorf("statuses %s, want %s", got, tc.want)
				}
				if got := strings.Join(ids, ","); got != tc.ids {
					t.Errorf("ids %s, want %s", got, tc.ids)
				}
				if tc.status == http.StatusServiceUnavailable && !strings.Contains(a.Error, "retry") {
					t.Errorf("error %q", a.Error)
				}
			default:
				m := errorCheck(t, r, tc.status, "")
				r.decode(&a)
				var idx []string
				for _, x := range a.Errors {
					idx = append(idx, fmt.Sprint(x.Index))
					if x.Error == "" {
						t.Errorf("element %d without an error", x.Index)
					}
				}
				if got := strings.Join(idx, ","); got != tc.want {
					t.Errorf("invalid indexes %q, want %q: %s", got, tc.want, r.Body)
				}
				field := m["field"]
				if len(a.Errors) > 0 {
					field = a.Errors[0].Field
				}
				if tc.field != "" && field != tc.field {
					t.Errorf("field %v, want %s: %s", field, tc.field, r.Body)
				}
			}
			if n := e.streamMsgs(); n != tc.stored {
				t.Errorf("%d events stored, want %d", n, tc.stored)
			}
		})
	}

	// A schema failure carries the schema's errors, as POST /events does.
	var a batchAnswer
	e.post("/events/batch", batchOf(ol("g-1"), `{"topic":"document.deleted","data":{"RecordID":5}}`)).
		expect(http.StatusUnprocessableEntity).decode(&a)
	if len(a.Errors) != 1 || len(a.Errors[0].Errors) != 1 || a.Errors[0].Errors[0]["path"] != "/RecordID" {
		t.Errorf("errors %+v", a.Errors)
	}
	// The events are found by their ids, as published.
	var ev eventAnswer
	for _, id := range []string{"a-1", "b-1", "c-1", "d-1", "f-1"} {
		e.get("/events/" + id).expect(http.StatusOK).decode(&ev)
		if ev.Event.Topic != "document.deleted" || ev.Event.Tenant != "ZZ1" || !strings.Contains(string(ev.Event.Data), "2QDTWAW4499") {
			t.Errorf("event %s: %+v", id, ev.Event)
		}
	}
	// A publish token may not read them.
	errorCheck(t, e.do(req{method: "GET", path: "/events/a-1", token: publishToken}), http.StatusForbidden, "")
}

// TestPublishBatchDelivers: the events of a batch are delivered, each once,
// with the batch's trace context.
func TestPublishBatchDelivers(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, http.StatusOK)
	e.put("/topics/document.deleted", map[string]any{"schema": json.RawMessage(recordSchema)}).expect(http.StatusCreated)
	var sub subscriptionView
	e.post("/subscriptions", orangeLogicSub(s.srv.URL)).expect(http.StatusCreated).decode(&sub)
	e.remember(sub.Secret)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var events []string
	for i := range 50 {
		events = append(events, fmt.Sprintf(`{"id":"ol-%d","topic":"document.deleted","data":{"RecordID":"R%d"}}`, i, i))
	}
	var a batchAnswer
	e.do(req{method: "POST", path: "/events/batch", body: batchOf(events...),
		header: http.Header{"Traceparent": {traceparent}}}).expect(http.StatusAccepted).decode(&a)
	eventually(t, 10*time.Second, "50 deliveries", func() bool { return len(s.requests()) >= 50 })
	time.Sleep(100 * time.Millisecond)
	seen := map[string]int{}
	for _, r := range s.requests() {
		seen[r.header.Get("Webhook-Id")]++
		if r.header.Get("Traceparent") != traceparent {
			t.Errorf("traceparent %q", r.header.Get("Traceparent"))
		}
	}
	for i := range 50 {
		if id := fmt.Sprintf("ol-%d", i); seen[id] != 1 {
			t.Errorf("%s delivered %d times", id, seen[id])
		}
	}
}

// BenchmarkPublishRoute is the API handler's cost per event: one event a
// POST /events, or batches of 100 a POST /events/batch (events with ids,
// to a topic with one subscriber; the pipeline does not deliver).
func BenchmarkPublishRoute(b *testing.B) {
	ctx := b.Context()
	eng, err := engine.Open(ctx, engine.Config{StorageDir: b.TempDir(), CreateTimeout: 15 * time.Second}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = eng.Close() })
	reg := registry.New(eng, netguard.New(nil), nil)
	if err := reg.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(reg.Stop)
	if _, err := reg.PutTopic(ctx, registry.Topic{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.CreateSubscription(ctx, registry.Subscription{ID: "s", Name: "s", Topics: []string{"bench"}, URL: "https://hooks.example.com/"}); err != nil {
		b.Fatal(err)
	}
	h, err := New(reg, delivery.New(eng, reg, nil, nil, delivery.Options{}), Options{Tokens: []string{adminToken}})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	event := func() string {
		n++
		return fmt.Sprintf(`{"id":"bench-%d","topic":"bench","data":{"RecordID":"2QDTWAW4499","n":%d},"tenant":"ZZ1"}`, n, n)
	}
	post := func(path, body string) {
		r := httptest.NewRequest("POST", "http://gw.test"+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+adminToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusAccepted {
			b.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	for _, size := range []int{1, 100} {
		name, path := "events", "/events"
		if size > 1 {
			name, path = fmt.Sprintf("batch=%d", size), "/events/batch"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if size == 1 {
					post(path, event())
					continue
				}
				evs := make([]string, size)
				for i := range evs {
					evs[i] = event()
				}
				post(path, batchOf(evs...))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}
