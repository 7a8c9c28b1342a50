package module

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/ingress"
	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

func init() {
	caddy.RegisterModule(Ingress{})
}

// Ingress is the hookgate_ingress HTTP handler: it serves the workflow URLs
// {prefix}/{workflow}/{key}. Accepted events go to the workflow's targets
// through the durable queue (202), or, for a workflow without targets, the
// request goes on to the next handler with X-Hookgate-Workflow and
// X-Hookgate-Event-Id set and the key removed from the path; a workflow
// with a fallback stores the requests the app does not take and answers
// 202 queued (fallback.go).
type Ingress struct {
	// Prefix of workflow URLs. Default: the path of the directive's matcher
	// in the Caddyfile, else /hooks.
	Prefix string `json:"prefix,omitempty"`
	// Workflows declared here (read-only in the API). Workflows created
	// through the API are served by every ingress handler too.
	Workflows []WorkflowConfig `json:"workflows,omitempty"`

	app        *App
	parseGuard *netguard.Guard                  // the Caddyfile's allow_targets, while adapting
	core       *atomic.Pointer[ingress.Ingress] // built at the first request, per runtime
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Ingress) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hookgate_ingress",
		New: func() caddy.Module { return new(Ingress) },
	}
}

// Provision compiles the declared workflows and registers them with the app.
func (h *Ingress) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.core = new(atomic.Pointer[ingress.Ingress])
	if h.Prefix == "" {
		h.Prefix = DefaultIngressPrefix
	}
	h.Prefix = "/" + strings.Trim(h.Prefix, "/")
	var err error
	if h.app, err = loadApp(ctx); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	guard := h.app.guard()
	var compiled []*registry.CompiledWorkflow
	for i, wc := range h.Workflows {
		cw, err := wc.compile(repl, guard)
		if err != nil {
			return fmt.Errorf("workflows[%d] %q: %w", i, wc.ID, err)
		}
		if c := cw.Contract; c != nil && c.FallbackReason() != "" {
			h.logger.Info("workflow contract is validated by the JSON Schema engine, not the fast validator",
				zap.String("workflow", wc.ID), zap.String("reason", c.FallbackReason()))
		}
		compiled = append(compiled, cw)
	}
	return h.app.addWorkflows(h.Prefix, compiled)
}

// ServeHTTP handles requests under the prefix and passes others on.
func (h *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.Prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return next.ServeHTTP(w, r)
	}
	id, key := ingress.Split(rest)
	if id == "" {
		return writeJSON(w, http.StatusNotFound, ingress.ErrorBody{Error: "no workflow in the URL: POST to " + h.Prefix + "/{workflow}/{key}"})
	}
	rt := h.app.awaitRuntime(r.Context())
	if rt == nil {
		return writeJSON(w, http.StatusServiceUnavailable, ingress.ErrorBody{Error: "hookgate is starting"})
	}
	// Behind a TLS-terminating proxy that Caddy trusts (the server's
	// trusted_proxies), the scheme the sender used is X-Forwarded-Proto:
	// the presets that sign the URL (Twilio) need it.
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			r = r.WithContext(signature.WithScheme(r.Context(), p))
		}
	}
	core := h.coreFor(rt)
	res := core.Handle(r, id, key)
	label := "unknown"
	if res.Workflow != nil {
		label = res.Workflow.Def.ID
	}
	h.app.metrics.request(label, res.Outcome)
	if res.Err != nil {
		h.logger.Error("storing event failed", zap.String("workflow", label), zap.Error(res.Err))
	}
	if !res.Pass {
		if res.Status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", strings.Join(res.Workflow.Methods, ", "))
		}
		if res.Answer != nil {
			writeAnswer(w, res.Answer)
			return nil
		}
		return writeJSON(w, res.Status, res.Response)
	}
	// Pass on: the body as read, the key out of the path and headers.
	r.Body = io.NopCloser(bytes.NewReader(res.Body))
	r.ContentLength = int64(len(res.Body))
	r.Header.Set("Content-Length", strconv.Itoa(len(res.Body)))
	r.URL.Path = h.Prefix + "/" + id
	r.URL.RawPath = ""
	r.Header.Del("X-Webhook-Key")
	if key == "" {
		r.Header.Del("Authorization")
	}
	r.Header.Set("X-Hookgate-Workflow", id)
	r.Header.Set("X-Hookgate-Event-Id", res.EventID)
	if res.Workflow.Fallback != nil {
		return h.passWithFallback(w, r, next, core, res)
	}
	if !res.Claimed {
		return next.ServeHTTP(w, r)
	}
	// The idempotency value is recorded: forget it if the app did not take
	// the request, so that the sender's retry gets through.
	sw := &statusWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(sw, r)
	if err != nil || sw.status >= 500 {
		h.release(r, core, res)
	}
	return err
}

