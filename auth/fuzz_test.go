package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	_ "crypto/sha512" // HS384, HS512 in signedWith
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fuzzSecret and fuzzECKey are fixed, so that a token the fuzzer found in
// one worker process is signed with the keys of every other.
var fuzzSecret = []byte("fuzzing secret, 64 bytes long, for HS256, HS384 and HS512 tokens")

func fuzzECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatalf("failed to make the fuzz key: %v", err)
	}
	return k
}

// FuzzVerifyToken feeds arbitrary strings as tokens to an HMAC and an
// ECDSA Verifier. Neither may panic, every refusal must wrap
// ErrInvalidToken, and a token accepted must be signed with the
// verifier's key under an allowed algorithm, which the test checks with
// crypto/hmac and crypto/ecdsa directly, not with jwt/v5.
func FuzzVerifyToken(f *testing.F) {
	ecKey := fuzzECKey(f)
	far := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	full := jwt.MapClaims{"sub": "alice", "exp": far, "nbf": 0, "iss": "idp", "aud": []string{"wsgate"},
		"subscribe": []string{"news.*", "*"}, "publish": []string{"room:42"}}
	seeds := []string{
		sign(f, jwt.SigningMethodHS256, fuzzSecret, jwt.MapClaims{"sub": "alice", "exp": far}),
		sign(f, jwt.SigningMethodHS384, fuzzSecret, full),
		sign(f, jwt.SigningMethodHS512, fuzzSecret, jwt.MapClaims{"sub": "bob", "exp": float64(far) + 0.5, "subscribe": []string{}}),
		sign(f, jwt.SigningMethodES256, ecKey, full),
		sign(f, jwt.SigningMethodES256, ecKey, jwt.MapClaims{"sub": "x", "exp": far}),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, full),
		sign(f, jwt.SigningMethodHS256, pkixPEM(f, &ecKey.PublicKey), full),
		sign(f, jwt.SigningMethodHS256, fuzzSecret, jwt.MapClaims{"sub": "alice", "exp": 1}),
		sign(f, jwt.SigningMethodHS256, fuzzSecret, jwt.MapClaims{"sub": 5, "exp": far, "publish": "x"}),
		"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	hs, err := New(Config{Secret: fuzzSecret})
	if err != nil {
		f.Fatal(err)
	}
	es, err := New(Config{PublicKeyPEM: pkixPEM(f, &ecKey.PublicKey)})
	if err != nil {
		f.Fatal(err)
	}
	for i, s := range seeds[:5] {
		v := hs
		if i >= 3 {
			v = es
		}
		if _, _, err := v.Verify(s); err != nil {
			f.Fatalf("seed %d: got %v, want a valid token", i, err)
		}
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range []*Verifier{hs, es} {
			p, exp, err := v.Verify(token)
			if err != nil {
				if !errors.Is(err, ErrInvalidToken) || p != nil {
					t.Fatalf("got %v, %v for %q; want a nil principal and an error wrapping ErrInvalidToken", p, err, token)
				}
				continue
			}
			if p == nil || p.UserID == "" || !exp.After(time.Now()) {
				t.Fatalf("accepted %q: got principal %+v expiring %v, want a user and a future expiry", token, p, exp)
			}
			if alg, ok := signedWith(token, v == hs, &ecKey.PublicKey); !ok {
				t.Fatalf("accepted %q (alg %q), which is not signed with the verifier's key", token, alg)
			}
		}
	})
}

// signedWith checks token's signature independently of jwt/v5: with the
// fuzz secret under HS256/384/512 if hmacKey, with pub under ES256
// otherwise. It returns the header's alg.
func signedWith(token string, hmacKey bool, pub *ecdsa.PublicKey) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &header) != nil {
		return "", false
	}
	input := []byte(parts[0] + "." + parts[1])
	if !hmacKey {
		if header.Alg != "ES256" || len(sig) != 64 {
			return header.Alg, false
		}
		sum := sha256.Sum256(input)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return header.Alg, ecdsa.Verify(pub, sum[:], r, s)
	}
	hashes := map[string]crypto.Hash{"HS256": crypto.SHA256, "HS384": crypto.SHA384, "HS512": crypto.SHA512}
	hash, ok := hashes[header.Alg]
	if !ok {
		return header.Alg, false
	}
	mac := hmac.New(hash.New, fuzzSecret)
	mac.Write(input)
	return header.Alg, hmac.Equal(mac.Sum(nil), sig)
}
