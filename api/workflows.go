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
	"github.com/hookgate/hookgate/ingress"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/schema"
	"github.com/hookgate/hookgate/signature"
)

// workflowView is a workflow as the API shows it: secrets redacted, defaults
// filled in. URL and Key are set only in creation and regeneration answers.
type workflowView struct {
	ID                string            `json:"id"`
	Name              string            `json:"name"`
	Description       string            `json:"description"`
	Sample            json.RawMessage   `json:"sample,omitempty"`
	Schema            json.RawMessage   `json:"schema,omitempty"`
	Strict            bool              `json:"strict"`
	Filter            string            `json:"filter"`
	IdempotencyHeader string            `json:"idempotency_header"`
	Methods           []string          `json:"methods"`
	MaxBody           int64             `json:"max_body"`
	Grace             registry.Duration `json:"grace"`
	Verify            *verifyView       `json:"verify,omitempty"`
	Targets           []targetView      `json:"targets"`
	Fallback          *fallbackView     `json:"fallback,omitempty"`
	Respond           *registry.Respond `json:"respond,omitempty"`
	Enabled           bool              `json:"enabled"`
	Source            string            `json:"source"`
	HasKey            bool              `json:"has_key"`
	URL               string            `json:"url,omitempty"`
	Key               string            `json:"key,omitempty"`
}

// verifyView is a workflow's signature verification without its secrets:
// whether it has some, and how many (several during a rotation).
type verifyView struct {
	Provider    string            `json:"provider"`
	Tolerance   registry.Duration `json:"tolerance,omitempty"`
	HasSecret   bool              `json:"has_secret"`
	SecretCount int               `json:"secret_count"`
}

// targetView is a workflow target without its signing secret, the values of
// credential-like headers redacted.
type targetView struct {
	ID            string              `json:"id"`
	URL           string              `json:"url"`
	Method        string              `json:"method"`
	Headers       map[string]string   `json:"headers,omitempty"`
	Timeout       registry.Duration   `json:"timeout"`
	RetrySchedule []registry.Duration `json:"retry_schedule,omitempty"`
	Envelope      string              `json:"envelope"`
	HasSecret     bool                `json:"has_secret"`
	registry.FlowControl
	// Circuit is the state of the target's circuit breaker on the instance
	// that answers (each instance keeps its own).
	Circuit *delivery.Circuit `json:"circuit,omitempty"`
}

// fallbackView is a passthrough workflow's fallback, defaults filled in.
type fallbackView struct {
	URL           string              `json:"url"`
	Timeout       registry.Duration   `json:"timeout"`
	RetrySchedule []registry.Duration `json:"retry_schedule,omitempty"`
	registry.FlowControl
	// Circuit is the state of the fallback's circuit breaker on the
	// instance that answers.
	Circuit *delivery.Circuit `json:"circuit,omitempty"`
}

func (h *Handler) viewWorkflow(cw *registry.CompiledWorkflow) workflowView {
	d := cw.Def
	v := workflowView{
		ID: d.ID, Name: d.Name, Description: d.Description, Sample: d.Sample, Schema: d.Schema,
		Strict: d.Strict, Filter: d.Filter, IdempotencyHeader: d.IdempotencyHeader,
		Methods: cw.Methods, MaxBody: cw.MaxBody, Grace: d.Grace, Targets: []targetView{},
		Respond: d.Respond, Enabled: d.IsEnabled(), Source: d.Source, HasKey: h.reg.HasKey(d.ID),
	}
	// Resources read from the KV buckets are always marked "api"; the
	// others were declared in the Caddyfile.
	if v.Source == "" {
		v.Source = registry.SourceConfig
	}
	if d.Verify != nil {
		v.Verify = &verifyView{
			Provider:    d.Verify.Provider,
			HasSecret:   len(d.Verify.Secrets) > 0,
			SecretCount: len(d.Verify.Secrets),
		}
		if signature.Timestamped(d.Verify.Provider) {
			v.Verify.Tolerance = d.Verify.Tolerance
			if v.Verify.Tolerance == 0 {
				v.Verify.Tolerance = registry.Duration(signature.DefaultTolerance)
			}
		}
	}
	for i, t := range d.Targets {
		tv := targetView{
			ID: t.ID, URL: t.URL, Method: t.Method, Headers: registry.RedactHeaders(t.Headers), Timeout: t.Timeout,
			RetrySchedule: t.RetrySchedule, Envelope: t.Envelope, HasSecret: t.Secret != "",
			FlowControl: t.FlowControl,
		}
		if i < len(cw.Targets) {
			tv.Method, tv.Timeout = cw.Targets[i].Method, registry.Duration(cw.Targets[i].Timeout)
			c := h.pipe.Circuit(cw.Targets[i].ID)
			tv.Circuit = &c
		}
		if tv.Envelope == "" {
			tv.Envelope = filters.EnvelopeRaw
		}
		v.Targets = append(v.Targets, tv)
	}
	if f := d.Fallback; f != nil && cw.Fallback != nil {
		c := h.pipe.Circuit(cw.Fallback.ID)
		v.Fallback = &fallbackView{
			URL: f.URL, Timeout: registry.Duration(cw.Fallback.Timeout), RetrySchedule: f.RetrySchedule,
			FlowControl: f.FlowControl, Circuit: &c,
		}
	}
	return v
}

