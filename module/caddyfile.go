package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/hookgate/hookgate/api/jwtauth"
	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/filters"
	"github.com/hookgate/hookgate/netguard"
	"github.com/hookgate/hookgate/registry"
	"github.com/hookgate/hookgate/signature"
)

// The handlers run before respond (and so before reverse_proxy, which comes
// after it): a site's catch-all respond or proxy must not swallow webhooks.
func init() {
	httpcaddyfile.RegisterGlobalOption("hookgate", parseGlobalOption)
	httpcaddyfile.RegisterDirective("hookgate_ingress", parseIngress)
	httpcaddyfile.RegisterDirective("hookgate_api", parseAPI)
	httpcaddyfile.RegisterDirectiveOrder("hookgate_api", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hookgate_ingress", httpcaddyfile.Before, "respond")
}

// parseGlobalOption parses the hookgate global option:
//
//	hookgate {
//		storage_dir <path>
//		nats <url...> {
//			creds <file>
//			tls {
//				ca <file>
//				cert <file>
//				key <file>
//			}
//			replicas <n>
//			connect_timeout <duration>
//		}
//		sync always|interval
//		allow_targets <cidr...>
//		dedupe_window <duration>
//		retention <duration>
//		concurrency <n>
//		per_destination <n>
//		topic <name> {
//			description <text>
//			schema <file>
//		}
//		subscription <name> {
//			id <id>
//			description <text>
//			topics <topic...>
//			url <url>
//			secret <secret>|none
//			enabled true|false
//			header <name> <value>
//			include <expr...>         (repeatable: one must match)
//			exclude <expr...>         (repeatable: none may match)
//			envelope standard|raw|activate|orangelogic|orchestry|<expr>
//			signature standard | signature hmac <header> {
//				encoding hex|base64
//				prefix <text>
//			}
//			secret_header <name>
//			secret_field <name>
//			max_attempts <n>
//			retry_schedule <duration...>
//			timeout <duration>
//			rate_limit <n>/s|<n>/m|<n>/h
//			max_in_flight <n>
//			breaker off | breaker {
//				failures <n>
//				cooldown <duration>
//				max_cooldown <duration>
//			}
//			disable_after <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if existing != nil {
		return nil, d.Err("the hookgate global option is declared twice")
	}
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var urlLines []int // of each subscription's url, checked at the end
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "storage_dir":
			if !d.AllArgs(&app.StorageDir) {
				return nil, d.ArgErr()
			}
		case "nats":
			n := &NATS{URLs: d.RemainingArgs()}
			if len(n.URLs) == 0 {
				return nil, d.ArgErr()
			}
			if err := parseNATSBlock(d, n); err != nil {
				return nil, err
			}
			app.NATS = n
		case "sync":
			if !d.AllArgs(&app.Sync) {
				return nil, d.ArgErr()
			}
			if app.Sync != "always" && app.Sync != "interval" {
				return nil, d.Errf("sync: %q is not one of always, interval", app.Sync)
			}
		case "allow_targets":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			if _, err := netguard.ParseAllow(args); err != nil {
				return nil, d.Errf("allow_targets: %v", err)
			}
			app.AllowTargets = append(app.AllowTargets, args...)
		case "dedupe_window", "retention":
			opt := d.Val()
			dur, err := parseDurationArg(d, map[string]time.Duration{"dedupe_window": MaxDedupeWindow, "retention": MaxRetention}[opt])
			if err != nil {
				return nil, err
			}
			if opt == "dedupe_window" {
				app.DedupeWindow = dur
			} else {
				app.Retention = dur
			}
		case "concurrency", "per_destination":
			opt := d.Val()
			n, err := parseIntArg(d, map[string]int{"concurrency": MaxConcurrency, "per_destination": MaxPerDestination}[opt])
			if err != nil {
				return nil, err
			}
			if opt == "concurrency" {
				app.Concurrency = n
			} else {
				app.PerDestination = n
			}
		case "topic":
			t, err := parseTopic(d)
			if err != nil {
				return nil, err
			}
			app.Topics = append(app.Topics, t)
		case "subscription":
			s, urlLine, err := parseSubscription(d)
			if err != nil {
				return nil, err
			}
			app.Subscriptions = append(app.Subscriptions, s)
			urlLines = append(urlLines, urlLine)
		default:
			return nil, d.Errf("unrecognized hookgate option %q", d.Val())
		}
	}
	// URLs are checked against the SSRF guard once allow_targets, which may
	// come after them, is known.
	guard := allowGuard(app.AllowTargets)
	for i, s := range app.Subscriptions {
		if err := guard.CheckURL(s.URL); err != nil {
			return nil, fmt.Errorf("subscription %q: url: %w, at %s:%d", s.Name, err, d.File(), urlLines[i])
		}
	}
	return httpcaddyfile.App{Name: "hookgate", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseNATSBlock(d *caddyfile.Dispenser, n *NATS) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "creds":
			if !d.AllArgs(&n.Creds) {
				return d.ArgErr()
			}
		case "replicas":
			v, err := parseIntArg(d, 5)
			if err != nil {
				return err
			}
			if v != 1 && v != 3 && v != 5 {
				return d.Errf("replicas: %d; use 1, 3 or 5", v)
			}
			n.Replicas = v
		case "connect_timeout":
			dur, err := parseDurationArg(d, MaxConnectTimeout)
			if err != nil {
				return err
			}
			n.ConnectTimeout = dur
		case "tls":
			n.TLS = new(engine.TLS)
			for tn := d.Nesting(); d.NextBlock(tn); {
				var dst *string
				switch d.Val() {
				case "ca":
					dst = &n.TLS.CA
				case "cert":
					dst = &n.TLS.Cert
				case "key":
					dst = &n.TLS.Key
				default:
					return d.Errf("unrecognized tls option %q", d.Val())
				}
				if !d.AllArgs(dst) {
					return d.ArgErr()
				}
			}
		default:
			return d.Errf("unrecognized nats option %q", d.Val())
		}
	}
	return nil
}

