package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/schema"
)

// MaxBatch is the most events one POST /events/batch may carry. The body
// is bounded too, by MaxBody.
const MaxBatch = 1000

// batchRequest is the body of POST /events/batch: each event has the shape
// of a POST /events body, decoded one by one so that an error names its
// index.
type batchRequest struct {
	Events []json.RawMessage `json:"events"`
}

// batchElementError says why one event of a batch is invalid: the error
// POST /events would answer for it, and its index in the batch.
type batchElementError struct {
	Index  int            `json:"index"`
	Error  string         `json:"error"`
	Field  string         `json:"field,omitempty"`
	Errors []schema.Error `json:"errors,omitempty"`
}

// batchRefusal is the answer to a batch with invalid events.
type batchRefusal struct {
	Error  string              `json:"error"`
	Errors []batchElementError `json:"errors"`
}

// batchResult is the outcome of one event of a batch: accepted or duplicate
// with its id, or failed (not stored) with an error.
type batchResult struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// batchFailure is the answer to a batch that was stored in part.
type batchFailure struct {
	Error  string        `json:"error"`
	Events []batchResult `json:"events"`
}

// publishBatch serves POST /events/batch {"events": [event, …]}: up to
// MaxBatch events, each checked as POST /events checks one. One invalid
// event refuses the whole batch, with the status POST /events would answer
// for the first invalid one and every invalid one named by its index:
// nothing is stored. Else the events are published together and answered
// 202 {"events": [{id, status}, …]} in request order once JetStream has
// stored them all. When some could not be stored the answer is 503 with
// every event's outcome: retrying the whole batch is safe for events with
// ids (the stored ones are answered as duplicates); events without an id
// that were stored are stored again by such a retry.
func (h *Handler) publishBatch(w http.ResponseWriter, r *http.Request, _ []string) error {
	var req batchRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	switch {
	case len(req.Events) == 0:
		return &httpError{status: http.StatusBadRequest, body: errorBody{
			Error: fmt.Sprintf("events: a batch holds 1 to %d events", MaxBatch), Field: "events"}}
	case len(req.Events) > MaxBatch:
		return &httpError{status: http.StatusRequestEntityTooLarge, body: errorBody{
			Error: fmt.Sprintf("events: a batch holds at most %d events, this one has %d: split it", MaxBatch, len(req.Events)), Field: "events"}}
	}
	now := time.Now()
	evs := make([]*delivery.Event, len(req.Events))
	var invalid []batchElementError
	status := 0
	for i, raw := range req.Events {
		ev, err := h.batchEvent(r, raw, now)
		if err != nil {
			code, body := errorAnswer(r.Context(), err)
			if status == 0 {
				status = code
			}
			invalid = append(invalid, batchElementError{Index: i, Error: body.Error, Field: body.Field, Errors: body.Errors})
			continue
		}
		evs[i] = ev
	}
	if invalid != nil {
		first := invalid[0]
		writeJSON(w, status, batchRefusal{
			Error: fmt.Sprintf("%d of %d events are invalid, nothing was stored; event %d: %s",
				len(invalid), len(evs), first.Index, first.Error),
			Errors: invalid,
		})
		return nil
	}

	out := make([]batchResult, len(evs))
	failed := 0
	var firstErr error
	for i, res := range h.pipe.PublishBatch(r.Context(), evs) {
		if res.Err != nil {
			if failed == 0 {
				firstErr = res.Err
			}
			failed++
			out[i] = batchResult{ID: evs[i].ID, Status: "failed", Error: "the event could not be stored; retry the batch"}
			continue
		}
		out[i] = batchResult{ID: evs[i].ID, Status: publishStatus(res.Duplicate)}
	}
	if failed > 0 {
		h.log.Error("publishing a batch of events failed in part",
			zap.Int("events", len(evs)), zap.Int("failed", failed), zap.Error(firstErr))
		writeJSON(w, http.StatusServiceUnavailable, batchFailure{
			Error: fmt.Sprintf("%d of %d events could not be stored: retry the batch (events with an id are not stored twice; "+
				"stored events without one would be)", failed, len(evs)),
			Events: out,
		})
		return nil
	}
	writeJSON(w, http.StatusAccepted, map[string][]batchResult{"events": out})
	return nil
}

// batchEvent decodes and checks one event of a batch.
func (h *Handler) batchEvent(r *http.Request, raw json.RawMessage, now time.Time) (*delivery.Event, error) {
	var req eventRequest
	if err := registry.StrictUnmarshal(raw, &req); err != nil {
		return nil, badRequest("invalid event: %v", err)
	}
	return h.validEvent(r, &req, now)
}
