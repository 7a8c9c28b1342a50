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

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/api"
)

func init() {
	caddy.RegisterModule(API{})
}

// API is the hookgate_api HTTP handler: the management API (workflows,
// topics, subscriptions, events, deliveries) under Prefix. It refuses to
// provision without a token: there is no open admin API.
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
	// PublishTokens may only publish events (POST /events).
	PublishTokens []string `json:"publish_tokens,omitempty"`

	app     *App
	logger  *zap.Logger
	tokens  []string
	publish []string
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
	if len(h.tokens)+len(h.publish)+pending == 0 {
		return errors.New("hookgate_api needs a token (token, token_file or publish_token): there is no open admin API")
	}
	return nil
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
