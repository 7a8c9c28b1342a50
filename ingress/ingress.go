// Package ingress is the request path of incoming webhooks: it checks a
// request against its workflow (key, method, size, provider signature and
// handshakes, content type, contract, filter, idempotency) and either
// writes the event to the durable stream for its targets or lets the
// request through to the app.
//
// The package imports nothing from Caddy; module/ wraps it in a handler.
package ingress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/internal/jsonvalue"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/schema"
	"github.com/hookgate/hookgate/signature"
)

// Outcomes, as counted in metrics.
const (
	OutcomeAccepted     = "accepted"
	OutcomePassed       = "passed"
	OutcomeFiltered     = "filtered"
	OutcomeDuplicate    = "duplicate"
	OutcomeUnauthorized = "unauthorized"
	OutcomeMethod       = "method_not_allowed"
	OutcomeTooLarge     = "too_large"
	OutcomeMediaType    = "unsupported_media_type"
	OutcomeBadJSON      = "bad_json"
	OutcomeInvalid      = "invalid"
	OutcomeSignature    = "bad_signature"
	// OutcomeStale: the signed timestamp is outside the tolerance (a replay).
	OutcomeStale = "stale_signature"
	// OutcomeHandshake: a provider's endpoint handshake (Slack
	// url_verification, Zoom endpoint.url_validation), answered here.
	OutcomeHandshake = "handshake"
	// OutcomeBadForm: a form-encoded body that does not parse.
	OutcomeBadForm     = "bad_form"
	OutcomeUnavailable = "unavailable"
	OutcomeNotFound    = "not_found"
	// OutcomeOverBound: the filter went over an evaluation bound
	// (filters.LimitError) on this request.
	OutcomeOverBound = "over_bound"
)

// Result is what the ingress decided for a request.
type Result struct {
	// Status is the HTTP status to answer (0 when Pass).
	Status int
	// Response is the JSON body to answer with, unless Answer is set.
	Response any
	// Answer, when set, is the workflow's own answer (its respond option):
	// Status and Answer.Body replace the default JSON.
	Answer *registry.Answer
	// Pass means: hand the request, with Body, to the next handler.
	Pass bool
	// Body is the request body as read.
	Body []byte
	// EventID identifies the event (accepted, duplicate or passed).
	EventID string
	// Workflow is the authenticated workflow (nil when refused before).
	Workflow *registry.CompiledWorkflow
	// Outcome names the result for metrics.
	Outcome string
	// Err is an internal error to log (503).
	Err error
	// Claimed means the request's idempotency value was recorded before
	// passing it on: Release it when the next handler fails, so that the
	// sender's retry is not refused as a duplicate.
	Claimed bool
}

// ErrorBody is the JSON shape of every ingress error.
type ErrorBody struct {
	Error  string         `json:"error"`
	Errors []schema.Error `json:"errors,omitempty"`
}

// StatusBody is the JSON shape of a success.
type StatusBody struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
}

// unauthorized is the one answer for unknown workflows and wrong keys.
var unauthorized = ErrorBody{Error: "unknown workflow or invalid key"}

