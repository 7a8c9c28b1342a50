package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/registry"
)

// subscriptionView is a subscription as the API shows it: the secret only
// in creation answers (has_secret always), the values of credential-like
// headers redacted, defaults filled in.
type subscriptionView struct {
	registry.Subscription
	Enabled     bool              `json:"enabled"`
	MaxAttempts int               `json:"max_attempts"`
	Timeout     registry.Duration `json:"timeout"`
	Envelope    string            `json:"envelope"`
	Source      string            `json:"source"`
	Secret      string            `json:"secret,omitempty"`
	HasSecret   bool              `json:"has_secret"`
	// Circuit is the state of the subscription's circuit breaker on the
	// instance that answers (each instance keeps its own).
	Circuit *delivery.Circuit `json:"circuit,omitempty"`
	// SecretGenerated: hookgate generated the secret; it signs but is
	// never sent in clear (secret_header, secret_field, envelopes).
	SecretGenerated bool `json:"secret_generated,omitempty"`
}

func viewSubscription(cs *registry.CompiledSubscription) subscriptionView {
	s := cs.Def
	v := subscriptionView{
		Subscription: s,
		Enabled:      s.IsEnabled(),
		MaxAttempts:  cs.Dest.MaxAttempts,
		Timeout:      registry.Duration(cs.Dest.Timeout),
		Envelope:     s.Envelope,
		Source:       s.Source,
		HasSecret:    s.Secret != "",

		SecretGenerated: s.SecretGenerated,
	}
	v.Subscription.Secret = ""
	v.Subscription.Headers = registry.RedactHeaders(s.Headers)
	if v.Envelope == "" {
		v.Envelope = filters.EnvelopeStandard
	}
	// Resources read from the KV buckets are always marked "api"; the
	// others were declared in the Caddyfile.
	if v.Source == "" {
		v.Source = registry.SourceConfig
	}
	return v
}

// viewSubscription is viewSubscription with the circuit breaker's state.
func (h *Handler) viewSubscription(cs *registry.CompiledSubscription) subscriptionView {
	v := viewSubscription(cs)
	c := h.pipe.Circuit(cs.Dest.ID)
	v.Circuit = &c
	return v
}

// subscription returns the subscription of the path, or a 404 error.
func (h *Handler) subscription(id string) (*registry.CompiledSubscription, error) {
	cs, ok := h.reg.Subscription(id)
	if !ok {
		return nil, notFound("subscription %q not found", id)
	}
	return cs, nil
}

// listSubscriptions serves GET /subscriptions: the served subscriptions and
// the broken stored ones, sorted by id.
func (h *Handler) listSubscriptions(w http.ResponseWriter, _ *http.Request, _ []string) error {
	out := []subscriptionView{}
	for _, cs := range h.reg.Subscriptions() {
		out = append(out, h.viewSubscription(cs))
	}
	list := withBroken(out, func(v subscriptionView) string { return v.ID }, h.reg.Broken(registry.KindSubscription))
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": list})
	return nil
}

