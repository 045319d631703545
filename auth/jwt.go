package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/wsconn"
)

// Defaults of Config.
const (
	DefaultLeeway         = 30 * time.Second
	DefaultQueryParam     = "token"
	DefaultRealm          = "wsgate"
	DefaultSubscribeClaim = "subscribe"
	DefaultPublishClaim   = "publish"
	DefaultMaxTokenSize   = 8 << 10
)

// Config configures a Verifier. It needs exactly one kind of key: an HMAC
// secret (Secret or SecretFile) or public keys (PublicKeyPEM,
// PublicKeyFiles, or both). Every other field has a default.
type Config struct {
	// Secret is the shared key of HS256, HS384 and HS512 tokens. RFC 7518
	// section 3.2 asks for a key at least as long as the hash: 32 bytes
	// for HS256 (shorter is refused), 48 for HS384, 64 for HS512. New
	// keeps a copy. Default: none.
	Secret []byte
	// SecretFile names a file holding the secret; the line breaks ('\n',
	// '\r') at its end, as editors and echo leave them, are not part of it.
	// Set Secret or SecretFile, not both. Default: none.
	SecretFile string
	// PublicKeyPEM holds one or more PEM blocks, each an RSA (at least
	// 2048 bits), ECDSA (P-256, P-384, P-521) or Ed25519 public key, as
	// "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE"
	// (only its key is used; the certificate is not checked). A token is
	// accepted if any key of its algorithm's kind verifies it, so an old
	// and a new key can be given together while keys rotate. Private keys
	// are refused. Default: none.
	PublicKeyPEM []byte
	// PublicKeyFiles names PEM files, each read like PublicKeyPEM and
	// adding its keys. Default: none.
	PublicKeyFiles []string
	// Algorithms lists the "alg" header values accepted. Default (empty):
	// every algorithm the keys can verify: for a secret, HS256, and HS384
	// and HS512 if it is long enough; for RSA keys, RS256, RS384, RS512,
	// PS256, PS384, PS512; ES256, ES384 or ES512 for a P-256, P-384 or
	// P-521 key; EdDSA for an Ed25519 key. "none" is never accepted, and
	// HS* is refused with public keys: a token signed by HMAC with the
	// public key as secret would otherwise pass (algorithm confusion).
	Algorithms []string
	// Issuer, if set, must equal the token's iss claim; a token without
	// iss is refused. Default: iss is not checked.
	Issuer string
	// Audience, if set, must be one of the token's aud values; a token
	// without aud is refused. Default: aud is not checked.
	Audience string
	// Leeway is the clock skew allowed between the token's issuer and
	// this server when checking exp and nbf. A connection is kept until
	// exp plus Leeway, when the server closes it with 1008. Zero means the
	// default, 30s; negative means none.
	Leeway time.Duration
	// QueryParam is the query parameter that carries the token when the
	// client cannot send an Authorization header (browsers' WebSocket
	// API). Default: "token".
	QueryParam string
	// Realm is the realm of the WWW-Authenticate challenge. It must not
	// contain '"', '\' or control characters. Default: "wsgate".
	Realm string
	// SubscribeClaim and PublishClaim name the claims holding the channel
	// patterns a token may subscribe and publish to (see Principal).
	// Defaults: "subscribe" and "publish".
	SubscribeClaim, PublishClaim string
	// MaxTokenSize is the longest token accepted, in bytes; a header token
	// is also bounded by the server's handshake size limit, a refresh
	// token only by this. Default: 8 KiB.
	MaxTokenSize int
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.QueryParam == "" {
		cfg.QueryParam = DefaultQueryParam
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.SubscribeClaim == "" {
		cfg.SubscribeClaim = DefaultSubscribeClaim
	}
	if cfg.PublishClaim == "" {
		cfg.PublishClaim = DefaultPublishClaim
	}
	if cfg.MaxTokenSize == 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	return cfg
}

// validate reports the first field out of range, after withDefaults. The
// keys are checked as New loads them.
func (cfg Config) validate() error {
	switch {
	case strings.ContainsFunc(cfg.Realm, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }):
		return invalidConfig("Realm %q has a quote, backslash or control character", cfg.Realm)
	case cfg.MaxTokenSize < 0:
		return invalidConfig("MaxTokenSize is %d, must not be negative", cfg.MaxTokenSize)
	case cfg.SubscribeClaim == cfg.PublishClaim:
		return invalidConfig("SubscribeClaim and PublishClaim are both %q", cfg.SubscribeClaim)
	}
	return nil
}

// invalidConfig returns an error wrapping ErrInvalidConfig.
func invalidConfig(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...)
}