// Ingress checks and accepts incoming webhooks.
type Ingress struct {
	Registry *registry.Registry
	Pipeline *delivery.Pipeline
	// Dedupe remembers the idempotency values of passed-on requests; nil
	// passes every request on.
	Dedupe *Deduper
	Logger *zap.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Split reads "{workflow}/{key}" or "{workflow}" from the path after the
// ingress prefix.
func Split(rest string) (workflow, key string) {
	rest = strings.TrimPrefix(rest, "/")
	workflow, key, _ = strings.Cut(rest, "/")
	key = strings.TrimSuffix(key, "/")
	return workflow, key
}

// KeyFromHeaders returns the key sent in X-Webhook-Key or Authorization:
// Bearer, for senders that cannot put it in the URL.
func KeyFromHeaders(h http.Header) string {
	if k := h.Get("X-Webhook-Key"); k != "" {
		return k
	}
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// logger returns Logger, or a no-op logger when it is nil.
func (in *Ingress) logger() *zap.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return zap.NewNop()
}

func (in *Ingress) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// Signature verdicts of a Decision.
const (
	// SignatureNone: the workflow verifies no signature.
	SignatureNone = "none"
	// SignatureVerified: the request is signed with one of the secrets.
	SignatureVerified = "verified"
	// SignatureFailed: the signature is missing, wrong or stale.
	SignatureFailed = "failed"
	// SignatureSkipped: a dry run without the provider's signature headers
	// (see Check.DryRun): the check was not made.
	SignatureSkipped = "skipped"
)

// Check configures Decide.
type Check struct {
	// Now is the time signed timestamps are checked against.
	Now time.Time
	// DryRun is the workflow dry run of the management API. It changes no
	// verdict but two: a signature check that fails only because a
	// signature header is missing is skipped (SignatureSkipped), so that a
	// payload can be tried without signing it, while a request that sends
	// the headers gets the real verdict; and after a contract failure the
	// filter still runs, so its verdict is reported too (the decision
	// stays the contract's refusal).
	DryRun bool
	// decodeAll decides a JSON body on its whole decoded tree, as a dry
	// run does, even with a sample contract (tests: the reference the
	// parsed-document path is held equal to).
	decodeAll bool
}

// Decision is what the checks of a workflow's contract decided for a
// request, before anything is written: the request path (Handle) and the
// management API's dry run both decide with Decide.
type Decision struct {
	// Status and Outcome are the refusal (or handshake, or filtered
	// answer); Status 0 and Outcome "" mean the request passed every check
	// and is to be accepted or passed on.
	Status  int
	Outcome string
	// Response is the JSON body of Status.
	Response any
	// Body is the request body as read.
	Body []byte
	// Decoded is the body as the contract and filter saw it (nil without a
	// contract or when it did not decode); Form is set for a form body.
	// It is nil too when a JSON body was decided without decoding all of
	// it (a sample contract, outside a dry run): the contract checked the
	// parsed document, and the filter saw the members of body it reads.
	Decoded any
	Form    bool
	// Signature is the signature verdict (Signature* constants);
	// SignatureErr says why it failed or was skipped.
	Signature    string
	SignatureErr error
	// ContractErrors are the payload's schema failures.
	ContractErrors []schema.Error
	// FilterMatched is the filter's verdict (true without a filter); it is
	// false when the request was refused before the filter ran. FilterErr
	// is the filter's run-time error (the request is then not forwarded).
	FilterMatched bool
	FilterErr     error
}

// Passed reports whether the request passed every check.
func (d *Decision) Passed() bool { return d.Status == 0 }

// Decide runs the checks of workflow w on r: method, body size, signature
// (and the provider's handshake), content type, decoding (JSON, or a form
// as an object of strings), contract and filter. It reads r.Body (at most
// w.MaxBody bytes) and writes nothing.
func Decide(r *http.Request, w *registry.CompiledWorkflow, c Check) *Decision {
	d := new(Decision)
	decide(d, r, w, c)
	return d
}

// decide is Decide into d (Handle's is not allocated).
func decide(d *Decision, r *http.Request, w *registry.CompiledWorkflow, c Check) *Decision {
	d.Signature = SignatureNone
	fail := func(status int, outcome string, body ErrorBody) *Decision {
		d.Status, d.Outcome, d.Response = status, outcome, body
		return d
	}
	if !w.AllowsMethod(r.Method) {
		return fail(http.StatusMethodNotAllowed, OutcomeMethod,
			ErrorBody{Error: fmt.Sprintf("method %s not allowed: use %s", r.Method, strings.Join(w.Methods, ", "))})
	}
	if r.ContentLength > w.MaxBody {
		return fail(http.StatusRequestEntityTooLarge, OutcomeTooLarge, tooLarge(w))
	}
	body, err := readBody(r.Body, r.ContentLength, w.MaxBody)
	if errors.Is(err, errTooLarge) {
		return fail(http.StatusRequestEntityTooLarge, OutcomeTooLarge, tooLarge(w))
	}
	if err != nil {
		return fail(http.StatusBadRequest, OutcomeBadJSON, ErrorBody{Error: "reading body: " + err.Error()})
	}
	d.Body = body

	if w.Verifier != nil {
		err := w.Verifier.Verify(r, body, c.Now)
		switch {
		case err != nil && c.DryRun && errors.Is(err, signature.ErrMissingHeader):
			d.Signature, d.SignatureErr = SignatureSkipped, err
		case err != nil:
			outcome := OutcomeSignature
			if errors.Is(err, signature.ErrOutsideTolerance) {
				outcome = OutcomeStale
			}
			d.Signature, d.SignatureErr = SignatureFailed, err
			return fail(http.StatusUnauthorized, outcome, ErrorBody{Error: err.Error()})
		default:
			d.Signature = SignatureVerified
			if hs, ok := w.Verifier.(signature.Handshaker); ok {
				if answer, ok := hs.Handshake(r, body); ok {
					d.Status, d.Outcome, d.Response = http.StatusOK, OutcomeHandshake, answer
					return d
				}
			}
		}
	}

	if w.Contract == nil {
		if len(body) > 0 {
			return fail(http.StatusUnprocessableEntity, OutcomeInvalid, ErrorBody{Error: "this workflow has no payload contract: the body must be empty"})
		}
	} else {
		ct := r.Header.Get("Content-Type")
		switch jsonType, formType := mediaType(ct); {
		case jsonType && !c.DryRun && !c.decodeAll && w.Contract.ValidatesDocs():
			// The contract checks the parsed document as it is, and the
			// filter gets only the members of body it reads: no tree of
			// the whole body is built.
			doc, err := jsonvalue.Parse(body)
			if err != nil {
				return fail(http.StatusBadRequest, OutcomeBadJSON, ErrorBody{Error: "body is not valid JSON: " + err.Error()})
			}
			if errs, _ := w.Contract.ValidateDoc(doc); len(errs) > 0 {
				doc.Release()
				d.ContractErrors = errs
				return fail(http.StatusUnprocessableEntity, OutcomeInvalid, ErrorBody{Error: "payload does not match the workflow's contract", Errors: errs})
			}
			if w.Filter == nil {
				doc.Release()
				return d.filter(r, w, nil)
			}
			pr := projections.Get().(*projection)
			part := pr.project(doc, jsonvalue.Root, w.Filter.BodySelection())
			doc.Release()
			d.filter(r, w, part)
			pr.release() // the filter kept nothing of part
			return d
		case jsonType:
			if d.Decoded, err = jsonvalue.Decode(body); err != nil {
				return fail(http.StatusBadRequest, OutcomeBadJSON, ErrorBody{Error: "body is not valid JSON: " + err.Error()})
			}
		case formType:
			form, err := DecodeForm(body)
			if err != nil {
				return fail(http.StatusBadRequest, OutcomeBadForm, ErrorBody{Error: "body is not a valid form: " + err.Error()})
			}
			d.Decoded, d.Form = form, true
		default:
			return fail(http.StatusUnsupportedMediaType, OutcomeMediaType, ErrorBody{Error: "Content-Type must be application/json or application/x-www-form-urlencoded"})
		}
		if errs := w.Contract.Validate(d.Decoded); len(errs) > 0 {
			d.ContractErrors = errs
			fail(http.StatusUnprocessableEntity, OutcomeInvalid, ErrorBody{Error: "payload does not match the workflow's contract", Errors: errs})
			if !c.DryRun {
				return d
			}
		}
	}

	return d.filter(r, w, d.Decoded)
}

// filter runs w's filter on r with body (the decoded body, or its part the
// filter reads), after the other checks.
func (d *Decision) filter(r *http.Request, w *registry.CompiledWorkflow, body any) *Decision {
	fail := func(status int, outcome string, body ErrorBody) *Decision {
		d.Status, d.Outcome, d.Response = status, outcome, body
		return d
	}
	d.FilterMatched = true
	if w.Filter != nil {
		refused := d.Status != 0
		var env filters.Request // Match does not keep it: no allocation
		fillRequestEnv(&env, r, w, body)
		matched, err := w.Filter.Match(&env)
		d.FilterMatched, d.FilterErr = matched, err
		if le := filters.AsLimit(err); le != nil {
			// This body makes the filter too costly to decide: refuse it,
			// naming the bound, rather than guess a verdict.
			d.FilterMatched = false
			return fail(http.StatusUnprocessableEntity, OutcomeOverBound,
				ErrorBody{Error: "the workflow's filter went over its evaluation bound on this payload: " + le.Error()})
		}
		if !matched && !refused {
			d.Status, d.Outcome = http.StatusAccepted, OutcomeFiltered
			d.Response = StatusBody{Status: "filtered"}
		}
	}
	return d
}

// projection makes the objects of a projected body (project). They live
// only while the filter runs, which keeps nothing of them: then they are
// emptied and kept for the next request.
type projection struct {
	maps []map[string]any
	used int
}

var projections = sync.Pool{New: func() any { return new(projection) }}

// maxPooledMembers is the most members a pooled object of a projection is
// made for; objects selecting more are made for the request alone.
const maxPooledMembers = 8

// newMap returns an empty object for at most maxPooledMembers members.
func (p *projection) newMap() map[string]any {
	if p.used == len(p.maps) {
		p.maps = append(p.maps, make(map[string]any, maxPooledMembers))
	}
	m := p.maps[p.used]
	p.used++
	return m
}

// release empties the objects made and puts the projection back.
func (p *projection) release() {
	for _, m := range p.maps[:p.used] {
		clear(m)
	}
	p.used = 0
	if len(p.maps) > 64 {
		p.maps = p.maps[:64] // one odd filter does not keep a large pool
	}
	projections.Put(p)
}

// project returns node r of doc as the filter with selection sel sees it:
// the whole value, or, for an object of which sel names members, an object
// of those members present in it (the last of duplicates), each projected.
// The filter's verdict and errors are those on the whole value (see
// filters.Selection).
func (p *projection) project(doc *jsonvalue.Doc, r jsonvalue.Ref, sel *filters.Selection) any {
	if sel.Whole || doc.Kind(r) != jsonvalue.Object {
		return doc.Value(r)
	}
	var m map[string]any
	if len(sel.Members) <= maxPooledMembers {
		m = p.newMap()
	} else {
		m = make(map[string]any, len(sel.Members))
	}
	if doc.Len(r)*len(sel.Members) <= maxLookups {
		for name, s := range sel.Members {
			if c, ok := doc.Lookup(r, name); ok {
				m[name] = p.project(doc, c, s)
			}
		}
		return m
	}
	// Many members and many names: one pass over the members, the last
	// of duplicates kept.
	last := make(map[string]jsonvalue.Ref, len(sel.Members))
	c := doc.First(r)
	for range doc.Len(r) {
		if _, ok := sel.Members[doc.Key(c)]; ok {
			last[doc.Key(c)] = c
		}
		c = doc.Next(c)
	}
	for name, c := range last {
		m[name] = p.project(doc, c, sel.Members[name])
	}
	return m
}

// maxLookups bounds the key comparisons project makes by looking each
// selected name up among an object's members.
const maxLookups = 512

// tooLarge is the refusal of a body over w's max_body.
func tooLarge(w *registry.CompiledWorkflow) ErrorBody {
	return ErrorBody{Error: fmt.Sprintf("body larger than the workflow's max_body of %d bytes", w.MaxBody)}
}

// Handle runs every check of the contract on r for workflow id and key
// (Decide), writes the event when the workflow has targets, and returns the
// result. It never writes to a ResponseWriter: the caller does.
func (in *Ingress) Handle(r *http.Request, id, key string) *Result {
	if key == "" {
		key = KeyFromHeaders(r.Header)
	}
	now := in.now() // the request's time: for its key and its signature
	w, ok := in.Registry.Authenticate(id, key, now)
	if !ok {
		return &Result{Status: http.StatusUnauthorized, Response: unauthorized, Outcome: OutcomeUnauthorized}
	}
	res := &Result{Workflow: w}
	fail := func(status int, outcome string, body ErrorBody) *Result {
		res.Status, res.Outcome, res.Response = status, outcome, body
		return res
	}
	var dec Decision
	d := decide(&dec, r, w, Check{Now: now})
	res.Body = d.Body
	switch le := filters.AsLimit(d.FilterErr); {
	case le != nil:
		in.logger().Warn("filter went over an evaluation bound: request refused",
			zap.String("workflow", w.Def.ID), zap.String("bound", le.Limit), zap.Error(d.FilterErr))
	case d.FilterErr != nil:
		in.logger().Warn("filter failed at run time: request not forwarded",
			zap.String("workflow", w.Def.ID), zap.Error(d.FilterErr))
	}
	if !d.Passed() {
		res.Status, res.Outcome, res.Response = d.Status, d.Outcome, d.Response
		if d.Outcome == OutcomeFiltered {
			return res.answer(respondFiltered)
		}
		return res
	}
	decoded, form := d.Decoded, d.Form
	body := d.Body

	idempotent := false
	if h := w.Def.IdempotencyHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			res.EventID = IdempotentEventID(w.Def.ID, v)
			idempotent = true
		}
	}
	if len(w.Targets) == 0 {
		if res.EventID == "" {
			res.EventID = delivery.NewEventID()
		}
		if idempotent && in.Dedupe != nil {
			first, err := in.Dedupe.Claim(r.Context(), res.EventID)
			if err != nil {
				res.Err = err
				return fail(http.StatusServiceUnavailable, OutcomeUnavailable, ErrorBody{Error: "the request could not be checked for duplicates; retry later"})
			}
			if !first {
				res.Status, res.Outcome = http.StatusOK, OutcomeDuplicate
				res.Response = StatusBody{ID: res.EventID, Status: "duplicate"}
				return res.answer(respondDuplicate)
			}
			res.Claimed = true
		}
		res.Pass, res.Outcome = true, OutcomePassed
		return res
	}
	data := body
	if form {
		// Targets receive JSON: the form as the contract and filter saw
		// it. An object of strings always marshals.
		data, _ = json.Marshal(decoded)
	}
	if len(data) == 0 {
		data = nil
	}
	ev := &delivery.Event{ID: res.EventID, Workflow: w.Def.ID, Data: data, Time: in.now().UTC()}
	if tp := r.Header.Get("Traceparent"); delivery.ValidTraceparent(tp) {
		ev.Traceparent = tp
	}
	dup, err := in.Pipeline.Publish(r.Context(), ev)
	if err != nil {
		res.Err = err
		return fail(http.StatusServiceUnavailable, OutcomeUnavailable, ErrorBody{Error: "the event could not be stored; retry later"})
	}
	res.EventID = ev.ID // made from the event's place in the stream when it had none
	if dup {
		res.Status, res.Outcome = http.StatusOK, OutcomeDuplicate
		res.Response = StatusBody{ID: res.EventID, Status: "duplicate"}
		return res.answer(respondDuplicate)
	}
	res.Status, res.Outcome = http.StatusAccepted, OutcomeAccepted
	res.Response = StatusBody{ID: res.EventID, Status: "accepted"}
	return res.answer(respondAccepted)
}

