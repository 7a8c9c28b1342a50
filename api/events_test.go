package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/delivery"
)

// eventAnswer is the answer of GET /events/{id}.
type eventAnswer struct {
	Event      eventView          `json:"event"`
	Deliveries []*delivery.Record `json:"deliveries"`
}

// deliveriesAnswer is the answer of GET /deliveries.
type deliveriesAnswer struct {
	Deliveries []*delivery.Record `json:"deliveries"`
	Next       string             `json:"next"`
}

func (e *env) deliveries(query string) deliveriesAnswer {
	e.t.Helper()
	var a deliveriesAnswer
	e.get("/deliveries?" + query).expect(http.StatusOK).decode(&a)
	return a
}

// waitDelivery polls GET /deliveries/{id} until the record has status.
func (e *env) waitDelivery(id, status string) *delivery.Record {
	e.t.Helper()
	var rec delivery.Record
	eventually(e.t, 10*time.Second, "delivery "+id+" "+status, func() bool {
		r := e.get("/deliveries/" + id)
		if r.Code != http.StatusOK {
			return false
		}
		r.decode(&rec)
		return rec.Status == status
	})
	return &rec
}

func TestPublish(t *testing.T) {
	e := newEnv(t)
	e.put("/topics/document.deleted", map[string]any{"schema": json.RawMessage(recordSchema)}).expect(http.StatusCreated)
	e.put("/topics/USER_CREATED", nil).expect(http.StatusCreated)
	e.put("/topics/provisioning.completed", nil).expect(http.StatusCreated)

	tests := []struct {
		name   string
		token  string
		body   any
		status int
		want   string // "accepted" or "duplicate" for 202
		id     string // expected id, when given
		field  string
		paths  []string // expected validation error paths
	}{
		{"Orange Logic", "", `{"topic":"document.deleted","data":` + orangeLogicData + `,"tenant":"ZZ1","user":"K8OEC0ALO_H"}`, http.StatusAccepted, "accepted", "", "", nil},
		{"with an id", "", `{"id":"` + orangeLogicID + `","topic":"document.deleted","data":` + orangeLogicData + `}`, http.StatusAccepted, "accepted", orangeLogicID, "", nil},
		{"same id again", "", `{"id":"` + orangeLogicID + `","topic":"document.deleted","data":` + orangeLogicData + `}`, http.StatusAccepted, "duplicate", orangeLogicID, "", nil},
		{"ACTIVATE, publish token", publishToken, `{"topic":"USER_CREATED","data":` + activateData + `,"tenant":"parallelworks"}`, http.StatusAccepted, "accepted", "", "", nil},
		{"Orchestry without schema", "", `{"topic":"provisioning.completed","data":` + orchestryData + `}`, http.StatusAccepted, "accepted", "", "", nil},
		{"no data, no schema", "", `{"topic":"USER_CREATED"}`, http.StatusAccepted, "accepted", "", "", nil},
		{"unknown topic", "", `{"topic":"document.archived","data":{}}`, http.StatusNotFound, "", "", "", nil},
		{"schema: wrong type", "", `{"topic":"document.deleted","data":{"RecordID":5}}`, http.StatusUnprocessableEntity, "", "", "", []string{"/RecordID"}},
		{"schema: missing field", "", `{"topic":"document.deleted","data":{"id":"x"}}`, http.StatusUnprocessableEntity, "", "", "", []string{""}},
		{"schema: no data", "", `{"topic":"document.deleted"}`, http.StatusUnprocessableEntity, "", "", "", []string{""}},
		{"invalid id", "", `{"id":"not valid!","topic":"USER_CREATED","data":{}}`, http.StatusBadRequest, "", "", "", nil},
		{"id too long", "", `{"id":"` + strings.Repeat("a", 129) + `","topic":"USER_CREATED"}`, http.StatusBadRequest, "", "", "", nil},
		{"no topic", "", `{"data":{}}`, http.StatusUnprocessableEntity, "", "", "topic", nil},
		{"malformed", "", `{"topic":`, http.StatusBadRequest, "", "", "", nil},
		{"unknown field", "", `{"topic":"USER_CREATED","payload":{}}`, http.StatusBadRequest, "", "", "", nil},
		{"empty body", "", ``, http.StatusBadRequest, "", "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: "POST", path: "/events", token: tc.token, body: tc.body})
			if tc.status != http.StatusAccepted {
				m := errorCheck(t, r, tc.status, tc.field)
				var got []string
				errs, _ := m["errors"].([]any)
				for _, x := range errs {
					got = append(got, x.(map[string]any)["path"].(string))
				}
				if strings.Join(got, ",") != strings.Join(tc.paths, ",") || len(got) != len(tc.paths) {
					t.Errorf("errors %v, want paths %v", m["errors"], tc.paths)
				}
				return
			}
			var a map[string]string
			r.expect(http.StatusAccepted).decode(&a)
			if a["status"] != tc.want || a["id"] == "" || (tc.id != "" && a["id"] != tc.id) {
				t.Errorf("answer %v", a)
			}
		})
	}
	// Five events were written: the duplicate was not.
	if n := e.streamMsgs(); n != 5 {
		t.Errorf("%d events stored, want 5", n)
	}
}