func parseTopic(d *caddyfile.Dispenser) (TopicConfig, error) {
	var t TopicConfig
	if !d.NextArg() {
		return t, d.ArgErr()
	}
	t.Name = d.Val()
	if d.NextArg() {
		return t, d.ArgErr()
	}
	lines := map[string]int{"name": d.Line()}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		lines[d.Val()] = d.Line()
		switch d.Val() {
		case "description":
			t.Description = strings.Join(d.RemainingArgs(), " ")
		case "schema":
			if !d.AllArgs(&t.SchemaFile) {
				return t, d.ArgErr()
			}
		default:
			return t, d.Errf("unrecognized topic option %q", d.Val())
		}
	}
	if _, err := t.compile(); err != nil {
		return t, fieldErr(d, lines, "topic", t.Name, err)
	}
	return t, nil
}

// parseSubscription parses a subscription block and returns it with the
// line of its url.
func parseSubscription(d *caddyfile.Dispenser) (SubscriptionConfig, int, error) {
	sc, lines, err := parseSubscriptionBlock(d)
	return sc, lines["url"], err
}

func parseSubscriptionBlock(d *caddyfile.Dispenser) (SubscriptionConfig, map[string]int, error) {
	var sc SubscriptionConfig
	s := &sc.Subscription
	lines := map[string]int{}
	if !d.NextArg() {
		return sc, lines, d.ArgErr()
	}
	s.Name = d.Val()
	if d.NextArg() {
		return sc, lines, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		lines[opt] = d.Line()
		var err error
		switch opt {
		case "id":
			err = oneArg(d, &s.ID)
		case "description":
			s.Description = strings.Join(d.RemainingArgs(), " ")
		case "topics":
			s.Topics = append(s.Topics, d.RemainingArgs()...)
		case "url":
			err = oneArg(d, &s.URL)
		case "secret":
			err = oneArg(d, &s.Secret)
		case "enabled":
			var v string
			if err = oneArg(d, &v); err == nil {
				b, perr := strconv.ParseBool(v)
				if perr != nil {
					return sc, lines, d.Errf("enabled: %q is not true or false", v)
				}
				s.Enabled = &b
			}
		case "header":
			var k, v string
			if !d.AllArgs(&k, &v) {
				return sc, lines, d.ArgErr()
			}
			if err := checkHeaderArg(d, k, v, len(s.Headers)); err != nil {
				return sc, lines, err
			}
			if s.Headers == nil {
				s.Headers = map[string]string{}
			}
			s.Headers[k] = v
		case "include", "exclude":
			// Repeated lines and several arguments add predicates, in order.
			args := d.RemainingArgs()
			if len(args) == 0 {
				return sc, lines, d.ArgErr()
			}
			if opt == "include" {
				s.Include = append(s.Include, args...)
			} else {
				s.Exclude = append(s.Exclude, args...)
			}
		case "envelope":
			err = oneArg(d, &s.Envelope)
		case "signature":
			s.Signature, err = parseSignature(d)
		case "secret_header":
			err = oneArg(d, &s.SecretHeader)
		case "secret_field":
			err = oneArg(d, &s.SecretField)
		case "max_attempts":
			s.MaxAttempts, err = parseIntArg(d, registry.MaxAttempts)
		case "retry_schedule":
			s.RetrySchedule, err = parseSchedule(d)
		case "timeout":
			var dur caddy.Duration
			dur, err = parseDurationArg(d, registry.MaxTimeout)
			s.Timeout = registry.Duration(dur)
		case "rate_limit", "max_in_flight", "breaker", "disable_after", "ordered", "order_key":
			err = parseFlowOption(d, &s.FlowControl)
		default:
			return sc, lines, d.Errf("unrecognized subscription option %q", opt)
		}
		if err != nil {
			return sc, lines, err
		}
	}
	probe := sc.Subscription
	if probe.ID == "" {
		probe.ID = probe.Name
	}
	if probe.Secret != "" && strings.Contains(probe.Secret, "{") {
		probe.Secret = "" // a placeholder, resolved at provision
	}
	var err error
	if probe.Secret, err = configSecret(probe.Secret); err != nil {
		return sc, lines, fieldErr(d, lines, "subscription", s.Name, err)
	}
	if _, err := registry.CompileSubscription(probe, "", nil); err != nil {
		return sc, lines, fieldErr(d, lines, "subscription", s.Name, err)
	}
	return sc, lines, nil
}