// Kinds of answers a workflow's respond option may replace.
const (
	respondAccepted = iota
	respondFiltered
	respondDuplicate
)

// answer applies the workflow's own answer of that kind, when it has one.
func (res *Result) answer(kind int) *Result {
	r := res.Workflow.Def.Respond
	if r == nil {
		return res
	}
	a := [...]*registry.Answer{respondAccepted: r.Accepted, respondFiltered: r.Filtered, respondDuplicate: r.Duplicate}[kind]
	if a != nil {
		res.Status, res.Answer = a.Status, a
	}
	return res
}

// Release forgets the idempotency value of a passed-on request that the next
// handler failed to take (see Result.Claimed).
func (in *Ingress) Release(ctx context.Context, res *Result) error {
	if !res.Claimed || in.Dedupe == nil {
		return nil
	}
	return in.Dedupe.Release(ctx, res.EventID)
}

// IdempotentEventID derives the event id of a request from its workflow and
// idempotency header value, so retries of one webhook share one id.
func IdempotentEventID(workflow, value string) string {
	h := sha256.Sum256([]byte(workflow + "\x00" + value))
	return "idem_" + hex.EncodeToString(h[:16])
}

// RequestEnv builds the filter environment of a request. The header and
// query maps are built only when the workflow's filter reads them.
func RequestEnv(r *http.Request, w *registry.CompiledWorkflow, body any) *filters.Request {
	env := new(filters.Request)
	fillRequestEnv(env, r, w, body)
	return env
}