func TestEventsAndDeliveries(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, http.StatusOK)
	e.put("/topics/document.deleted", map[string]any{"schema": json.RawMessage(recordSchema)}).expect(http.StatusCreated)
	var sub subscriptionView
	e.post("/subscriptions", orangeLogicSub(s.srv.URL)).expect(http.StatusCreated).decode(&sub)
	e.remember(sub.Secret)
	var wf workflowView
	e.post("/workflows", provisioning(t, "provisioning", s.srv.URL)).expect(http.StatusCreated).decode(&wf)
	e.remember(wf.Key)

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var pub map[string]string
	e.do(req{method: "POST", path: "/events", body: map[string]any{
		"id": orangeLogicID, "topic": "document.deleted", "data": json.RawMessage(orangeLogicData),
		"tenant": "ZZ1", "user": "K8OEC0ALO_H",
	}, header: http.Header{"Traceparent": {traceparent}}}).expect(http.StatusAccepted).decode(&pub)

	// The event is readable at once; its delivery appears once made.
	var ev eventAnswer
	eventually(t, 10*time.Second, "the delivery of the event", func() bool {
		e.get("/events/" + orangeLogicID).expect(http.StatusOK).decode(&ev)
		return len(ev.Deliveries) == 1 && ev.Deliveries[0].Status == delivery.StatusSucceeded
	})
	got := ev.Event
	if got.ID != orangeLogicID || got.Topic != "document.deleted" || got.Tenant != "ZZ1" || got.User != "K8OEC0ALO_H" ||
		got.Time.IsZero() || got.Traceparent != traceparent || !strings.Contains(string(got.Data), "2QDTWAW4499") {
		t.Errorf("event: %+v", got)
	}
	rec := ev.Deliveries[0]
	if rec.SubscriptionID != sub.ID || rec.EventID != orangeLogicID || len(rec.Attempts) != 1 || rec.Attempts[0].StatusCode != 200 {
		t.Errorf("record: %+v", rec)
	}
	if r := s.requests(); len(r) != 1 || r[0].header.Get("Traceparent") != traceparent {
		t.Errorf("sink requests: %d", len(r))
	}

	// A second event, and a webhook received on the workflow.
	e.post("/events", map[string]any{"topic": "document.deleted", "data": map[string]string{"RecordID": "9XYZ"}, "tenant": "ZZ1"}).expect(http.StatusAccepted)
	wev := &delivery.Event{Workflow: "provisioning", Data: readExample(t, "easylife/groupcreated.json")}
	if _, err := e.pipe.Publish(t.Context(), wev); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "three deliveries", func() bool {
		return len(e.deliveries("status=succeeded").Deliveries) == 3
	})
	e.get("/events/" + wev.ID).expect(http.StatusOK).decode(&ev)
	if ev.Event.Workflow != "provisioning" || len(ev.Deliveries) != 1 || ev.Deliveries[0].WorkflowID != "provisioning" {
		t.Errorf("workflow event: %+v", ev)
	}

	tests := []struct {
		query string
		n     int
	}{
		{"", 3},
		{"subscription=" + sub.ID, 2},
		{"workflow=provisioning", 1},
		{"event=" + orangeLogicID, 1},
		{"subscription=" + sub.ID + "&event=" + orangeLogicID, 1},
		{"subscription=" + sub.ID + "&status=succeeded", 2},
		{"status=failed", 0},
		{"status=pending", 0},
		{"subscription=sub_nope", 0},
		{"workflow=nope", 0},
	}
	for _, tc := range tests {
		t.Run("filter "+tc.query, func(t *testing.T) {
			if got := e.deliveries(tc.query); len(got.Deliveries) != tc.n || got.Next != "" {
				t.Errorf("%d deliveries (next %q), want %d", len(got.Deliveries), got.Next, tc.n)
			}
		})
	}

	// Pagination.
	page1 := e.deliveries("limit=2")
	if len(page1.Deliveries) != 2 || page1.Next == "" {
		t.Fatalf("page 1: %d, next %q", len(page1.Deliveries), page1.Next)
	}
	page2 := e.deliveries("limit=2&after=" + url.QueryEscape(page1.Next))
	// Listed in the order of their last change: the pages hold three
	// different deliveries, and the last page has no cursor.
	if len(page2.Deliveries) != 1 || page2.Next != "" ||
		page2.Deliveries[0].ID == page1.Deliveries[0].ID || page2.Deliveries[0].ID == page1.Deliveries[1].ID {
		t.Fatalf("page 2: %+v", page2)
	}
	errorCheck(t, e.get("/deliveries?limit=2&after="+url.QueryEscape(page2.Deliveries[0].ID)), http.StatusBadRequest, "")

	for _, bad := range []string{"status=lost", "limit=0", "limit=1001", "limit=x", "subscription=*", "event=a.b", "workflow=%3E"} {
		t.Run("bad "+bad, func(t *testing.T) {
			errorCheck(t, e.get("/deliveries?"+bad), http.StatusBadRequest, "")
		})
	}
	errorCheck(t, e.get("/events/evt_nope"), http.StatusNotFound, "")
	errorCheck(t, e.get("/events/not%20valid"), http.StatusNotFound, "")
	errorCheck(t, e.get("/deliveries/nope.evt_nope"), http.StatusNotFound, "")
	e.get("/deliveries/" + rec.ID).expect(http.StatusOK)
}

