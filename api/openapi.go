package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The OpenAPI 3.1 document of the API is built from the route table
// (routes, in api.go): each route's method, pattern, summary and routeDoc,
// with the hand-written schemas of openAPISchemas below. It is static and
// holds no secret, so GET /openapi.json answers it without a token.

// routeDoc is what the OpenAPI document says of a route beyond its method,
// path and summary.
type routeDoc struct {
	// Query lists the query parameters.
	Query []docParam
	// Headers lists the request headers the route reads (besides
	// Authorization).
	Headers []docParam
	// Body is the schema (a components/schemas name) of the JSON request
	// body; "" for none.
	Body string
	// BodyOptional: the body may be empty.
	BodyOptional bool
	// AnyBody: the body is any bytes (e.g. a webhook payload of any type);
	// Body is then its schema for application/json.
	AnyBody bool
	// OK are the success answers.
	OK []docAnswer
	// Errors are the error statuses besides the ones of every
	// authenticated route (401, 403, 500, 503) and of every route with a
	// body (400, 413).
	Errors []int
	// ErrorSchema, when set, is the schema of every error answer of the
	// route instead of Error (a superset of it).
	ErrorSchema string
}

// docParam is a query parameter or request header.
type docParam struct {
	Name, Description string
	// Schema is the parameter's JSON Schema; default {"type": "string"}.
	Schema map[string]any
}

// docAnswer is a success answer: its status, schema name ("" for no body)
// and media type (default application/json).
type docAnswer struct {
	Status      int
	Schema      string
	Description string
	MediaType   string
}

