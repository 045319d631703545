// Package wsproto is the wire format of wsgate's /ws publish/subscribe
// protocol: the client requests it parses and the pushes, acks and error
// replies it builds, each one JSON object in one text message. What the
// messages mean, and the protocol as a client sees it, is documented with
// its server, handler.Channels (handler/protocol.go).
//
// It is internal so that the two implementations of the protocol, package
// handler and the benchmark baseline (bench/baseline), share one parser
// and one set of replies without either exporting them.
package wsproto

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Error codes of error replies. handler.Channels documents when each is
// sent.
const (
	CodeBadJSON              = "bad_json"
	CodeBinaryNotSupported   = "binary_not_supported"
	CodeUnknownOp            = "unknown_op"
	CodeBadChannel           = "bad_channel"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeNotSubscribed        = "not_subscribed"
	CodeForbidden            = "forbidden"
	CodeInvalidToken         = "invalid_token"
	CodeHistoryOff           = "history_off"
	CodeEpochChanged         = "epoch_changed"
	CodeOffsetTooOld         = "offset_too_old"
	CodeUnavailable          = "unavailable"
	CodeBusy                 = "busy"
	CodePresenceOff          = "presence_off"
)

// Reasons a subscribe's recovery failed, sent as "reason" beside
// "recovered":false. The client should reload its state from its backend.
const (
	ReasonHistoryOff   = "history_off"    // the channel keeps no history
	ReasonEpochChanged = "epoch_changed"  // the history was lost since (a restart, an expiry)
	ReasonOffsetTooOld = "offset_too_old" // publications after the offset were evicted (size, TTL)
	ReasonTooMany      = "too_many"       // more publications since than one recovery may replay
	ReasonOffsetAhead  = "offset_ahead"   // the offset is past the channel's last publication
)

// Operations of a Request.
const (
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPublish     = "publish"
	OpRefresh     = "refresh"
	OpHistory     = "history"
	// OpPresence and OpPresenceStats read who is subscribed to a channel.
	OpPresence      = "presence"
	OpPresenceStats = "presence_stats"
)

// errorCodes lists every error code with its human text, in a fixed order:
// a code's position is its index (CodeIndex), so that a server can count
// replies in an array, one atomic and no map per reply. The texts are
// constants with nothing to escape, so they go into replies as they are.
// A new Code constant needs an entry here (TestCodes checks).
var errorCodes = [...]struct{ code, message string }{
	{CodeBadJSON, "message must be a JSON object with string op and channel, an id that is a string or number, and data on publish"},
	{CodeBinaryNotSupported, "binary messages are not supported; send JSON as text"},
	{CodeUnknownOp, "op must be subscribe, unsubscribe, publish, history, presence or presence_stats, or refresh where tokens are checked"},
	{CodeBadChannel, "channel must be non-empty, within the length limit, and made of A-Z a-z 0-9 _ . : @ / -"},
	{CodeTooManySubscriptions, "too many subscriptions on this connection"},
	{CodeNotSubscribed, "not subscribed to this channel"},
	{CodeForbidden, "not allowed on this channel"},
	{CodeInvalidToken, "token refused; the current authorization still holds until it expires"},
	{CodeHistoryOff, "this channel keeps no history"},
	{CodeEpochChanged, "the channel's history was lost since that position (other epoch); reload"},
	{CodeOffsetTooOld, "publications after that offset are no longer in the history; reload"},
	{CodeUnavailable, "the history store is unreachable: nothing was stored or published; retry"},
	{CodeBusy, "too many requests waiting for the history store; retry"},
	{CodePresenceOff, "this channel has no presence"},
}

// NumCodes is the number of error codes.
const NumCodes = len(errorCodes)

// CodeIndex returns the position of code among the error codes, from 0 to
// NumCodes-1, or -1 for a string that is not an error code. Eight string
// compares, most rejected on length: cheaper than hashing code for a map.
func CodeIndex(code string) int {
	for i := range errorCodes {
		if errorCodes[i].code == code {
			return i
		}
	}
	return -1
}

// CodeAt returns the error code at position i (0 <= i < NumCodes).
func CodeAt(i int) string { return errorCodes[i].code }

// Codes returns every error code, in the order of CodeIndex. The slice is
// the caller's.
func Codes() []string {
	codes := make([]string, NumCodes)
	for i := range errorCodes {
		codes[i] = errorCodes[i].code
	}
	return codes
}

// ErrorMessage returns the human text sent with an error code, or "" for
// a string that is not one.
func ErrorMessage(code string) string {
	if i := CodeIndex(code); i >= 0 {
		return errorCodes[i].message
	}
	return ""
}

// Position is a place in a channel's history: the offset of a publication
// within an epoch. Offsets start at 1 and increase by at least one per
// publication; the epoch changes whenever the history could have been
// lost, and offsets of different epochs are not comparable.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Request is one client message. ID and Data keep their raw JSON: the id
// is echoed verbatim and the data is pushed as it was sent.
type Request struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	ID      json.RawMessage `json:"id"`
	Data    json.RawMessage `json:"data"`
	Token   string          `json:"token"`   // refresh
	Recover *Position       `json:"recover"` // subscribe: replay what came after
	After   *Position       `json:"after"`   // history: publications after this
	Limit   int             `json:"limit"`   // history: at most this many
	// JoinLeave, on subscribe, asks for the channel's join and leave
	// pushes.
	JoinLeave bool `json:"join_leave"`
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

