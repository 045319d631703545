package handler

import (
	"errors"
	"sync"

	"github.com/wsgate/wsgate/internal/wsproto"
)

// The /ws protocol spoken by Channels. Every message either way is one JSON
// object in one text message; package internal/wsproto parses and builds
// them, for Channels and for the benchmark baseline alike.
//
// Client to server ("id" is optional, a JSON string or number; null counts
// as absent):
//
//	{"op":"subscribe","channel":"news","id":"1"}
//	{"op":"unsubscribe","channel":"news","id":2}
//	{"op":"publish","channel":"news","data":<any JSON value>,"id":"3"}
//	{"op":"refresh","token":"<a new token>","id":4}
//
// Server to client:
//
//	{"channel":"news","data":<data exactly as published>}      push
//	{"op":"ack","id":"1"}                                       subscribe, unsubscribe, refresh
//	{"op":"ack","id":"3","delivered":2}                         publish
//	{"op":"error","id":"1","code":"bad_channel","message":"…"}  any failure
//
// An ack is sent only when the request had an id; the id is echoed
// verbatim, as the bytes the client sent. An error is always sent, with
// "id" only when the request had a usable one. Errors never close the
// connection. "delivered" counts the subscribers on this process the push
// was queued to, the publisher included if it is subscribed.
//
// Refresh exists only when the server authenticates (Channels.SetRefresh):
// it replaces the connection's principal and expiry with those of a new
// token for the same user. A refused token leaves the old ones, and the
// connection is still closed at the old expiry. Subscribe and publish are
// checked against the principal's Permissions when they arrive;
// subscriptions made before a refresh stay even if the new token would
// not allow them.
//
// Error codes (the Code constants):
//
//	code                    when
//	bad_json                not valid JSON, not an object, a field of the
//	                        wrong type, an id that is not a string or
//	                        number, or publish without "data"
//	binary_not_supported    a binary message
//	unknown_op              "op" missing or not one of the above
//	                        (refresh only with SetRefresh)
//	bad_channel             channel empty, longer than MaxChannelLen bytes,
//	                        or with a byte outside [A-Za-z0-9_.:@/-]
//	too_many_subscriptions  subscribe past MaxSubscriptions
//	not_subscribed          unsubscribe from a channel not subscribed to
//	forbidden               subscribe or publish to a channel the
//	                        connection's principal does not allow
//	invalid_token           refresh with a token the hook refused
const (
	CodeBadJSON              = wsproto.CodeBadJSON
	CodeBinaryNotSupported   = wsproto.CodeBinaryNotSupported
	CodeUnknownOp            = wsproto.CodeUnknownOp
	CodeBadChannel           = wsproto.CodeBadChannel
	CodeTooManySubscriptions = wsproto.CodeTooManySubscriptions
	CodeNotSubscribed        = wsproto.CodeNotSubscribed
	CodeForbidden            = wsproto.CodeForbidden
	CodeInvalidToken         = wsproto.CodeInvalidToken
)

// ErrorCodes returns every error code of the protocol, in a fixed order:
// the codes ChannelsStats.RejectedByCode counts. The slice is the caller's.
func ErrorCodes() []string { return wsproto.Codes() }

// Conditions only a client's request meets: no API call returns them, so
// they stay unexported (Channels.Publish does not check permissions).
var (
	// errForbidden answers a subscribe or publish that the connection's
	// Permissions refuse. Protocol code: forbidden.
	errForbidden = errors.New("handler: channel not allowed")
	// errInvalidToken answers a refresh that the refresh hook refused.
	// Protocol code: invalid_token.
	errInvalidToken = errors.New("handler: refresh token refused")
)

// codeOf maps an error of Channels to its protocol code.
func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrBadChannel):
		return CodeBadChannel
	case errors.Is(err, ErrBadData):
		return CodeBadJSON
	case errors.Is(err, ErrTooManySubscriptions):
		return CodeTooManySubscriptions
	case errors.Is(err, ErrNotSubscribed):
		return CodeNotSubscribed
	case errors.Is(err, errForbidden):
		return CodeForbidden
	case errors.Is(err, errInvalidToken):
		return CodeInvalidToken
	default:
		return CodeBadJSON
	}
}

// maxPooledBuf is the largest buffer put back into bufPool, so that one big
// publish does not pin a big buffer for the life of the process.
const maxPooledBuf = 64 << 10

// bufPool holds scratch buffers for building replies and pushes. Conn.Send
// and NewPreparedMessage copy what they are given, so a buffer goes back to
// the pool as soon as the call returns.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

// getBuf takes an empty buffer from bufPool; pair it with putBuf.
func getBuf() *[]byte {
	b := bufPool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// putBuf returns b to bufPool unless it grew too big.
func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bufPool.Put(b)
	}
}