// parseSignature parses a subscription's signature scheme:
//
//	signature standard
//	signature hmac <header> {
//		encoding hex|base64
//		prefix <text>
//	}
func parseSignature(d *caddyfile.Dispenser) (*registry.Signature, error) {
	sig := &registry.Signature{}
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	sig.Scheme = d.Val()
	if sig.Scheme == registry.SchemeHMAC {
		if !d.NextArg() {
			return nil, d.Errf("signature hmac: the header is required, e.g. signature hmac x-ol-signature")
		}
		sig.Header = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "encoding":
			err = oneArg(d, &sig.Encoding)
		case "prefix":
			err = oneArg(d, &sig.Prefix)
		default:
			return nil, d.Errf("unrecognized signature option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return sig, nil
}

// parseIngress sets up the hookgate_ingress directive:
//
//	hookgate_ingress [<matcher>] {
//		prefix <path>
//		workflow <id> {
//			name <text>
//			description <text>
//			sample <file> | schema <file>
//			strict
//			filter <expr>
//			key <key>
//			grace <duration>
//			idempotency_header <header>
//			max_body <size>          (at most 64MiB)
//			methods <method...>
//			disabled
//			verify <provider> <secret> {
//				secret <secret>           (another accepted secret, for a rotation)
//				tolerance <duration>      (timestamped providers; default 5m, at most 1h)
//			}
//			respond [accepted|filtered|duplicate] <status> [<body>]
//			forward <url> {
//				id <name>
//				method <method>
//				header <name> <value>
//				timeout <duration>
//				retry_schedule <duration...>
//				secret <secret>
//				envelope raw|standard|<expr>
//				rate_limit <n>/s|<n>/m|<n>/h
//				max_in_flight <n>
//				breaker off | breaker { failures <n>; cooldown <duration>; max_cooldown <duration> }
//				disable_after <duration>
//			}
//			fallback <base url> {          (passthrough workflows: no forward)
//				timeout <duration>
//				retry_schedule <duration...>
//				rate_limit <n>/s|<n>/m|<n>/h
//				max_in_flight <n>
//				breaker off | breaker { failures <n>; cooldown <duration>; max_cooldown <duration> }
//				disable_after <duration>
//			}
//		}
//	}
//
// A path matcher such as /hooks/* sets the prefix.
func parseIngress(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	handler := new(Ingress)
	handler.parseGuard = optionGuard(h)
	return parsePrefixed(h, handler, &handler.Prefix)
}

// optionGuard is the SSRF guard of the hookgate global option's
// allow_targets (evaluated before the site blocks), so that the adapter
// reports a refused target URL at its line.
func optionGuard(h httpcaddyfile.Helper) *netguard.Guard {
	var app App
	if opt, ok := h.Option("hookgate").(httpcaddyfile.App); ok {
		_ = json.Unmarshal(opt.Value, &app)
	}
	return allowGuard(app.AllowTargets)
}

// allowGuard is the SSRF guard of allow_targets entries (already checked).
func allowGuard(entries []string) *netguard.Guard {
	allow, _ := netguard.ParseAllow(entries)
	return netguard.New(allow)
}

// parsePrefixed sets up a handler whose prefix defaults to the path of its
// matcher: the route keeps the matcher, the handler gets the prefix, and a
// prefix subdirective overrides it.
func parsePrefixed(h httpcaddyfile.Helper, handler interface {
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}, prefix *string) ([]httpcaddyfile.ConfigValue, error) {
	*prefix = matcherPrefix(h)
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return h.NewRoute(matcherSet, handler), nil
}

// matcherPrefix returns the path of a path matcher token ("/hooks/*" →
// "/hooks"), or "".
func matcherPrefix(h httpcaddyfile.Helper) string {
	defer h.Reset()
	h.Next()
	if !h.NextArg() {
		return ""
	}
	tok := h.Val()
	if !strings.HasPrefix(tok, "/") {
		return ""
	}
	return strings.TrimRight(strings.TrimSuffix(tok, "*"), "/")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *Ingress) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "prefix":
			if !d.AllArgs(&h.Prefix) {
				return d.ArgErr()
			}
		case "workflow":
			line := d.Line()
			guard := h.parseGuard
			if guard == nil {
				guard = allowGuard(nil)
			}
			wc, err := parseWorkflow(d, guard)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(h.Workflows, func(w WorkflowConfig) bool { return w.ID == wc.ID }) {
				return fmt.Errorf("workflow %q is declared twice, at %s:%d", wc.ID, d.File(), line)
			}
			h.Workflows = append(h.Workflows, wc)
		default:
			return d.Errf("unrecognized hookgate_ingress option %q", d.Val())
		}
	}
	return nil
}

