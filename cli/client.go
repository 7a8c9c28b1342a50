package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults match the root Caddyfile: the API under /api/hookgate on :8080,
// its token in .hookgate/api-token (token_file {$HOOKGATE_TOKEN_FILE:.hookgate/api-token}),
// relative to the directory the gateway runs in.
const (
	DefaultAPI       = "http://localhost:8080/api/hookgate"
	DefaultTokenFile = ".hookgate/api-token"
)

// Environment variables read when the matching flag is not given.
const (
	EnvAPI       = "HOOKGATE_API"
	EnvToken     = "HOOKGATE_TOKEN"
	EnvTokenFile = "HOOKGATE_TOKEN_FILE"
)

// maxResponse bounds what the client reads of one answer.
const maxResponse = 64 << 20

// client calls the management API.
type client struct {
	base  string // API prefix, without a trailing slash
	token string
	http  *http.Client
}

// APIError is a 4xx or 5xx answer of the API.
type APIError struct {
	Status  int
	Message string
	Field   string
	Errors  []FieldError
}

// FieldError is one item of a validation failure's "errors".
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %s)", e.Field)
	}
	fmt.Fprintf(&b, " [HTTP %d]", e.Status)
	for _, fe := range e.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", fe.Path, fe.Message)
	}
	return b.String()
}

// do sends a request with body (JSON-encoded unless it is a
// json.RawMessage, nil for none) and returns the answer's body; a status
// of 400 or more is an *APIError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) ([]byte, int, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		raw, ok := body.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return nil, 0, err
			}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, fmt.Errorf("%s %s: %w (is the gateway running? --api or %s sets the API's address)", method, c.base+path, err, EnvAPI)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		e := &APIError{Status: resp.StatusCode}
		var body struct {
			Error  string       `json:"error"`
			Field  string       `json:"field"`
			Errors []FieldError `json:"errors"`
		}
		if json.Unmarshal(raw, &body) == nil && body.Error != "" {
			e.Message, e.Field, e.Errors = body.Error, body.Field, body.Errors
		} else {
			e.Message = strings.TrimSpace(string(raw))
			if e.Message == "" || len(e.Message) > 300 {
				e.Message = http.StatusText(resp.StatusCode)
			}
		}
		return raw, resp.StatusCode, e
	}
	return raw, resp.StatusCode, nil
}

// settings are the connection flags, resolved against the environment.
type settings struct {
	api       string
	token     string
	tokenFile string
	timeout   time.Duration
	getenv    func(string) string
}

// resolvedTokenFile is the token file to read: --token-file, else
// HOOKGATE_TOKEN_FILE, else the root Caddyfile's, made absolute.
func (s *settings) resolvedTokenFile() string {
	f := s.tokenFile
	if f == "" {
		f = s.getenv(EnvTokenFile)
	}
	if f == "" {
		f = DefaultTokenFile
	}
	if abs, err := filepath.Abs(f); err == nil {
		f = abs
	}
	return f
}

// client builds the API client: address from --api, HOOKGATE_API or the
// default; token from --token, HOOKGATE_TOKEN or the token file.
func (s *settings) client() (*client, error) {
	base := s.api
	if base == "" {
		base = s.getenv(EnvAPI)
	}
	if base == "" {
		base = DefaultAPI
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the API address %q is not an http(s) URL such as %s", base, DefaultAPI)
	}
	token := s.token
	if token == "" {
		token = strings.TrimSpace(s.getenv(EnvToken))
	}
	if token == "" {
		path := s.resolvedTokenFile()
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no API token: the token file %s does not exist (the gateway creates it at its first start, relative to the directory it runs in); set --token-file or %s, or --token or %s", path, EnvTokenFile, EnvToken)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the token file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("the token file %s is empty", path)
		}
	}
	timeout := s.timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &client{
		base:  strings.TrimRight(base, "/"),
		token: token,
		http: &http.Client{
			Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // never carry the token elsewhere
			},
		},
	}, nil
}
