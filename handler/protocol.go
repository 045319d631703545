package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
)

// The /ws protocol spoken by Channels. Every message either way is one JSON
// object in one text message.
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
	CodeBadJSON              = "bad_json"
	CodeBinaryNotSupported   = "binary_not_supported"
	CodeUnknownOp            = "unknown_op"
	CodeBadChannel           = "bad_channel"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeNotSubscribed        = "not_subscribed"
	CodeForbidden            = "forbidden"
	CodeInvalidToken         = "invalid_token"
)

// Operations of a Request.
const (
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPublish     = "publish"
	OpRefresh     = "refresh"
)

// errorCodes lists every error code with its human text, in a fixed order:
// a code's position is its slot in Channels.rejected, so counting a reply
// writes one atomic and no map. The texts are constants with nothing to
// escape, so they go into replies as they are. A new Code constant needs
// an entry here (TestErrorCodes checks).
var errorCodes = [...]struct{ code, message string }{
	{CodeBadJSON, "message must be a JSON object with string op and channel, an id that is a string or number, and data on publish"},
	{CodeBinaryNotSupported, "binary messages are not supported; send JSON as text"},
	{CodeUnknownOp, "op must be subscribe, unsubscribe or publish, or refresh where tokens are checked"},
	{CodeBadChannel, "channel must be non-empty, within the length limit, and made of A-Z a-z 0-9 _ . : @ / -"},
	{CodeTooManySubscriptions, "too many subscriptions on this connection"},
	{CodeNotSubscribed, "not subscribed to this channel"},
	{CodeForbidden, "not allowed on this channel"},
	{CodeInvalidToken, "token refused; the current authorization still holds until it expires"},
}

// numErrorCodes is the number of error codes.
const numErrorCodes = len(errorCodes)

// codeIndex returns the position of code in errorCodes, or -1 for a
// string that is not an error code. Eight string compares, most rejected
// on length: cheaper than hashing code for a map.
func codeIndex(code string) int {
	for i := range errorCodes {
		if errorCodes[i].code == code {
			return i
		}
	}
	return -1
}

// ErrorCodes returns every error code of the protocol, in a fixed order:
// the codes ChannelsStats.RejectedByCode counts. The slice is the caller's.
func ErrorCodes() []string {
	codes := make([]string, numErrorCodes)
	for i := range errorCodes {
		codes[i] = errorCodes[i].code
	}
	return codes
}

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

// Request is one client message of the /ws protocol. ID and Data keep
// their raw JSON: the id is echoed verbatim and the data is pushed as it
// was sent. Request is exported, with ParseRequest, ValidChannel, the
// Append functions and the Code constants, so that other implementations
// of the protocol, such as the benchmark baseline, share this one.
type Request struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	ID      json.RawMessage `json:"id"`
	Data    json.RawMessage `json:"data"`
	Token   string          `json:"token"` // refresh
}

// ParseRequest decodes one client message. On failure it returns the
// error code, and in req.ID the request's id if one could be read, so the
// error reply can carry it.
func ParseRequest(msg []byte) (req Request, code string) {
	trimmed := bytes.TrimLeft(msg, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Request{}, CodeBadJSON
	}
	// A syntax error leaves req untouched; a type error (e.g. "op":1)
	// still fills the other fields, so a good id is kept for the reply.
	err := json.Unmarshal(trimmed, &req)
	if !validID(req.ID) {
		req.ID = nil
		return req, CodeBadJSON
	}
	if string(req.ID) == "null" {
		req.ID = nil
	}
	if err != nil {
		return req, CodeBadJSON
	}
	return req, ""
}

// validID reports whether id, the raw JSON of a request's id, is absent,
// null, a string or a number. It has already been checked to be valid JSON.
func validID(id json.RawMessage) bool {
	if len(id) == 0 || string(id) == "null" {
		return true
	}
	switch b := id[0]; {
	case b == '"', b == '-', '0' <= b && b <= '9':
		return true
	default:
		return false
	}
}

// channelByte marks the bytes allowed in a channel name: [A-Za-z0-9_.:@/-].
// Names made of these need no escaping inside a JSON string.
var channelByte = func() (t [256]bool) {
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@/-" {
		t[r] = true
	}
	return t
}()

// ValidChannel reports whether name is 1 to maxLen bytes from channelByte.
func ValidChannel(name string, maxLen int) bool {
	if len(name) == 0 || len(name) > maxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return false
		}
	}
	return true
}

// AppendPush appends the push {"channel":…,"data":…}. channel must have
// passed ValidChannel (it is not escaped) and data must be valid JSON.
func AppendPush(dst []byte, channel string, data []byte) []byte {
	dst = append(dst, `{"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendAck appends {"op":"ack","id":…}, with ,"delivered":N when
// delivered is not negative. id must be valid JSON.
func AppendAck(dst []byte, id json.RawMessage, delivered int) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = append(dst, id...)
	if delivered >= 0 {
		dst = append(dst, `,"delivered":`...)
		dst = strconv.AppendInt(dst, int64(delivered), 10)
	}
	return append(dst, '}')
}

// AppendError appends {"op":"error","id":…,"code":…,"message":…}, without
// "id" when id is empty. id must be valid JSON.
func AppendError(dst []byte, id json.RawMessage, code string) []byte {
	dst = append(dst, `{"op":"error"`...)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	dst = append(dst, `,"code":"`...)
	dst = append(dst, code...)
	dst = append(dst, `","message":"`...)
	dst = append(dst, ErrorMessage(code)...)
	return append(dst, `"}`...)
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

// ErrorMessage returns the human text sent with an error code, or "" for
// a string that is not one.
func ErrorMessage(code string) string {
	if i := codeIndex(code); i >= 0 {
		return errorCodes[i].message
	}
	return ""
}
