package registry

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 43 {
			t.Fatalf("key %q has %d characters, want 43", k, len(k))
		}
		if strings.ContainsAny(k, "+/=") {
			t.Fatalf("key %q is not URL-safe base64 without padding", k)
		}
		b, err := base64.RawURLEncoding.DecodeString(k)
		if err != nil || len(b) != 32 {
			t.Fatalf("key %q decodes to %d bytes (%v), want 32 (256 bits)", k, len(b), err)
		}
		if seen[k] {
			t.Fatalf("key repeated: %q", k)
		}
		seen[k] = true
	}
}

func TestHashKey(t *testing.T) {
	k := "abc"
	want := sha256.Sum256([]byte(k))
	if HashKey(k) != want {
		t.Error("HashKey is not SHA-256")
	}
	if h := hashHex(HashKey(k)); h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("hashHex = %s", h)
	}
	if HashKey("a") == HashKey("b") {
		t.Error("different keys hash alike")
	}
}

func TestParseHash(t *testing.T) {
	h := HashKey("k")
	tests := []struct {
		in string
		ok bool
	}{
		{hashHex(h), true},
		{strings.ToUpper(hashHex(h)), true},
		{"", false},
		{"zz", false},
		{hashHex(h)[:62], false},
		{hashHex(h) + "00", false},
		{hex.EncodeToString(make([]byte, 31)), false},
	}
	for _, tc := range tests {
		got, ok := parseHash(tc.in)
		if ok != tc.ok || (ok && got != h) {
			t.Errorf("parseHash(%q) = %x, %v; want ok=%v", tc.in, got, ok, tc.ok)
		}
	}
}

func TestEqualHash(t *testing.T) {
	a, b, c := HashKey("x"), HashKey("x"), HashKey("y")
	if !equalHash(&a, &b) || equalHash(&a, &c) {
		t.Error("equalHash")
	}
}
