// Package api is hookgate's management API: a plain net/http handler that
// manages workflows, topics and subscriptions, publishes events and shows
// deliveries, as JSON over HTTP behind bearer tokens.
//
// The handler is mounted by the Caddy glue, which strips its prefix: the
// request paths it sees are relative to the mount point ("/workflows/abc").
// Every response is JSON (the workflow schema preview is
// application/schema+json; the web console's page and assets, served
// without a token at "/" and "/console/", are package console's); errors are {"error": "…"} with the right 4xx,
// plus "errors" for validation failures and "field" for invalid resources.
//
// Keys and secrets are shown once: in the answers to workflow creation and
// key regeneration, and to subscription creation and secret rotation. Every
// other answer redacts them.
//
// The package imports nothing from Caddy.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/api/jwtauth"
	"github.com/hookgate/hookgate/console"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/registry"
)

// Body limits of API requests.
const (
	// MaxBody bounds an ordinary request body.
	MaxBody = 1 << 20
	// MaxResourceBody bounds the bodies that may carry a sample payload or a
	// JSON Schema (workflow and topic writes, workflow dry runs).
	MaxResourceBody = 4 << 20
)

// writeTimeout bounds a request that changes state.
const writeTimeout = 30 * time.Second

// Options configure a Handler.
type Options struct {
	// Tokens are the full-access bearer tokens (already resolved).
	Tokens []string
	// PublishTokens are tokens that may only POST /events.
	PublishTokens []string
	// JWT, when set, validates bearer tokens that are JWTs (three parts
	// separated by dots); other tokens are compared with Tokens and
	// PublishTokens.
	JWT *jwtauth.Validator
	// WorkflowURL builds the public URL of a workflow from the API request
	// (its scheme and host) — given by the Caddy glue. Default:
	// {scheme}://{host}/hooks/{workflow}/{key}.
	WorkflowURL func(r *http.Request, workflowID, key string) string
	// Logger receives server-side failures. Default: no logging.
	Logger *zap.Logger
}

// access is what a request's token allows.
type access int

const (
	accessNone access = iota
	accessPublish
	accessFull
)

// Handler serves the management API.
type Handler struct {
	reg         *registry.Registry
	pipe        *delivery.Pipeline
	log         *zap.Logger
	workflowURL func(r *http.Request, workflowID, key string) string
	full        [][32]byte // SHA-256 of the full-access tokens
	publish     [][32]byte // SHA-256 of the publish-only tokens
	jwt         *jwtauth.Validator
	routes      []route
	console     *console.Handler
}

// New returns the management API over reg and pipe. It fails when neither a
// token nor a JWT validator is configured, or when a token is empty (an
// unset placeholder must not open the API).
func New(reg *registry.Registry, pipe *delivery.Pipeline, opts Options) (*Handler, error) {
	if reg == nil || pipe == nil {
		return nil, errors.New("api: a registry and a delivery pipeline are required")
	}
	if len(opts.Tokens)+len(opts.PublishTokens) == 0 && opts.JWT == nil {
		return nil, errors.New("api: at least one token or a JWT validator is required")
	}
	h := &Handler{reg: reg, pipe: pipe, log: opts.Logger, workflowURL: opts.WorkflowURL, jwt: opts.JWT}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.workflowURL == nil {
		h.workflowURL = defaultWorkflowURL
	}
	for _, t := range opts.Tokens {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("api: empty token")
		}
		h.full = append(h.full, sha256.Sum256([]byte(t)))
	}
	for _, t := range opts.PublishTokens {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("api: empty publish token")
		}
		h.publish = append(h.publish, sha256.Sum256([]byte(t)))
	}
	h.routes = h.routeTable()
	h.console = console.New()
	return h, nil
}

// defaultWorkflowURL is {scheme}://{host}/hooks/{workflow}/{key}.
func defaultWorkflowURL(r *http.Request, workflowID, key string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/hooks/" + workflowID + "/" + key
}

