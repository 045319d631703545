// Package auth owns authentication for wsgate: it verifies JSON Web Tokens
// (RFC 7519) and turns them into the Principal a connection acts for, with
// the channels it may subscribe and publish to.
//
// Data flows like this. At the handshake, wsconn calls Verifier.Authorize
// (a wsconn.Config.Authorize hook) with the upgrade request; it takes the
// token from "Authorization: Bearer …" or the ?token= query parameter,
// verifies it and returns a *Principal with the token's expiry, or a 401
// (400 for a malformed request) with a WWW-Authenticate challenge
// (RFC 6750). The server keeps the principal with the connection and
// closes the connection with 1008 "authorization expired" at expiry. On
// /ws, handler.Channels asks the principal, through the
// handler.Permissions interface it implements, before every subscribe and
// publish, and answers "forbidden" when a pattern does not allow it. A
// client extends its connection with the "refresh" op, which
// handler.Channels hands to Verifier.RefreshHook: a new token for the same
// user replaces the principal and its expiry.
//
// Permissions are checked when a client subscribes or publishes. A refresh
// that narrows them does not drop subscriptions made before it; they last
// until the client unsubscribes or the connection ends.
//
// The claims a token carries:
//
//	sub        the user id (required)
//	exp        expiry (required), checked with Config.Leeway
//	nbf        not before (optional), checked with Config.Leeway
//	iss, aud   checked if Config.Issuer, Config.Audience are set
//	subscribe  array of channel patterns the user may subscribe to
//	publish    array of channel patterns the user may publish to
//
// Parsing, signature verification and the checks of registered claims are
// all github.com/golang-jwt/jwt/v5's; this package picks keys and
// algorithms (never "none", never HMAC when public keys are configured)
// and reads sub and the permission claims. It does not log.
package auth