func parseWorkflow(d *caddyfile.Dispenser, guard registry.URLChecker) (WorkflowConfig, error) {
	var wc WorkflowConfig
	w := &wc.Workflow
	if !d.NextArg() {
		return wc, d.ArgErr()
	}
	w.ID = d.Val()
	if d.NextArg() {
		return wc, d.ArgErr()
	}
	lines := map[string]int{"id": d.Line()}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		lines[opt] = d.Line()
		var err error
		switch opt {
		case "name":
			w.Name = strings.Join(d.RemainingArgs(), " ")
		case "description":
			w.Description = strings.Join(d.RemainingArgs(), " ")
		case "sample":
			err = oneArg(d, &wc.SampleFile)
		case "schema":
			err = oneArg(d, &wc.SchemaFile)
		case "strict":
			w.Strict = true
		case "filter":
			err = oneArg(d, &w.Filter)
		case "key":
			err = oneArg(d, &wc.Key)
		case "grace":
			var dur caddy.Duration
			dur, err = parseDurationArg(d, registry.MaxGrace)
			w.Grace = registry.Duration(dur)
		case "idempotency_header":
			err = oneArg(d, &w.IdempotencyHeader)
		case "max_body":
			var v string
			if err = oneArg(d, &v); err == nil {
				n, perr := humanize.ParseBytes(v)
				if perr != nil || n == 0 {
					return wc, d.Errf("max_body: %q is not a size", v)
				}
				if n > registry.MaxBodyCeiling {
					return wc, d.Errf("max_body: %s is over the ceiling of 64MiB", v)
				}
				w.MaxBody = int64(n)
			}
		case "methods":
			w.Methods = d.RemainingArgs()
			if len(w.Methods) == 0 {
				return wc, d.ArgErr()
			}
		case "disabled":
			f := false
			w.Enabled = &f
		case "verify":
			if w.Verify != nil {
				return wc, d.Err("verify is given twice: one provider per workflow (more secrets go in its block)")
			}
			w.Verify, err = parseVerify(d)
		case "respond":
			err = parseRespond(d, w)
		case "forward":
			lines["targets"] = d.Line()
			lines[fmt.Sprintf("targets[%d]", len(w.Targets))] = d.Line()
			t, ferr := parseTarget(d)
			if ferr != nil {
				return wc, ferr
			}
			w.Targets = append(w.Targets, t)
		case "fallback":
			if w.Fallback != nil {
				return wc, d.Err("fallback is given twice: one fallback per workflow")
			}
			w.Fallback, err = parseFallback(d)
		default:
			return wc, d.Errf("unrecognized workflow option %q", opt)
		}
		if err != nil {
			return wc, err
		}
	}
	// Compile now, so `caddy validate` and `caddy adapt` report the line.
	probe := wc
	probe.Key = ""
	if v := probe.Verify; v != nil {
		pv := *v
		pv.Secrets = make([]string, len(v.Secrets))
		for i, s := range v.Secrets {
			pv.Secrets[i] = placeholderProbe(s)
		}
		probe.Verify = &pv
	}
	probe.Targets = append([]registry.Target(nil), wc.Targets...)
	for i := range probe.Targets {
		probe.Targets[i].Secret = placeholderProbe(probe.Targets[i].Secret)
	}
	if _, err := probe.compile(caddy.NewEmptyReplacer(), guard); err != nil {
		return wc, fieldErr(d, lines, "workflow", w.ID, err)
	}
	return wc, nil
}