// ServeHTTP authenticates the request, routes it and writes a JSON answer.
// r.URL.Path is relative to the mount point, e.g. "/workflows/abc".
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The web console's page and assets hold no data: served without a
	// token; the page calls this API with the token it is given.
	if console.Serves(r.Method, r.URL.Path) {
		h.console.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")

	acc, status, msg := h.authenticate(r)
	if acc == accessNone {
		switch status {
		case http.StatusForbidden:
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
		default:
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		writeError(w, status, msg)
		return
	}
	path := cleanPath(r.URL.Path)
	if acc == accessPublish && (r.Method != http.MethodPost || path != "/events") {
		writeError(w, http.StatusForbidden, "this token may only publish events (POST /events)")
		return
	}
	rt, params := h.match(path)
	if rt == nil {
		writeError(w, http.StatusNotFound, "no such API route: "+path)
		return
	}
	ep, ok := rt.methods[r.Method]
	if !ok {
		w.Header().Set("Allow", strings.Join(rt.allowed(), ", "))
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+rt.pattern)
		return
	}
	limit := int64(MaxBody)
	if ep.large {
		limit = MaxResourceBody
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if r.Method != http.MethodGet {
		// A write runs to its end even when the client goes away, so that
		// it is never left half done (e.g. a workflow without its key).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if err := ep.fn(w, r, params); err != nil {
		h.fail(w, r, rt.pattern, err)
	}
}

// authenticate checks the bearer token; when it gives no access, it also
// returns the status to answer (401, or 403 for a valid JWT without a
// granted claim value) and the message. A JWT is validated when a validator
// is configured. Every other token is compared with every configured token,
// in constant time on SHA-256 digests, so neither which token matched nor
// the tokens' lengths leak through timing.
func (h *Handler) authenticate(r *http.Request) (access, int, string) {
	const missing = "missing bearer token (Authorization: Bearer <token>)"
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(strings.TrimSpace(auth), " ")
	if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return accessNone, http.StatusUnauthorized, missing
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return accessNone, http.StatusUnauthorized, missing
	}
	if h.jwt != nil && jwtauth.LooksLikeJWT(token) {
		grant, err := h.jwt.Validate(r.Context(), token)
		switch {
		case err != nil:
			return accessNone, http.StatusUnauthorized, "invalid token"
		case grant == jwtauth.GrantFull:
			return accessFull, 0, ""
		case grant == jwtauth.GrantPublish:
			return accessPublish, 0, ""
		}
		return accessNone, http.StatusForbidden, "the token grants no access to this API"
	}
	got := sha256.Sum256([]byte(token))
	full, pub := 0, 0
	for i := range h.full {
		full |= subtle.ConstantTimeCompare(got[:], h.full[i][:])
	}
	for i := range h.publish {
		pub |= subtle.ConstantTimeCompare(got[:], h.publish[i][:])
	}
	switch {
	case full == 1:
		return accessFull, 0, ""
	case pub == 1:
		return accessPublish, 0, ""
	}
	return accessNone, http.StatusUnauthorized, "invalid token"
}

// --- routing ---

// handlerFunc serves one route and method; params are the path wildcards in
// order. A returned error is turned into a JSON error answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request, params []string) error

// endpoint is a route's handler for one method.
type endpoint struct {
	fn handlerFunc
	// large allows MaxResourceBody instead of MaxBody.
	large bool
}

// route is a path pattern: literal segments, "{}" for one segment, and a
// final "{...}" for the rest of the path.
type route struct {
	pattern string
	segs    []string
	methods map[string]endpoint
}

func (rt *route) allowed() []string {
	var m []string
	for k := range rt.methods {
		m = append(m, k)
	}
	slices.Sort(m)
	return m
}

func newRoute(pattern string, methods map[string]endpoint) route {
	var segs []string
	for s := range strings.SplitSeq(strings.Trim(pattern, "/"), "/") {
		switch {
		case strings.HasSuffix(s, "...}"):
			segs = append(segs, "{...}")
		case strings.HasPrefix(s, "{"):
			segs = append(segs, "{}")
		default:
			segs = append(segs, s)
		}
	}
	return route{pattern: pattern, segs: segs, methods: methods}
}