func TestRetry(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, http.StatusServiceUnavailable)
	slow := newSink(t, http.StatusInternalServerError)
	e.put("/topics/document.deleted", nil).expect(http.StatusCreated)
	e.put("/topics/USER_CREATED", nil).expect(http.StatusCreated)
	var sub, pendingSub subscriptionView
	body := orangeLogicSub(s.srv.URL)
	body["max_attempts"], body["retry_schedule"] = 1, []string{"1s"}
	e.post("/subscriptions", body).expect(http.StatusCreated).decode(&sub)
	e.post("/subscriptions", map[string]any{
		"name": "ACTIVATE", "topics": []string{"USER_CREATED"}, "url": slow.srv.URL, "envelope": "activate",
		"max_attempts": 3, "retry_schedule": []string{"1h"},
	}).expect(http.StatusCreated).decode(&pendingSub)

	// A failed delivery (one attempt allowed) ...
	e.post("/events", map[string]any{"id": orangeLogicID, "topic": "document.deleted", "data": json.RawMessage(orangeLogicData)}).expect(http.StatusAccepted)
	id := sub.ID + "." + orangeLogicID
	failed := e.waitDelivery(id, delivery.StatusFailed)
	if len(failed.Attempts) != 1 || failed.Attempts[0].StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("failed record: %+v", failed)
	}
	if got := e.deliveries("status=failed&subscription=" + sub.ID); len(got.Deliveries) != 1 {
		t.Errorf("failed deliveries: %d", len(got.Deliveries))
	}

	// ... is retried once the sink is fixed, and succeeds.
	s.status.Store(http.StatusOK)
	var queued delivery.Record
	e.post("/deliveries/"+id+"/retry", nil).expect(http.StatusAccepted).decode(&queued)
	if queued.ID != id || queued.Status != delivery.StatusPending || queued.Replays != 1 {
		t.Errorf("queued: %+v", queued)
	}
	done := e.waitDelivery(id, delivery.StatusSucceeded)
	if len(done.Attempts) != 2 || done.Attempts[1].StatusCode != http.StatusOK {
		t.Errorf("retried record: %+v", done)
	}
	var ev eventAnswer
	e.get("/events/" + orangeLogicID).decode(&ev)
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].Status != delivery.StatusSucceeded {
		t.Errorf("event deliveries: %+v", ev.Deliveries)
	}

	// A delivery waiting for its next attempt cannot be retried.
	var pub map[string]string
	e.post("/events", map[string]any{"topic": "USER_CREATED", "data": json.RawMessage(activateData), "tenant": "parallelworks"}).
		expect(http.StatusAccepted).decode(&pub)
	pid := pendingSub.ID + "." + pub["id"]
	eventually(t, 10*time.Second, "a first failed attempt", func() bool {
		r := e.get("/deliveries/" + pid)
		if r.Code != http.StatusOK {
			return false
		}
		var rec delivery.Record
		r.decode(&rec)
		return len(rec.Attempts) == 1 && rec.NextAttemptAt != nil
	})
	errorCheck(t, e.post("/deliveries/"+pid+"/retry", nil), http.StatusConflict, "")
	errorCheck(t, e.post("/deliveries/nope.evt_nope/retry", nil), http.StatusNotFound, "")
}