// parseRespond parses a workflow's own answer:
//
//	respond [accepted|filtered|duplicate] <status> [<body>]
//
// Without a kind, the answer is for all three; the body defaults to empty.
// The option may be repeated, a later line overriding an earlier one for
// its kind (`respond 200` then `respond duplicate 208`).
func parseRespond(d *caddyfile.Dispenser, w *registry.Workflow) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	if w.Respond == nil {
		w.Respond = &registry.Respond{}
	}
	r := w.Respond
	kinds := []**registry.Answer{&r.Accepted, &r.Filtered, &r.Duplicate}
	switch args[0] {
	case "accepted":
		kinds, args = kinds[:1], args[1:]
	case "filtered":
		kinds, args = kinds[1:2], args[1:]
	case "duplicate":
		kinds, args = kinds[2:], args[1:]
	}
	if len(args) == 0 || len(args) > 2 {
		return d.ArgErr()
	}
	status, err := strconv.Atoi(args[0])
	if err != nil {
		return d.Errf("respond: %q is not a status code (or accepted, filtered, duplicate)", args[0])
	}
	a := registry.Answer{Status: status}
	if len(args) == 2 {
		a.Body = args[1]
	}
	for _, k := range kinds {
		ak := a
		*k = &ak
	}
	return nil
}

// placeholderProbe stands in for a secret given as a placeholder, which is
// resolved only at provision time.
func placeholderProbe(s string) string {
	if strings.Contains(s, "{") {
		return "placeholder-secret"
	}
	return s
}

