// Package jwtauth validates JWT bearer tokens (such as OAuth2
// client-credentials access tokens from Azure AD) against the keys an
// issuer publishes as a JSON Web Key Set, and maps a claim of a valid token
// to an access grant.
//
// The key set is fetched over HTTP(S) with a bounded client at the first
// token, cached, refreshed periodically (Validator.Run), and fetched again
// when a token names a key the cached set lacks or finds the set older than
// the refresh interval — never more than once per MinRefetch. A failed
// fetch keeps the last good set.
//
// The package imports nothing from Caddy.
package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap"
)

// Bounds and defaults.
const (
	// DefaultClaim is the claim that carries the grants by default.
	DefaultClaim = "roles"
	// DefaultLeeway is the default allowed clock skew.
	DefaultLeeway = 60 * time.Second
	// MaxLeeway bounds the allowed clock skew.
	MaxLeeway = 5 * time.Minute
	// MaxJWKSBody bounds the size of a fetched key set.
	MaxJWKSBody = 1 << 20
	// FetchTimeout bounds one fetch of the key set.
	FetchTimeout = 5 * time.Second
	// MinRefetch is the least time between two fetches of the key set, so
	// that tokens naming unknown keys cannot make it fetch per request.
	MinRefetch = 30 * time.Second
	// RefreshInterval is the default interval of the periodic refresh of
	// the key set (see Validator.Run), and the age at which a cached set is
	// fetched again before it validates a token.
	RefreshInterval = time.Hour
)

// Algorithms are the signature algorithms a token may use. "none" and the
// HMAC algorithms are refused: a key set holds public keys.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.PS256,
}

// Grant is the access a valid token gives.
type Grant int

// The grants, from none to full.
const (
	// GrantNone: the token is valid but carries no granted claim value.
	GrantNone Grant = iota
	// GrantPublish: the token may only publish events.
	GrantPublish
	// GrantFull: the token has full access.
	GrantFull
)

// ErrInvalidToken is returned for a token that is not valid, whatever the
// check that failed (the reason is logged at Debug level).
var ErrInvalidToken = errors.New("invalid token")

// Config configures a Validator.
type Config struct {
	// Issuer must equal the tokens' "iss" claim. Required.
	Issuer string
	// JWKSURL is the http(s) URL of the issuer's JSON Web Key Set.
	// Required.
	JWKSURL string
	// Audiences: a token's "aud" must contain one of them. Required.
	Audiences []string
	// Claim carries the grants: a string (values separated by spaces) or
	// an array of strings. Default: DefaultClaim.
	Claim string
	// Full are the claim values that give full access.
	Full []string
	// Publish are the claim values that give publish-only access.
	Publish []string
	// Leeway is the allowed clock skew for "exp", "nbf" and "iat".
	// Default: DefaultLeeway; at most MaxLeeway.
	Leeway time.Duration
	// Refresh is the interval of the periodic refresh, and the age at
	// which a cached set is fetched again before it validates a token.
	// Default: RefreshInterval.
	Refresh time.Duration
	// Client fetches the key set. Default: a client with FetchTimeout.
	Client *http.Client
	// Logger receives fetch failures and, at Debug level, why a token was
	// refused. Default: no logging.
	Logger *zap.Logger
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Validator validates JWT bearer tokens. It is safe for concurrent use.
type Validator struct {
	cfg Config
	log *zap.Logger

	fetchMu sync.Mutex // serialises fetches

	mu        sync.Mutex
	keys      *jose.JSONWebKeySet
	fetchedAt time.Time // of the current set
	triedAt   time.Time // of the last fetch attempt
}

// New checks cfg and returns a Validator. It fetches nothing: the key set
// is fetched at the first token.
func New(cfg Config) (*Validator, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("jwt: an issuer is required")
	}
	if cfg.JWKSURL == "" {
		return nil, errors.New("jwt: a jwks_url is required")
	}
	if err := CheckJWKSURL(cfg.JWKSURL); err != nil {
		return nil, err
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("jwt: an audience is required")
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			return nil, errors.New("jwt: empty audience")
		}
	}
	if len(cfg.Full)+len(cfg.Publish) == 0 {
		return nil, errors.New("jwt: no claim value grants access (full or publish)")
	}
	if cfg.Claim == "" {
		cfg.Claim = DefaultClaim
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("jwt: leeway %s is not between 0 and %s", cfg.Leeway, MaxLeeway)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = RefreshInterval
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: FetchTimeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Validator{cfg: cfg, log: cfg.Logger}
	if v.log == nil {
		v.log = zap.NewNop()
	}
	return v, nil
}

// CheckJWKSURL checks that u is an absolute http(s) URL with a host.
func CheckJWKSURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("jwt: jwks_url %q is not an http(s) URL", u)
	}
	return nil
}

