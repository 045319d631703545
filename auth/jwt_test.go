package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/wsconn"
)

func TestNew(t *testing.T) {
	k := keys(t)
	rsaPEM := pkixPEM(t, &k.rsa.PublicKey)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	privDER, err := x509.MarshalPKCS8PrivateKey(k.p256)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaAlgs := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	tests := []struct {
		name     string
		cfg      Config
		wantAlgs []string
		wantErr  string // in the error, which must wrap ErrInvalidConfig
	}{
		{name: "no key", cfg: Config{}, wantErr: "no key"},
		{name: "issuer alone is no key", cfg: Config{Issuer: "idp"}, wantErr: "no key"},
		{name: "32-byte secret: HS256", cfg: Config{Secret: k.secret32}, wantAlgs: []string{"HS256"}},
		{name: "48-byte secret: HS256, HS384", cfg: Config{Secret: k.secret[:48]}, wantAlgs: []string{"HS256", "HS384"}},
		{name: "64-byte secret: every HS", cfg: Config{Secret: k.secret}, wantAlgs: []string{"HS256", "HS384", "HS512"}},
		{name: "short secret", cfg: Config{Secret: k.secret[:31]}, wantErr: "at least 32"},
		{name: "secret file without its newline", cfg: Config{SecretFile: writeFile(t, "s", append(k.secret32, "\r\n"...))}, wantAlgs: []string{"HS256"}},
		{name: "short secret file", cfg: Config{SecretFile: writeFile(t, "s", []byte("short\n"))}, wantErr: "secret is 5 bytes"},
		{name: "missing secret file", cfg: Config{SecretFile: "/nonexistent/secret"}, wantErr: "failed to read secret file"},
		{name: "secret and secret file", cfg: Config{Secret: k.secret, SecretFile: writeFile(t, "s", k.secret)}, wantErr: "both Secret and SecretFile"},
		{name: "secret and public key", cfg: Config{Secret: k.secret, PublicKeyPEM: rsaPEM}, wantErr: "both a secret and public keys"},
		{name: "RSA PKIX", cfg: Config{PublicKeyPEM: rsaPEM}, wantAlgs: rsaAlgs},
		{name: "RSA PKCS1 from a file", cfg: Config{PublicKeyFiles: []string{writeFile(t, "k.pem", pkcs1)}}, wantAlgs: rsaAlgs},
		{name: "P-256", cfg: Config{PublicKeyPEM: pkixPEM(t, &k.p256.PublicKey)}, wantAlgs: []string{"ES256"}},
		{name: "P-384 certificate", cfg: Config{PublicKeyPEM: certPEM(t, k.p384)}, wantAlgs: []string{"ES384"}},
		{name: "Ed25519", cfg: Config{PublicKeyPEM: pkixPEM(t, k.ed.Public())}, wantAlgs: []string{"EdDSA"}},
		{
			name:     "several keys in one file and another file",
			cfg:      Config{PublicKeyFiles: []string{writeFile(t, "a.pem", append(append([]byte("comment\n"), rsaPEM...), pkixPEM(t, &k.p256.PublicKey)...)), writeFile(t, "b.pem", pkixPEM(t, k.ed.Public()))}},
			wantAlgs: append(slices.Clone(rsaAlgs), "ES256", "EdDSA"),
		},
		{name: "explicit algorithms kept", cfg: Config{PublicKeyPEM: rsaPEM, Algorithms: []string{"PS256", "RS256"}}, wantAlgs: []string{"PS256", "RS256"}},
		{name: "none refused", cfg: Config{Secret: k.secret, Algorithms: []string{"HS256", "none"}}, wantErr: `"none" is never accepted`},
		{name: "None refused", cfg: Config{Secret: k.secret, Algorithms: []string{"None"}}, wantErr: `"none" is never accepted`},
		{name: "HS256 with an RSA key refused", cfg: Config{PublicKeyPEM: rsaPEM, Algorithms: []string{"RS256", "HS256"}}, wantErr: "algorithm confusion"},
		{name: "algorithm without its key", cfg: Config{PublicKeyPEM: rsaPEM, Algorithms: []string{"ES256"}}, wantErr: "no key for it"},
		{name: "ES384 with a P-256 key", cfg: Config{PublicKeyPEM: pkixPEM(t, &k.p256.PublicKey), Algorithms: []string{"ES384"}}, wantErr: "no key for it"},
		{name: "HS512 with a 32-byte secret", cfg: Config{Secret: k.secret32, Algorithms: []string{"HS512"}}, wantErr: "no key for it"},
		{name: "unknown algorithm", cfg: Config{Secret: k.secret, Algorithms: []string{"HS1"}}, wantErr: `unknown algorithm "HS1"`},
		{name: "private key refused", cfg: Config{PublicKeyPEM: privPEM}, wantErr: "a private key"},
		{name: "no PEM", cfg: Config{PublicKeyPEM: []byte("not a key")}, wantErr: "no PEM block"},
		{name: "unsupported PEM type", cfg: Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: []byte{1}})}, wantErr: "unsupported PEM type"},
		{name: "corrupt key", cfg: Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}})}, wantErr: "PEM block 1"},
		{name: "small RSA key", cfg: Config{PublicKeyPEM: pkixPEM(t, &small.PublicKey)}, wantErr: "1024 bits"},
		{name: "missing key file", cfg: Config{PublicKeyFiles: []string{"/nonexistent/key.pem"}}, wantErr: "failed to read public key file"},
		{name: "realm with a quote", cfg: Config{Secret: k.secret, Realm: `a"b`}, wantErr: "Realm"},
		{name: "same claim twice", cfg: Config{Secret: k.secret, PublishClaim: "subscribe"}, wantErr: "both"},
		{name: "negative token size", cfg: Config{Secret: k.secret, MaxTokenSize: -1}, wantErr: "MaxTokenSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(tt.cfg)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want %v containing %q", err, ErrInvalidConfig, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got := v.Algorithms(); !slices.Equal(got, tt.wantAlgs) {
				t.Errorf("got algorithms %v, want %v", got, tt.wantAlgs)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{Leeway: 30 * time.Second, QueryParam: "token", Realm: "wsgate",
		SubscribeClaim: "subscribe", PublishClaim: "publish", MaxTokenSize: 8192}
	if got.Leeway != want.Leeway || got.QueryParam != want.QueryParam || got.Realm != want.Realm ||
		got.SubscribeClaim != want.SubscribeClaim || got.PublishClaim != want.PublishClaim || got.MaxTokenSize != want.MaxTokenSize {
		t.Errorf("got defaults %+v, want %+v", got, want)
	}
	if got := (Config{Leeway: -1}).withDefaults().Leeway; got != 0 {
		t.Errorf("got leeway %v for a negative one, want 0", got)
	}
}

func TestVerify(t *testing.T) {
	k := keys(t)
	hs := newVerifier(t, Config{Secret: k.secret})
	rs := newVerifier(t, Config{PublicKeyFiles: []string{writeFile(t, "rsa.pem", pkixPEM(t, &k.rsa.PublicKey))}})
	rsOnly := newVerifier(t, Config{PublicKeyPEM: pkixPEM(t, &k.rsa.PublicKey), Algorithms: []string{"RS256"}})
	es := newVerifier(t, Config{PublicKeyPEM: append(pkixPEM(t, &k.p256.PublicKey), certPEM(t, k.p384)...)})
	ed := newVerifier(t, Config{PublicKeyPEM: pkixPEM(t, k.ed.Public())})
	iss := newVerifier(t, Config{Secret: k.secret, Issuer: "idp", Audience: "wsgate"})
	named := newVerifier(t, Config{Secret: k.secret, SubscribeClaim: "can_sub", PublishClaim: "can_pub", Leeway: -1, MaxTokenSize: 300})

	now := time.Now()
	hour := now.Add(time.Hour).Unix()
	perms := map[string]any{"subscribe": []string{"news.*", "room:42"}, "publish": []string{"room:42"}}
	rsaPubPEM := pkixPEM(t, &k.rsa.PublicKey)
	good := sign(t, jwt.SigningMethodHS256, k.secret, claims(nil))
	tests := []struct {
		name    string
		v       *Verifier
		token   string
		wantErr error // besides ErrInvalidToken; nil: accepted
		want    *Principal
		wantExp time.Time // checked when accepted and not zero
	}{
		{name: "HS256", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(withExp(perms, hour))),
			want: &Principal{UserID: "alice", Subscribe: []string{"news.*", "room:42"}, Publish: []string{"room:42"}}, wantExp: time.Unix(hour, 0).Add(30 * time.Second)},
		{name: "HS384", v: hs, token: sign(t, jwt.SigningMethodHS384, k.secret, claims(nil)), want: &Principal{UserID: "alice"}},
		{name: "HS512", v: hs, token: sign(t, jwt.SigningMethodHS512, k.secret, claims(nil)), want: &Principal{UserID: "alice"}},
		{name: "RS256", v: rs, token: sign(t, jwt.SigningMethodRS256, k.rsa, claims(perms)), want: &Principal{UserID: "alice", Subscribe: []string{"news.*", "room:42"}, Publish: []string{"room:42"}}},
		{name: "PS512", v: rs, token: sign(t, jwt.SigningMethodPS512, k.rsa, claims(nil)), want: &Principal{UserID: "alice"}},
		{name: "ES256", v: es, token: sign(t, jwt.SigningMethodES256, k.p256, claims(nil)), want: &Principal{UserID: "alice"}},
		{name: "ES384 from a certificate", v: es, token: sign(t, jwt.SigningMethodES384, k.p384, claims(nil)), want: &Principal{UserID: "alice"}},
		{name: "EdDSA", v: ed, token: sign(t, jwt.SigningMethodEdDSA, k.ed, claims(nil)), want: &Principal{UserID: "alice"}},
		{name: "custom claim names, no leeway", v: named, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": hour, "can_sub": []string{"a"}, "can_pub": []string{"b"}, "subscribe": []string{"ignored"}})),
			want: &Principal{UserID: "alice", Subscribe: []string{"a"}, Publish: []string{"b"}}, wantExp: time.Unix(hour, 0)},
		{name: "empty and null permission claims", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"subscribe": []string{}, "publish": json.RawMessage("null")})), want: &Principal{UserID: "alice"}},
		{name: "expired within leeway", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), want: &Principal{UserID: "alice"}},
		{name: "issuer and audience", v: iss, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"iss": "idp", "aud": []string{"other", "wsgate"}})), want: &Principal{UserID: "alice"}},

		{name: "expired", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": now.Add(-time.Minute).Unix()})), wantErr: jwt.ErrTokenExpired},
		{name: "expired, no leeway", v: named, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": now.Add(-2 * time.Second).Unix()})), wantErr: jwt.ErrTokenExpired},
		{name: "not yet valid", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), wantErr: jwt.ErrTokenNotValidYet},
		{name: "no exp", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": nil})), wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "exp a string", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": "tomorrow"})), wantErr: jwt.ErrInvalidType},
		{name: "wrong secret", v: hs, token: sign(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes"), claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "other RSA key", v: rs, token: sign(t, jwt.SigningMethodRS256, k.rsaOther, claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "algorithm not configured", v: rsOnly, token: sign(t, jwt.SigningMethodPS256, k.rsa, claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "payload changed", v: hs, token: tamper(t, good), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "signature dropped", v: hs, token: good[:strings.LastIndexByte(good, '.')+1], wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "alg none", v: hs, token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "HS256 signed with the RSA public key", v: rs, token: sign(t, jwt.SigningMethodHS256, rsaPubPEM, claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "HS256 signed with the RSA public key, RS256 only", v: rsOnly, token: sign(t, jwt.SigningMethodHS256, rsaPubPEM, claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "ES256 token, RSA verifier", v: rs, token: sign(t, jwt.SigningMethodES256, k.p256, claims(nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "unknown alg", v: hs, token: withHeader(t, good, `{"alg":"XX256","typ":"JWT"}`), wantErr: jwt.ErrTokenUnverifiable},
		{name: "missing sub", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"sub": nil}))},
		{name: "empty sub", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"sub": ""}))},
		{name: "sub a number", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"sub": 42})), wantErr: jwt.ErrInvalidType},
		{name: "subscribe a string", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"subscribe": "news"}))},
		{name: "publish with a number", v: hs, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"publish": []any{"a", 1}}))},
		{name: "wrong issuer", v: iss, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"iss": "evil", "aud": "wsgate"})), wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "no issuer", v: iss, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"aud": "wsgate"})), wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "wrong audience", v: iss, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"iss": "idp", "aud": "other"})), wantErr: jwt.ErrTokenInvalidAudience},
		{name: "malformed", v: hs, token: "abc", wantErr: jwt.ErrTokenMalformed},
		{name: "empty", v: hs, token: "", wantErr: jwt.ErrTokenMalformed},
		{name: "padded base64", v: hs, token: strings.Replace(good, ".", "==.", 1), wantErr: jwt.ErrTokenMalformed},
		{name: "too long", v: named, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"pad": strings.Repeat("x", 300)}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, exp, err := tt.v.Verify(tt.token)
			if tt.want == nil {
				if !errors.Is(err, ErrInvalidToken) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("got error %v, want %v and %v", err, ErrInvalidToken, tt.wantErr)
				}
				if p != nil || !exp.IsZero() {
					t.Errorf("got principal %+v expiring %v with the error, want nil and zero", p, exp)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if p.UserID != tt.want.UserID || !slices.Equal(p.Subscribe, tt.want.Subscribe) || !slices.Equal(p.Publish, tt.want.Publish) {
				t.Errorf("got principal %+v, want %+v", p, tt.want)
			}
			if !tt.wantExp.IsZero() && !exp.Equal(tt.wantExp) {
				t.Errorf("got expiry %v, want %v", exp, tt.wantExp)
			}
			if p2, exp2, err := tt.v.Refresh(tt.token); err != nil || p2.UserID != p.UserID || !exp2.Equal(exp) {
				t.Errorf("Refresh: got %+v, %v, %v; want what Verify gave", p2, exp2, err)
			}
		})
	}
}