// parseVerify reads a workflow's verify subdirective:
//
//	verify <provider> <secret> {
//		secret <secret>
//		tolerance <duration>
//	}
func parseVerify(d *caddyfile.Dispenser) (*registry.Verify, error) {
	v := new(registry.Verify)
	var secret string
	if !d.AllArgs(&v.Provider, &secret) {
		return nil, d.ArgErr()
	}
	if !slices.Contains(signature.Providers, v.Provider) {
		return nil, d.Errf("verify: unknown provider %q: use one of %s", v.Provider, strings.Join(signature.Providers, ", "))
	}
	v.Secrets = []string{secret}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "secret":
			var s string
			if err := oneArg(d, &s); err != nil {
				return nil, err
			}
			if len(v.Secrets) == signature.MaxSecrets {
				return nil, d.Errf("verify: more than %d secrets", signature.MaxSecrets)
			}
			v.Secrets = append(v.Secrets, s)
		case "tolerance":
			if !signature.Timestamped(v.Provider) {
				return nil, d.Errf("verify: %s signatures carry no timestamp: tolerance does not apply", v.Provider)
			}
			dur, err := parseDurationArg(d, signature.MaxTolerance)
			if err != nil {
				return nil, err
			}
			v.Tolerance = registry.Duration(dur)
		default:
			return nil, d.Errf("unrecognized verify option %q", d.Val())
		}
	}
	return v, nil
}

func parseTarget(d *caddyfile.Dispenser) (registry.Target, error) {
	var t registry.Target
	if !d.NextArg() {
		return t, d.ArgErr()
	}
	t.URL = d.Val()
	if d.NextArg() {
		return t, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "id":
			err = oneArg(d, &t.ID)
		case "method":
			err = oneArg(d, &t.Method)
		case "header":
			var k, v string
			if !d.AllArgs(&k, &v) {
				return t, d.ArgErr()
			}
			if err := checkHeaderArg(d, k, v, len(t.Headers)); err != nil {
				return t, err
			}
			if t.Headers == nil {
				t.Headers = map[string]string{}
			}
			t.Headers[k] = v
		case "timeout":
			var dur caddy.Duration
			dur, err = parseDurationArg(d, registry.MaxTimeout)
			t.Timeout = registry.Duration(dur)
		case "retry_schedule":
			t.RetrySchedule, err = parseSchedule(d)
		case "secret":
			err = oneArg(d, &t.Secret)
		case "envelope":
			err = oneArg(d, &t.Envelope)
		case "rate_limit", "max_in_flight", "breaker", "disable_after", "ordered", "order_key":
			err = parseFlowOption(d, &t.FlowControl)
		default:
			return t, d.Errf("unrecognized forward option %q", d.Val())
		}
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

// parseFallback reads a passthrough workflow's fallback:
//
//	fallback <base url> {
//		timeout <duration>
//		retry_schedule <duration...>
//		rate_limit <n>/s|<n>/m|<n>/h
//		max_in_flight <n>
//		breaker off | breaker { ... }
//		disable_after <duration>
//	}
func parseFallback(d *caddyfile.Dispenser) (*registry.Fallback, error) {
	f := new(registry.Fallback)
	if !d.AllArgs(&f.URL) {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "timeout":
			var dur caddy.Duration
			dur, err = parseDurationArg(d, registry.MaxTimeout)
			f.Timeout = registry.Duration(dur)
		case "retry_schedule":
			f.RetrySchedule, err = parseSchedule(d)
		case "rate_limit", "max_in_flight", "breaker", "disable_after":
			err = parseFlowOption(d, &f.FlowControl)
		default:
			return nil, d.Errf("unrecognized fallback option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseAPI sets up the hookgate_api directive:
//
//	hookgate_api [<matcher>] {
//		prefix <path>
//		token <token>
//		token_file <path>
//		publish_token <token>
//		jwt {
//			issuer <url>
//			jwks_url <url>
//			audience <aud...>
//			claim <name>
//			full <value...>
//			publish <value...>
//			leeway <duration>
//		}
//	}
//
// A path matcher such as /api/hookgate/* sets the prefix.
func parseAPI(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	handler := new(API)
	return parsePrefixed(h, handler, &handler.Prefix)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *API) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var v string
		opt := d.Val()
		if opt == "jwt" {
			if h.JWT != nil {
				return d.Err("jwt: declared twice")
			}
			j, err := parseJWT(d)
			if err != nil {
				return err
			}
			h.JWT = j
			continue
		}
		if opt != "prefix" && opt != "token" && opt != "token_file" && opt != "publish_token" {
			return d.Errf("unrecognized hookgate_api option %q", opt)
		}
		if err := oneArg(d, &v); err != nil {
			return err
		}
		switch opt {
		case "prefix":
			h.Prefix = v
		case "token":
			h.Tokens = append(h.Tokens, v)
		case "token_file":
			h.TokenFiles = append(h.TokenFiles, v)
		case "publish_token":
			h.PublishTokens = append(h.PublishTokens, v)
		}
	}
	if len(h.Tokens)+len(h.TokenFiles)+len(h.PublishTokens) == 0 && h.JWT == nil {
		return d.Err("hookgate_api needs token, token_file, publish_token or jwt: there is no open admin API")
	}
	return nil
}

// parseJWT reads the jwt block of hookgate_api. A missing required option
// is reported at the line of jwt.
func parseJWT(d *caddyfile.Dispenser) (*JWT, error) {
	file, line := d.File(), d.Line()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	j := new(JWT)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "issuer", "jwks_url", "claim":
			var v string
			if err := oneArg(d, &v); err != nil {
				return nil, err
			}
			switch opt {
			case "issuer":
				j.Issuer = v
			case "jwks_url":
				if !strings.Contains(v, "{") {
					if err := jwtauth.CheckJWKSURL(v); err != nil {
						return nil, d.Err(err.Error())
					}
				}
				j.JWKSURL = v
			case "claim":
				j.Claim = v
			}
		case "audience", "full", "publish":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			switch opt {
			case "audience":
				j.Audiences = append(j.Audiences, args...)
			case "full":
				j.Full = append(j.Full, args...)
			case "publish":
				j.Publish = append(j.Publish, args...)
			}
		case "leeway":
			dur, err := parseDurationArg(d, jwtauth.MaxLeeway)
			if err != nil {
				return nil, err
			}
			j.Leeway = dur
		default:
			return nil, d.Errf("unrecognized jwt option %q", opt)
		}
	}
	missing := func(what string) error {
		return fmt.Errorf("jwt: %s, at %s:%d", what, file, line)
	}
	switch {
	case j.Issuer == "":
		return nil, missing("issuer is required")
	case j.JWKSURL == "":
		return nil, missing("jwks_url is required")
	case len(j.Audiences) == 0:
		return nil, missing("audience is required")
	case len(j.Full)+len(j.Publish) == 0:
		return nil, missing("full or publish is required: no claim value would grant access")
	}
	return j, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

// parseIntArg reads the option's one argument: a whole number from 1 to max.
func parseIntArg(d *caddyfile.Dispenser, max int) (int, error) {
	opt := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: %q is not a positive whole number", opt, v)
	}
	if n > max {
		return 0, d.Errf("%s: %d is over the maximum of %d", opt, n, max)
	}
	return n, nil
}