var (
	docOpenAPI        = routeDoc{OK: []docAnswer{{200, "OpenAPIDocument", "The OpenAPI 3.1 document of this API", ""}}}
	docListWorkflows  = routeDoc{OK: []docAnswer{{200, "WorkflowList", "The workflows, sorted by id", ""}}}
	docCreateWorkflow = routeDoc{Body: "WorkflowInput", Errors: []int{409, 422},
		OK: []docAnswer{{201, "WorkflowCreated", "The workflow, with its URL and key (shown once)", ""}}}
	docGetWorkflow = routeDoc{Errors: []int{404},
		OK: []docAnswer{{200, "WorkflowOrBroken", "The workflow, or why its stored definition no longer compiles", ""}}}
	docPatchWorkflow = routeDoc{Body: "MergePatch", Errors: []int{404, 409, 422},
		OK: []docAnswer{{200, "Workflow", "The changed workflow", ""}}}
	docDelete     = routeDoc{Errors: []int{404, 409}, OK: []docAnswer{{204, "", "Deleted", ""}}}
	docRegenerate = routeDoc{Body: "GraceRequest", BodyOptional: true, Errors: []int{404, 409, 422},
		OK: []docAnswer{{200, "KeyAnswer", "The new key (shown once) and URL", ""}}}
	docTestWorkflow = routeDoc{Body: "AnyJSON", BodyOptional: true, AnyBody: true, Errors: []int{404, 422},
		Query: []docParam{{Name: "*", Description: "Any query parameter is passed to the workflow's filter as query.NAME."}},
		Headers: []docParam{
			{Name: dryRunMethodHeader, Description: "The method of the simulated webhook (default POST); not shown to the filter.",
				Schema: map[string]any{"type": "string", "enum": []string{"GET", "POST", "PUT", "PATCH", "DELETE"}}},
			{Name: "Content-Type", Description: "The simulated webhook's content type: application/json (or application/*+json) or application/x-www-form-urlencoded."},
		},
		OK: []docAnswer{{200, "DryRunResult", "What the ingress would decide, with the contract's errors and the filter's verdict", ""}}}
	docWorkflowSchema = routeDoc{Errors: []int{404},
		OK: []docAnswer{{200, "JSONSchema", "The effective JSON Schema (X-Hookgate-Validator tells which validator decides)", "application/schema+json"}}}
	docListTopics = routeDoc{OK: []docAnswer{{200, "TopicList", "The topics, sorted by name", ""}}}
	docGetTopic   = routeDoc{Errors: []int{404}, OK: []docAnswer{{200, "TopicOrBroken", "The topic", ""}}}
	docPutTopic   = routeDoc{Body: "TopicInput", BodyOptional: true, Errors: []int{409, 422},
		OK: []docAnswer{{200, "Topic", "The replaced topic", ""}, {201, "Topic", "The created topic", ""}}}
	docListSubscriptions  = routeDoc{OK: []docAnswer{{200, "SubscriptionList", "The subscriptions, sorted by id", ""}}}
	docCreateSubscription = routeDoc{Body: "SubscriptionInput", Errors: []int{409, 422},
		OK: []docAnswer{{201, "Subscription", "The subscription, with its secret (shown once)", ""}}}
	docGetSubscription = routeDoc{Errors: []int{404},
		OK: []docAnswer{{200, "SubscriptionOrBroken", "The subscription, or why its stored definition no longer compiles", ""}}}
	docPatchSubscription = routeDoc{Body: "MergePatch", Errors: []int{404, 409, 422},
		OK: []docAnswer{{200, "Subscription", "The changed subscription", ""}}}
	docRotateSecret = routeDoc{Body: "GraceRequest", BodyOptional: true, Errors: []int{404, 409, 422},
		OK: []docAnswer{{200, "SecretAnswer", "The new secret (shown once); the old one signs too for the grace period", ""}}}
	docTestSubscription = routeDoc{Body: "AnyJSON", BodyOptional: true, AnyBody: true, Errors: []int{404, 422},
		OK: []docAnswer{{200, "TestDeliveryResult", "The destination's answer to the test delivery", ""}}}
	docTestPredicates = routeDoc{Body: "EventInput", Errors: []int{404, 422},
		OK: []docAnswer{{200, "PredicatesResult", "How the subscription judges the event", ""}}}
	docPublishEvent = routeDoc{Body: "EventInput", Errors: []int{404, 422},
		Headers: []docParam{{Name: "Traceparent", Description: "W3C trace context, kept with the event and sent to its destinations."}},
		OK:      []docAnswer{{202, "EventAccepted", "Stored (or a duplicate of a stored event id)", ""}}}
	docPublishBatch = routeDoc{Body: "EventBatch", Errors: []int{404, 422}, ErrorSchema: "BatchError",
		Headers: []docParam{{Name: "Traceparent", Description: "W3C trace context, kept with every event of the batch and sent to their destinations."}},
		OK:      []docAnswer{{202, "BatchAccepted", "Every event stored (or a duplicate of a stored event id), in request order", ""}}}
	docGetEvent = routeDoc{Errors: []int{404},
		OK: []docAnswer{{200, "EventWithDeliveries", "The event and its deliveries so far", ""}}}
	docListDeliveries = routeDoc{Errors: []int{400},
		Query: []docParam{
			{Name: "subscription", Description: "Only the deliveries of this subscription id."},
			{Name: "workflow", Description: "Only the deliveries of this workflow id."},
			{Name: "event", Description: "Only the deliveries of this event id (sorted by id)."},
			{Name: "status", Description: "Only the deliveries with this status.",
				Schema: map[string]any{"type": "string", "enum": []string{"pending", "succeeded", "failed"}}},
			{Name: "limit", Description: "Page size, 1 to 1000.",
				Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": 1000}},
			{Name: "after", Description: "The cursor of the next page (next of the previous answer)."},
			{Name: "since", Description: "Only the deliveries whose last change is at or after this time (RFC 3339); the log is read from there.",
				Schema: map[string]any{"type": "string", "format": "date-time"}},
			{Name: "until", Description: "Only the deliveries whose last change is before this time (RFC 3339).",
				Schema: map[string]any{"type": "string", "format": "date-time"}},
		},
		OK: []docAnswer{{200, "DeliveryList", "A page of delivery records in the order of their last change", ""}}}
	docActivity = routeDoc{Errors: []int{400},
		Query: []docParam{
			{Name: "minutes", Description: "The window: the last 1 to 60 minutes (default 60).",
				Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": 60}},
		},
		OK: []docAnswer{{200, "Activity", "Attempts and failed attempts per minute, per destination and in total", ""}}}
	docBulkRetry = routeDoc{Body: "BulkRetryRequest", Errors: []int{422},
		OK: []docAnswer{{202, "BulkRetryResult", "How many deliveries were queued again", ""}}}
	docGetDelivery = routeDoc{Errors: []int{404},
		OK: []docAnswer{{200, "DeliveryRecord", "The delivery record", ""}}}
	docRetryDelivery = routeDoc{Errors: []int{404, 409},
		OK: []docAnswer{{202, "DeliveryRecord", "The delivery, queued again with a fresh attempt budget", ""}}}
)

// openAPI serves GET /openapi.json.
func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ []string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(h.openapi)
	return nil
}

// openAPIPath turns a ServeMux pattern into an OpenAPI path template:
// "{name...}" becomes "{name}" (its value may hold slashes).
func openAPIPath(pattern string) string {
	return strings.ReplaceAll(pattern, "...}", "}")
}

// openAPIDocument builds the OpenAPI 3.1 document of the route table.
func openAPIDocument() []byte {
	paths := map[string]map[string]any{}
	for i := range routes {
		rt := &routes[i]
		p := openAPIPath(rt.Pattern)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(rt.Method)] = operation(rt)
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "hookgate management API",
			"version": "1",
			"description": "The management API of hookgate. Paths are relative to the API prefix of the Caddyfile " +
				"(e.g. /api/hookgate). Every route but this document takes a bearer token; publish-only tokens may " +
				"only POST /events and POST /events/batch. Every answer is JSON; every error is {\"error\": \"…\"}, with \"field\" for an " +
				"invalid field and \"errors\" for payloads that do not match a schema.",
		},
		"servers":  []any{map[string]any{"url": "/", "description": "the API prefix"}},
		"security": []any{map[string]any{"bearer": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "An API token of the Caddyfile, or a JWT when the jwt block is configured."},
			},
			"schemas":   openAPISchemas(),
			"responses": errorResponses(),
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("api: the OpenAPI document does not encode: " + err.Error()) // static data: a bug
	}
	return append(b, '\n')
}

