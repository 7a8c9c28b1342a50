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
	"path"
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
	// PublishTokens are tokens that may only publish events (the routes
	// marked Publish: POST /events and POST /events/batch).
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
	mux         *http.ServeMux
	openapi     []byte // the OpenAPI document, built once
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
	h.mux = h.newMux()
	h.openapi = openAPIDocument()
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

	p, clean := cleanPath(r.URL.Path)
	rt, allowed, owner := h.resolve(r, p, clean)
	if rt == nil || !rt.Public {
		// Authentication comes before routing: without a token, an unknown
		// route answers 401 like a known one.
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
		if acc == accessPublish && (rt == nil || !rt.Publish) {
			writeError(w, http.StatusForbidden, "this token may only publish events (POST /events, POST /events/batch)")
			return
		}
	}
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+owner)
			return
		}
		writeError(w, http.StatusNotFound, "no such API route: "+p)
		return
	}
	limit := int64(MaxBody)
	if rt.Large {
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
	// The mux serves the path it was probed with: cleaned, and matched
	// decoded (RawPath dropped), as route found it.
	h.mux.ServeHTTP(w, withPath(r, p))
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
// the order of the pattern. A returned error is answered by Handler.fail.
type handlerFunc func(h *Handler, w http.ResponseWriter, r *http.Request, params []string) error

// Route is one method and path of the API: the one table that both the
// router (a net/http ServeMux) and the OpenAPI document are made from.
type Route struct {
	// Method is the HTTP method. Only it is served: a GET route does not
	// answer HEAD, as ServeMux alone would.
	Method string
	// Pattern is the path, in ServeMux syntax relative to the API prefix:
	// "{id}" is one segment, a final "{name...}" the rest of the path.
	Pattern string
	// Summary is the one-line description shown in the OpenAPI document.
	Summary string
	// Large allows a body of MaxResourceBody instead of MaxBody.
	Large bool
	// Public routes are answered without a token (static, secret-free
	// documents only).
	Public bool
	// Publish routes may also be called with a publish-only token.
	Publish bool
	// Doc describes the route's query, bodies and answers for the OpenAPI
	// document.
	Doc routeDoc
	// handle serves the route.
	handle handlerFunc
}

// key is the route's ServeMux pattern, "METHOD /path".
func (rt *Route) key() string { return rt.Method + " " + rt.Pattern }

// wildcards returns the names of the pattern's wildcards, in order.
func (rt *Route) wildcards() []string {
	var names []string
	for seg := range strings.SplitSeq(rt.Pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return names
}

// routeMethods are the methods the table uses, in Allow order.
var routeMethods = []string{http.MethodDelete, http.MethodGet, http.MethodPatch, http.MethodPost, http.MethodPut}

// Routes returns the API's routes, in the order of the documentation.
func Routes() []Route { return slices.Clone(routes) }

// routes is the route table. Add a route here (and its schemas in
// openapi.go): the router, the OpenAPI document and its tests follow.
var routes = []Route{
	{Method: "GET", Pattern: "/openapi.json", Summary: "This OpenAPI document (no token needed)", Public: true,
		handle: (*Handler).openAPI, Doc: docOpenAPI},
	{Method: "GET", Pattern: "/workflows", Summary: "List workflows (broken stored ones included)",
		handle: (*Handler).listWorkflows, Doc: docListWorkflows},
	{Method: "POST", Pattern: "/workflows", Summary: "Create a workflow; the answer shows its key once", Large: true,
		handle: (*Handler).createWorkflow, Doc: docCreateWorkflow},
	{Method: "GET", Pattern: "/workflows/{id}", Summary: "Get a workflow",
		handle: (*Handler).getWorkflow, Doc: docGetWorkflow},
	{Method: "PATCH", Pattern: "/workflows/{id}", Summary: "Change a workflow (JSON merge patch)", Large: true,
		handle: (*Handler).patchWorkflow, Doc: docPatchWorkflow},
	{Method: "DELETE", Pattern: "/workflows/{id}", Summary: "Delete a workflow",
		handle: (*Handler).deleteWorkflow, Doc: docDelete},
	{Method: "POST", Pattern: "/workflows/{id}/regenerate", Summary: "Issue a new key, shown once",
		handle: (*Handler).regenerateWorkflow, Doc: docRegenerate},
	{Method: "POST", Pattern: "/workflows/{id}/test", Summary: "Dry run: what the ingress would decide for this request", Large: true,
		handle: (*Handler).testWorkflow, Doc: docTestWorkflow},
	{Method: "GET", Pattern: "/workflows/{id}/schema", Summary: "The workflow's effective JSON Schema",
		handle: (*Handler).workflowSchema, Doc: docWorkflowSchema},
	{Method: "GET", Pattern: "/topics", Summary: "List topics",
		handle: (*Handler).listTopics, Doc: docListTopics},
	{Method: "GET", Pattern: "/topics/{name...}", Summary: "Get a topic",
		handle: (*Handler).getTopic, Doc: docGetTopic},
	{Method: "PUT", Pattern: "/topics/{name...}", Summary: "Create or replace a topic", Large: true,
		handle: (*Handler).putTopic, Doc: docPutTopic},
	{Method: "DELETE", Pattern: "/topics/{name...}", Summary: "Delete a topic",
		handle: (*Handler).deleteTopic, Doc: docDelete},
	{Method: "GET", Pattern: "/subscriptions", Summary: "List subscriptions (broken stored ones included)",
		handle: (*Handler).listSubscriptions, Doc: docListSubscriptions},
	{Method: "POST", Pattern: "/subscriptions", Summary: "Create a subscription; the answer shows its secret once",
		handle: (*Handler).createSubscription, Doc: docCreateSubscription},
	{Method: "GET", Pattern: "/subscriptions/{id}", Summary: "Get a subscription",
		handle: (*Handler).getSubscription, Doc: docGetSubscription},
	{Method: "PATCH", Pattern: "/subscriptions/{id}", Summary: "Change a subscription (JSON merge patch)",
		handle: (*Handler).patchSubscription, Doc: docPatchSubscription},
	{Method: "DELETE", Pattern: "/subscriptions/{id}", Summary: "Delete a subscription",
		handle: (*Handler).deleteSubscription, Doc: docDelete},
	{Method: "POST", Pattern: "/subscriptions/{id}/rotate-secret", Summary: "Rotate the signing secret, shown once",
		handle: (*Handler).rotateSecret, Doc: docRotateSecret},
	{Method: "POST", Pattern: "/subscriptions/{id}/test", Summary: "Send one test delivery at once, recording nothing",
		handle: (*Handler).testSubscription, Doc: docTestSubscription},
	{Method: "POST", Pattern: "/subscriptions/{id}/test-predicates", Summary: "How the topics and predicates judge an event",
		handle: (*Handler).testPredicates, Doc: docTestPredicates},
	{Method: "POST", Pattern: "/events", Summary: "Publish an event (publish-only tokens may call this too)", Publish: true,
		handle: (*Handler).publishEvent, Doc: docPublishEvent},
	{Method: "POST", Pattern: "/events/batch", Summary: "Publish up to 1000 events at once; one invalid event refuses them all (publish-only tokens may call this too)", Publish: true,
		handle: (*Handler).publishBatch, Doc: docPublishBatch},
	{Method: "GET", Pattern: "/events/{id}", Summary: "Get an event and its deliveries",
		handle: (*Handler).getEvent, Doc: docGetEvent},
	{Method: "GET", Pattern: "/deliveries", Summary: "List delivery records, a page at a time",
		handle: (*Handler).listDeliveries, Doc: docListDeliveries},
	{Method: "GET", Pattern: "/activity", Summary: "Attempts and failed attempts per minute over the last hour",
		handle: (*Handler).deliveryActivity, Doc: docActivity},
	{Method: "POST", Pattern: "/deliveries/retry", Summary: "Queue finished deliveries again, in bulk",
		handle: (*Handler).retryDeliveries, Doc: docBulkRetry},
	{Method: "GET", Pattern: "/deliveries/{id}", Summary: "Get a delivery record",
		handle: (*Handler).getDelivery, Doc: docGetDelivery},
	{Method: "POST", Pattern: "/deliveries/{id}/retry", Summary: "Queue a finished delivery again",
		handle: (*Handler).retryDelivery, Doc: docRetryDelivery},
}

// routeHandler serves one route of the table on the ServeMux.
type routeHandler struct {
	h     *Handler
	rt    *Route
	names []string // the wildcards of the pattern, in order
}

func (rh *routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params := make([]string, len(rh.names))
	for i, n := range rh.names {
		params[i] = r.PathValue(n)
	}
	if err := rh.rt.handle(rh.h, w, r, params); err != nil {
		rh.h.fail(w, r, rh.rt.Pattern, err)
	}
}

// newMux registers every route of the table on a ServeMux, with its
// "METHOD /path" pattern.
func (h *Handler) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	for i := range routes {
		rt := &routes[i]
		mux.Handle(rt.key(), &routeHandler{h: h, rt: rt, names: rt.wildcards()})
	}
	return mux
}

// resolve finds the route of r with path p (nil for none), the methods the
// path is served with (sorted) and its pattern. ServeMux's own 404 and 405
// are plain text, and its redirects (e.g. /topics to /topics/) are no
// answer of this API: ServeHTTP answers those itself, from what resolve
// found. A path that is not clean matches nothing. A path belongs to its
// most specific pattern whatever the method, as in a route table: GET
// /deliveries/retry is a 405 of the POST route, not a GET of
// /deliveries/{id} with the id "retry".
func (h *Handler) resolve(r *http.Request, p string, clean bool) (rt *Route, methods []string, pattern string) {
	if !clean {
		return nil, nil, ""
	}
	byMethod := make(map[string]*routeHandler, len(routeMethods))
	var owner *routeHandler
	for _, m := range routeMethods {
		probe := withPath(r, p)
		probe.Method = m
		hd, _ := h.mux.Handler(probe)
		rh, ok := hd.(*routeHandler)
		if !ok || rh.rt.Method != m { // a redirect, or no route for m
			continue
		}
		byMethod[m] = rh
		if owner == nil || len(rh.names) < len(owner.names) {
			owner = rh
		}
	}
	if owner == nil {
		return nil, nil, ""
	}
	for _, m := range routeMethods {
		if rh := byMethod[m]; rh != nil && rh.rt.Pattern == owner.rt.Pattern {
			methods = append(methods, m)
		}
	}
	if rh := byMethod[r.Method]; rh != nil && rh.rt.Pattern == owner.rt.Pattern {
		rt = rh.rt
	}
	return rt, methods, owner.rt.Pattern
}

// withPath is a shallow copy of r with the URL path p.
func withPath(r *http.Request, p string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = p, ""
	r2.URL = &u
	return r2
}

// cleanPath makes the path absolute and drops one trailing slash; clean is
// false for a path with empty, "." or ".." segments, which no route serves.
func cleanPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p, path.Clean(p) == p
}