// workflow returns the workflow of the path, or a 404 error.
func (h *Handler) workflow(id string) (*registry.CompiledWorkflow, error) {
	cw, ok := h.reg.Workflow(id)
	if !ok {
		return nil, notFound("workflow %q not found", id)
	}
	return cw, nil
}

// listWorkflows serves GET /workflows: the served workflows and the broken
// stored ones, sorted by id.
func (h *Handler) listWorkflows(w http.ResponseWriter, _ *http.Request, _ []string) error {
	out := []workflowView{}
	for _, cw := range h.reg.Workflows() {
		out = append(out, h.viewWorkflow(cw))
	}
	list := withBroken(out, func(v workflowView) string { return v.ID }, h.reg.Broken(registry.KindWorkflow))
	writeJSON(w, http.StatusOK, map[string]any{"workflows": list})
	return nil
}

// createWorkflow serves POST /workflows: the answer carries the key, once.
func (h *Handler) createWorkflow(w http.ResponseWriter, r *http.Request, _ []string) error {
	var def registry.Workflow
	if err := decodeJSON(r, &def, false); err != nil {
		return err
	}
	cw, key, err := h.reg.CreateWorkflow(r.Context(), def)
	if err != nil {
		var ie *registry.InvalidError
		if errors.Is(err, registry.ErrConflict) && !errors.As(err, &ie) {
			if cur, ok := h.reg.Workflow(def.ID); ok && cur.Def.Source != registry.SourceAPI {
				return apiError(http.StatusConflict, "workflow %q is declared in the Caddyfile", def.ID)
			}
			return apiError(http.StatusConflict, "workflow %q already exists", def.ID)
		}
		return err
	}
	v := h.viewWorkflow(cw)
	v.HasKey = true
	v.URL, v.Key = h.workflowURL(r, cw.Def.ID, key), key
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// getWorkflow serves GET /workflows/{id}.
func (h *Handler) getWorkflow(w http.ResponseWriter, _ *http.Request, p []string) error {
	cw, err := h.workflow(p[0])
	if err != nil {
		if reason, ok := h.reg.Broken(registry.KindWorkflow)[p[0]]; ok {
			writeJSON(w, http.StatusOK, brokenView{ID: p[0], Source: registry.SourceAPI, Broken: reason})
			return nil
		}
		return err
	}
	writeJSON(w, http.StatusOK, h.viewWorkflow(cw))
	return nil
}

// patchWorkflow serves PATCH /workflows/{id}: a JSON merge patch (RFC 7386).
// Setting "schema" drops the sample and vice versa. A "targets" array
// replaces the targets, secrets included.
func (h *Handler) patchWorkflow(w http.ResponseWriter, r *http.Request, p []string) error {
	id := p[0]
	patch, err := readPatch(r, &registry.Workflow{})
	if err != nil {
		return err
	}
	if raw, ok := patch["id"]; ok {
		var s string
		if json.Unmarshal(raw, &s) != nil || s != id {
			return fieldError("id", "cannot be changed")
		}
	}
	delete(patch, "source")
	if raw, ok := patch["targets"]; ok && string(raw) != "null" {
		if patch["targets"], err = restoreTargetHeaders(raw, id, h.reg); err != nil {
			return err
		}
	}
	for _, pair := range [][2]string{{"schema", "sample"}, {"sample", "schema"}} {
		set, other := pair[0], pair[1]
		if raw, ok := patch[set]; ok && string(raw) != "null" {
			if _, given := patch[other]; !given {
				patch[other] = json.RawMessage("null")
			}
		}
	}
	b, _ := json.Marshal(patch)
	cw, err := h.reg.UpdateWorkflow(r.Context(), id, b)
	if err != nil {
		return wrapResource("workflow", id, err)
	}
	writeJSON(w, http.StatusOK, h.viewWorkflow(cw))
	return nil
}

// restoreTargetHeaders puts back the stored values of the headers a PATCH
// sent as registry.Redacted (as GET shows them): a target keeps the header
// values of the stored target with the same URL.
func restoreTargetHeaders(raw json.RawMessage, id string, reg *registry.Registry) (json.RawMessage, error) {
	var targets []registry.Target
	if err := json.Unmarshal(raw, &targets); err != nil {
		return nil, badRequest("invalid patch: targets: %v", err)
	}
	cur, ok := reg.Workflow(id)
	if !ok {
		return raw, nil
	}
	for i := range targets {
		for _, old := range cur.Def.Targets {
			if old.URL == targets[i].URL {
				registry.RestoreRedacted(targets[i].Headers, old.Headers)
				break
			}
		}
	}
	return json.Marshal(targets)
}

// deleteWorkflow serves DELETE /workflows/{id}.
func (h *Handler) deleteWorkflow(w http.ResponseWriter, r *http.Request, p []string) error {
	if err := h.reg.DeleteWorkflow(r.Context(), p[0]); err != nil {
		return wrapResource("workflow", p[0], err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// graceRequest is the optional body of regenerate and rotate-secret.
type graceRequest struct {
	Grace registry.Duration `json:"grace"`
}

func readGrace(r *http.Request) (registry.Duration, error) {
	var req graceRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return 0, err
	}
	if req.Grace < 0 {
		return 0, fieldError("grace", "must not be negative")
	}
	if req.Grace.Std() > registry.MaxGrace {
		return 0, fieldError("grace", "%s is over the maximum of %s", req.Grace.Std(), registry.MaxGrace)
	}
	return req.Grace, nil
}

// regenerateWorkflow serves POST /workflows/{id}/regenerate: a new key,
// shown once; the old one is refused at once or after the grace period.
func (h *Handler) regenerateWorkflow(w http.ResponseWriter, r *http.Request, p []string) error {
	id := p[0]
	grace, err := readGrace(r)
	if err != nil {
		return err
	}
	key, err := h.reg.Regenerate(r.Context(), id, grace.Std())
	if err != nil {
		return wrapResource("workflow", id, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "url": h.workflowURL(r, id, key), "key": key})
	return nil
}

// workflowSchema serves GET /workflows/{id}/schema: the effective JSON
// Schema (for a sample, the schema inferred from it).
func (h *Handler) workflowSchema(w http.ResponseWriter, _ *http.Request, p []string) error {
	cw, err := h.workflow(p[0])
	if err != nil {
		return err
	}
	if cw.Contract == nil {
		return notFound("workflow %q has no contract (no sample or schema): its body must be empty", p[0])
	}
	w.Header().Set("Content-Type", "application/schema+json")
	setValidatorHeaders(w.Header(), cw.Contract)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(cw.Contract.JSONSchema())
	return nil
}

// setValidatorHeaders tells which validator decides on the request path
// (schema.ValidatorFast or schema.ValidatorEngine) and, for the engine, why;
// the body of GET /workflows/{id}/schema stays the schema itself.
func setValidatorHeaders(h http.Header, c *schema.Contract) {
	h.Set("X-Hookgate-Validator", c.Validator())
	if reason := c.FallbackReason(); reason != "" {
		h.Set("X-Hookgate-Fallback-Reason", reason)
	}
}

// Outcomes of a workflow dry run: what the ingress would do.
const (
	outcomeInvalid     = "invalid"     // refused: method, size, signature, content type, decoding or contract
	outcomeFiltered    = "filtered"    // 202 filtered
	outcomeAccepted    = "accepted"    // 202, forwarded to the targets
	outcomePassthrough = "passthrough" // passed to the next Caddy handler
	outcomeHandshake   = "handshake"   // a provider's handshake, answered by the ingress
)

// Signature verdicts of a dry run (ingress.Signature*).
const (
	sigNone     = ingress.SignatureNone
	sigVerified = ingress.SignatureVerified
	sigFailed   = ingress.SignatureFailed
	sigSkipped  = ingress.SignatureSkipped
)

// dryRunMethodHeader sets the method of the webhook a dry run simulates
// (default POST).
const dryRunMethodHeader = "X-Hookgate-Method"

// testResult is the answer of a workflow dry run.
type testResult struct {
	Valid         bool           `json:"valid"`
	Errors        []schema.Error `json:"errors"`
	FilterMatched bool           `json:"filter_matched"`
	FilterError   string         `json:"filter_error,omitempty"`
	Targets       []string       `json:"targets"`
	Outcome       string         `json:"outcome"`
	// Status is what the ingress would answer (0: passed to the next
	// handler); Reason is its outcome as counted in metrics.
	Status int    `json:"status"`
	Reason string `json:"reason"`
	// Signature is the signature check's verdict: none, verified, failed,
	// or skipped when the request did not send the provider's headers.
	Signature      string `json:"signature"`
	SignatureError string `json:"signature_error,omitempty"`
	// Validator is the contract's request-path validator, "fast" or
	// "engine" ("" without a contract); FallbackReason says why "engine".
	Validator      string `json:"validator,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
}

// testWorkflow serves POST /workflows/{id}/test: a dry run of the request
// as a webhook of the workflow, decided by ingress.Decide as on the request
// path: its body, content type, headers (but Authorization, which carries
// the API token) and query; the method is X-Hookgate-Method (default POST).
// A signature check is skipped when the request sends none of the
// provider's headers (ingress.Check.DryRun). Nothing is written.
func (h *Handler) testWorkflow(w http.ResponseWriter, r *http.Request, p []string) error {
	cw, err := h.workflow(p[0])
	if err != nil {
		return err
	}
	hook := r.Clone(r.Context())
	hook.Method = http.MethodPost
	if m := r.Header.Get(dryRunMethodHeader); m != "" {
		hook.Method = strings.ToUpper(m)
	}
	hook.Header.Del(dryRunMethodHeader)
	hook.Header.Del("Authorization")
	d := ingress.Decide(hook, cw, ingress.Check{Now: time.Now(), DryRun: true})
	if d.Outcome == ingress.OutcomeOverBound {
		// As the ingress: a 422 naming the bound (see errorAnswer).
		return fmt.Errorf("filter went over its evaluation bound on this payload: %w", d.FilterErr)
	}
	res := testResult{
		Valid: true, Errors: []schema.Error{}, Targets: []string{}, FilterMatched: d.FilterMatched,
		Status: d.Status, Reason: d.Outcome, Signature: d.Signature,
	}
	if d.SignatureErr != nil {
		res.SignatureError = d.SignatureErr.Error()
	}
	if d.FilterErr != nil {
		res.FilterError = d.FilterErr.Error()
	}
	if cw.Contract != nil {
		res.Validator, res.FallbackReason = cw.Contract.Validator(), cw.Contract.FallbackReason()
	}
	switch {
	case len(d.ContractErrors) > 0:
		res.Valid = false
		res.Errors = append(res.Errors, d.ContractErrors...)
	case d.Outcome == ingress.OutcomeHandshake, d.Outcome == ingress.OutcomeFiltered, d.Passed():
	default:
		res.Valid = false
		msg := http.StatusText(d.Status)
		if eb, ok := d.Response.(ingress.ErrorBody); ok {
			msg = eb.Error
		}
		res.Errors = append(res.Errors, schema.Error{Path: "", Message: msg})
	}
	switch {
	case !res.Valid:
		res.Outcome = outcomeInvalid
	case d.Outcome == ingress.OutcomeHandshake:
		res.Outcome = outcomeHandshake
	case !res.FilterMatched:
		res.Outcome = outcomeFiltered
	case len(cw.Targets) == 0:
		res.Outcome, res.Reason = outcomePassthrough, ingress.OutcomePassed
	default:
		res.Outcome, res.Status, res.Reason = outcomeAccepted, http.StatusAccepted, ingress.OutcomeAccepted
		for _, t := range cw.Targets {
			res.Targets = append(res.Targets, t.URL)
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// readPatch reads a JSON merge patch: a JSON object whose non-null members
// must be fields of shape (unknown fields are refused with 400).
func readPatch(r *http.Request, shape any) (map[string]json.RawMessage, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := unmarshalBody(b, &generic, false); err != nil {
		return nil, err
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, badRequest("a merge patch must be a JSON object")
	}
	stripped, _ := json.Marshal(stripNulls(generic))
	if err := registry.StrictUnmarshal(stripped, shape); err != nil {
		return nil, badRequest("invalid patch: %v", err)
	}
	var patch map[string]json.RawMessage
	_ = json.Unmarshal(b, &patch)
	return patch, nil
}

// stripNulls removes the null members of objects (deletions, in a merge
// patch), so the rest can be checked against the resource's shape.
func stripNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if x != nil {
				out[k] = stripNulls(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = stripNulls(x)
		}
		return out
	}
	return v
}
