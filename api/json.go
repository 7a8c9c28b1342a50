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
	"strconv"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/filters"
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

// fail answers err with errorAnswer's status and body, logging what the
// client cannot act on (timeouts, internal errors: those answer a generic
// message).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, route string, err error) {
	status, body := errorAnswer(r.Context(), err)
	switch {
	case status == http.StatusInternalServerError:
		h.log.Error("management API request failed",
			zap.String("method", r.Method), zap.String("route", route), zap.Error(err))
	case status == http.StatusServiceUnavailable && errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("management API request timed out",
			zap.String("method", r.Method), zap.String("route", route), zap.Error(err))
	}
	writeJSON(w, status, body)
}

// resourceError is an error of the registry or the pipeline about one
// resource; errorAnswer names the resource in the answer.
type resourceError struct {
	kind, id string
	// verb, when set, is what was done: a wrapped not-found error is then
	// answered "… cannot be {verb}: {cause}".
	verb string
	err  error
}

func (e *resourceError) Error() string {
	return e.kind + " " + strconv.Quote(e.id) + ": " + e.err.Error()
}
func (e *resourceError) Unwrap() error { return e.err }

// wrapResource names the resource of a registry or pipeline error (nil
// stays nil).
func wrapResource(kind, id string, err error) error {
	if err == nil {
		return nil
	}
	return &resourceError{kind: kind, id: id, err: err}
}

// errorAnswer is the one mapping of errors to HTTP statuses and JSON
// bodies in the API: its own errors (httpError: bad JSON, validation and
// field errors), body limits (413), the registry's and the pipeline's
// sentinel errors (named after their resource when wrapped by
// wrapResource), and timeouts. Anything else is a 500 with a generic
// message.
func errorAnswer(ctx context.Context, err error) (int, errorBody) {
	var he *httpError
	var mbe *http.MaxBytesError
	var ie *registry.InvalidError
	var re *resourceError
	msg := func(format string, args ...any) errorBody { return errorBody{Error: fmt.Sprintf(format, args...)} }
	switch {
	case errors.As(err, &he):
		return he.status, he.body
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, msg("request body is larger than %d bytes", mbe.Limit)
	}
	if errors.As(err, &re) && !errors.As(err, &ie) {
		err = re.err
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return http.StatusNotFound, msg("%s %q not found", re.kind, re.id)
		case err == registry.ErrReadOnly: //nolint:errorlint // the bare sentinel
			return http.StatusConflict, msg("%s %q is declared in the Caddyfile and is read-only through the API", re.kind, re.id)
		case errors.Is(err, delivery.ErrNotReplayable):
			return http.StatusConflict, msg("%s %q is still pending: it can be retried once it has succeeded or failed", re.kind, re.id)
		case errors.Is(err, delivery.ErrNotFound) && (re.verb == "" || err == delivery.ErrNotFound): //nolint:errorlint // the bare sentinel: no such record
			return http.StatusNotFound, msg("%s %q not found", re.kind, re.id)
		case errors.Is(err, delivery.ErrNotFound):
			return http.StatusNotFound, msg("%s %q cannot be %s: %v", re.kind, re.id, re.verb, err)
		}
	} else if re != nil {
		err = re.err
	}
	switch {
	case errors.Is(err, registry.ErrReadOnly):
		return http.StatusConflict, errorBody{Error: readOnlyMessage(err)}
	case errors.Is(err, registry.ErrConflict):
		body := errorBody{Error: err.Error()}
		if errors.As(err, &ie) {
			body.Field = ie.Field
		}
		return http.StatusConflict, body
	case errors.As(err, &ie):
		return http.StatusUnprocessableEntity, errorBody{Error: ie.Error(), Field: ie.Field}
	case errors.Is(err, registry.ErrNotFound):
		return http.StatusNotFound, errorBody{Error: err.Error()}
	case errors.Is(err, delivery.ErrNotReplayable):
		return http.StatusConflict, errorBody{Error: err.Error()}
	case errors.Is(err, delivery.ErrBadCursor):
		return http.StatusBadRequest, msg("after: %v", err)
	case errors.Is(err, delivery.ErrBadBulkQuery):
		return http.StatusUnprocessableEntity, errorBody{Error: err.Error()}
	case filters.AsLimit(err) != nil:
		// A filter, predicate or envelope went over an evaluation bound on
		// this payload: the error names the bound.
		return http.StatusUnprocessableEntity, errorBody{Error: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, msg("the state engine did not answer in time; retry")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads the answer.
		return http.StatusServiceUnavailable, msg("request cancelled")
	}
	return http.StatusInternalServerError, msg("internal error")
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
