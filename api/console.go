package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hookgate/hookgate/delivery"
)

// What the web console needs beyond the resources: a time window on the
// delivery list, and per-minute counts for its charts.

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