// release forgets the idempotency value of a passthrough request the app
// did not take (when it was recorded), so that the sender's retry gets
// through.
func (h *Ingress) release(r *http.Request, core *ingress.Ingress, res *ingress.Result) {
	if !res.Claimed {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := core.Release(ctx, res); err != nil {
		h.logger.Warn("forgetting the idempotency value of a failed passthrough request failed: its retry will be answered duplicate",
			zap.String("workflow", res.Workflow.Def.ID), zap.String("event", res.EventID), zap.Error(err))
	}
}

// statusWriter records the status the next handler answered with.
type statusWriter struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

// WriteHeader records the status.
func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

// coreFor returns the request path over rt. Concurrent first requests may
// each build one; they are equivalent and the last stored is kept.
func (h *Ingress) coreFor(rt *runtime) *ingress.Ingress {
	if c := h.core.Load(); c != nil && c.Registry == rt.reg {
		return c
	}
	c := &ingress.Ingress{Registry: rt.reg, Pipeline: rt.pipe, Dedupe: rt.dedup, Logger: h.logger}
	h.core.Store(c)
	return c
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body any) error {
	b, ok := appendStatusBody(make([]byte, 0, 64), body)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		b = append(b, '\n')
	}
	// Header().Set of both, in one allocation: each value its own slice,
	// of capacity 1, as Set makes it.
	vals := [...]string{"application/json", "no-store"}
	h := w.Header()
	h["Content-Type"], h["Cache-Control"] = vals[0:1:1], vals[1:2:2]
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// appendStatusBody appends the JSON of body and a newline to b, byte for
// byte what json.Marshal writes, when body is an ingress.StatusBody whose
// strings need no escaping (event ids and statuses always): the answer of
// nearly every accepted or passed request, made without reflection. ok is
// false for any other body, which is left to json.Marshal.
func appendStatusBody(b []byte, body any) (_ []byte, ok bool) {
	sb, ok := body.(ingress.StatusBody)
	if !ok || !plainJSONString(sb.ID) || !plainJSONString(sb.Status) {
		return b, false
	}
	b = append(b, '{')
	if sb.ID != "" {
		b = append(b, `"id":"`...)
		b = append(b, sb.ID...)
		b = append(b, `",`...)
	}
	b = append(b, `"status":"`...)
	b = append(b, sb.Status...)
	b = append(b, "\"}\n"...)
	return b, true
}

// plainJSONString reports whether encoding/json writes s as is between
// quotes: printable ASCII without '"', '\\' and the HTML characters it
// escapes ('<', '>', '&').
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// writeAnswer answers with a workflow's own status and body: no
// Content-Type for an empty body, application/json for JSON, text/plain
// otherwise.
func writeAnswer(w http.ResponseWriter, a *registry.Answer) {
	switch {
	case a.Body == "":
		w.Header().Set("Content-Length", "0")
	case json.Valid([]byte(a.Body)):
		w.Header().Set("Content-Type", "application/json")
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(a.Status)
	if a.Body != "" {
		_, _ = io.WriteString(w, a.Body)
	}
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Ingress)(nil)
	_ caddyhttp.MiddlewareHandler = (*Ingress)(nil)
	_ http.ResponseWriter         = (*statusWriter)(nil)
)
