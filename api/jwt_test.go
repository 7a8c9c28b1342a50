package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/api/jwtauth"
)

const (
	jwtIssuer   = "https://login.microsoftonline.com/1840b34e-6fe7-4a56-9ad3-0b7b58c49dc7/v2.0"
	jwtAudience = "api://hookgate"
)

// jwksServer is an issuer's key set on 127.0.0.1 that counts its fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range s.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

// add rotates a key in.
func (s *jwksServer) add(k jose.JSONWebKey) {
	s.mu.Lock()
	s.keys = append(s.keys, k)
	s.mu.Unlock()
}

// remove rotates the key kid out.
func (s *jwksServer) remove(kid string) {
	s.mu.Lock()
	s.keys = slices.DeleteFunc(s.keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
	s.mu.Unlock()
}

// signingKey is a private key with its kid and algorithm.
type signingKey struct {
	jwk jose.JSONWebKey
	alg jose.SignatureAlgorithm
}

func newRSAKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"}, alg}
}

func newECKey(t *testing.T, kid string, curve elliptic.Curve, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"}, alg}
}

// mint signs claims (jwt.Claims plus extra members) with k.
func mint(t *testing.T, k signingKey, claims jwt.Claims, extra map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.jwk},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clock is a settable time for the validator.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// jwtEnv is an env whose handler also validates JWTs from a JWKS server.
func jwtEnv(t *testing.T, keys ...signingKey) (*env, *jwksServer, *clock) {
	t.Helper()
	e := newEnv(t)
	var pub []jose.JSONWebKey
	for _, k := range keys {
		pub = append(pub, k.jwk)
	}
	srv := newJWKSServer(t, pub...)
	clk := new(clock)
	v, err := jwtauth.New(jwtauth.Config{
		Issuer:    jwtIssuer,
		JWKSURL:   srv.URL + "/discovery/v2.0/keys",
		Audiences: []string{jwtAudience},
		Full:      []string{"Hookgate.Admin"},
		Publish:   []string{"Hookgate.Publish"},
		Logger:    e.h.log.Named("jwt"),
		Now:       clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h, err = New(e.reg, e.pipe, Options{
		Tokens: []string{adminToken}, PublishTokens: []string{publishToken}, JWT: v, Logger: e.h.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, srv, clk
}

// claimsAt are valid claims at now.
func claimsAt(now time.Time) jwt.Claims {
	return jwt.Claims{
		Issuer:    jwtIssuer,
		Subject:   "orchestry-client",
		Audience:  jwt.Audience{jwtAudience},
		Expiry:    jwt.NewNumericDate(now.Add(time.Hour)),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestJWTAuth(t *testing.T) {
	rsaKey := newRSAKey(t, "rsa1", jose.RS256)
	ecKey := newECKey(t, "ec1", elliptic.P256(), jose.ES256)
	e, _, clk := jwtEnv(t, rsaKey, ecKey)
	e.put("/topics/provisioning.completed", map[string]any{"description": "Orchestry"}).expect(http.StatusCreated)
	publish := map[string]any{"topic": "provisioning.completed", "data": json.RawMessage(orchestryData)}

	now := clk.now()
	admin := map[string]any{"roles": []string{"Hookgate.Admin"}}
	publisher := map[string]any{"roles": []string{"Other", "Hookgate.Publish"}}
	with := func(f func(c *jwt.Claims)) jwt.Claims {
		c := claimsAt(now)
		f(&c)
		return c
	}
	valid := mint(t, rsaKey, claimsAt(now), admin)
	pubTok := mint(t, ecKey, claimsAt(now), publisher)

	// A payload swapped for one with more roles, under the original
	// signature.
	parts := strings.Split(pubTok, ".")
	forged, _ := json.Marshal(map[string]any{
		"iss": jwtIssuer, "aud": jwtAudience, "exp": now.Add(time.Hour).Unix(), "roles": []string{"Hookgate.Admin"},
	})
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	// HS256 keyed with the public key's bytes, named by the RSA kid.
	der, err := x509.MarshalPKIXPublicKey(rsaKey.jwk.Public().Key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := mint(t, signingKey{jose.JSONWebKey{Key: pemKey, KeyID: "rsa1"}, jose.HS256}, claimsAt(now), admin)

	payload := b64(`{"iss":"` + jwtIssuer + `","aud":"` + jwtAudience + `","exp":` +
		jsonInt(now.Add(time.Hour).Unix()) + `,"roles":["Hookgate.Admin"]}`)
	none := b64(`{"alg":"none","kid":"rsa1","typ":"JWT"}`) + "." + payload + "."
	noneSig := b64(`{"alg":"none","kid":"rsa1","typ":"JWT"}`) + "." + payload + "." + b64("sig")

	tests := []struct {
		name   string
		method string
		path   string
		token  string
		status int
	}{
		{"valid full, RS256", "GET", "/topics", valid, http.StatusOK},
		{"valid full, ES256", "GET", "/topics", mint(t, ecKey, claimsAt(now), admin), http.StatusOK},
		{"valid full, string claim", "GET", "/topics", mint(t, rsaKey, claimsAt(now), map[string]any{"roles": "Hookgate.Admin"}), http.StatusOK},
		{"audience among several", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Audience = jwt.Audience{"other", jwtAudience} }), admin), http.StatusOK},
		{"valid full, within leeway of exp", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-30 * time.Second)) }), admin), http.StatusOK},
		{"publish-only publishes", "POST", "/events", pubTok, http.StatusAccepted},
		{"publish-only on GET /topics", "GET", "/topics", pubTok, http.StatusForbidden},
		{"publish-only on POST /workflows", "POST", "/workflows", pubTok, http.StatusForbidden},
		{"no grant", "GET", "/topics", mint(t, rsaKey, claimsAt(now), map[string]any{"roles": []string{"Other"}}), http.StatusForbidden},
		{"no grant claim", "POST", "/events", mint(t, rsaKey, claimsAt(now), nil), http.StatusForbidden},
		{"grant in another claim", "GET", "/topics", mint(t, rsaKey, claimsAt(now), map[string]any{"scp": "Hookgate.Admin"}), http.StatusForbidden},
		{"wrong audience", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Audience = jwt.Audience{"api://other"} }), admin), http.StatusUnauthorized},
		{"no audience", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Audience = nil }), admin), http.StatusUnauthorized},
		{"wrong issuer", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Issuer = "https://login.microsoftonline.com/other/v2.0" }), admin), http.StatusUnauthorized},
		{"expired", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute)) }), admin), http.StatusUnauthorized},
		{"no exp", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.Expiry = nil }), admin), http.StatusUnauthorized},
		{"not yet valid", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute)) }), admin), http.StatusUnauthorized},
		{"issued in the future", "GET", "/topics", mint(t, rsaKey, with(func(c *jwt.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute)) }), admin), http.StatusUnauthorized},
		{"alg none, empty signature", "GET", "/topics", none, http.StatusUnauthorized},
		{"alg none, with signature", "GET", "/topics", noneSig, http.StatusUnauthorized},
		{"HS256 keyed with the public key", "GET", "/topics", hs, http.StatusUnauthorized},
		{"tampered payload", "GET", "/topics", tampered, http.StatusUnauthorized},
		{"signed by a key not in the set", "GET", "/topics", mint(t, newECKey(t, "ec1", elliptic.P256(), jose.ES256), claimsAt(now), admin), http.StatusUnauthorized},
		{"static full token", "GET", "/topics", adminToken, http.StatusOK},
		{"static publish token publishes", "POST", "/events", publishToken, http.StatusAccepted},
		{"static publish token on GET /topics", "GET", "/topics", publishToken, http.StatusForbidden},
		{"wrong static token", "GET", "/topics", "wrong", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.method == "POST" {
				body = publish
			}
			r := e.do(req{method: tc.method, path: tc.path, token: tc.token, body: body})
			if tc.status >= 400 {
				m := errorCheck(t, r, tc.status, "")
				if tc.status == http.StatusUnauthorized && m["error"] != "invalid token" {
					t.Errorf("error %q, want \"invalid token\"", m["error"])
				}
				return
			}
			r.expect(tc.status)
		})
	}
	// The reasons are logged at Debug level, never the tokens.
	if e.logs.FilterMessage("refused a JWT").Len() == 0 {
		t.Error("no refused token was logged")
	}
	e.remember(valid)
	e.remember(tampered)
}