// parseDurationArg reads the option's one argument: a positive duration of
// at most max.
func parseDurationArg(d *caddyfile.Dispenser, max time.Duration) (caddy.Duration, error) {
	opt := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %q is not a positive duration", opt, v)
	}
	if dur > max {
		return 0, d.Errf("%s: %s is over the maximum of %s", opt, v, max)
	}
	return caddy.Duration(dur), nil
}

// parseSchedule reads a retry schedule: at most registry.MaxRetryWaits
// positive durations, each at most registry.MaxRetryWait.
func parseSchedule(d *caddyfile.Dispenser) ([]registry.Duration, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	if len(args) > registry.MaxRetryWaits {
		return nil, d.Errf("retry_schedule: %d waits is over the maximum of %d", len(args), registry.MaxRetryWaits)
	}
	var out []registry.Duration
	for _, a := range args {
		dur, err := caddy.ParseDuration(a)
		if err != nil || dur <= 0 {
			return nil, d.Errf("retry_schedule: %q is not a positive duration", a)
		}
		if dur > registry.MaxRetryWait {
			return nil, d.Errf("retry_schedule: %s is over the maximum of %s", a, registry.MaxRetryWait)
		}
		out = append(out, registry.Duration(dur))
	}
	return out, nil
}

// parseFlowOption reads one flow control option of a subscription or a
// forward target, checking its bounds where it stands:
//
//	rate_limit <n>/s|<n>/m|<n>/h
//	max_in_flight <n>
//	breaker off
//	breaker {
//		failures <n>
//		cooldown <duration>
//		max_cooldown <duration>
//	}
//	disable_after <duration>
//	ordered
//	order_key <expr>
func parseFlowOption(d *caddyfile.Dispenser, f *registry.FlowControl) error {
	opt := d.Val()
	switch opt {
	case "ordered":
		if d.NextArg() {
			return d.ArgErr()
		}
		f.Ordered = true
	case "order_key":
		if err := oneArg(d, &f.OrderKey); err != nil {
			return err
		}
		if _, err := filters.CompileEventKey(f.OrderKey); err != nil {
			return d.Errf("order_key: %v", err)
		}
	case "rate_limit":
		if err := oneArg(d, &f.RateLimit); err != nil {
			return err
		}
		if _, err := registry.ParseRate(f.RateLimit); err != nil {
			return d.Errf("rate_limit: %v", err)
		}
	case "max_in_flight":
		n, err := parseIntArg(d, registry.MaxInFlightCeiling)
		if err != nil {
			return err
		}
		f.MaxInFlight = n
	case "disable_after":
		dur, err := parseDurationArg(d, registry.MaxDisableAfter)
		if err != nil {
			return err
		}
		if time.Duration(dur) < registry.MinDisableAfter {
			return d.Errf("disable_after: %s is under the minimum of %s", time.Duration(dur), registry.MinDisableAfter)
		}
		f.DisableAfter = registry.Duration(dur)
	case "breaker":
		b := &registry.Breaker{}
		f.Breaker = b
		args := d.RemainingArgs()
		switch {
		case len(args) == 1 && args[0] == "off":
			b.Off = true
			if d.NextBlock(d.Nesting()) {
				return d.Err("breaker off takes no block")
			}
			return nil
		case len(args) > 0:
			return d.Errf("breaker: %q: use breaker off or a block", strings.Join(args, " "))
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "failures":
				n, err := parseIntArg(d, registry.MaxBreakerFailures)
				if err != nil {
					return err
				}
				b.Failures = n
			case "cooldown", "max_cooldown":
				name := d.Val()
				dur, err := parseDurationArg(d, registry.MaxCooldown)
				if err != nil {
					return err
				}
				if name == "cooldown" {
					b.Cooldown = registry.Duration(dur)
				} else {
					b.MaxCooldown = registry.Duration(dur)
				}
			default:
				return d.Errf("unrecognized breaker option %q", d.Val())
			}
		}
	}
	return nil
}