// withExp returns a copy of claims with exp set: a case that checks the
// expiry Verify returns names the exp it signs, since claims' default is
// taken from the clock when the token is signed, maybe a second later.
func withExp(claims map[string]any, exp int64) map[string]any {
	c := maps.Clone(claims)
	c["exp"] = exp
	return c
}

// tamper returns token with its payload replaced by one for user mallory
// and its signature kept.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","exp":9999999999}`))
	return strings.Join(parts, ".")
}

// withHeader returns token with its header replaced by header and its
// signature kept.
func withHeader(t *testing.T, token, header string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(parts, ".")
}

func TestAuthorize(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, Config{Secret: k.secret})
	custom := newVerifier(t, Config{Secret: k.secret, QueryParam: "access_token", Realm: "chat"})
	exp := time.Now().Add(time.Hour).Unix()
	good := sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": exp}))
	expired := sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	const (
		challenge = `Bearer realm="wsgate"`
		invalid   = `Bearer realm="wsgate", error="invalid_token", error_description=`
		badReq    = `Bearer realm="wsgate", error="invalid_request", error_description=`
	)
	tests := []struct {
		name   string
		v      *Verifier
		header []string // Authorization values
		query  string
		status int    // 0: accepted
		want   string // the challenge, or its beginning ending in '='
	}{
		{name: "header", header: []string{"Bearer " + good}},
		{name: "header, scheme in lower case, extra spaces", header: []string{"  bearer   " + good + " "}},
		{name: "query", query: "token=" + good},
		{name: "query among others", query: "a=1&x=%ZZ&token=" + good + "&b"},
		{name: "query URL-encoded", query: "token=" + strings.ReplaceAll(url.QueryEscape(good), ".", "%2E")},
		{name: "custom query parameter", v: custom, query: "access_token=" + good},
		{name: "Basic header ignored, query used", header: []string{"Basic YTpi"}, query: "token=" + good},

		{name: "no token", status: 401, want: challenge},
		{name: "other parameter only", query: "tok=" + good, status: 401, want: challenge},
		{name: "default parameter with custom verifier", v: custom, query: "token=" + good, status: 401, want: `Bearer realm="chat"`},
		{name: "Basic header", header: []string{"Basic YTpi"}, status: 401, want: challenge},
		{name: "expired", header: []string{"Bearer " + expired}, status: 401, want: invalid + `"token expired"`},
		{name: "expired in the query", query: "token=" + expired, status: 401, want: invalid + `"token expired"`},
		{name: "garbage", header: []string{"Bearer x.y.z"}, status: 401, want: invalid + `"malformed token"`},
		{name: "token with a space", header: []string{"Bearer " + good + " x"}, status: 401, want: invalid},
		{name: "missing sub", header: []string{"Bearer " + sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"sub": nil}))}, status: 401, want: invalid + `"missing sub claim"`},

		{name: "Bearer without token", header: []string{"Bearer"}, status: 400, want: badReq + `"no token after Bearer"`},
		{name: "Bearer and spaces", header: []string{"Bearer   "}, status: 400, want: badReq},
		{name: "two Authorization headers", header: []string{"Bearer " + good, "Bearer " + good}, status: 400, want: badReq},
		{name: "header and query", header: []string{"Bearer " + good}, query: "token=" + good, status: 400, want: badReq},
		{name: "query token twice", query: "token=" + good + "&token=" + good, status: 400, want: badReq},
		{name: "empty query token", query: "token=", status: 400, want: badReq + `"empty token parameter"`},
		{name: "badly encoded query token", query: "token=%ZZ", status: 400, want: badReq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := v
			if tt.v != nil {
				v = tt.v
			}
			r := &wsconn.UpgradeRequest{Path: "/ws", Query: tt.query, Header: http.Header{}}
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			p, expires, err := v.Authorize(r)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				if pr, ok := p.(*Principal); !ok || pr.UserID != "alice" {
					t.Errorf("got principal %#v, want *Principal for alice", p)
				}
				if want := time.Unix(exp, 0).Add(DefaultLeeway); !expires.Equal(want) {
					t.Errorf("got expiry %v, want %v", expires, want)
				}
				return
			}
			var he *wsconn.HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("got error %v, want a *wsconn.HTTPError", err)
			}
			if p != nil || !expires.IsZero() {
				t.Errorf("got principal %v expiring %v with the error, want nil and zero", p, expires)
			}
			got := he.Header.Get("Www-Authenticate")
			if he.Status != tt.status || !(got == tt.want || strings.HasSuffix(tt.want, "=") && strings.HasPrefix(got, tt.want)) {
				t.Errorf("got %d with challenge %s, want %d with %s", he.Status, got, tt.status, tt.want)
			}
			if he.Message == "" {
				t.Errorf("got an empty message, want a reason")
			}
		})
	}
}