// jsonInt formats a whole number for a hand-made JSON payload.
func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A token naming an unknown kid makes the validator fetch the key set again,
// at most once per jwtauth.MinRefetch; a key rotated in at the issuer is
// then accepted, and a failed fetch keeps the last good set.
func TestJWTKeyRotation(t *testing.T) {
	rsaKey := newRSAKey(t, "rsa1", jose.RS256)
	e, srv, clk := jwtEnv(t, rsaKey)
	admin := map[string]any{"roles": []string{"Hookgate.Admin"}}
	get := func(tok string) int {
		return e.do(req{method: "GET", path: "/topics", token: tok}).Code
	}

	if got := get(mint(t, rsaKey, claimsAt(clk.now()), admin)); got != http.StatusOK {
		t.Fatalf("valid token: %d", got)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first token, want 1", n)
	}
	// Within MinRefetch of the first fetch, an unknown kid fetches nothing.
	rotated := newECKey(t, "ec-rotated", elliptic.P384(), jose.ES384)
	srv.add(rotated.jwk)
	if got := get(mint(t, rotated, claimsAt(clk.now()), admin)); got != http.StatusUnauthorized {
		t.Fatalf("unknown kid within the refetch interval: %d, want 401", got)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1: an unknown kid fetched within the refetch interval", n)
	}
	// Later, the unknown kid triggers one fetch, and the rotated key is
	// accepted.
	clk.advance(jwtauth.MinRefetch + time.Second)
	for range 3 {
		if got := get(mint(t, rotated, claimsAt(clk.now()), admin)); got != http.StatusOK {
			t.Fatalf("rotated key: %d, want 200", got)
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Unknown kids in a burst cause at most one fetch.
	clk.advance(jwtauth.MinRefetch + time.Second)
	ghost := newRSAKey(t, "ghost", jose.PS256)
	for range 5 {
		if got := get(mint(t, ghost, claimsAt(clk.now()), admin)); got != http.StatusUnauthorized {
			t.Fatalf("ghost kid: %d, want 401", got)
		}
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after a burst of unknown kids, want 3", n)
	}
	// When the issuer is down, the last good set still validates, also
	// after the hourly refresh fails.
	srv.Close()
	clk.advance(jwtauth.RefreshInterval + time.Second)
	if got := get(mint(t, rsaKey, claimsAt(clk.now()), admin)); got != http.StatusOK {
		t.Fatalf("with the issuer down: %d, want 200", got)
	}
	if e.logs.FilterMessage("could not fetch the JWKS; keeping the last good key set").Len() != 1 {
		t.Error("the failed refresh was not logged once")
	}
}

// The key set is fetched again once it is older than the refresh interval,
// and a key the issuer removed is then refused.
func TestJWTPeriodicRefresh(t *testing.T) {
	rsaKey := newRSAKey(t, "rsa1", jose.RS256)
	ecKey := newECKey(t, "ec1", elliptic.P256(), jose.ES256)
	e, srv, clk := jwtEnv(t, rsaKey, ecKey)
	admin := map[string]any{"roles": []string{"Hookgate.Admin"}}
	steps := []struct {
		advance time.Duration
		remove  string // kid removed at the issuer before the step
		status  int    // of a token signed by ecKey
		fetches int32
	}{
		{0, "", http.StatusOK, 1},
		{30 * time.Minute, "ec1", http.StatusOK, 1},
		{31 * time.Minute, "", http.StatusUnauthorized, 2},
		// The removed kid is now unknown: it makes one more fetch.
		{10 * time.Minute, "", http.StatusUnauthorized, 3},
		{10 * time.Second, "", http.StatusUnauthorized, 3},
	}
	for i, s := range steps {
		clk.advance(s.advance)
		if s.remove != "" {
			srv.remove(s.remove)
		}
		if got := e.do(req{method: "GET", path: "/topics", token: mint(t, ecKey, claimsAt(clk.now()), admin)}).Code; got != s.status {
			t.Fatalf("step %d: status %d, want %d", i, got, s.status)
		}
		e.do(req{method: "GET", path: "/topics", token: mint(t, rsaKey, claimsAt(clk.now()), admin)}).expect(http.StatusOK)
		if n := srv.fetches.Load(); n != s.fetches {
			t.Fatalf("step %d: %d fetches, want %d", i, n, s.fetches)
		}
	}
}

func TestJWTConfig(t *testing.T) {
	ok := jwtauth.Config{Issuer: jwtIssuer, JWKSURL: "https://login.microsoftonline.com/t/discovery/v2.0/keys",
		Audiences: []string{jwtAudience}, Full: []string{"Hookgate.Admin"}}
	tests := []struct {
		name    string
		edit    func(c *jwtauth.Config)
		wantErr string
	}{
		{"complete", func(c *jwtauth.Config) {}, ""},
		{"publish only", func(c *jwtauth.Config) { c.Full, c.Publish = nil, []string{"P"} }, ""},
		{"no issuer", func(c *jwtauth.Config) { c.Issuer = "" }, "issuer"},
		{"no jwks_url", func(c *jwtauth.Config) { c.JWKSURL = "" }, "jwks_url"},
		{"file jwks_url", func(c *jwtauth.Config) { c.JWKSURL = "file:///etc/keys.json" }, "http(s)"},
		{"relative jwks_url", func(c *jwtauth.Config) { c.JWKSURL = "/keys" }, "http(s)"},
		{"no audience", func(c *jwtauth.Config) { c.Audiences = nil }, "audience"},
		{"empty audience", func(c *jwtauth.Config) { c.Audiences = []string{""} }, "audience"},
		{"no grants", func(c *jwtauth.Config) { c.Full = nil }, "grants"},
		{"leeway 5m", func(c *jwtauth.Config) { c.Leeway = jwtauth.MaxLeeway }, ""},
		{"leeway over 5m", func(c *jwtauth.Config) { c.Leeway = jwtauth.MaxLeeway + time.Second }, "leeway"},
		{"negative leeway", func(c *jwtauth.Config) { c.Leeway = -time.Second }, "leeway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			_, err := jwtauth.New(c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New: err %v, want one about %q", err, tc.wantErr)
			}
		})
	}
}