// checkHeaderArg checks a header subdirective where it stands; n is the
// number of headers already given.
func checkHeaderArg(d *caddyfile.Dispenser, name, value string, n int) error {
	if n >= registry.MaxHeaders {
		return d.Errf("header: more than %d headers", registry.MaxHeaders)
	}
	if strings.Contains(value, "{") {
		value = "placeholder" // resolved at provision, and checked then
	}
	if err := registry.CheckHeader(name, value); err != nil {
		return d.Errf("header: %v", err)
	}
	return nil
}

// fieldErr reports a compile error at the line of the field it names.
func fieldErr(d *caddyfile.Dispenser, lines map[string]int, kind, name string, err error) error {
	line := d.Line()
	var ie *registry.InvalidError
	if errors.As(err, &ie) {
		field, item := ie.Field, ie.Field
		if i := strings.IndexByte(item, '.'); i > 0 {
			item = item[:i] // targets[1]
		}
		if i := strings.IndexAny(field, ".["); i > 0 {
			field = field[:i]
		}
		for _, f := range []string{item, field, map[string]string{"targets": "forward"}[field]} {
			if l, ok := lines[f]; ok {
				line = l
				break
			}
		}
	}
	return fmt.Errorf("%s %q: %w, at %s:%d", kind, name, err, d.File(), line)
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Ingress)(nil)
	_ caddyfile.Unmarshaler = (*API)(nil)
)