// operationID is e.g. "get_workflows_id_test".
func operationID(rt *Route) string {
	id := strings.ToLower(rt.Method)
	for seg := range strings.SplitSeq(openAPIPath(rt.Pattern), "/") {
		seg = strings.NewReplacer("{", "", "}", "", "-", "_", ".", "_").Replace(seg)
		if seg != "" {
			id += "_" + seg
		}
	}
	return id
}

// operation is the OpenAPI operation of a route.
func operation(rt *Route) map[string]any {
	d := rt.Doc
	op := map[string]any{"summary": rt.Summary, "operationId": operationID(rt)}
	var params []any
	for _, name := range rt.wildcards() {
		desc := "The resource id."
		if strings.HasSuffix(rt.Pattern, name+"...}") {
			desc = "The topic name (may contain slashes)."
		}
		params = append(params, map[string]any{"name": name, "in": "path", "required": true,
			"description": desc, "schema": map[string]any{"type": "string"}})
	}
	for _, q := range d.Query {
		if q.Name == "*" {
			continue // described in the operation's text
		}
		params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": paramSchema(q)})
	}
	for _, hd := range d.Headers {
		params = append(params, map[string]any{"name": hd.Name, "in": "header", "description": hd.Description, "schema": paramSchema(hd)})
	}
	if params != nil {
		op["parameters"] = params
	}
	for _, q := range d.Query {
		if q.Name == "*" {
			op["description"] = q.Description
		}
	}
	statuses := []int{}
	if !rt.Public {
		statuses = append(statuses, 401, 403, 500, 503)
	}
	if d.Body != "" {
		content := map[string]any{"application/json": map[string]any{"schema": ref(d.Body)}}
		if d.AnyBody {
			content["application/x-www-form-urlencoded"] = map[string]any{"schema": map[string]any{"type": "object"}}
			content["*/*"] = map[string]any{"schema": map[string]any{"type": "string"}}
		}
		op["requestBody"] = map[string]any{"required": !d.BodyOptional, "content": content}
		statuses = append(statuses, 400, 413)
	}
	statuses = append(statuses, d.Errors...)
	slices.Sort(statuses)
	statuses = slices.Compact(statuses)
	responses := map[string]any{}
	for _, a := range d.OK {
		r := map[string]any{"description": a.Description}
		if a.Schema != "" {
			mt := a.MediaType
			if mt == "" {
				mt = "application/json"
			}
			r["content"] = map[string]any{mt: map[string]any{"schema": ref(a.Schema)}}
		}
		responses[strconv.Itoa(a.Status)] = r
	}
	for _, s := range statuses {
		if d.ErrorSchema != "" {
			responses[strconv.Itoa(s)] = errorResponse(s, d.ErrorSchema)
			continue
		}
		responses[strconv.Itoa(s)] = map[string]any{"$ref": "#/components/responses/" + strconv.Itoa(s)}
	}
	op["responses"] = responses
	if rt.Public {
		op["security"] = []any{}
	}
	return op
}