// A key set that cannot be fetched or read validates nothing, and the
// failure is logged without the token.
func TestJWTBadKeySet(t *testing.T) {
	rsaKey := newRSAKey(t, "rsa1", jose.RS256)
	good, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaKey.jwk.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   string // in the logged error
	}{
		{"server error", http.StatusInternalServerError, `{}`, "status 500"},
		{"over 1 MiB", http.StatusOK, `{"keys":[],"pad":"` + strings.Repeat("x", jwtauth.MaxJWKSBody) + `"}`, "over 1048576 bytes"},
		{"not JSON", http.StatusOK, `<html>`, "decoding the key set"},
		{"empty set", http.StatusOK, `{"keys":[]}`, "empty key set"},
		{"a good set", http.StatusOK, string(good), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			core, logs := observer.New(zapcore.DebugLevel)
			v, err := jwtauth.New(jwtauth.Config{
				Issuer: jwtIssuer, JWKSURL: srv.URL, Audiences: []string{jwtAudience},
				Full: []string{"Hookgate.Admin"}, Logger: zap.New(core),
			})
			if err != nil {
				t.Fatal(err)
			}
			tok := mint(t, rsaKey, claimsAt(time.Now()), map[string]any{"roles": []string{"Hookgate.Admin"}})
			grant, err := v.Validate(context.Background(), tok)
			if tc.want == "" {
				if err != nil || grant != jwtauth.GrantFull {
					t.Fatalf("Validate: %v, %v; want full", grant, err)
				}
				return
			}
			if !errors.Is(err, jwtauth.ErrInvalidToken) {
				t.Fatalf("Validate: %v, want ErrInvalidToken", err)
			}
			failed := logs.FilterMessage("could not fetch the JWKS; keeping the last good key set").All()
			if len(failed) != 1 || !strings.Contains(failed[0].ContextMap()["error"].(string), tc.want) {
				t.Fatalf("logged %v, want one fetch failure about %q", failed, tc.want)
			}
			for _, e := range logs.All() {
				for _, f := range e.Context {
					if strings.Contains(f.String, tok) {
						t.Errorf("the token was logged in %q", e.Message)
					}
				}
			}
		})
	}
}

