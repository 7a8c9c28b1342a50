package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/schema"
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error  string         `json:"error"`
	Field  string         `json:"field,omitempty"`
	Errors []schema.Error `json:"errors,omitempty"`
}

// httpError is an error with the status and body it is answered with.
type httpError struct {
	status int
	body   errorBody
}

func (e *httpError) Error() string { return e.body.Error }

// apiError returns an error answered with status and message.
func apiError(status int, format string, args ...any) error {
	return &httpError{status: status, body: errorBody{Error: fmt.Sprintf(format, args...)}}
}

// badRequest is a 400 error.
func badRequest(format string, args ...any) error {
	return apiError(http.StatusBadRequest, format, args...)
}

// notFound is a 404 error.
func notFound(format string, args ...any) error {
	return apiError(http.StatusNotFound, format, args...)
}

// fieldError is a 422 error naming a field.
func fieldError(field, format string, args ...any) error {
	return &httpError{status: http.StatusUnprocessableEntity, body: errorBody{
		Error: field + ": " + fmt.Sprintf(format, args...), Field: field}}
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: the answer could not be encoded"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError writes {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fail answers err: statuses for the API's own errors and the registry's and
// pipeline's sentinel errors; anything else is logged and answered 500 with
// a generic message.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, route string, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	var ie *registry.InvalidError
	switch {
	case errors.As(err, &he):
		writeJSON(w, he.status, he.body)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
	case errors.Is(err, registry.ErrReadOnly):
		writeError(w, http.StatusConflict, readOnlyMessage(err))
	case errors.Is(err, registry.ErrConflict):
		body := errorBody{Error: err.Error()}
		if errors.As(err, &ie) {
			body.Field = ie.Field
		}
		writeJSON(w, http.StatusConflict, body)
	case errors.As(err, &ie):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: ie.Error(), Field: ie.Field})
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, delivery.ErrNotReplayable):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("management API request timed out",
			zap.String("method", r.Method), zap.String("route", route), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the state engine did not answer in time; retry")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "request cancelled")
	default:
		h.log.Error("management API request failed",
			zap.String("method", r.Method), zap.String("route", route), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// readOnlyMessage says that a resource is declared in the Caddyfile.
func readOnlyMessage(err error) string {
	if err == registry.ErrReadOnly { //nolint:errorlint // the bare sentinel
		return "the resource is declared in the Caddyfile and is read-only through the API"
	}
	return err.Error()
}

// readBody reads the (size-limited) request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes the request body into v, refusing unknown fields and
// trailing data. An empty body is an error unless optional is set, in which
// case v is left as is.
func decodeJSON(r *http.Request, v any, optional bool) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return unmarshalBody(b, v, optional)
}

// unmarshalBody is decodeJSON on a body already read.
func unmarshalBody(b []byte, v any, optional bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return badRequest("the request body is empty: a JSON object is expected")
	}
	if err := registry.StrictUnmarshal(b, v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

// brokenView is a stored resource that no longer reads or compiles: it is
// not served (a broken workflow answers like an unknown one, a broken
// subscription receives nothing) until it is fixed or deleted.
type brokenView struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Broken string `json:"broken"`
}

// withBroken merges the broken resources of a kind into a list sorted by
// id, and keeps it sorted. Served resources win over broken ones of the
// same id (a configuration resource shadows an API one).
func withBroken[V any](served []V, idOf func(V) string, broken map[string]string) []any {
	out := make([]any, 0, len(served)+len(broken))
	ids := make([]string, 0, len(broken))
	for id := range broken {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	i := 0
	for _, v := range served {
		id := idOf(v)
		for ; i < len(ids) && ids[i] <= id; i++ {
			if ids[i] != id {
				out = append(out, brokenView{ID: ids[i], Source: registry.SourceAPI, Broken: broken[ids[i]]})
			}
		}
		out = append(out, v)
	}
	for ; i < len(ids); i++ {
		out = append(out, brokenView{ID: ids[i], Source: registry.SourceAPI, Broken: broken[ids[i]]})
	}
	return out
}