// fillRequestEnv is RequestEnv into env.
func fillRequestEnv(env *filters.Request, r *http.Request, w *registry.CompiledWorkflow, body any) {
	*env = filters.Request{
		Body:     body,
		Method:   r.Method,
		Workflow: w.Info,
	}
	if w.FilterHeaders {
		env.Headers = make(map[string]string, len(r.Header))
		for k, v := range r.Header {
			if len(v) > 0 {
				env.Headers[strings.ToLower(k)] = v[0]
			}
		}
	}
	if w.FilterQuery {
		env.Query = map[string]string{}
		for k, v := range r.URL.Query() {
			if len(v) > 0 {
				env.Query[k] = v[0]
			}
		}
	}
}

var errTooLarge = errors.New("body too large")

// Body buffers start small and grow as bytes arrive: a Content-Length is a
// claim, not bytes, so it never sizes more than the first buffer.
const (
	// maxPrealloc is the most allocated up front for an announced length.
	maxPrealloc = 64 << 10
	// minBuffer is the first buffer of a body of unknown length.
	minBuffer = 512
)

// readBody reads at most limit bytes; more is errTooLarge, whether the
// length was announced or the body streamed. An announced length at or
// under the limit (net/http enforces it) is read up to that length; the
// buffer grows geometrically from min(size, 64 KiB) as bytes come in, so
// memory follows what arrived, never what was claimed.
func readBody(rc io.Reader, size, limit int64) ([]byte, error) {
	if rc == nil {
		return nil, nil
	}
	want := limit + 1 // one byte over the limit tells a body that is too large
	first := int64(minBuffer)
	if size >= 0 && size <= limit {
		want, first = size, size
	}
	b := make([]byte, 0, min(first, want, maxPrealloc))
	for int64(len(b)) < want {
		if len(b) == cap(b) {
			next := make([]byte, len(b), min(max(2*int64(cap(b)), minBuffer), want))
			copy(next, b)
			b = next
		}
		n, err := rc.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errTooLarge
			}
			return nil, err
		}
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	if size >= 0 && size <= limit && int64(len(b)) < size {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

// DecodeForm decodes an application/x-www-form-urlencoded body into the
// JSON object its contract and filter see: each name maps to its first
// value, a string.
func DecodeForm(body []byte) (map[string]any, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	obj := make(map[string]any, len(vals))
	for k, v := range vals {
		obj[k] = v[0]
	}
	return obj, nil
}

// IsForm reports whether contentType is application/x-www-form-urlencoded.
func IsForm(contentType string) bool {
	_, form := mediaType(contentType)
	return form
}

// mediaType reports whether contentType is JSON (application/json or any
// application/*+json type) or a form (application/x-www-form-urlencoded).
// The values senders nearly always send are known without
// mime.ParseMediaType, which allocates; any other value is parsed.
func mediaType(contentType string) (jsonType, formType bool) {
	switch contentType {
	case "":
		return false, false
	case "application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
		"application/json;charset=utf-8", "application/json;charset=UTF-8":
		return true, false
	case "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
		"application/x-www-form-urlencoded; charset=UTF-8", "application/x-www-form-urlencoded;charset=utf-8":
		return false, true
	}
	return parseMediaType(contentType)
}

// parseMediaType is mediaType with mime.ParseMediaType.
func parseMediaType(contentType string) (jsonType, formType bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false, false
	}
	jsonType = mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
	return jsonType, mt == "application/x-www-form-urlencoded"
}