// Run refreshes the key set periodically once a token has fetched it, and
// stops with its context.
func TestJWTRun(t *testing.T) {
	rsaKey := newRSAKey(t, "rsa1", jose.RS256)
	srv := newJWKSServer(t, rsaKey.jwk)
	clk := new(clock)
	v, err := jwtauth.New(jwtauth.Config{
		Issuer: jwtIssuer, JWKSURL: srv.URL, Audiences: []string{jwtAudience},
		Full: []string{"Hookgate.Admin"}, Refresh: 20 * time.Millisecond, Now: clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()

	// No token yet: nothing is fetched.
	time.Sleep(100 * time.Millisecond)
	if n := srv.fetches.Load(); n != 0 {
		t.Fatalf("%d fetches before any token, want 0", n)
	}
	tok := mint(t, rsaKey, claimsAt(clk.now()), map[string]any{"roles": []string{"Hookgate.Admin"}})
	if g, err := v.Validate(context.Background(), tok); err != nil || g != jwtauth.GrantFull {
		t.Fatalf("Validate: %v, %v", g, err)
	}
	// Ticks within MinRefetch of the last fetch fetch nothing; later ones do.
	time.Sleep(100 * time.Millisecond)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within the refetch interval, want 1", n)
	}
	for want := int32(2); want <= 3; want++ {
		clk.advance(jwtauth.MinRefetch + time.Second)
		eventually(t, 5*time.Second, "a periodic refresh", func() bool { return srv.fetches.Load() >= want })
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context was done")
	}
}