// ValidChannel reports whether name is 1 to maxLen bytes, each one of
// [A-Za-z0-9_.:@/-].
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

// AppendPushAt appends the push {"channel":…,"offset":N,"data":…} of a
// publication kept in history, or AppendPush's push when offset is 0.
// channel and data are as for AppendPush.
func AppendPushAt(dst []byte, channel string, offset uint64, data []byte) []byte {
	if offset == 0 {
		return AppendPush(dst, channel, data)
	}
	dst = append(dst, `{"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// Ack is what an ack reports beside its id; the zero value reports
// nothing, and each field is written only when set.
type Ack struct {
	// Delivered, when not negative, is written as "delivered" (publish).
	Delivered int
	// Position, when its epoch is not empty, is written as "offset" and
	// "epoch": the channel's last publication, or the one just published.
	Position Position
	// Recovery, when not empty, is written as "recovered": "ok" as true,
	// anything else as false with that "reason" (a Reason constant).
	Recovery string
}

// RecoveryOK is the Ack.Recovery of a recovery that replayed everything.
const RecoveryOK = "ok"

// AppendAckWith appends {"op":"ack","id":…} with the fields a reports. id
// must be valid JSON and the epoch and reason need no JSON escaping
// (servers make them of letters, digits, '-' and '_').
func AppendAckWith(dst []byte, id json.RawMessage, a Ack) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = append(dst, id...)
	dst = appendAckFields(dst, a)
	return append(dst, '}')
}

// appendAckFields appends a's fields, each with its leading comma.
func appendAckFields(dst []byte, a Ack) []byte {
	if a.Delivered >= 0 {
		dst = append(dst, `,"delivered":`...)
		dst = strconv.AppendInt(dst, int64(a.Delivered), 10)
	}
	if a.Position.Epoch != "" {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, a.Position.Offset, 10)
		dst = append(dst, `,"epoch":"`...)
		dst = append(dst, a.Position.Epoch...)
		dst = append(dst, '"')
	}
	switch a.Recovery {
	case "":
	case RecoveryOK:
		dst = append(dst, `,"recovered":true`...)
	default:
		dst = append(dst, `,"recovered":false,"reason":"`...)
		dst = append(dst, a.Recovery...)
		dst = append(dst, '"')
	}
	return dst
}

// AppendHistory appends the answer to a history request,
// {"op":"ack","id":…,"offset":N,"epoch":…,"publications":[…]}, where
// pushes are the publications' pushes (AppendPushAt), oldest first, and pos
// is the channel's last publication. id must be valid JSON.
func AppendHistory(dst []byte, id json.RawMessage, pos Position, pushes [][]byte) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = append(dst, id...)
	dst = appendAckFields(dst, Ack{Delivered: -1, Position: pos})
	dst = append(dst, `,"publications":[`...)
	for i, p := range pushes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, p...)
	}
	return append(dst, "]}"...)
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

// Client is one subscriber in a presence answer or a join or leave push:
// its connection's id (unique across processes), the user of its token
// ("" without authentication) and the info it gave on connect (valid
// JSON, or empty).
type Client struct {
	ID   string
	User string
	Info json.RawMessage
}

// AppendClient appends {"client":…,"user":…,"info":…}; user and info only
// when set.
func AppendClient(dst []byte, c Client) []byte {
	dst = append(dst, `{"client":`...)
	dst = strconv.AppendQuote(dst, c.ID)
	if c.User != "" {
		dst = append(dst, `,"user":`...)
		dst = appendJSONString(dst, c.User)
	}
	if len(c.Info) > 0 {
		dst = append(dst, `,"info":`...)
		dst = append(dst, c.Info...)
	}
	return append(dst, '}')
}

// AppendPresence appends the ack of a presence request: the clients
// (each appended by AppendClient), and "more":true when the answer was cut
// at the limit.
func AppendPresence(dst []byte, id json.RawMessage, clients [][]byte, more bool) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"presence":[`...)
	for i, c := range clients {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c...)
	}
	dst = append(dst, ']')
	if more {
		dst = append(dst, `,"more":true`...)
	}
	return append(dst, '}')
}

// AppendPresenceStats appends the ack of a presence_stats request.
func AppendPresenceStats(dst []byte, id json.RawMessage, clients, users int) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"clients":`...)
	dst = strconv.AppendInt(dst, int64(clients), 10)
	dst = append(dst, `,"users":`...)
	dst = strconv.AppendInt(dst, int64(users), 10)
	return append(dst, '}')
}

// AppendJoinLeave appends the push {"channel":…,"join":client} (or
// "leave"), client appended by AppendClient.
func AppendJoinLeave(dst []byte, channel string, join bool, client []byte) []byte {
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendQuote(dst, channel)
	if join {
		dst = append(dst, `,"join":`...)
	} else {
		dst = append(dst, `,"leave":`...)
	}
	dst = append(dst, client...)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string: as it is between quotes
// when it is plain printable ASCII, through encoding/json otherwise.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