func (h *Handler) routeTable() []route {
	small := func(fn handlerFunc) endpoint { return endpoint{fn: fn} }
	large := func(fn handlerFunc) endpoint { return endpoint{fn: fn, large: true} }
	return []route{
		newRoute("/workflows", map[string]endpoint{
			http.MethodGet: small(h.listWorkflows), http.MethodPost: large(h.createWorkflow)}),
		newRoute("/workflows/{id}", map[string]endpoint{
			http.MethodGet: small(h.getWorkflow), http.MethodPatch: large(h.patchWorkflow),
			http.MethodDelete: small(h.deleteWorkflow)}),
		newRoute("/workflows/{id}/regenerate", map[string]endpoint{http.MethodPost: small(h.regenerateWorkflow)}),
		newRoute("/workflows/{id}/test", map[string]endpoint{http.MethodPost: large(h.testWorkflow)}),
		newRoute("/workflows/{id}/schema", map[string]endpoint{http.MethodGet: small(h.workflowSchema)}),
		newRoute("/topics", map[string]endpoint{http.MethodGet: small(h.listTopics)}),
		newRoute("/topics/{name...}", map[string]endpoint{
			http.MethodGet: small(h.getTopic), http.MethodPut: large(h.putTopic),
			http.MethodDelete: small(h.deleteTopic)}),
		newRoute("/subscriptions", map[string]endpoint{
			http.MethodGet: small(h.listSubscriptions), http.MethodPost: small(h.createSubscription)}),
		newRoute("/subscriptions/{id}", map[string]endpoint{
			http.MethodGet: small(h.getSubscription), http.MethodPatch: small(h.patchSubscription),
			http.MethodDelete: small(h.deleteSubscription)}),
		newRoute("/subscriptions/{id}/rotate-secret", map[string]endpoint{http.MethodPost: small(h.rotateSecret)}),
		newRoute("/subscriptions/{id}/test", map[string]endpoint{http.MethodPost: small(h.testSubscription)}),
		newRoute("/subscriptions/{id}/test-predicates", map[string]endpoint{http.MethodPost: small(h.testPredicates)}),
		newRoute("/events", map[string]endpoint{http.MethodPost: small(h.publishEvent)}),
		newRoute("/events/{id}", map[string]endpoint{http.MethodGet: small(h.getEvent)}),
		newRoute("/deliveries", map[string]endpoint{http.MethodGet: small(h.listDeliveriesIn)}),
		newRoute("/activity", map[string]endpoint{http.MethodGet: small(h.deliveryActivity)}),
		newRoute("/deliveries/retry", map[string]endpoint{http.MethodPost: small(h.retryDeliveries)}),
		newRoute("/deliveries/{id}", map[string]endpoint{http.MethodGet: small(h.getDelivery)}),
		newRoute("/deliveries/{id}/retry", map[string]endpoint{http.MethodPost: small(h.retryDelivery)}),
	}
}

// cleanPath makes the path absolute and drops one trailing slash.
func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// match finds the route of path and its wildcard values.
func (h *Handler) match(path string) (*route, []string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := range h.routes {
		rt := &h.routes[i]
		if params, ok := matchSegs(rt.segs, segs); ok {
			return rt, params
		}
	}
	return nil, nil
}

func matchSegs(pattern, segs []string) ([]string, bool) {
	var params []string
	for i, p := range pattern {
		if p == "{...}" {
			rest := strings.Join(segs[min(i, len(segs)):], "/")
			if i >= len(segs) || rest == "" {
				return nil, false
			}
			return append(params, rest), true
		}
		if i >= len(segs) {
			return nil, false
		}
		switch p {
		case "{}":
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, segs[i])
		default:
			if segs[i] != p {
				return nil, false
			}
		}
	}
	if len(segs) != len(pattern) {
		return nil, false
	}
	return params, true
}
