package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"github.com/hookgate/hookgate/delivery/destination"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/schema"
	"github.com/hookgate/hookgate/signature"
)

// Defaults applied when a resource leaves a field empty.
const (
	DefaultMaxBody = 1 << 20
	// MaxBodyCeiling is the largest max_body a workflow may set (64 MiB):
	// a body is held in memory while it is checked.
	MaxBodyCeiling     = 64 << 20
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 6
	DefaultRotateGrace = 24 * time.Hour
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidID reports whether s may be used as a workflow, subscription or event
// id: 1 to 128 letters, digits, '-' or '_'.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// NewID returns a random id with the given prefix (e.g. "sub_").
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// URLChecker decides whether a target URL may be used (the SSRF guard).
type URLChecker interface {
	CheckURL(raw string) error
}

// CompiledWorkflow is a workflow ready for the request path.
type CompiledWorkflow struct {
	Def      Workflow
	Info     filters.WorkflowInfo
	Contract *schema.Contract
	Filter   *filters.RequestPredicate
	// FilterHeaders and FilterQuery tell whether the filter may read the
	// headers or the query, so the request path builds those maps only then.
	FilterHeaders bool
	FilterQuery   bool
	Methods       []string
	MaxBody       int64
	Targets       []*destination.Destination
	// Fallback is the destination of the stored requests of a passthrough
	// workflow the app did not take; nil when it has none.
	Fallback *destination.Destination
	// Verifier checks the provider signature of every request when set.
	Verifier  signature.Verifier
	fixedHash *[32]byte
}

// AllowsMethod reports whether method is accepted.
func (w *CompiledWorkflow) AllowsMethod(method string) bool {
	return slices.Contains(w.Methods, method)
}

// CompileWorkflow validates w and compiles its contract, filter and targets.
// Errors are *InvalidError naming the field.
func CompileWorkflow(w Workflow, guard URLChecker) (*CompiledWorkflow, error) {
	if !ValidID(w.ID) {
		return nil, invalid("id", "%q must be 1 to 128 letters, digits, '-' or '_'", w.ID)
	}
	if w.Name == "" {
		w.Name = w.ID
	}
	cw := &CompiledWorkflow{Info: filters.WorkflowInfo{ID: w.ID, Name: w.Name}}
	var err error
	switch {
	case len(w.Sample) > 0 && len(w.Schema) > 0:
		return nil, invalid("sample", "a workflow has a sample or a schema, not both")
	case len(w.Sample) > 0:
		if cw.Contract, err = schema.FromSample(w.Sample, w.Strict); err != nil {
			return nil, invalid("sample", "%v", err)
		}
	case len(w.Schema) > 0:
		if cw.Contract, err = schema.FromSchema(w.Schema, w.SchemaLocation); err != nil {
			return nil, invalid("schema", "%v", err)
		}
	}
	if w.Filter != "" {
		if cw.Filter, err = filters.CompileRequestPredicate(w.Filter); err != nil {
			return nil, invalid("filter", "%v", err)
		}
		cw.FilterHeaders = strings.Contains(w.Filter, "headers")
		cw.FilterQuery = strings.Contains(w.Filter, "query")
	}
	cw.Methods = []string{http.MethodPost}
	if len(w.Methods) > 0 {
		cw.Methods = cw.Methods[:0]
		for _, m := range w.Methods {
			m = strings.ToUpper(strings.TrimSpace(m))
			if m == "" || strings.ContainsAny(m, " \t/") {
				return nil, invalid("methods", "invalid method %q", m)
			}
			cw.Methods = append(cw.Methods, m)
		}
	}
	cw.MaxBody = w.MaxBody
	if cw.MaxBody > MaxBodyCeiling {
		return nil, invalid("max_body", "%d bytes is over the ceiling of %d bytes (64 MiB)", w.MaxBody, MaxBodyCeiling)
	}
	if cw.MaxBody <= 0 {
		cw.MaxBody = DefaultMaxBody
	}
	if err := checkMax("grace", w.Grace, MaxGrace); err != nil {
		return nil, err
	}
	if err := checkHeaderName("idempotency_header", w.IdempotencyHeader); err != nil {
		return nil, err
	}
	if len(w.Targets) > MaxTargets {
		return nil, invalid("targets", "%d targets is over the maximum of %d", len(w.Targets), MaxTargets)
	}
	if w.Verify != nil {
		if cw.Verifier, err = compileVerify(w.Verify); err != nil {
			return nil, err
		}
	}
	if len(w.Targets) > 0 {
		targets := make([]Target, len(w.Targets))
		seen := make(map[string]int, len(w.Targets))
		for i, t := range w.Targets {
			if t.ID == "" {
				t.ID = TargetID(t.Method, t.URL)
			}
			if j, dup := seen[t.ID]; dup {
				return nil, invalid(fmt.Sprintf("targets[%d].id", i), "%q is also the id of targets[%d]: give one of them another id", t.ID, j)
			}
			seen[t.ID] = i
			d, err := compileTarget(w.ID, i, t, guard)
			if err != nil {
				return nil, err
			}
			targets[i] = t
			cw.Targets = append(cw.Targets, d)
		}
		w.Targets = targets
	}
	if w.Fallback != nil {
		if cw.Fallback, err = compileFallback(&w, guard); err != nil {
			return nil, err
		}
	}
	if r := w.Respond; r != nil {
		for _, a := range []struct {
			field string
			a     *Answer
		}{{"respond.accepted", r.Accepted}, {"respond.filtered", r.Filtered}, {"respond.duplicate", r.Duplicate}} {
			if err := checkAnswer(a.field, a.a); err != nil {
				return nil, err
			}
		}
	}
	if w.FixedKey != "" {
		h := HashKey(w.FixedKey)
		cw.fixedHash = &h
	}
	cw.Def = w
	return cw, nil
}

// compileVerify builds the signature verifier of a workflow's verify block.
func compileVerify(v *Verify) (signature.Verifier, error) {
	if !slices.Contains(signature.Providers, v.Provider) {
		if v.Provider == "" {
			return nil, invalid("verify.provider", "required: one of %s", strings.Join(signature.Providers, ", "))
		}
		return nil, invalid("verify.provider", "unknown provider %.32q: use one of %s", v.Provider, strings.Join(signature.Providers, ", "))
	}
	switch {
	case len(v.Secrets) == 0:
		return nil, invalid("verify.secrets", "at least one secret is required")
	case len(v.Secrets) > signature.MaxSecrets:
		return nil, invalid("verify.secrets", "%d secrets is over the maximum of %d", len(v.Secrets), signature.MaxSecrets)
	}
	if v.Tolerance != 0 && !signature.Timestamped(v.Provider) {
		return nil, invalid("verify.tolerance", "%s signatures carry no timestamp: a tolerance does not apply", v.Provider)
	}
	if v.Tolerance < 0 {
		return nil, invalid("verify.tolerance", "must be positive")
	}
	if err := checkMax("verify.tolerance", v.Tolerance, signature.MaxTolerance); err != nil {
		return nil, err
	}
	for i, s := range v.Secrets {
		if s == "" {
			return nil, invalid(fmt.Sprintf("verify.secrets[%d]", i), "empty secret")
		}
	}
	vr, err := signature.New(v.Provider, v.Secrets, v.Tolerance.Std())
	if err != nil {
		return nil, invalid("verify.secrets", "%v", err)
	}
	return vr, nil
}

// compilePredicates compiles a list of event predicates; an error names
// the field, and the position when there are several.
func compilePredicates(field string, list Predicates) ([]*filters.EventPredicate, error) {
	if len(list) > MaxPredicates {
		return nil, invalid(field, "%d predicates is over the maximum of %d", len(list), MaxPredicates)
	}
	var out []*filters.EventPredicate
	for i, src := range list {
		name := field
		if len(list) > 1 {
			name = fmt.Sprintf("%s[%d]", field, i)
		}
		if strings.TrimSpace(src) == "" {
			return nil, invalid(name, "empty predicate")
		}
		p, err := filters.CompileEventPredicate(src)
		if err != nil {
			return nil, invalid(name, "%v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// checkSignature checks a subscription's signature scheme.
func checkSignature(sig *Signature) error {
	if sig == nil {
		return nil
	}
	switch sig.Scheme {
	case "", SchemeStandard:
		if sig.Header != "" || sig.Encoding != "" || sig.Prefix != "" {
			return invalid("signature", "header, encoding and prefix are for scheme %q", SchemeHMAC)
		}
	case SchemeHMAC:
		if sig.Header == "" {
			return invalid("signature.header", "required for scheme %q", SchemeHMAC)
		}
		if err := checkHeaderName("signature.header", sig.Header); err != nil {
			return err
		}
		if sig.Encoding != "" && sig.Encoding != EncodingHex && sig.Encoding != EncodingBase64 {
			return invalid("signature.encoding", "%q: use %q or %q", sig.Encoding, EncodingHex, EncodingBase64)
		}
		if len(sig.Prefix) > 64 || strings.ContainsAny(sig.Prefix, "\r\n\x00") {
			return invalid("signature.prefix", "at most 64 characters, without CR, LF or NUL")
		}
	default:
		return invalid("signature.scheme", "%q: use %q or %q", sig.Scheme, SchemeStandard, SchemeHMAC)
	}
	return nil
}

// MaxAnswerBody is the largest body a workflow's answer may have (4 KiB).
const MaxAnswerBody = 4 << 10

// checkAnswer checks a workflow's own answer: a 2xx status (a sender must
// not retry what was taken) and a short body.
func checkAnswer(field string, a *Answer) error {
	if a == nil {
		return nil
	}
	if a.Status < 200 || a.Status > 299 {
		return invalid(field+".status", "%d: must be a 2xx status (200 to 299)", a.Status)
	}
	if len(a.Body) > MaxAnswerBody {
		return invalid(field+".body", "%d bytes is over the maximum of %d", len(a.Body), MaxAnswerBody)
	}
	return nil
}

// TargetID is the default id of a workflow target: the first 8 hex digits
// of the SHA-256 of its method (POST when empty) and URL.
func TargetID(method, url string) string {
	if method == "" {
		method = http.MethodPost
	}
	sum := sha256.Sum256([]byte(strings.ToUpper(method) + " " + url))
	return hex.EncodeToString(sum[:4])
}

// TargetDestinationID is the destination id of a workflow's target.
func TargetDestinationID(workflow, target string) string {
	return "wf=" + workflow + "=" + target
}

func compileTarget(workflow string, i int, t Target, guard URLChecker) (*destination.Destination, error) {
	field := fmt.Sprintf("targets[%d]", i)
	if !ValidID(t.ID) {
		return nil, invalid(field+".id", "%q must be 1 to 128 letters, digits, '-' or '_'", t.ID)
	}
	if t.URL == "" {
		return nil, invalid(field+".url", "required")
	}
	if guard != nil {
		if err := guard.CheckURL(t.URL); err != nil {
			return nil, invalid(field+".url", "%v", err)
		}
	}
	if err := checkHeaders(field+".headers", t.Headers); err != nil {
		return nil, err
	}
	if err := checkMax(field+".timeout", t.Timeout, MaxTimeout); err != nil {
		return nil, err
	}
	if err := checkSchedule(field+".retry_schedule", t.RetrySchedule); err != nil {
		return nil, err
	}
	flow, err := compileFlow(field+".", t.FlowControl)
	if err != nil {
		return nil, err
	}
	d := &destination.Destination{
		Flow:        flow,
		ID:          TargetDestinationID(workflow, t.ID),
		WorkflowID:  workflow,
		URL:         t.URL,
		Method:      strings.ToUpper(t.Method),
		Headers:     t.Headers,
		Timeout:     t.Timeout.Std(),
		MaxAttempts: DefaultMaxAttempts,
		Enabled:     true,
	}
	if d.Method == "" {
		d.Method = http.MethodPost
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if len(t.RetrySchedule) > 0 {
		for _, s := range t.RetrySchedule {
			d.Schedule = append(d.Schedule, s.Std())
		}
		d.MaxAttempts = len(d.Schedule) + 1
	}
	env := t.Envelope
	if env == "" || env == "raw" {
		d.PassBody = true
		env = "raw"
	}
	if d.Envelope, err = filters.CompileEnvelope(env); err != nil {
		return nil, invalid(field+".envelope", "%v", err)
	}
	if t.Secret != "" {
		k, err := signature.ParseSecret(t.Secret)
		if err != nil {
			return nil, invalid(field+".secret", "%v", err)
		}
		d.Keys = [][]byte{k}
		d.Secret = t.Secret
	}
	return d, nil
}

// CompiledTopic is a topic ready for publishing.
type CompiledTopic struct {
	Def      Topic
	Contract *schema.Contract
}

// CompileTopic validates t and compiles its schema.
func CompileTopic(t Topic) (*CompiledTopic, error) {
	if t.Name == "" || strings.ContainsAny(t.Name, " \t\r\n*>") || len(t.Name) > 256 {
		return nil, invalid("name", "%q must be 1 to 256 characters without spaces, '*' or '>'", t.Name)
	}
	ct := &CompiledTopic{Def: t}
	if len(t.Schema) > 0 {
		var err error
		if ct.Contract, err = schema.FromSchema(t.Schema, t.SchemaLocation); err != nil {
			return nil, invalid("schema", "%v", err)
		}
	}
	return ct, nil
}

// CompiledSubscription is a subscription ready for fan-out and delivery.
type CompiledSubscription struct {
	Def Subscription
	// Include and Exclude are the compiled predicates, in the order of
	// Def.Include and Def.Exclude; nil when there are none.
	Include []*filters.EventPredicate
	Exclude []*filters.EventPredicate
	Dest    *destination.Destination
	// previousUntil is when the previous secret of an API subscription
	// stops signing (zero when it has none).
	previousUntil time.Time
}

// MatchesTopic reports whether the subscription's topics cover topic.
func (s *CompiledSubscription) MatchesTopic(topic string) bool {
	return TopicsMatch(s.Def.Topics, topic)
}

// TopicsMatch reports whether patterns (exact names, "prefix.*" or "*")
// cover topic.
func TopicsMatch(patterns []string, topic string) bool {
	for _, p := range patterns {
		switch {
		case p == "*" || p == topic:
			return true
		case strings.HasSuffix(p, ".*") && strings.HasPrefix(topic, p[:len(p)-1]):
			return true
		}
	}
	return false
}

// PredicateMatch is how a subscription's predicates judge one event.
type PredicateMatch struct {
	// Include: no include predicates, or one of them matched.
	Include bool
	// Exclude: one of the exclude predicates matched.
	Exclude bool
	// IncludeIndex and ExcludeIndex are the positions of the first
	// matching include and exclude predicates; -1 when none matched.
	IncludeIndex, ExcludeIndex int
	// IncludeErr and ExcludeErr are the first run-time errors of each
	// list (a predicate that fails counts as not matched).
	IncludeErr, ExcludeErr error
}

// Match judges ev with the include and exclude predicates, each list in
// order up to its first match.
func (s *CompiledSubscription) Match(ev *filters.Event) PredicateMatch {
	m := PredicateMatch{Include: len(s.Include) == 0, IncludeIndex: -1, ExcludeIndex: -1}
	m.IncludeIndex, m.IncludeErr = firstMatch(s.Include, ev)
	if m.IncludeIndex >= 0 {
		m.Include = true
	}
	m.ExcludeIndex, m.ExcludeErr = firstMatch(s.Exclude, ev)
	m.Exclude = m.ExcludeIndex >= 0
	return m
}

// firstMatch returns the position of the first predicate matching ev (-1
// for none) and the first run-time error met before it.
func firstMatch(list []*filters.EventPredicate, ev *filters.Event) (int, error) {
	var first error
	for i, p := range list {
		ok, err := p.Match(ev)
		if err != nil {
			if first == nil {
				first = fmt.Errorf(": %w", err)
				if len(list) > 1 {
					first = fmt.Errorf("[%d]: %w", i, err)
				}
			}
			continue
		}
		if ok {
			return i, first
		}
	}
	return -1, first
}

// Predicates reports how the include and exclude predicates judge ev: the
// event must match one include predicate (when there are any) and no
// exclude predicate. A predicate that fails at run time counts as not
// matched; err is the first such failure.
func (s *CompiledSubscription) Predicates(ev *filters.Event) (include, exclude bool, err error) {
	m := s.Match(ev)
	switch {
	case m.IncludeErr != nil:
		err = fmt.Errorf("include%w", m.IncludeErr)
	case m.ExcludeErr != nil:
		err = fmt.Errorf("exclude%w", m.ExcludeErr)
	}
	return m.Include, m.Exclude, err
}

// CompileSubscription validates s and compiles its predicates and envelope.
// previous, when non-empty, is a secret still valid during a rotation.
func CompileSubscription(s Subscription, previous string, guard URLChecker) (*CompiledSubscription, error) {
	if !ValidID(s.ID) {
		return nil, invalid("id", "%q must be 1 to 128 letters, digits, '-' or '_'", s.ID)
	}
	if strings.TrimSpace(s.Name) == "" {
		return nil, invalid("name", "required")
	}
	if len(s.Topics) == 0 {
		return nil, invalid("topics", "at least one topic (or \"*\") is required")
	}
	if len(s.Topics) > MaxTopicPatterns {
		return nil, invalid("topics", "%d topics is over the maximum of %d", len(s.Topics), MaxTopicPatterns)
	}
	for _, t := range s.Topics {
		if t == "" || (strings.Contains(t, "*") && t != "*" && !(strings.HasSuffix(t, ".*") && strings.Count(t, "*") == 1)) {
			return nil, invalid("topics", "%q: use an exact name, \"prefix.*\" or \"*\"", t)
		}
	}
	if s.URL == "" {
		return nil, invalid("url", "required")
	}
	if guard != nil {
		if err := guard.CheckURL(s.URL); err != nil {
			return nil, invalid("url", "%v", err)
		}
	}
	if s.MaxAttempts < 0 {
		return nil, invalid("max_attempts", "must not be negative")
	}
	if s.MaxAttempts > MaxAttempts {
		return nil, invalid("max_attempts", "%d is over the maximum of %d", s.MaxAttempts, MaxAttempts)
	}
	if err := checkMax("timeout", s.Timeout, MaxTimeout); err != nil {
		return nil, err
	}
	if err := checkSchedule("retry_schedule", s.RetrySchedule); err != nil {
		return nil, err
	}
	if err := checkHeaders("headers", s.Headers); err != nil {
		return nil, err
	}
	if err := checkHeaderName("secret_header", s.SecretHeader); err != nil {
		return nil, err
	}
	flow, err := compileFlow("", s.FlowControl)
	if err != nil {
		return nil, err
	}
	if err := checkSignature(s.Signature); err != nil {
		return nil, err
	}
	cs := &CompiledSubscription{Def: s}
	if cs.Include, err = compilePredicates("include", s.Include); err != nil {
		return nil, err
	}
	if cs.Exclude, err = compilePredicates("exclude", s.Exclude); err != nil {
		return nil, err
	}
	// The secret is sent in clear (secret_header, secret_field, envelopes)
	// only when the client gave it.
	inClear := s.Secret
	if s.SecretGenerated {
		inClear = ""
	}
	d := &destination.Destination{
		ID:             s.ID,
		SubscriptionID: s.ID,
		URL:            s.URL,
		Method:         http.MethodPost,
		Headers:        s.Headers,
		Timeout:        s.Timeout.Std(),
		MaxAttempts:    s.MaxAttempts,
		Secret:         inClear,
		SecretHeader:   s.SecretHeader,
		SecretField:    s.SecretField,
		Enabled:        s.IsEnabled(),
		Flow:           flow,
		Subscription: filters.Subscription{
			ID: s.ID, Name: s.Name, Description: s.Description, Secret: inClear,
		},
	}
	if sig := s.Signature; sig != nil && sig.Scheme == SchemeHMAC {
		d.HMAC = &destination.HMAC{Header: sig.Header, Base64: sig.Encoding == EncodingBase64, Prefix: sig.Prefix}
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	for _, w := range s.RetrySchedule {
		d.Schedule = append(d.Schedule, w.Std())
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.Envelope, err = filters.CompileEnvelope(s.Envelope); err != nil {
		return nil, invalid("envelope", "%v", err)
	}
	for _, secret := range []string{s.Secret, previous} {
		if secret == "" {
			continue
		}
		k, err := signature.ParseSecret(secret)
		if err != nil {
			return nil, invalid("secret", "%v", err)
		}
		d.Keys = append(d.Keys, k)
	}
	cs.Dest = d
	return cs, nil
}
