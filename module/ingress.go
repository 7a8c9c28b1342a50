package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/ingress"
	"github.com/hookgate/hookgate/registry"
)

func init() {
	caddy.RegisterModule(Ingress{})
}

// Ingress is the hookgate_ingress HTTP handler: it serves the workflow URLs
// {prefix}/{workflow}/{key}. Accepted events go to the workflow's targets
// through the durable queue (202), or, for a workflow without targets, the
// request goes on to the next handler with X-Hookgate-Workflow and
// X-Hookgate-Event-Id set and the key removed from the path.
type Ingress struct {
	// Prefix of workflow URLs. Default: the path of the directive's matcher
	// in the Caddyfile, else /hooks.
	Prefix string `json:"prefix,omitempty"`
	// Workflows declared here (read-only in the API). Workflows created
	// through the API are served by every ingress handler too.
	Workflows []WorkflowConfig `json:"workflows,omitempty"`

	app    *App
	core   *ingress.Ingress
	logger *zap.Logger
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
	if h.core == nil || h.core.Registry != rt.reg {
		h.core = &ingress.Ingress{Registry: rt.reg, Pipeline: rt.pipe, Logger: h.logger}
	}
	res := h.core.Handle(r, id, key)
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
	return next.ServeHTTP(w, r)
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Ingress)(nil)
	_ caddyhttp.MiddlewareHandler = (*Ingress)(nil)
)
