package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// What the web console needs beyond the resources: a time window on the
// delivery list, and per-minute counts for its charts.

// listDeliveriesIn serves GET /deliveries: listDeliveries, and with since or
// until (RFC 3339) the deliveries whose last change is in that window,
// reading the delivery log from since (at most the scan bound of a page).
func (h *Handler) listDeliveriesIn(w http.ResponseWriter, r *http.Request, p []string) error {
	q := r.URL.Query()
	if q.Get("since") == "" && q.Get("until") == "" {
		return h.listDeliveries(w, r, p)
	}
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
	if errors.Is(err, delivery.ErrBadCursor) {
		return badRequest("after: %v", err)
	}
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

// deliveryActivity serves GET /activity?minutes=: delivery attempts and
// failed attempts per minute over the last minutes (default and at most
// 60), per destination and in total. It reads at most the scan bound of a
// delivery page (20000 log entries); "truncated" says when the window held
// more.
func (h *Handler) deliveryActivity(w http.ResponseWriter, r *http.Request, _ []string) error {
	minutes := delivery.MaxActivityMinutes
	if s := r.URL.Query().Get("minutes"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > delivery.MaxActivityMinutes {
			return badRequest("minutes must be a number from 1 to %d", delivery.MaxActivityMinutes)
		}
		minutes = n
	}
	a, err := h.pipe.Activity(r.Context(), time.Now().UTC(), minutes)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