// Verifier checks JSON Web Tokens (RFC 7519) signed with its keys and
// turns them into Principals. Parsing, signature and claim checks are
// github.com/golang-jwt/jwt/v5's; a Verifier chooses the keys and the
// rules. It is read-only after New and safe for concurrent use.
type Verifier struct {
	cfg    Config
	keys   *keySet
	algs   []string
	parser *jwt.Parser
}

// New returns a Verifier configured by cfg, or an error wrapping
// ErrInvalidConfig that says what is wrong. It reads the key files now.
func New(cfg Config) (*Verifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	keys, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	algs, err := keys.algorithms(cfg.Algorithms)
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	cfg.Secret, cfg.PublicKeyPEM = nil, nil // kept in keys only
	return &Verifier{cfg: cfg, keys: keys, algs: algs, parser: jwt.NewParser(opts...)}, nil
}

// Algorithms returns the "alg" values v accepts.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// Authorize is a wsconn.Config.Authorize hook: it takes the bearer token
// of an upgrade request, from the Authorization header ("Bearer <token>")
// or from the QueryParam query parameter (URL-encoded), verifies it, and
// returns its *Principal and the time the connection must end (see
// Verify). It refuses, as RFC 6750 section 3 says, with a *wsconn.HTTPError:
//
//   - no token: 401, WWW-Authenticate: Bearer realm="wsgate";
//   - a token that Verify refuses: 401, with error="invalid_token" and an
//     error_description in the challenge;
//   - an Authorization: Bearer header without a token, an empty or badly
//     encoded query token, a token given twice or both ways: 400, with
//     error="invalid_request".
//
// An Authorization header of another scheme (Basic, say) is ignored.
func (v *Verifier) Authorize(r *wsconn.UpgradeRequest) (any, time.Time, error) {
	token, problem := v.tokenOf(r)
	switch {
	case problem != "":
		return nil, time.Time{}, v.reject(http.StatusBadRequest, "invalid_request", problem)
	case token == "":
		return nil, time.Time{}, v.reject(http.StatusUnauthorized, "", "bearer token required")
	}
	p, expires, err := v.Verify(token)
	if err != nil {
		desc := "invalid token"
		var it *invalidToken
		if errors.As(err, &it) {
			desc = it.desc
		}
		return nil, time.Time{}, v.reject(http.StatusUnauthorized, "invalid_token", desc)
	}
	return p, expires, nil
}

// tokenOf returns the token of r, "" if it has none, or a description of
// what is wrong with the way it was sent.
func (v *Verifier) tokenOf(r *wsconn.UpgradeRequest) (token, problem string) {
	var header string
	switch auth := r.Header.Values("Authorization"); len(auth) {
	case 0:
	case 1:
		scheme, rest, _ := strings.Cut(strings.TrimSpace(auth[0]), " ")
		if strings.EqualFold(scheme, "Bearer") {
			if header = strings.TrimSpace(rest); header == "" {
				return "", "no token after Bearer"
			}
		}
	default:
		return "", "more than one Authorization header"
	}
	query, problem := queryValue(r.Query, v.cfg.QueryParam)
	switch {
	case problem != "":
		return "", problem
	case header != "" && query != "":
		return "", "token both in the Authorization header and in the query"
	case header != "":
		return header, ""
	}
	return query, ""
}

// queryValue returns the value of the parameter named param in the raw
// query q, URL-decoded, or "" if there is none. Other parameters are not
// looked at, even malformed ones.
func queryValue(q, param string) (value, problem string) {
	found := false
	for part := range strings.SplitSeq(q, "&") {
		k, val, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != param {
			continue
		}
		if found {
			return "", "more than one " + param + " parameter"
		}
		found = true
		var err error
		if value, err = url.QueryUnescape(val); err != nil {
			return "", "badly encoded " + param + " parameter"
		}
		if value == "" {
			return "", "empty " + param + " parameter"
		}
	}
	return value, ""
}

// reject returns the refusal of a handshake: status, a Bearer challenge
// with the error code and desc if there is a code (RFC 6750 section 3),
// and desc as the body.
func (v *Verifier) reject(status int, code, desc string) *wsconn.HTTPError {
	challenge := `Bearer realm="` + v.cfg.Realm + `"`
	if code != "" {
		challenge += `, error="` + code + `", error_description="` + quotable(desc) + `"`
	}
	return &wsconn.HTTPError{Status: status, Message: desc, Header: http.Header{"Www-Authenticate": {challenge}}}
}