// createSubscription serves POST /subscriptions: the answer carries the
// secret, once. An empty secret (or "generate") gets a new whsec_ secret,
// "none" leaves deliveries unsigned.
func (h *Handler) createSubscription(w http.ResponseWriter, r *http.Request, _ []string) error {
	var def registry.Subscription
	if err := decodeJSON(r, &def, false); err != nil {
		return err
	}
	cs, err := h.reg.CreateSubscription(r.Context(), def)
	if err != nil {
		var ie *registry.InvalidError
		if errors.Is(err, registry.ErrConflict) && !errors.As(err, &ie) {
			if cur, ok := h.reg.Subscription(def.ID); ok && cur.Def.Source != registry.SourceAPI {
				return apiError(http.StatusConflict, "subscription %q is declared in the Caddyfile", def.ID)
			}
			return apiError(http.StatusConflict, "subscription %q already exists", def.ID)
		}
		return err
	}
	v := viewSubscription(cs)
	v.Secret = cs.Def.Secret
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// getSubscription serves GET /subscriptions/{id}.
func (h *Handler) getSubscription(w http.ResponseWriter, _ *http.Request, p []string) error {
	cs, err := h.subscription(p[0])
	if err != nil {
		if reason, ok := h.reg.Broken(registry.KindSubscription)[p[0]]; ok {
			writeJSON(w, http.StatusOK, brokenView{ID: p[0], Source: registry.SourceAPI, Broken: reason})
			return nil
		}
		return err
	}
	writeJSON(w, http.StatusOK, h.viewSubscription(cs))
	return nil
}

// patchSubscription serves PATCH /subscriptions/{id}: a JSON merge patch;
// the secret is changed with rotate-secret instead. A header sent back as
// registry.Redacted keeps its stored value.
func (h *Handler) patchSubscription(w http.ResponseWriter, r *http.Request, p []string) error {
	patch, err := readPatch(r, &registry.Subscription{})
	if err != nil {
		return err
	}
	if raw, ok := patch["headers"]; ok && string(raw) != "null" {
		var hdr map[string]*string
		if err := json.Unmarshal(raw, &hdr); err != nil {
			return badRequest("invalid patch: headers: %v", err)
		}
		if cur, ok := h.reg.Subscription(p[0]); ok {
			for k, v := range hdr {
				if v == nil || *v != registry.Redacted {
					continue
				}
				kept := map[string]string{k: *v}
				registry.RestoreRedacted(kept, cur.Def.Headers)
				hdr[k] = new(kept[k])
			}
			patch["headers"], _ = json.Marshal(hdr)
		}
	}
	b, _ := json.Marshal(patch)
	cs, err := h.reg.UpdateSubscription(r.Context(), p[0], b)
	if err != nil {
		return wrapResource("subscription", p[0], err)
	}
	writeJSON(w, http.StatusOK, h.viewSubscription(cs))
	return nil
}

// deleteSubscription serves DELETE /subscriptions/{id}.
func (h *Handler) deleteSubscription(w http.ResponseWriter, r *http.Request, p []string) error {
	if err := h.reg.DeleteSubscription(r.Context(), p[0]); err != nil {
		return wrapResource("subscription", p[0], err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateSecret serves POST /subscriptions/{id}/rotate-secret: a new secret,
// shown once; the old one keeps signing (a second signature) for the grace
// period (default 24h).
func (h *Handler) rotateSecret(w http.ResponseWriter, r *http.Request, p []string) error {
	id := p[0]
	grace, err := readGrace(r)
	if err != nil {
		return err
	}
	secret, err := h.reg.RotateSecret(r.Context(), id, grace.Std())
	if err != nil {
		return wrapResource("subscription", id, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "secret": secret})
	return nil
}

// eventRequest is an event as a publisher sends it.
type eventRequest struct {
	ID     string          `json:"id"`
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
	Tenant string          `json:"tenant"`
	User   string          `json:"user"`
	// Time is when the event occurred (RFC 3339); default: when it is
	// accepted. Orange Logic's EventDateUtc.
	Time string `json:"time"`
}

// MaxEventSkew is how far in the future an event's time may be: the
// publisher's clock may run a little ahead of ours.
const MaxEventSkew = 5 * time.Minute

// event turns the request into an event, occurred at the request's time or
// now. A time that is not RFC 3339, or more than MaxEventSkew after now,
// is a 422 naming the field.
func (e *eventRequest) event(r *http.Request, now time.Time) (*delivery.Event, error) {
	ev := &delivery.Event{
		ID: e.ID, Topic: e.Topic, Data: e.Data, Tenant: e.Tenant, User: e.User,
		Time: now.UTC(),
	}
	if e.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return nil, fieldError("time", "%q is not an RFC 3339 time such as 2024-12-30T19:18:23.8711593Z", e.Time)
		}
		if t.After(now.Add(MaxEventSkew)) {
			return nil, fieldError("time", "%s is more than %v in the future", e.Time, MaxEventSkew)
		}
		ev.Time = t.UTC()
	}
	if tp := r.Header.Get("Traceparent"); delivery.ValidTraceparent(tp) {
		ev.Traceparent = tp
	}
	return ev, nil
}

// testDeliveryResult is the answer of a test delivery.
type testDeliveryResult struct {
	EventID    string            `json:"event_id"`
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	DurationMS int64             `json:"duration_ms"`
	Success    bool              `json:"success"`
	Error      string            `json:"error,omitempty"`
}

// testSubscription serves POST /subscriptions/{id}/test: one delivery made
// at once to the subscription's URL, signed, bypassing the queue and
// recording nothing. The body is {raw: <JSON>} or {body: "<text>"} (with an
// optional id), sent exactly as given with no envelope (Orange Logic's
// testdelivery); else {topic?, data, …} or any JSON (used as the data) or
// text (sent as a JSON string), enveloped as usual.
func (h *Handler) testSubscription(w http.ResponseWriter, r *http.Request, p []string) error {
	cs, err := h.subscription(p[0])
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	custom, asIs, err := customTestBody(body)
	if err != nil {
		return err
	}
	var req eventRequest
	if asIs {
		req.ID = custom.ID
	} else {
		req = testEvent(body)
	}
	if req.ID != "" && !registry.ValidID(req.ID) {
		return badRequest("id %q must be 1 to 128 letters, digits, '-' or '_'", req.ID)
	}
	if req.ID == "" {
		req.ID = delivery.NewEventID()
	}
	if req.Topic == "" {
		req.Topic = sampleTopic(cs.Def.Topics)
	}
	ev, err := req.event(r, time.Now())
	if err != nil {
		return err
	}
	var res *delivery.Result
	if asIs {
		res = h.pipe.Sender().AttemptBody(r.Context(), cs.Dest, ev, custom.bytes())
	} else {
		res = h.pipe.Sender().Attempt(r.Context(), cs.Dest, ev)
	}
	if filters.AsLimit(res.Err) != nil {
		// The envelope is too costly for this data: a real delivery would
		// fail the same way (422, see errorAnswer).
		return res.Err
	}
	out := testDeliveryResult{
		EventID: req.ID, Status: res.StatusCode, Headers: map[string]string{}, Body: string(res.Body),
		DurationMS: res.Duration.Milliseconds(), Success: res.Success(),
	}
	for k, v := range res.Header {
		out.Headers[k] = strings.Join(v, ", ")
	}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// customTest is a test delivery of a body given as is: raw JSON, or text.
type customTest struct {
	ID   string          `json:"id"`
	Raw  json.RawMessage `json:"raw"`
	Body *string         `json:"body"`
}

// bytes returns the body to send.
func (c *customTest) bytes() []byte {
	if c.Body != nil {
		return []byte(*c.Body)
	}
	return c.Raw
}

// customTestBody reads {raw: <JSON>} or {body: "<text>"}, optionally with
// an id and nothing else; asIs is false for any other body.
func customTestBody(body []byte) (c customTest, asIs bool, err error) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return c, false, nil
	}
	_, hasRaw := fields["raw"]
	_, hasBody := fields["body"]
	if !hasRaw && !hasBody {
		return c, false, nil
	}
	if hasRaw && hasBody {
		return c, false, badRequest("give raw (JSON sent as is) or body (text sent as is), not both")
	}
	if err := registry.StrictUnmarshal(body, &c); err != nil {
		return c, false, badRequest("a test delivery with raw or body takes only id besides: %v", err)
	}
	if hasBody && c.Body == nil {
		return c, false, fieldError("body", "must be a string (use raw for JSON)")
	}
	return c, true, nil
}

// testEvent reads a test delivery body: an event-shaped object with "data",
// else any JSON value as the data, else the text as a JSON string.
func testEvent(body []byte) eventRequest {
	var req eventRequest
	if len(strings.TrimSpace(string(body))) == 0 {
		return req
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil && fields != nil {
		if _, ok := fields["data"]; ok && registry.StrictUnmarshal(body, &req) == nil {
			return req
		}
	}
	if json.Valid(body) {
		req.Data = body
		return req
	}
	req.Data, _ = json.Marshal(string(body))
	return req
}

// sampleTopic picks a topic name the subscription matches.
func sampleTopic(patterns []string) string {
	for _, t := range patterns {
		if !strings.Contains(t, "*") {
			return t
		}
	}
	for _, t := range patterns {
		if prefix, ok := strings.CutSuffix(t, "*"); ok && prefix != "" {
			return prefix + "test"
		}
	}
	return "hookgate.test"
}

// predicatesResult is the answer of test-predicates. IncludePredicate and
// ExcludePredicate are the first include and exclude predicates that
// matched (Orange Logic's testpredicates), with their positions.
type predicatesResult struct {
	TopicMatched     bool   `json:"topic_matched"`
	IncludeMatched   bool   `json:"include_matched"`
	ExcludeMatched   bool   `json:"exclude_matched"`
	IncludePredicate string `json:"include_predicate,omitempty"`
	IncludeIndex     *int   `json:"include_index,omitempty"`
	ExcludePredicate string `json:"exclude_predicate,omitempty"`
	ExcludeIndex     *int   `json:"exclude_index,omitempty"`
	Enabled          bool   `json:"enabled"`
	WouldDeliver     bool   `json:"would_deliver"`
	IncludeError     string `json:"include_error,omitempty"`
	ExcludeError     string `json:"exclude_error,omitempty"`
}

// testPredicates serves POST /subscriptions/{id}/test-predicates: how the
// subscription's topics and include/exclude predicates judge an event, and
// which predicate of each list matched first.
func (h *Handler) testPredicates(w http.ResponseWriter, r *http.Request, p []string) error {
	cs, err := h.subscription(p[0])
	if err != nil {
		return err
	}
	var req eventRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Topic == "" {
		return fieldError("topic", "required")
	}
	ev, err := req.event(r, time.Now())
	if err != nil {
		return err
	}
	if ev.ID == "" {
		ev.ID = delivery.NewEventID()
	}
	m := cs.Match(delivery.FilterEvent(ev))
	for _, e := range []struct {
		field string
		err   error
	}{{"include", m.IncludeErr}, {"exclude", m.ExcludeErr}} {
		if filters.AsLimit(e.err) != nil {
			return fmt.Errorf("%s%w", e.field, e.err) // 422, see errorAnswer
		}
	}
	res := predicatesResult{
		TopicMatched:   cs.MatchesTopic(req.Topic),
		IncludeMatched: m.Include,
		ExcludeMatched: m.Exclude,
		Enabled:        cs.Dest.Enabled,
	}
	if i := m.IncludeIndex; i >= 0 {
		res.IncludePredicate, res.IncludeIndex = cs.Def.Include[i], &i
	}
	if i := m.ExcludeIndex; i >= 0 {
		res.ExcludePredicate, res.ExcludeIndex = cs.Def.Exclude[i], &i
	}
	if m.IncludeErr != nil {
		res.IncludeError = strings.TrimPrefix(m.IncludeErr.Error(), ": ")
	}
	if m.ExcludeErr != nil {
		res.ExcludeError = strings.TrimPrefix(m.ExcludeErr.Error(), ": ")
	}
	res.WouldDeliver = res.Enabled && res.TopicMatched && res.IncludeMatched && !res.ExcludeMatched
	writeJSON(w, http.StatusOK, res)
	return nil
}
