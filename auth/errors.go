package auth

import "errors"

// Errors of package auth. Verify, Refresh and RefreshHook wrap them, with
// the cause (often one of jwt/v5's errors, such as jwt.ErrTokenExpired)
// wrapped too, so both can be tested with errors.Is.
var (
	// ErrInvalidConfig is wrapped by New when a Config cannot be used: no
	// key, a key that does not parse or is too weak, an algorithm the keys
	// cannot verify. The message names the field and the reason.
	ErrInvalidConfig = errors.New("auth: invalid config")
	// ErrInvalidToken is wrapped by Verify and Refresh (and so by
	// RefreshHook) for a token that is malformed, too long, signed with
	// another key or an algorithm not allowed, expired, not yet valid, for
	// another issuer or audience, or without a usable sub, subscribe or
	// publish claim. Authorize answers it with 401 and
	// error="invalid_token".
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrWrongUser is returned by RefreshHook when the new token's sub is
	// not the connection's user: a connection never changes hands.
	ErrWrongUser = errors.New("auth: token is for another user")
	// ErrNoPrincipal is returned by RefreshHook on a connection that has
	// no *Principal, one that Authorize did not admit.
	ErrNoPrincipal = errors.New("auth: connection has no principal")
)

// errNoKey is returned by the key function for an algorithm the
// configured keys cannot serve; the parser wraps it in
// jwt.ErrTokenUnverifiable.
var errNoKey = errors.New("auth: no key for the token's algorithm")
