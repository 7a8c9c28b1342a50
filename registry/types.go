// Package registry holds hookgate's resources (workflows, their keys, topics
// and subscriptions): their JSON shapes, their validation and compilation into
// ready-to-run forms, their storage in JetStream key-value buckets, and the
// in-memory index that the request path reads. The index is fed by KV watches,
// so a change made on one instance reaches every instance sharing the engine.
//
// The package imports nothing from Caddy.
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sources of a resource.
const (
	SourceAPI    = "api"
	SourceConfig = "config"
)

// Duration is a time.Duration that reads and writes Go duration strings
// ("1m30s"); a bare JSON number is taken as nanoseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string or a number of nanoseconds. JSON
// null leaves d unchanged, as encoding/json does for other types.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("invalid duration %s", b)
	}
	*d = Duration(n)
	return nil
}

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Target is an outgoing HTTP request made for every accepted event of a
// workflow.
type Target struct {
	// ID identifies the target within its workflow, and so its queued
	// deliveries and their history: it survives reordering the targets.
	// Letters, digits, '-' and '_'. Default: the first 8 hex digits of the
	// SHA-256 of the method and the URL (TargetID).
	ID string `json:"id,omitempty"`
	// URL of the target; http or https.
	URL string `json:"url"`
	// Method of the request. Default: POST.
	Method string `json:"method,omitempty"`
	// Headers added to every request: at most 50, names HTTP tokens,
	// values of at most 8 KiB without CR, LF or NUL. The API shows the
	// values of credential-like headers as "***".
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout of one attempt. Default: 10s; at most 5m.
	Timeout Duration `json:"timeout,omitempty"`
	// RetrySchedule lists the waits before each retry (at most 99, each at
	// most 24h). Default: exponential backoff with jitter, 5 retries.
	RetrySchedule []Duration `json:"retry_schedule,omitempty"`
	// Secret signs requests with Standard Webhooks headers when set
	// ("whsec_..." or raw). Write-only: never returned by the API.
	Secret string `json:"secret,omitempty"`
	// Envelope builds the body: "raw" (the body as received, the default),
	// "standard", a preset name or an expr expression.
	Envelope string `json:"envelope,omitempty"`
	// FlowControl paces the target's deliveries: rate_limit,
	// max_in_flight, breaker and disable_after.
	FlowControl
}

// Verify configures provider signature verification on ingress: a preset
// that follows one provider's documented signing scheme.
type Verify struct {
	// Provider names the preset: github, gitlab, stripe, shopify, slack,
	// twilio, zoom, paddle or standard (Standard Webhooks, Svix).
	Provider string `json:"provider"`
	// Secrets are the provider's signing secrets (the GitLab token, the
	// Twilio auth token): 1 to 4, a request signed with any of them is
	// accepted, so a secret can be rotated without refusing a webhook.
	// Write-only: never returned by the API.
	Secrets []string `json:"secrets,omitempty"`
	// Tolerance is the largest distance between the signed timestamp and
	// the current time, for the providers that sign one (stripe, slack,
	// zoom, paddle, standard); a request outside it is refused as a
	// replay. Default: 5m; at most 1h; not allowed for the others.
	Tolerance Duration `json:"tolerance,omitempty"`
}

// Answer is the status and body a workflow answers with. An empty body is
// sent with no Content-Type; a JSON body as application/json; other text
// as text/plain.
type Answer struct {
	// Status is a 2xx status code (200 to 299).
	Status int `json:"status"`
	// Body is sent as is: at most MaxAnswerBody bytes; empty for none.
	Body string `json:"body"`
}

// Respond holds a workflow's own answers to the requests it takes; a nil
// answer keeps the default ({"id":…,"status":"accepted"} 202,
// {"status":"filtered"} 202, {"id":…,"status":"duplicate"} 200).
type Respond struct {
	// Accepted answers a request whose event was stored for the targets.
	// A request passed to the next handler is answered by that handler.
	Accepted *Answer `json:"accepted,omitempty"`
	// Filtered answers a request the filter did not match.
	Filtered *Answer `json:"filtered,omitempty"`
	// Duplicate answers a request whose idempotency value was seen.
	Duplicate *Answer `json:"duplicate,omitempty"`
}