// quotable drops the bytes RFC 6750 section 3 does not allow in
// error_description: only %x20-21 / %x23-5B / %x5D-7E remain.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// Verify checks a token: its length, that its alg is one of Algorithms
// and its signature verifies with one of v's keys, that it has an exp and
// is neither expired nor before its nbf (both with Leeway), its iss and
// aud if the Config names them, and that it has a sub and well-formed
// permission claims. It returns the token's Principal and exp plus
// Leeway, the time the authorization ends. A refused token gets an error
// wrapping ErrInvalidToken and the jwt/v5 error, if any, that caused it.
func (v *Verifier) Verify(token string) (*Principal, time.Time, error) {
	if len(token) > v.cfg.MaxTokenSize {
		return nil, time.Time{}, &invalidToken{desc: "token too long"}
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keys.key); err != nil {
		return nil, time.Time{}, &invalidToken{desc: describe(err), cause: err}
	}
	exp, err := claims.GetExpirationTime() // required and checked by the parser
	if err != nil || exp == nil {
		return nil, time.Time{}, &invalidToken{desc: "missing exp claim", cause: err}
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return nil, time.Time{}, &invalidToken{desc: "missing sub claim", cause: err}
	}
	p := &Principal{UserID: sub}
	if p.Subscribe, err = patterns(claims, v.cfg.SubscribeClaim); err != nil {
		return nil, time.Time{}, &invalidToken{desc: "subscribe claim is not an array of strings", cause: err}
	}
	if p.Publish, err = patterns(claims, v.cfg.PublishClaim); err != nil {
		return nil, time.Time{}, &invalidToken{desc: "publish claim is not an array of strings", cause: err}
	}
	return p, exp.Add(v.cfg.Leeway), nil
}

// Refresh verifies a token that a client presents on an open connection to
// extend or change its authorization. It checks exactly what Verify
// checks; that the token is for the connection's own user needs the
// connection, and RefreshHook checks it.
func (v *Verifier) Refresh(token string) (*Principal, time.Time, error) {
	return v.Verify(token)
}

// RefreshHook is a hook for handler.Channels.SetRefresh, serving the
// "refresh" op of /ws: it verifies token with Refresh, checks that its sub
// is the user of c's current *Principal, and makes the new Principal and
// its expiry c's (wsconn.Conn.SetPrincipal). It returns ErrNoPrincipal,
// ErrWrongUser, or Refresh's error, and then changes nothing: the old
// authorization and its expiry still hold.
//
// The new token's permissions apply to later subscribes and publishes;
// subscriptions made before are kept.
func (v *Verifier) RefreshHook(c wsconn.Conn, token string) error {
	cur, _ := c.Principal().(*Principal)
	if cur == nil {
		return ErrNoPrincipal
	}
	p, expires, err := v.Refresh(token)
	if err != nil {
		return err
	}
	if p.UserID != cur.UserID {
		return fmt.Errorf("%w: token for %q on a connection of %q", ErrWrongUser, p.UserID, cur.UserID)
	}
	c.SetPrincipal(p, expires)
	return nil
}

// patterns returns the strings of the array claim name, or nil if the
// claim is absent, null or empty.
func patterns(claims jwt.MapClaims, name string) ([]string, error) {
	raw, ok := claims[name]
	if !ok || raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("claim %q is a %T, want an array of strings", name, raw)
	}
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]string, len(list))
	for i, e := range list {
		if out[i], ok = e.(string); !ok {
			return nil, fmt.Errorf("claim %q has a %T, want an array of strings", name, e)
		}
	}
	return out, nil
}

// invalidToken is the error of a refused token: desc says why in a few
// words fit for a client (the error_description of the challenge), cause
// is the error behind it, if any.
type invalidToken struct {
	desc  string
	cause error
}

// Error returns "auth: invalid token: " and the description and cause.
func (e *invalidToken) Error() string {
	if e.cause == nil {
		return ErrInvalidToken.Error() + ": " + e.desc
	}
	return ErrInvalidToken.Error() + ": " + e.desc + ": " + e.cause.Error()
}

// Unwrap returns ErrInvalidToken and the cause.
func (e *invalidToken) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

// describe names, for a client, why jwt/v5 refused a token.
func describe(err error) string {
	for _, d := range []struct {
		err  error
		desc string
	}{
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenUnverifiable, "algorithm not accepted"},
		{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm not accepted"},
		{jwt.ErrTokenExpired, "token expired"},
		{jwt.ErrTokenNotValidYet, "token not valid yet"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenRequiredClaimMissing, "missing exp, iss or aud claim"},
	} {
		if errors.Is(err, d.err) {
			return d.desc
		}
	}
	return "invalid token"
}
