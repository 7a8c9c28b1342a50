package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// GenerateKey returns a new workflow key: 32 random bytes, base64url without
// padding (43 characters, safe in a URL path).
func GenerateKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashKey returns the SHA-256 of a key: the only form a key is stored in.
func HashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

func hashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }

func parseHash(s string) (h [32]byte, ok bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// equalHash compares two hashes in constant time.
func equalHash(a, b *[32]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