// POST /deliveries/retry queues every failed delivery of a subscription
// again: {"queued": n}; a request without a subscription or workflow is 422.
func TestBulkRetryAPI(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, http.StatusServiceUnavailable)
	e.put("/topics/document.deleted", nil).expect(http.StatusCreated)
	var sub subscriptionView
	body := orangeLogicSub(s.srv.URL)
	body["max_attempts"] = 1
	e.post("/subscriptions", body).expect(http.StatusCreated).decode(&sub)
	var ids []string
	for i := range 3 {
		var ans struct{ ID string }
		e.post("/events", map[string]any{"topic": "document.deleted", "data": map[string]any{"RecordID": fmt.Sprint(i)}}).
			expect(http.StatusAccepted).decode(&ans)
		ids = append(ids, sub.ID+"."+ans.ID)
	}
	for _, id := range ids {
		e.waitDelivery(id, delivery.StatusFailed)
	}
	errorCheck(t, e.post("/deliveries/retry", map[string]any{"status": "failed"}), http.StatusUnprocessableEntity, "")
	errorCheck(t, e.post("/deliveries/retry", map[string]any{"subscription": sub.ID, "status": "pending"}), http.StatusUnprocessableEntity, "")
	errorCheck(t, e.post("/deliveries/retry", map[string]any{"subscription": sub.ID, "since": "yesterday"}), http.StatusBadRequest, "")
	s.status.Store(http.StatusOK)
	var res delivery.BulkResult
	e.post("/deliveries/retry", map[string]any{"subscription": sub.ID, "status": "failed"}).expect(http.StatusAccepted).decode(&res)
	if res.Queued != 3 {
		t.Fatalf("bulk retry answer %+v, want 3 queued", res)
	}
	for _, id := range ids {
		if rec := e.waitDelivery(id, delivery.StatusSucceeded); rec.Replays != 1 {
			t.Errorf("record %+v", rec)
		}
	}
}

// TestPublishTime: an event may say when it occurred (Orange Logic's
// EventDateUtc), in RFC 3339, up to MaxEventSkew ahead of the clock.
func TestPublishTime(t *testing.T) {
	e := newEnv(t)
	e.put("/topics/document.deleted", map[string]any{}).expect(http.StatusCreated)
	tests := []struct {
		name, time string
		status     int
		want       string // the stored time; "" for now
	}{
		{"the seed's EventDateUtc", "2024-12-30T19:18:23.8711593Z", http.StatusAccepted, "2024-12-30T19:18:23.8711593Z"},
		{"an offset is kept as the same instant", "2024-12-30T20:18:23+01:00", http.StatusAccepted, "2024-12-30T19:18:23Z"},
		{"a little ahead (clock skew)", time.Now().Add(time.Minute).UTC().Format(time.RFC3339), http.StatusAccepted, ""},
		{"absent: now", "", http.StatusAccepted, ""},
		{"too far ahead", time.Now().Add(MaxEventSkew + time.Minute).UTC().Format(time.RFC3339), http.StatusUnprocessableEntity, ""},
		{"not RFC 3339", "30/12/2024 19:18", http.StatusUnprocessableEntity, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"topic": "document.deleted", "data": map[string]any{"RecordID": "R"}}
			if tc.time != "" {
				body["time"] = tc.time
			}
			r := e.post("/events", body)
			if tc.status != http.StatusAccepted {
				errorCheck(t, r, tc.status, "time")
				return
			}
			var pub map[string]string
			r.expect(http.StatusAccepted).decode(&pub)
			var ev eventAnswer
			e.get("/events/" + pub["id"]).expect(http.StatusOK).decode(&ev)
			got := ev.Event.Time.UTC()
			if tc.want != "" && got.Format(time.RFC3339Nano) != tc.want {
				t.Errorf("time %s, want %s", got.Format(time.RFC3339Nano), tc.want)
			}
			if tc.want == "" && tc.time == "" && time.Since(got) > time.Minute {
				t.Errorf("time %s is not now", got)
			}
		})
	}
}
