package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

// keySet is the verification keys of a Verifier, sorted by the kind of
// algorithm that can use them. It holds either a secret or public keys,
// never both, and is read-only after New.
type keySet struct {
	secret []byte                         // HS256, HS384, HS512
	rsa    jwt.VerificationKeySet         // RS*, PS*
	ec     map[int]jwt.VerificationKeySet // ES256, ES384, ES512, by curve size in bits
	ed     jwt.VerificationKeySet         // EdDSA
}

// hmacMinLen is the shortest secret each HMAC algorithm accepts: the size
// of its hash (RFC 7518 section 3.2).
var hmacMinLen = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// knownAlgorithms is every algorithm a Verifier can accept, in the order
// Algorithms lists them. "none" is deliberately absent.
var knownAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// loadKeys reads the secret or the public keys that cfg names.
func loadKeys(cfg Config) (*keySet, error) {
	hasSecret := len(cfg.Secret) > 0 || cfg.SecretFile != ""
	hasPublic := len(cfg.PublicKeyPEM) > 0 || len(cfg.PublicKeyFiles) > 0
	switch {
	case !hasSecret && !hasPublic:
		return nil, invalidConfig("no key: set Secret or SecretFile (HMAC), or PublicKeyPEM or PublicKeyFiles (RSA, ECDSA, Ed25519)")
	case hasSecret && hasPublic:
		return nil, invalidConfig("both a secret and public keys: give one kind of key, so that no token can pick the other (algorithm confusion)")
	case len(cfg.Secret) > 0 && cfg.SecretFile != "":
		return nil, invalidConfig("both Secret and SecretFile are set")
	case hasSecret:
		return loadSecret(cfg)
	}
	ks := &keySet{ec: map[int]jwt.VerificationKeySet{}}
	if len(cfg.PublicKeyPEM) > 0 {
		if err := ks.addPEM(cfg.PublicKeyPEM, "PublicKeyPEM"); err != nil {
			return nil, err
		}
	}
	for _, name := range cfg.PublicKeyFiles {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, invalidConfig("failed to read public key file: %v", err)
		}
		if err := ks.addPEM(data, name); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// loadSecret returns the HMAC secret of cfg, from SecretFile without its
// trailing line break if that is where it is.
func loadSecret(cfg Config) (*keySet, error) {
	secret := cfg.Secret
	if cfg.SecretFile != "" {
		data, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, invalidConfig("failed to read secret file: %v", err)
		}
		secret = bytes.TrimRight(data, "\r\n")
	}
	if len(secret) < hmacMinLen["HS256"] {
		return nil, invalidConfig("secret is %d bytes, want at least %d (RFC 7518 section 3.2)", len(secret), hmacMinLen["HS256"])
	}
	return &keySet{secret: slices.Clone(secret)}, nil
}

// addPEM adds every public key in the PEM blocks of data; source names
// data in errors. Text around the blocks is ignored, as openssl writes it.
func (ks *keySet) addPEM(data []byte, source string) error {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if err := ks.addBlock(block); err != nil {
			return invalidConfig("%s: PEM block %d (%s): %v", source, n+1, block.Type, err)
		}
		n++
	}
	if n == 0 {
		return invalidConfig("%s: no PEM block found", source)
	}
	return nil
}

// addBlock adds the public key in one PEM block.
func (ks *keySet) addBlock(b *pem.Block) error {
	var key any
	var err error
	switch {
	case b.Type == "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(b.Bytes)
	case b.Type == "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case b.Type == "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			key = cert.PublicKey
		}
	case strings.Contains(b.Type, "PRIVATE KEY"):
		return fmt.Errorf("a private key: give only the public key")
	default:
		return fmt.Errorf("unsupported PEM type: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE")
	}
	if err != nil {
		return err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		ks.rsa.Keys = append(ks.rsa.Keys, k)
	case *ecdsa.PublicKey:
		bits := k.Curve.Params().BitSize
		if _, ok := ecAlgorithm[bits]; !ok {
			return fmt.Errorf("ECDSA curve %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		set := ks.ec[bits]
		set.Keys = append(set.Keys, k)
		ks.ec[bits] = set
	case ed25519.PublicKey:
		ks.ed.Keys = append(ks.ed.Keys, k)
	default:
		return fmt.Errorf("unsupported key type %T: want RSA, ECDSA or Ed25519", key)
	}
	return nil
}

// ecAlgorithm is the one algorithm of each ECDSA curve size (RFC 7518
// section 3.4).
var ecAlgorithm = map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}

// supports reports whether ks holds a key that alg can use; for HMAC, a
// secret long enough for its hash.
func (ks *keySet) supports(alg string) bool {
	switch {
	case strings.HasPrefix(alg, "HS"):
		return len(ks.secret) >= hmacMinLen[alg]
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return len(ks.rsa.Keys) > 0
	case strings.HasPrefix(alg, "ES"):
		for bits, a := range ecAlgorithm {
			if a == alg {
				return len(ks.ec[bits].Keys) > 0
			}
		}
	case alg == "EdDSA":
		return len(ks.ed.Keys) > 0
	}
	return false
}

// algorithms checks the algorithms cfg asks for against ks, or, if cfg
// names none, returns every algorithm ks supports.
func (ks *keySet) algorithms(want []string) ([]string, error) {
	if len(want) == 0 {
		var out []string
		for _, alg := range knownAlgorithms {
			if ks.supports(alg) {
				out = append(out, alg)
			}
		}
		return out, nil
	}
	for _, alg := range want {
		switch {
		case strings.EqualFold(alg, "none"):
			return nil, invalidConfig(`algorithm "none" is never accepted: tokens must be signed`)
		case !slices.Contains(knownAlgorithms, alg):
			return nil, invalidConfig("unknown algorithm %q: want one of %s", alg, strings.Join(knownAlgorithms, ", "))
		case strings.HasPrefix(alg, "HS") && ks.secret == nil:
			return nil, invalidConfig("algorithm %s with public keys: refused, a token could be signed with the public key as HMAC secret (algorithm confusion)", alg)
		case !ks.supports(alg):
			return nil, invalidConfig("algorithm %s: no key for it among the configured keys", alg)
		}
	}
	return slices.Clone(want), nil
}

// key is the jwt.Keyfunc of a Verifier: it returns the keys of the kind
// the token's algorithm needs. The parser has already refused algorithms
// not allowed, and HMAC is given only a secret, never a public key.
func (ks *keySet) key(t *jwt.Token) (any, error) {
	var set jwt.VerificationKeySet
	switch m := t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if ks.secret != nil {
			return ks.secret, nil
		}
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		set = ks.rsa
	case *jwt.SigningMethodECDSA:
		set = ks.ec[m.CurveBits]
	case *jwt.SigningMethodEd25519:
		set = ks.ed
	}
	if len(set.Keys) == 0 {
		return nil, errNoKey
	}
	return set, nil
}