// LooksLikeJWT reports whether token has the form of a compact JWS: three
// non-empty parts separated by dots.
func LooksLikeJWT(token string) bool {
	parts := strings.Split(token, ".")
	return len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != ""
}

// Validate checks token and returns its grant. Any failure is
// ErrInvalidToken; a valid token without a granted claim value is
// GrantNone with no error.
func (v *Validator) Validate(ctx context.Context, token string) (Grant, error) {
	g, reason := v.validate(ctx, token)
	if reason != "" {
		v.log.Debug("refused a JWT", zap.String("reason", reason))
		return GrantNone, ErrInvalidToken
	}
	return g, nil
}

func (v *Validator) validate(ctx context.Context, token string) (Grant, string) {
	if !LooksLikeJWT(token) {
		return GrantNone, "not a compact JWS"
	}
	tok, err := jwt.ParseSigned(token, Algorithms)
	if err != nil {
		return GrantNone, "unparsable or disallowed algorithm: " + err.Error()
	}
	if len(tok.Headers) != 1 {
		return GrantNone, "not exactly one signature"
	}
	hdr := tok.Headers[0]
	if hdr.KeyID == "" {
		return GrantNone, "no kid in the header"
	}
	keys := v.keysFor(ctx, hdr.KeyID)
	if len(keys) == 0 {
		return GrantNone, "unknown kid"
	}
	var claims jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public()
		if !pub.Valid() {
			continue
		}
		if err := tok.Claims(pub.Key, &claims, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return GrantNone, "bad signature"
	}
	if claims.Expiry == nil {
		return GrantNone, "no exp claim"
	}
	err = claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.cfg.Issuer,
		AnyAudience: jwt.Audience(v.cfg.Audiences),
		Time:        v.cfg.Now(),
	}, v.cfg.Leeway)
	if err != nil {
		return GrantNone, err.Error()
	}
	values := claimValues(all[v.cfg.Claim])
	switch {
	case containsAny(values, v.cfg.Full):
		return GrantFull, ""
	case containsAny(values, v.cfg.Publish):
		return GrantPublish, ""
	}
	return GrantNone, ""
}

// claimValues reads a grant claim: a string of values separated by spaces
// (as OAuth2 "scp"), or an array of strings (as "roles").
func claimValues(c any) []string {
	switch c := c.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		var out []string
		for _, e := range c {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func containsAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// keysFor returns the keys of the set with kid, fetching the set when there
// is none yet, when it is older than Config.Refresh, or when it lacks kid —
// never more than once per MinRefetch.
func (v *Validator) keysFor(ctx context.Context, kid string) []jose.JSONWebKey {
	v.mu.Lock()
	set, fetchedAt := v.keys, v.fetchedAt
	v.mu.Unlock()
	now := v.cfg.Now()
	var keys []jose.JSONWebKey
	if set != nil {
		keys = set.Key(kid)
	}
	if len(keys) > 0 && now.Sub(fetchedAt) < v.cfg.Refresh {
		return keys
	}
	// After a fetch, only the new set counts: a key the issuer removed is
	// no longer trusted. After a failed or skipped fetch, the set is the
	// last good one.
	if set = v.refetch(ctx); set != nil {
		return set.Key(kid)
	}
	return nil
}

// Run refreshes the key set every Config.Refresh until ctx is done. It
// fetches only once a token has caused the first fetch, so that a
// configuration that is only validated, or never used, fetches nothing.
func (v *Validator) Run(ctx context.Context) {
	t := time.NewTicker(v.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.mu.Lock()
			have := v.keys != nil
			v.mu.Unlock()
			if have {
				v.refetch(ctx)
			}
		}
	}
}

// refetch fetches the key set unless a fetch was tried within MinRefetch,
// and returns the current set.
func (v *Validator) refetch(ctx context.Context) *jose.JSONWebKeySet {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	now := v.cfg.Now()
	v.mu.Lock()
	if !v.triedAt.IsZero() && now.Sub(v.triedAt) < MinRefetch {
		set := v.keys
		v.mu.Unlock()
		return set
	}
	v.triedAt = now
	v.mu.Unlock()

	set, err := v.fetch(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.log.Warn("could not fetch the JWKS; keeping the last good key set",
			zap.String("jwks_url", v.cfg.JWKSURL), zap.Bool("have_keys", v.keys != nil), zap.Error(err))
		return v.keys
	}
	v.keys, v.fetchedAt = set, now
	v.log.Debug("fetched the JWKS", zap.String("jwks_url", v.cfg.JWKSURL), zap.Int("keys", len(set.Keys)))
	return set
}

// fetch gets and decodes the key set.
func (v *Validator) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	// The fetch serves every waiting request, so the one that started it
	// going away must not cancel it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxJWKSBody {
		return nil, fmt.Errorf("key set over %d bytes", MaxJWKSBody)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding the key set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("empty key set")
	}
	return &set, nil
}