// principalConn is a wsconn.Conn that keeps a principal and nothing
// else; its other methods are not called.
type principalConn struct {
	wsconn.Conn
	p   any
	exp time.Time
}

func (c *principalConn) Principal() any                        { return c.p }
func (c *principalConn) SetPrincipal(p any, expires time.Time) { c.p, c.exp = p, expires }

func TestRefreshHook(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, Config{Secret: k.secret})
	old := &Principal{UserID: "alice", Subscribe: []string{"news"}}
	oldExp := time.Now().Add(time.Minute)
	newExp := time.Now().Add(2 * time.Hour).Unix()
	tests := []struct {
		name    string
		start   any
		token   string
		wantErr error
		wantSub []string // the principal's Subscribe afterwards
	}{
		{name: "same user", start: old, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": newExp, "subscribe": []string{"sport"}})), wantSub: []string{"sport"}},
		{name: "another user", start: old, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"sub": "mallory"})), wantErr: ErrWrongUser, wantSub: old.Subscribe},
		{name: "expired token", start: old, token: sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), wantErr: jwt.ErrTokenExpired, wantSub: old.Subscribe},
		{name: "garbage", start: old, token: "garbage", wantErr: ErrInvalidToken, wantSub: old.Subscribe},
		{name: "no principal", token: sign(t, jwt.SigningMethodHS256, k.secret, claims(nil)), wantErr: ErrNoPrincipal},
		{name: "another kind of principal", start: "alice", token: sign(t, jwt.SigningMethodHS256, k.secret, claims(nil)), wantErr: ErrNoPrincipal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &principalConn{p: tt.start, exp: oldExp}
			err := v.RefreshHook(c, tt.token)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if c.p != tt.start || !c.exp.Equal(oldExp) {
					t.Errorf("got principal %v expiring %v after a refused refresh, want %v expiring %v", c.p, c.exp, tt.start, oldExp)
				}
				return
			}
			p, ok := c.p.(*Principal)
			if !ok || p.UserID != "alice" || !slices.Equal(p.Subscribe, tt.wantSub) {
				t.Errorf("got principal %+v, want alice subscribing to %v", c.p, tt.wantSub)
			}
			if want := time.Unix(newExp, 0).Add(DefaultLeeway); !c.exp.Equal(want) {
				t.Errorf("got expiry %v, want %v", c.exp, want)
			}
		})
	}
}
