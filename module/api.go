package module

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/api"
	"github.com/hookgate/hookgate/api/jwtauth"
)

func init() {
	caddy.RegisterModule(API{})
}

// API is the hookgate_api HTTP handler: the management API (workflows,
// topics, subscriptions, events, deliveries) under Prefix. It refuses to
// provision without a token or a jwt block: there is no open admin API.
type API struct {
	// Prefix the API routes live under. Default: the path of the
	// directive's matcher in the Caddyfile, else /api/hookgate.
	Prefix string `json:"prefix,omitempty"`
	// Tokens give full access (bearer tokens; placeholders allowed).
	Tokens []string `json:"tokens,omitempty"`
	// TokenFiles hold one token each. A file that does not exist is
	// created when the app starts (never by `caddy validate` or `caddy
	// adapt`) with a random token, mode 0600; its path (never the token) is
	// logged.
	TokenFiles []string `json:"token_files,omitempty"`
	// PublishTokens may only publish events (POST /events and POST /events/batch).
	PublishTokens []string `json:"publish_tokens,omitempty"`
	// JWT, when set, also accepts JWT bearer tokens (such as OAuth2
	// client-credentials access tokens from Azure AD) validated against
	// the issuer's key set. A bearer token of three parts separated by dots
	// is validated as a JWT; any other is compared with the static tokens.
	JWT *JWT `json:"jwt,omitempty"`

	app     *App
	logger  *zap.Logger
	tokens  []string
	publish []string
	jwt     *jwtauth.Validator
	mu      *sync.Mutex
	handler *api.Handler
	forRT   *runtime
}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hookgate_api",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision resolves the tokens and reads the token files; a missing one is
// created by the app's Start, since Provision also runs for `caddy validate`.
func (h *API) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.mu = new(sync.Mutex)
	if h.Prefix == "" {
		h.Prefix = "/api/hookgate"
	}
	h.Prefix = "/" + strings.Trim(h.Prefix, "/")
	var err error
	if h.app, err = loadApp(ctx); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	for i, t := range h.Tokens {
		v := repl.ReplaceAll(t, "")
		if v == "" {
			return fmt.Errorf("tokens[%d]: empty (is its environment variable set?)", i)
		}
		h.tokens = append(h.tokens, v)
	}
	pending := 0
	for _, f := range h.TokenFiles {
		path := repl.ReplaceAll(f, "")
		v, err := readToken(path)
		if errors.Is(err, fs.ErrNotExist) {
			h.app.createTokenAtStart(path, h.addToken)
			pending++
			continue
		}
		if err != nil {
			return err
		}
		h.tokens = append(h.tokens, v)
	}
	for i, t := range h.PublishTokens {
		v := repl.ReplaceAll(t, "")
		if v == "" {
			return fmt.Errorf("publish_tokens[%d]: empty (is its environment variable set?)", i)
		}
		h.publish = append(h.publish, v)
	}
	if h.JWT != nil {
		if h.jwt, err = h.JWT.validator(repl, h.logger.Named("jwt")); err != nil {
			return err
		}
		// Refreshes the key set hourly until this configuration is
		// unloaded; it fetches nothing before a token has.
		go h.jwt.Run(ctx)
	}
	if len(h.tokens)+len(h.publish)+pending == 0 && h.jwt == nil {
		return errors.New("hookgate_api needs a token (token, token_file, publish_token or jwt): there is no open admin API")
	}
	return nil
}

// JWT configures the validation of JWT bearer tokens: signed (RS256, RS384,
// RS512, ES256, ES384 or PS256) by a key of the issuer's JSON Web Key Set,
// named by its kid, issued by Issuer for one of Audiences, with an "exp"
// not passed. Claim's values give the access: full or publish-only. A valid
// token without a granted value is refused with 403.
type JWT struct {
	// Issuer must equal the tokens' "iss" claim, e.g.
	// https://login.microsoftonline.com/<tenant>/v2.0. Required;
	// placeholders allowed.
	Issuer string `json:"issuer,omitempty"`
	// JWKSURL is the http(s) URL of the issuer's key set, e.g.
	// https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys. It is
	// trusted configuration: the outgoing-target guard does not apply.
	// Required; placeholders allowed.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Audiences: a token's "aud" must contain one of them, e.g.
	// api://hookgate. Required; placeholders allowed.
	Audiences []string `json:"audiences,omitempty"`
	// Claim carries the grants: a string (values separated by spaces, as
	// "scp") or an array of strings (as "roles"). Default: roles.
	Claim string `json:"claim,omitempty"`
	// Full are the claim values that give full access.
	Full []string `json:"full,omitempty"`
	// Publish are the claim values that may only publish events.
	Publish []string `json:"publish,omitempty"`
	// Leeway is the allowed clock skew for "exp", "nbf" and "iat".
	// Default: 60s; at most 5m.
	Leeway caddy.Duration `json:"leeway,omitempty"`
}

// validator resolves the placeholders and builds the validator. It fetches
// nothing: the key set is fetched at the first token.
func (j *JWT) validator(repl *caddy.Replacer, log *zap.Logger) (*jwtauth.Validator, error) {
	cfg := jwtauth.Config{
		Issuer:  repl.ReplaceAll(j.Issuer, ""),
		JWKSURL: repl.ReplaceAll(j.JWKSURL, ""),
		Claim:   j.Claim,
		Full:    j.Full,
		Publish: j.Publish,
		Leeway:  time.Duration(j.Leeway),
		Logger:  log,
	}
	for _, a := range j.Audiences {
		cfg.Audiences = append(cfg.Audiences, repl.ReplaceAll(a, ""))
	}
	v, err := jwtauth.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("hookgate_api: %w", err)
	}
	return v, nil
}

// addToken adds a full-access token (from a token file the app created).
func (h *API) addToken(tok string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens = append(h.tokens, tok)
	h.handler = nil // rebuilt with the token at the next request
}

// readToken reads a token file; a missing file is an fs.ErrNotExist error.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token_file %s is empty", path)
	}
	return tok, nil
}

// loadOrCreateToken reads a token file, creating it with a new random token
// when it does not exist.
func loadOrCreateToken(path string, log *zap.Logger) (string, error) {
	tok, err := readToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok = base64.RawURLEncoding.EncodeToString(raw[:])
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("token_file: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateToken(path, log) // created meanwhile
	}
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(tok + "\n"); err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	log.Info("created an API token file", zap.String("path", path))
	return tok, nil
}

// ServeHTTP serves the API under the prefix and passes other paths on.
func (h *API) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.Prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return next.ServeHTTP(w, r)
	}
	rt := h.app.awaitRuntime(r.Context())
	if rt == nil {
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "hookgate is starting"})
	}
	handler, err := h.handlerFor(rt)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = rest
	r2.URL.RawPath = ""
	handler.ServeHTTP(w, r2)
	return nil
}

func (h *API) handlerFor(rt *runtime) (*api.Handler, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handler != nil && h.forRT == rt {
		return h.handler, nil
	}
	hd, err := api.New(rt.reg, rt.pipe, api.Options{
		Tokens:        h.tokens,
		PublishTokens: h.publish,
		JWT:           h.jwt,
		WorkflowURL:   h.workflowURL,
		Logger:        h.logger,
	})
	if err != nil {
		return nil, err
	}
	h.handler, h.forRT = hd, rt
	return hd, nil
}

// workflowURL is the public URL of a workflow, on the host the API was
// called on.
func (h *API) workflowURL(r *http.Request, id, key string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + h.app.ingressPrefix() + "/" + id + "/" + key
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*API)(nil)
	_ caddyhttp.MiddlewareHandler = (*API)(nil)
)
