package module

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestJWTFromCaddyfile (issue #12, 3b): hookgate_api with a jwt block, as
// for Orchestry's Azure AD client-credentials tokens, through real Caddy,
// with the issuer's key set served on 127.0.0.1.
func TestJWTFromCaddyfile(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := []jose.JSONWebKey{
		{Key: rsaKey, KeyID: "rsa1", Use: "sig", Algorithm: string(jose.RS256)},
		{Key: ecKey, KeyID: "ec1", Use: "sig"},
	}
	var fetches atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		var set jose.JSONWebKeySet
		for _, k := range keys {
			set.Keys = append(set.Keys, k.Public())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwks.Close)

	const tenant = "1840b34e-6fe7-4a56-9ad3-0b7b58c49dc7"
	issuer := "https://login.microsoftonline.com/" + tenant + "/v2.0"
	startCaddy(t, t.TempDir(), `
		topic provisioning.completed`, fmt.Sprintf(`
	hookgate_api /api/hookgate/* {
		token %s
		jwt {
			issuer %s
			jwks_url %s/%s/discovery/v2.0/keys
			audience api://hookgate
			claim roles
			full Hookgate.Admin
			publish Hookgate.Publish
			leeway 30s
		}
	}
	respond "app" 200
`, testToken, issuer, jwks.URL, tenant))
	// Move Caddy off this test's storage before it is removed (cleanups run
	// last-in first-out).
	t.Cleanup(func() { startCaddy(t, t.TempDir(), "", `respond "idle" 200`) })

	mint := func(key jose.JSONWebKey, alg jose.SignatureAlgorithm, aud string, roles ...string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{
			Issuer: issuer, Subject: "orchestry", Audience: jwt.Audience{aud},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
		}).Claims(map[string]any{"roles": roles}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin := mint(keys[0], jose.RS256, "api://hookgate", "Hookgate.Admin")
	publisher := mint(keys[1], jose.ES256, "api://hookgate", "Hookgate.Publish")
	event := map[string]any{"topic": "provisioning.completed", "data": map[string]any{"tenantId": tenant}}

	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
	}{
		{"full JWT lists topics", "GET", "/topics", admin, nil, http.StatusOK},
		{"publish JWT publishes", "POST", "/events", publisher, event, http.StatusAccepted},
		{"publish JWT on GET /topics", "GET", "/topics", publisher, nil, http.StatusForbidden},
		{"JWT without a granted role", "GET", "/topics", mint(keys[0], jose.RS256, "api://hookgate", "Reader"), nil, http.StatusForbidden},
		{"JWT for another audience", "GET", "/topics", mint(keys[0], jose.RS256, "api://other", "Hookgate.Admin"), nil, http.StatusUnauthorized},
		{"static token", "GET", "/topics", testToken, nil, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, tc.method, base+"/api/hookgate"+tc.path, tc.body, "Authorization", "Bearer "+tc.token)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if status >= 400 && body["error"] == nil {
				t.Errorf("no JSON error: %v", body)
			}
		})
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the key set was fetched %d times, want 1", n)
	}
}