func paramSchema(p docParam) map[string]any {
	if p.Schema != nil {
		return p.Schema
	}
	return map[string]any{"type": "string"}
}

// errorResponses are the error answers, each with the error shape.
func errorResponses() map[string]any {
	out := map[string]any{}
	for status := range errorDescriptions {
		out[strconv.Itoa(status)] = errorResponse(status, "Error")
	}
	return out
}

// errorResponse is the error answer of status, with its body's schema.
func errorResponse(status int, schema string) map[string]any {
	r := map[string]any{"description": errorDescriptions[status],
		"content": map[string]any{"application/json": map[string]any{"schema": ref(schema)}}}
	if status == 405 {
		r["headers"] = map[string]any{"Allow": map[string]any{"description": "The methods the route takes",
			"schema": map[string]any{"type": "string"}}}
	}
	return r
}

// errorDescriptions describe the error statuses of the API.
var errorDescriptions = map[int]string{
	400: "Bad request: a body that is not JSON, an unknown field, an invalid query parameter",
	401: "Missing or invalid bearer token (WWW-Authenticate: Bearer)",
	403: "The token may not call this route (a publish-only token, or a JWT without a granted claim)",
	404: "No such resource, or no such route",
	405: "The route does not take this method; Allow lists the ones it takes",
	409: "Conflict: the resource exists, is declared in the Caddyfile (read-only), or is still pending",
	413: "The request body is over the route's limit",
	422: "A field or payload is invalid: field names it, errors lists schema failures",
	500: "Internal error (logged; the answer says no more)",
	503: "The state engine did not answer in time, or the event could not be stored: retry",
}

// Schema helpers.

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func typ(t string, desc ...string) map[string]any {
	m := map[string]any{"type": t}
	if len(desc) > 0 {
		m["description"] = desc[0]
	}
	return m
}

func arr(items map[string]any) map[string]any { return map[string]any{"type": "array", "items": items} }