// Workflow is an incoming webhook endpoint.
type Workflow struct {
	// ID is the workflow's URL segment: letters, digits, '-' and '_'.
	ID string `json:"id"`
	// Name is a human name. Default: the ID.
	Name string `json:"name,omitempty"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Sample is a sample JSON payload the contract is inferred from.
	Sample json.RawMessage `json:"sample,omitempty"`
	// Schema is a JSON Schema the payload must satisfy.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Strict makes every field of the sample required.
	Strict bool `json:"strict,omitempty"`
	// Filter is an expr predicate over body, headers, query, method and
	// workflow; events it does not match are answered 202 filtered.
	Filter string `json:"filter,omitempty"`
	// IdempotencyHeader names a request header whose value identifies
	// retries of the same webhook (e.g. X-GitHub-Delivery, webhook-id).
	IdempotencyHeader string `json:"idempotency_header,omitempty"`
	// Methods accepted. Default: POST.
	Methods []string `json:"methods,omitempty"`
	// MaxBody is the body size limit in bytes. Default: 1 MiB; at most
	// MaxBodyCeiling (64 MiB).
	MaxBody int64 `json:"max_body,omitempty"`
	// Grace keeps the previous key valid this long after a regeneration.
	// Default: 0 (the old key is refused at once); at most 168h.
	Grace Duration `json:"grace,omitempty"`
	// Verify checks a provider signature on every request.
	Verify *Verify `json:"verify,omitempty"`
	// Targets receive every accepted event (at most 50). None: the request
	// is passed to the next handler.
	Targets []Target `json:"targets,omitempty"`
	// Fallback, on a passthrough workflow, stores the requests the app
	// behind did not take and delivers them to it later. Default: none
	// (the sender gets the app's error).
	Fallback *Fallback `json:"fallback,omitempty"`
	// Respond replaces the default answers to accepted (202), filtered
	// (202) and duplicate (200) requests, for senders that expect a given
	// status and body (EasyLife: "200 OK with no body").
	Respond *Respond `json:"respond,omitempty"`
	// Enabled: a disabled workflow answers 401 like an unknown one.
	// Default: true.
	Enabled *bool `json:"enabled,omitempty"`
	// Source is "api" or "config" (read-only).
	Source string `json:"source,omitempty"`
	// SchemaLocation is the file the schema was read from; local $refs
	// resolve against its directory (config only).
	SchemaLocation string `json:"-"`
	// FixedKey is a key pinned in the configuration (config only).
	FixedKey string `json:"-"`
}

// IsEnabled reports whether the workflow accepts requests.
func (w *Workflow) IsEnabled() bool { return w.Enabled == nil || *w.Enabled }

// Topic is a kind of event the app behind publishes.
type Topic struct {
	// Name of the topic, e.g. "document.deleted" or "USER_CREATED".
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Schema, when set, validates the data of every published event.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Source is "api" or "config" (read-only).
	Source string `json:"source,omitempty"`
	// SchemaLocation is the file the schema was read from; local $refs
	// resolve against its directory (config only).
	SchemaLocation string `json:"-"`
}

// MaxPredicates is the most include (or exclude) predicates a subscription
// may have.
const MaxPredicates = 20

// Predicates is a list of expr predicates, tried in order. It reads a JSON
// string (a list of one) or a list of strings, and writes one predicate as
// a string and several as a list, so a subscription with one predicate
// keeps the shape it always had.
type Predicates []string

// MarshalJSON writes one predicate as a string, several as a list.
func (p Predicates) MarshalJSON() ([]byte, error) {
	if len(p) == 1 {
		return json.Marshal(p[0])
	}
	return json.Marshal([]string(p))
}

// UnmarshalJSON reads a string (an empty one is no predicate) or a list of
// strings. JSON null leaves p unchanged.
func (p *Predicates) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = nil
		if s != "" {
			*p = Predicates{s}
		}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want an expr string or a list of them")
	}
	*p = list
	return nil
}

// Signature schemes of a subscription.
const (
	// SchemeStandard signs with Standard Webhooks headers (webhook-id,
	// webhook-timestamp, webhook-signature).
	SchemeStandard = "standard"
	// SchemeHMAC puts the HMAC-SHA256 of the exact body bytes, under the
	// secret, in one header.
	SchemeHMAC = "hmac"
)

// Encodings of an HMAC signature.
const (
	EncodingHex    = "hex"
	EncodingBase64 = "base64"
)

// Signature is how a subscription's deliveries are signed.
type Signature struct {
	// Scheme is "standard" (default) or "hmac".
	Scheme string `json:"scheme"`
	// Header carries the HMAC signature (scheme hmac, required), e.g.
	// x-ol-signature or X-Hub-Signature-256.
	Header string `json:"header,omitempty"`
	// Encoding of the HMAC: "hex" (lower case, the default) or "base64"
	// (standard, padded).
	Encoding string `json:"encoding,omitempty"`
	// Prefix is written before the encoded HMAC, e.g. "sha256=" for
	// GitHub-style receivers. Default: none.
	Prefix string `json:"prefix,omitempty"`
}

// Subscription delivers events of some topics to a URL.
type Subscription struct {
	// ID identifies the subscription. Default: generated.
	ID string `json:"id"`
	// Name is unique among subscriptions.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Topics matched: exact names, "prefix.*" wildcards, or "*".
	Topics []string `json:"topics"`
	// URL receives the deliveries.
	URL string `json:"url"`
	// Secret signs deliveries (Standard Webhooks). Shown only when created
	// or rotated.
	Secret string `json:"secret,omitempty"`
	// Enabled: a disabled subscription gets no new deliveries. Default: true.
	Enabled *bool `json:"enabled,omitempty"`
	// DisabledReason says why the gateway disabled the subscription (410,
	// or failing for disable_after).
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Headers are added to every delivery: at most 50, names HTTP tokens,
	// values of at most 8 KiB without CR, LF or NUL. The API shows the
	// values of credential-like headers as "***".
	Headers map[string]string `json:"headers,omitempty"`
	// Include lists expr predicates of which the event must match one
	// (none: every event). One string is accepted for a list of one.
	Include Predicates `json:"include,omitempty"`
	// Exclude lists expr predicates of which the event must match none.
	// One string is accepted for a list of one.
	Exclude Predicates `json:"exclude,omitempty"`
	// Envelope builds the body: "standard" (default), "raw", a preset name
	// ("activate", "orangelogic", "orchestry") or an expr expression.
	Envelope string `json:"envelope,omitempty"`
	// Signature chooses how deliveries are signed with the secret: nil or
	// scheme "standard" for Standard Webhooks headers, scheme "hmac" for
	// an HMAC-SHA256 of the body in a named header (Orange Logic's
	// x-ol-signature, GitHub's X-Hub-Signature-256).
	Signature *Signature `json:"signature,omitempty"`
	// SecretHeader names a header that carries the secret in clear
	// (Orchestry style).
	SecretHeader string `json:"secret_header,omitempty"`
	// SecretField names a body property that carries the secret in clear
	// (Orchestry style), added when the body is a JSON object.
	SecretField string `json:"secret_field,omitempty"`
	// MaxAttempts is the number of attempts before the delivery fails.
	// Default: 6 (the first attempt and 5 retries); at most 100.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// RetrySchedule lists the waits before each retry (at most 99, each at
	// most 24h). Default: exponential backoff with jitter.
	RetrySchedule []Duration `json:"retry_schedule,omitempty"`
	// Timeout of one attempt. Default: 10s; at most 5m.
	Timeout Duration `json:"timeout,omitempty"`
	// FlowControl paces the subscription's deliveries: rate_limit,
	// max_in_flight, breaker and disable_after.
	FlowControl
	// Source is "api" or "config" (read-only).
	Source string `json:"source,omitempty"`
	// CreatedAt is when the subscription was created.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// SecretGenerated: hookgate generated the secret (creation without a
	// secret, or a rotation); the client gave none. A generated secret
	// signs deliveries but is never sent in clear: secret_header,
	// secret_field and the envelopes' subscription.secret are empty
	// (Orchestry: "If provided, Orchestry will provide the secret").
	SecretGenerated bool `json:"-"`
}

// IsEnabled reports whether the subscription gets new deliveries.
func (s *Subscription) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

// storedSubscription is a subscription as kept in the KV bucket, with the
// secret it rotated away from.
type storedSubscription struct {
	Subscription
	Secret string `json:"secret,omitempty"`
	// SecretGenerated keeps Subscription.SecretGenerated.
	SecretGenerated bool      `json:"secret_generated,omitempty"`
	PreviousSecret  string    `json:"previous_secret,omitempty"`
	PreviousUntil   time.Time `json:"previous_until,omitzero"`
}

// keyRecord is a workflow's key state, as kept in the keys bucket.
type keyRecord struct {
	Hash          string    `json:"hash"`
	PreviousHash  string    `json:"previous_hash,omitempty"`
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// Errors the API maps to statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrReadOnly = errors.New("declared in the Caddyfile: read-only")
)

// InvalidError is a resource that does not validate; Field names the
// offending JSON field.
type InvalidError struct {
	Field string
	Err   error
}

func (e *InvalidError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Field+" ") {
		return msg // already names the field, e.g. `filter "…": …`
	}
	return e.Field + ": " + msg
}
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(field string, format string, args ...any) error {
	return &InvalidError{Field: field, Err: fmt.Errorf(format, args...)}
}
