package signature

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// SlackChallenge is hookgate's answer to Slack's url_verification request.
type SlackChallenge struct {
	// Challenge is the challenge of the request, sent back.
	Challenge string `json:"challenge"`
}

// Handshake answers Slack's url_verification request
// ({"type":"url_verification","challenge":…}) with its challenge.
func (v slack) Handshake(_ *http.Request, body []byte) (any, bool) {
	if !bytes.Contains(body, []byte("url_verification")) {
		return nil, false // cheap test first: every event goes through here
	}
	var req struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(body, &req) != nil || req.Type != "url_verification" || req.Challenge == "" {
		return nil, false
	}
	return SlackChallenge{Challenge: req.Challenge}, true
}

// ZoomValidation is hookgate's answer to Zoom's endpoint.url_validation
// request.
type ZoomValidation struct {
	// PlainToken is the plainToken of the request, sent back.
	PlainToken string `json:"plainToken"`
	// EncryptedToken is the hex HMAC-SHA256 of PlainToken under the secret
	// token.
	EncryptedToken string `json:"encryptedToken"`
}

// Handshake answers Zoom's endpoint.url_validation request
// ({"event":"endpoint.url_validation","payload":{"plainToken":…}}). The
// encrypted token is made with the secret that signed the request, so that
// the validation passes whichever secret Zoom uses during a rotation.
func (v zoom) Handshake(r *http.Request, body []byte) (any, bool) {
	if !bytes.Contains(body, []byte("endpoint.url_validation")) {
		return nil, false
	}
	var req struct {
		Event   string `json:"event"`
		Payload struct {
			PlainToken string `json:"plainToken"`
		} `json:"payload"`
	}
	if json.Unmarshal(body, &req) != nil || req.Event != "endpoint.url_validation" || req.Payload.PlainToken == "" {
		return nil, false
	}
	// Verify checked the timestamp: only find the key that signed.
	ts, sig, err := v0Parse(r, HeaderZoomSignature, HeaderZoomTimestamp)
	if err != nil {
		return nil, false
	}
	key, err := v0Key(v.keys, ts, sig, body)
	if err != nil {
		return nil, false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(req.Payload.PlainToken))
	return ZoomValidation{PlainToken: req.Payload.PlainToken, EncryptedToken: hex.EncodeToString(mac.Sum(nil))}, true
}
