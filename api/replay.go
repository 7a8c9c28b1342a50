package api

import (
	"net/http"
	"time"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// bulkRetryRequest is the body of POST /deliveries/retry.
type bulkRetryRequest struct {
	Subscription string `json:"subscription,omitempty"`
	Workflow     string `json:"workflow,omitempty"`
	// Status is failed (default) or succeeded.
	Status string `json:"status,omitempty"`
	// Since and Until bound the time of each delivery's last change
	// (RFC 3339). Since defaults to 24 hours ago.
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// bulkRetryWindow is how far back a bulk retry without since reaches.
const bulkRetryWindow = 24 * time.Hour

// retryDeliveries serves POST /deliveries/retry: every finished delivery of
// a subscription or workflow with the status, in the time window, is queued
// again with a fresh attempt budget, in event order → {"queued": n}.
func (h *Handler) retryDeliveries(w http.ResponseWriter, r *http.Request, _ []string) error {
	var req bulkRetryRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	for name, v := range map[string]string{"subscription": req.Subscription, "workflow": req.Workflow} {
		if v != "" && !registry.ValidID(v) {
			return badRequest("%s %q is not a valid id", name, v)
		}
	}
	q := delivery.BulkQuery{Subscription: req.Subscription, Workflow: req.Workflow, Status: req.Status,
		Since: time.Now().Add(-bulkRetryWindow)}
	if req.Since != nil {
		q.Since = *req.Since
	}
	if req.Until != nil {
		q.Until = *req.Until
	}
	res, err := h.pipe.BulkRetry(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, res)
	return nil
}
