package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// publishEvent serves POST /events {id?, topic, data, tenant?, user?,
// time?}: the event is answered 202 once JetStream has stored it. A repeated id is a
// no-op answered 202 "duplicate".
func (h *Handler) publishEvent(w http.ResponseWriter, r *http.Request, _ []string) error {
	var req eventRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	ev, err := h.validEvent(r, &req, time.Now())
	if err != nil {
		return err
	}
	dup, err := h.pipe.Publish(r.Context(), ev)
	if err != nil {
		h.log.Error("publishing an event failed", zap.String("topic", ev.Topic), zap.String("event", ev.ID), zap.Error(err))
		return apiError(http.StatusServiceUnavailable, "the event could not be stored; retry with the same id")
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": ev.ID, "status": publishStatus(dup)})
	return nil
}

// validEvent is the event of a publisher's request, checked as POST
// /events checks it: its time, its id, its topic (required, declared) and
// the topic's contract on its data. The error is the answer: 400, 404 or
// 422.
func (h *Handler) validEvent(r *http.Request, req *eventRequest, now time.Time) (*delivery.Event, error) {
	ev, err := req.event(r, now)
	if err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, badRequest("%v", err)
	}
	if req.Topic == "" {
		return nil, fieldError("topic", "required")
	}
	ct, ok := h.reg.Topic(req.Topic)
	if !ok {
		return nil, notFound("topic %q not found: declare it first (PUT /topics/{name})", req.Topic)
	}
	if ct.Contract != nil {
		var data any
		if len(req.Data) > 0 {
			if err := json.Unmarshal(req.Data, &data); err != nil {
				return nil, badRequest("invalid data: %v", err)
			}
		}
		if errs := ct.Contract.Validate(data); len(errs) > 0 {
			return nil, &httpError{status: http.StatusUnprocessableEntity, body: errorBody{
				Error: "data does not match the schema of topic " + strconv.Quote(req.Topic), Errors: errs}}
		}
	}
	return ev, nil
}

// publishStatus is the status of a stored event in an answer.
func publishStatus(duplicate bool) string {
	if duplicate {
		return "duplicate"
	}
	return "accepted"
}

// eventView is an accepted event as the API shows it.
type eventView struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Workflow    string          `json:"workflow,omitempty"`
	Data        json.RawMessage `json:"data"`
	Tenant      string          `json:"tenant"`
	User        string          `json:"user"`
	Time        time.Time       `json:"time"`
	Traceparent string          `json:"traceparent,omitempty"`
}

// getEvent serves GET /events/{id}: the event and its deliveries so far.
func (h *Handler) getEvent(w http.ResponseWriter, r *http.Request, p []string) error {
	id := p[0]
	ev, err := h.pipe.Event(r.Context(), id)
	if err != nil {
		return wrapResource("event", id, err)
	}
	data := ev.Data
	if len(data) == 0 || !json.Valid(data) {
		data = json.RawMessage("null")
	}
	recs, _, err := h.pipe.Deliveries(r.Context(), delivery.Query{Event: id, Limit: 1000})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"event": eventView{
			ID: ev.ID, Topic: ev.Topic, Workflow: ev.Workflow, Data: data, Tenant: ev.Tenant,
			User: ev.User, Time: ev.Time, Traceparent: ev.Traceparent,
		},
		"deliveries": nonNil(recs),
	})
	return nil
}

// listDeliveries serves GET /deliveries?subscription=&workflow=&event=
// &status=&since=&until=&limit=&after=: delivery records in the order of
// their last change (an event's: by id), a page at a time; "next" is the
// cursor ("after") of the next page. With since or until (RFC 3339), the
// deliveries whose last change is in that window, the log read from since.
func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request, _ []string) error {
	q := r.URL.Query()
	var since, until time.Time
	for name, t := range map[string]*time.Time{"since": &since, "until": &until} {
		if s := q.Get(name); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return badRequest("%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
			}
			*t = v
		}
	}
	if !until.IsZero() && until.Before(since) {
		return badRequest("until is before since")
	}
	query := delivery.Query{
		Subscription: q.Get("subscription"), Workflow: q.Get("workflow"), Event: q.Get("event"),
		Status: q.Get("status"), After: q.Get("after"),
	}
	for name, v := range map[string]string{"subscription": query.Subscription, "workflow": query.Workflow, "event": query.Event} {
		if v != "" && !registry.ValidID(v) {
			return badRequest("%s %q is not a valid id", name, v)
		}
	}
	switch query.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed:
	default:
		return badRequest("status must be pending, succeeded or failed")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit must be a number from 1 to 1000")
		}
		query.Limit = n
	}
	recs, next, err := h.pipe.DeliveriesIn(r.Context(), query, since, until)
	if err != nil {
		return err
	}
	out := map[string]any{"deliveries": nonNil(recs)}
	if next != "" {
		out["next"] = next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getDelivery serves GET /deliveries/{id}.
func (h *Handler) getDelivery(w http.ResponseWriter, r *http.Request, p []string) error {
	rec, err := h.pipe.Record(r.Context(), p[0])
	if err != nil {
		return wrapResource("delivery", p[0], err)
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

// retryDelivery serves POST /deliveries/{id}/retry: a finished delivery is
// queued again with a fresh attempt budget (409 while it is pending).
func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request, p []string) error {
	id := p[0]
	rec, err := h.pipe.Retry(r.Context(), id)
	if err != nil {
		return &resourceError{kind: "delivery", id: id, verb: "retried", err: err}
	}
	writeJSON(w, http.StatusAccepted, rec)
	return nil
}

// nonNil makes a nil list encode as [].
func nonNil(recs []*delivery.Record) []*delivery.Record {
	if recs == nil {
		return []*delivery.Record{}
	}
	return recs
}