func obj(required []string, props map[string]any) map[string]any {
	m := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

func anyOf(names ...string) map[string]any {
	var list []any
	for _, n := range names {
		list = append(list, ref(n))
	}
	return map[string]any{"anyOf": list}
}

func merged(base map[string]any, more map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// openAPISchemas are the request and answer bodies. Objects are open
// (additional properties allowed), so that a new field is not a break.
func openAPISchemas() map[string]any {
	str, integer, boolean := typ("string"), typ("integer"), typ("boolean")
	dur := typ("string", "A Go duration, e.g. 30s or 1h30m (a number of nanoseconds is also read)")
	ts := map[string]any{"type": "string", "format": "date-time"}
	strMap := map[string]any{"type": "object", "additionalProperties": str}
	predicates := map[string]any{"anyOf": []any{str, arr(str)}, "description": "An expr predicate, or a list of them"}
	flow := map[string]any{
		"rate_limit":    typ("string", "N/s, N/m or N/h"),
		"max_in_flight": integer,
		"breaker":       obj(nil, map[string]any{"off": boolean, "failures": integer, "cooldown": dur, "max_cooldown": dur}),
		"disable_after": dur,
		"ordered":       typ("boolean", "Deliver one at a time in publish order (per order_key)"),
		"order_key":     typ("string", "An expr over the event whose value groups the ordered deliveries (default: one group)"),
	}
	fallbackInput := merged(flow, map[string]any{"url": str, "timeout": dur, "retry_schedule": arr(dur)})
	fallbackView := merged(fallbackInput, map[string]any{"circuit": ref("Circuit")})
	targetInput := merged(flow, map[string]any{
		"id": str, "url": str, "method": str, "headers": strMap, "timeout": dur, "retry_schedule": arr(dur),
		"secret": str, "envelope": str,
	})
	targetView := merged(flow, map[string]any{
		"id": str, "url": str, "method": str, "headers": strMap, "timeout": dur, "retry_schedule": arr(dur),
		"envelope": str, "has_secret": boolean, "circuit": ref("Circuit"),
	})
	answer := obj([]string{"status"}, map[string]any{"status": integer, "body": str})
	respond := obj(nil, map[string]any{"accepted": answer, "filtered": answer, "duplicate": answer})
	workflowInput := map[string]any{
		"id": str, "name": str, "description": str,
		"sample": map[string]any{"description": "A sample payload: its inferred schema is the contract"},
		"schema": ref("JSONSchema"), "strict": boolean, "filter": typ("string", "An expr predicate"),
		"idempotency_header": str, "methods": arr(str), "max_body": integer, "grace": dur,
		"verify":  obj([]string{"provider"}, map[string]any{"provider": str, "secrets": arr(str), "tolerance": dur}),
		"targets": arr(obj([]string{"url"}, targetInput)), "respond": respond,
		"fallback": obj([]string{"url"}, fallbackInput),
		"enabled":  boolean, "source": str,
	}
	workflowView := map[string]any{
		"id": str, "name": str, "description": str, "sample": map[string]any{}, "schema": ref("JSONSchema"),
		"strict": boolean, "filter": str, "idempotency_header": str, "methods": arr(str), "max_body": integer,
		"grace": dur,
		"verify": obj([]string{"provider", "has_secret", "secret_count"}, map[string]any{
			"provider": str, "tolerance": dur, "has_secret": boolean, "secret_count": integer}),
		"targets": arr(obj([]string{"id", "url", "method", "timeout", "envelope", "has_secret"}, targetView)),
		"respond": respond, "enabled": boolean, "source": typ("string", "api, or config (declared in the Caddyfile: read-only)"),
		"has_key":  boolean,
		"fallback": obj([]string{"url", "timeout"}, fallbackView),
	}
	workflowRequired := []string{"id", "methods", "max_body", "targets", "enabled", "source", "has_key"}
	signatureSchema := obj([]string{"scheme"}, map[string]any{"scheme": str, "header": str, "encoding": str, "prefix": str})
	subscriptionInput := merged(flow, map[string]any{
		"id": str, "name": str, "description": str, "topics": arr(str), "url": str,
		"secret":  typ("string", `A signing secret; empty or "generate" for a new one, "none" for unsigned deliveries`),
		"enabled": boolean, "disabled_reason": str, "headers": strMap, "include": predicates, "exclude": predicates,
		"envelope": str, "signature": signatureSchema, "secret_header": str, "secret_field": str,
		"max_attempts": integer, "retry_schedule": arr(dur), "timeout": dur, "max_cooldown": dur,
	})
	subscriptionView := merged(subscriptionInput, map[string]any{
		"source": str, "has_secret": boolean, "circuit": ref("Circuit"), "secret_generated": boolean, "created_at": ts,
		"secret": typ("string", "Shown in the creation answer only"),
	})
	record := obj([]string{"id", "event_id", "destination", "status", "attempts", "updated_at"}, map[string]any{
		"id": str, "event_id": str, "subscription_id": str, "workflow_id": str, "destination": str,
		"status": map[string]any{"type": "string", "enum": []string{"pending", "succeeded", "failed"}},
		"attempts": arr(obj([]string{"at", "duration_ms"}, map[string]any{"at": ts, "status_code": integer, "duration_ms": integer, "error": str, "response": str,
			"request_headers": map[string]any{"type": "object", "additionalProperties": str, "description": "The headers the attempt sent; signatures, secrets and credential-like values are ***"}})),
		"next_attempt_at": ts, "reason": str, "replays": integer, "replay_base": integer, "updated_at": ts,
	})
	return map[string]any{
		"Error": obj([]string{"error"}, map[string]any{
			"error":  typ("string", "What went wrong"),
			"field":  typ("string", "The invalid field, when one is"),
			"errors": arr(ref("SchemaError")),
		}),
		"SchemaError": obj([]string{"path", "message"}, map[string]any{
			"path":    typ("string", "A JSON pointer into the payload, \"\" for the root"),
			"message": str,
		}),
		"OpenAPIDocument": obj([]string{"openapi", "info", "paths"}, map[string]any{"openapi": str, "info": typ("object"), "paths": typ("object")}),
		"AnyJSON":         map[string]any{"description": "Any JSON value"},
		"JSONSchema":      map[string]any{"type": []string{"object", "boolean"}, "description": "A JSON Schema (draft 2020-12 by default)"},
		"MergePatch":      typ("object", "A JSON merge patch (RFC 7386) of the resource: null deletes a field"),
		"GraceRequest":    obj(nil, map[string]any{"grace": dur}),
		"Circuit": obj([]string{"state", "failures"}, map[string]any{
			"state": map[string]any{"type": "string", "enum": []string{"closed", "open", "half_open"}},
			"since": ts, "failures": integer, "retry_at": ts, "failing_since": ts,
		}),
		"Broken": obj([]string{"id", "source", "broken"}, map[string]any{
			"id": str, "source": str, "broken": typ("string", "Why the stored definition no longer reads or compiles"),
		}),
		"WorkflowInput":    obj([]string{"id"}, workflowInput),
		"Workflow":         obj(workflowRequired, workflowView),
		"WorkflowCreated":  obj(append(slices.Clone(workflowRequired), "url", "key"), merged(workflowView, map[string]any{"url": str, "key": str})),
		"WorkflowOrBroken": anyOf("Workflow", "Broken"),
		"WorkflowList":     obj([]string{"workflows"}, map[string]any{"workflows": arr(anyOf("Workflow", "Broken"))}),
		"KeyAnswer":        obj([]string{"id", "url", "key"}, map[string]any{"id": str, "url": str, "key": str}),
		"DryRunResult": obj([]string{"valid", "errors", "filter_matched", "targets", "outcome", "status", "reason", "signature"}, map[string]any{
			"valid":          typ("boolean", "The request passes the method, size, content type, signature and contract checks"),
			"errors":         arr(ref("SchemaError")),
			"filter_matched": boolean,
			"filter_error":   str,
			"targets":        arr(str),
			"outcome": map[string]any{"type": "string", "enum": []string{outcomeInvalid, outcomeFiltered, outcomeAccepted, outcomePassthrough, outcomeHandshake},
				"description": "What the ingress would do"},
			"status":          typ("integer", "The status the ingress would answer (0: passed to the next handler)"),
			"reason":          typ("string", "The ingress outcome, as counted in metrics (e.g. accepted, bad_json, method_not_allowed)"),
			"signature":       map[string]any{"type": "string", "enum": []string{sigNone, sigVerified, sigFailed, sigSkipped}},
			"signature_error": str,
			"validator":       str, "fallback_reason": str,
		}),
		"TopicInput": obj(nil, map[string]any{"name": str, "description": str, "schema": ref("JSONSchema")}),
		"Topic":      obj([]string{"name"}, map[string]any{"name": str, "description": str, "schema": ref("JSONSchema"), "source": str}),
		"BrokenTopic": obj([]string{"name", "source", "broken"}, map[string]any{
			"name": str, "source": str, "broken": str,
		}),
		"TopicOrBroken":        anyOf("Topic", "BrokenTopic"),
		"TopicList":            obj([]string{"topics"}, map[string]any{"topics": arr(anyOf("Topic", "BrokenTopic"))}),
		"SubscriptionInput":    obj([]string{"id", "topics", "url"}, subscriptionInput),
		"Subscription":         obj([]string{"id", "topics", "url", "enabled", "max_attempts", "timeout", "envelope", "source", "has_secret"}, subscriptionView),
		"SubscriptionOrBroken": anyOf("Subscription", "Broken"),
		"SubscriptionList":     obj([]string{"subscriptions"}, map[string]any{"subscriptions": arr(anyOf("Subscription", "Broken"))}),
		"SecretAnswer":         obj([]string{"id", "secret"}, map[string]any{"id": str, "secret": str}),
		"TestDeliveryResult": obj([]string{"event_id", "status", "headers", "body", "duration_ms", "success"}, map[string]any{
			"event_id": str, "status": integer, "headers": strMap, "body": str, "duration_ms": integer,
			"success": boolean, "error": str,
		}),
		"PredicatesResult": obj([]string{"topic_matched", "include_matched", "exclude_matched", "enabled", "would_deliver"}, map[string]any{
			"topic_matched": boolean, "include_matched": boolean, "exclude_matched": boolean,
			"include_predicate": str, "include_index": integer, "exclude_predicate": str, "exclude_index": integer,
			"enabled": boolean, "would_deliver": boolean, "include_error": str, "exclude_error": str,
		}),
		"EventInput": obj([]string{"topic"}, map[string]any{
			"id": typ("string", "The event id; a repeated id is a no-op"), "topic": str,
			"data":   map[string]any{"description": "The event's payload: any JSON"},
			"tenant": str, "user": str, "time": map[string]any{"type": "string", "format": "date-time"},
		}),
		"EventAccepted": obj([]string{"id", "status"}, map[string]any{
			"id": str, "status": map[string]any{"type": "string", "enum": []string{"accepted", "duplicate"}},
		}),
		"EventBatch": obj([]string{"events"}, map[string]any{
			"events": merged(arr(ref("EventInput")), map[string]any{"minItems": 1, "maxItems": MaxBatch,
				"description": "The events, each as the body of POST /events; the request body is bounded too (1 MiB)"}),
		}),
		"BatchAccepted": obj([]string{"events"}, map[string]any{"events": arr(ref("EventAccepted"))}),
		"BatchResult": obj([]string{"status"}, map[string]any{
			"id":     typ("string", "The event's id: the one given, or the one made when it was stored"),
			"status": map[string]any{"type": "string", "enum": []string{"accepted", "duplicate", "failed"}},
			"error":  typ("string", "Why a failed event was not stored"),
		}),
		"BatchElementError": obj([]string{"index", "error"}, map[string]any{
			"index":  typ("integer", "The event's index in the batch, from 0"),
			"error":  typ("string", "What POST /events would answer for this event"),
			"field":  str,
			"errors": arr(ref("SchemaError")),
		}),
		"BatchError": obj([]string{"error"}, map[string]any{
			"error":  typ("string", "What went wrong"),
			"field":  typ("string", "The invalid field, when one is"),
			"errors": arr(ref("BatchElementError")),
			"events": merged(arr(ref("BatchResult")), map[string]any{
				"description": "On a 503: every event's outcome, in request order (retry the batch: events with ids are not stored twice)"}),
		}),
		"Event": obj([]string{"id", "topic", "data", "tenant", "user", "time"}, map[string]any{
			"id": str, "topic": str, "workflow": str, "data": map[string]any{}, "tenant": str, "user": str,
			"time": ts, "traceparent": str,
		}),
		"EventWithDeliveries": obj([]string{"event", "deliveries"}, map[string]any{"event": ref("Event"), "deliveries": arr(ref("DeliveryRecord"))}),
		"DeliveryRecord":      record,
		"DeliveryList": obj([]string{"deliveries"}, map[string]any{
			"deliveries": arr(ref("DeliveryRecord")), "next": typ("string", "The cursor (after) of the next page"),
		}),
		"BulkRetryRequest": obj(nil, map[string]any{
			"subscription": str, "workflow": str,
			"status": map[string]any{"type": "string", "enum": []string{"failed", "succeeded"}},
			"since":  ts, "until": ts,
		}),
		"BulkRetryResult": obj([]string{"queued"}, map[string]any{"queued": integer, "skipped": integer, "next_since": ts}),
		"ActivitySeries": obj([]string{"attempts", "failures"}, map[string]any{
			"attempts": arr(integer), "failures": arr(integer),
		}),
		"Activity": obj([]string{"from", "minutes", "destinations", "total"}, map[string]any{
			"from":         ts,
			"minutes":      integer,
			"destinations": map[string]any{"type": "object", "additionalProperties": ref("ActivitySeries"), "description": "A series per subscription id or workflow target destination id"},
			"total":        ref("ActivitySeries"),
			"truncated":    typ("boolean", "Set when the window held more log entries than one read covers"),
		}),
	}
}
