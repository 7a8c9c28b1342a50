package module

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/ingress"
)

// maxHeldBody bounds how much of the app's 502, 503 or 504 answer is read
// (and discarded) before the answer is cut short: the sender gets 202
// queued instead of it, so none of it is kept.
const maxHeldBody = 1 << 20

// errHeldTooLong stops the copy of an app's error answer over maxHeldBody.
var errHeldTooLong = errors.New("hookgate: the app's error answer is over 1 MiB: cut short, the request is queued for the fallback")

// fallbackWriter stands between a passthrough workflow with a fallback and
// the next handler: it decides at the status, before anything is written,
// whether the app took the request. A 502, 503 or 504 is held back (the
// body read and dropped, up to maxHeldBody); any other answer passes
// through as it comes, unbuffered. 1xx answers pass through.
type fallbackWriter struct {
	*caddyhttp.ResponseWriterWrapper
	// header is the response header as it was before the next handler,
	// put back when its answer is held.
	header http.Header
	// status is the final status the next handler answered (0: none yet).
	status int
	// held: status is a fallback status, and nothing was passed on.
	held bool
	// dropped counts the bytes of a held answer.
	dropped int64
}

func newFallbackWriter(w http.ResponseWriter) *fallbackWriter {
	return &fallbackWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, header: w.Header().Clone()}
}

// WriteHeader holds a 502, 503 or 504 back and passes any other status on.
func (fw *fallbackWriter) WriteHeader(status int) {
	if fw.status != 0 {
		return
	}
	if status >= 100 && status < 200 {
		fw.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	fw.status = status
	if delivery.FallbackStatus(status) {
		fw.held = true
		return
	}
	fw.ResponseWriterWrapper.WriteHeader(status)
}

// Write passes the body on, or drops that of a held answer.
func (fw *fallbackWriter) Write(p []byte) (int, error) {
	if fw.status == 0 {
		fw.WriteHeader(http.StatusOK)
	}
	if !fw.held {
		return fw.ResponseWriterWrapper.Write(p)
	}
	if fw.dropped+int64(len(p)) > maxHeldBody {
		return 0, errHeldTooLong
	}
	fw.dropped += int64(len(p))
	return len(p), nil
}

// ReadFrom passes the body on, or drops that of a held answer.
func (fw *fallbackWriter) ReadFrom(r io.Reader) (int64, error) {
	if fw.status == 0 {
		fw.WriteHeader(http.StatusOK)
	}
	if !fw.held {
		return fw.ResponseWriterWrapper.ReadFrom(r)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxHeldBody-fw.dropped+1))
	fw.dropped += n
	if err == nil && fw.dropped > maxHeldBody {
		err = errHeldTooLong
	}
	return n, err
}

// FlushError flushes what passes through; a held answer, or one not begun,
// is not flushed (that would send its status).
func (fw *fallbackWriter) FlushError() error {
	if fw.status == 0 || fw.held {
		return nil
	}
	//nolint:bodyclose
	return http.NewResponseController(fw.ResponseWriterWrapper).Flush()
}

// fallbackReason says whether the request goes to the fallback, after the
// next handler answered (or failed with err), and names why for metrics:
// "status_502" (the app answered it), "error_502" (the proxy failed with it:
// app down; error_504: timed out). A handler that failed after it began an
// answer, an error other than 502/503/504 (the client went away: 499), and
// every other status pass through.
func (fw *fallbackWriter) fallbackReason(err error) (string, bool) {
	if fw.held {
		return "status_" + statusText(fw.status), true
	}
	if err == nil || fw.status != 0 {
		return "", false
	}
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && delivery.FallbackStatus(he.StatusCode) {
		return "error_" + statusText(he.StatusCode), true
	}
	return "", false
}

// restoreHeader puts back the response header as it was before the next
// handler, dropping what the held answer set.
func (fw *fallbackWriter) restoreHeader() {
	h := fw.ResponseWriterWrapper.Header()
	for k := range h {
		delete(h, k)
	}
	for k, v := range fw.header {
		h[k] = v
	}
}

func statusText(status int) string {
	switch status {
	case http.StatusBadGateway:
		return "502"
	case http.StatusServiceUnavailable:
		return "503"
	case http.StatusGatewayTimeout:
		return "504"
	}
	return "other"
}

// Interface guards.
var (
	_ http.ResponseWriter = (*fallbackWriter)(nil)
	_ io.ReaderFrom       = (*fallbackWriter)(nil)
)

// passWithFallback passes the request on to the next handler (the app,
// through reverse_proxy) and, when the app does not take it (down, timed
// out, or 502, 503, 504), stores it for the workflow's fallback and answers
// 202 {"id", "status": "queued"} instead of the error. The app's own answer
// passes through otherwise.
func (h *Ingress) passWithFallback(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, core *ingress.Ingress, res *ingress.Result) error {
	id := res.Workflow.Def.ID
	stored := delivery.CaptureRequest(r)
	fw := newFallbackWriter(w)
	err := next.ServeHTTP(fw, r)
	reason, ok := fw.fallbackReason(err)
	if !ok {
		if err != nil || fw.status >= 500 {
			h.release(r, core, res)
		}
		return err
	}
	fw.restoreHeader()
	ev := &delivery.Event{ID: res.EventID, Workflow: id, Data: res.Body, Time: time.Now().UTC(), Request: stored}
	if len(ev.Data) == 0 {
		ev.Data = nil
	}
	if tp := r.Header.Get("Traceparent"); delivery.ValidTraceparent(tp) {
		ev.Traceparent = tp
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	dup, perr := core.Pipeline.Publish(ctx, ev)
	cancel()
	if perr != nil {
		h.app.metrics.fallback(id, reason, "failed")
		h.logger.Error("the app did not take a passthrough request, and storing it for the fallback failed",
			zap.String("workflow", id), zap.String("event", res.EventID), zap.String("reason", reason), zap.Error(perr))
		h.release(r, core, res)
		if fw.held {
			return writeJSON(w, fw.status, ingress.ErrorBody{Error: "the app did not take the request and it could not be queued; retry later"})
		}
		return err
	}
	h.app.metrics.fallback(id, reason, "queued")
	if ce := h.logger.Check(zap.DebugLevel, "the app did not take a passthrough request: queued for the fallback"); ce != nil {
		ce.Write(zap.String("workflow", id), zap.String("event", ev.ID), zap.String("reason", reason), zap.NamedError("app_error", err))
	}
	if dup {
		return writeJSON(w, http.StatusOK, ingress.StatusBody{ID: ev.ID, Status: "duplicate"})
	}
	return writeJSON(w, http.StatusAccepted, ingress.StatusBody{ID: ev.ID, Status: "queued"})
}
