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
//	{"op":"subscribe","channel":"news","id":5,"recover":{"offset":41,"epoch":"k3x9"}}
//	{"op":"history","channel":"news","id":6,"limit":20}
//	{"op":"history","channel":"news","id":7,"after":{"offset":41,"epoch":"k3x9"}}
//	{"op":"subscribe","channel":"room","id":8,"join_leave":true}
//	{"op":"presence","channel":"room","id":9}
//	{"op":"presence_stats","channel":"room","id":10}
//
// Server to client:
//
//	{"channel":"news","data":<data exactly as published>}      push
//	{"channel":"news","offset":42,"data":<data>}                push, channel with history
//	{"op":"ack","id":"1"}                                       subscribe, unsubscribe, refresh
//	{"op":"ack","id":"3","delivered":2}                         publish
//	{"op":"ack","id":"3","delivered":2,"offset":42,"epoch":"k3x9"}  publish, with history
//	{"op":"ack","id":5,"offset":42,"epoch":"k3x9","recovered":true}  subscribe, with history
//	{"op":"ack","id":5,"recovered":false,"reason":"history_off"}     recovery refused
//	{"op":"ack","id":6,"offset":42,"epoch":"k3x9","publications":[<push>,…]}  history
//	{"op":"ack","id":9,"presence":[{"client":"k2j-7","user":"alice","info":{…}},…]}  presence
//	{"op":"ack","id":10,"clients":3,"users":2}                 presence_stats
//	{"channel":"room","join":{"client":"k2j-7","user":"alice"}}  join push ("leave" alike)
//	{"op":"error","id":"1","code":"bad_channel","message":"…"}  any failure
//
// An ack is sent only when the request had an id; the id is echoed
// verbatim, as the bytes the client sent. An error is always sent, with
// "id" only when the request had a usable one. Errors never close the
// connection. "delivered" counts the subscribers on this process the push
// was queued to, the publisher included if it is subscribed.
//
// History and recovery. A channel whose options (ChannelRule) keep a
// history numbers its publications: each push carries its "offset", and
// the acks of subscribe and publish carry the channel's last (or the new)
// offset and its "epoch". A client that loses its connection subscribes
// again with "recover" set to the last position it processed; the ack
// says "recovered":true and is followed by every publication after that
// offset, in order, then by the live ones, with none lost or doubled
// across the switch. Or it says "recovered":false with a "reason" (the
// Reason constants of wsproto: history_off, epoch_changed, offset_too_old,
// too_many past MaxReplay or MaxReplayBytes, offset_ahead), nothing is
// replayed, and the client should reload its state; it is subscribed
// either way. A subscribe needs an id for its ack to be sent, so a
// recovering client should give one. "history" returns the last "limit"
// publications, or those after "after", at most MaxHistoryLimit and
// MaxReplayBytes at once (ask again after the last offset for more); with
// "after" of another epoch or evicted it fails with epoch_changed or
// offset_too_old. History follows the subscribe permission.
//
// Presence (presence.go). On a channel whose options have Presence,
// "presence" lists its subscribers (at most MaxPresence, then
// "more":true): a client id unique across processes, the user of the
// connection's principal (User) when it names one, and the "info" query
// parameter the connection was opened with, when it is one JSON value of
// at most MaxClientInfo bytes. "presence_stats" counts them and their
// distinct users. Both follow the subscribe permission; elsewhere they
// answer presence_off. A subscribe with "join_leave":true on a channel
// whose options have JoinLeave also gets a push for every subscribe
// ("join") and unsubscribe or close ("leave") on the channel, its own
// join included, after its ack.
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
//	history_off             history on a channel that keeps none
//	epoch_changed           history after a position of another epoch
//	offset_too_old          history after a position whose next
//	                        publications were evicted (size, TTL)
//	unavailable             with a StoreBroker (JetStream): the store did
//	                        not answer; a publish was not stored, and so
//	                        not delivered; a subscribe did not happen
//	presence_off            presence or presence_stats on a channel
//	                        whose options have no presence
//	busy                    with a StoreBroker: too many subscribes and
//	                        history requests wait for the store already
//
// A negative limit, or a recover or after that is not an object with a
// non-negative integer offset below 2^64 and a string epoch, is bad_json.
const (
	CodeBadJSON              = wsproto.CodeBadJSON
	CodeBinaryNotSupported   = wsproto.CodeBinaryNotSupported
	CodeUnknownOp            = wsproto.CodeUnknownOp
	CodeBadChannel           = wsproto.CodeBadChannel
	CodeTooManySubscriptions = wsproto.CodeTooManySubscriptions
	CodeNotSubscribed        = wsproto.CodeNotSubscribed
	CodeForbidden            = wsproto.CodeForbidden
	CodeInvalidToken         = wsproto.CodeInvalidToken
	CodeHistoryOff           = wsproto.CodeHistoryOff
	CodeEpochChanged         = wsproto.CodeEpochChanged
	CodeOffsetTooOld         = wsproto.CodeOffsetTooOld
	CodeUnavailable          = wsproto.CodeUnavailable
	CodeBusy                 = wsproto.CodeBusy
	CodePresenceOff          = wsproto.CodePresenceOff
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
	case errors.Is(err, ErrHistoryOff):
		return CodeHistoryOff
	case errors.Is(err, ErrEpochChanged):
		return CodeEpochChanged
	case errors.Is(err, ErrOffsetTooOld):
		return CodeOffsetTooOld
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrBusy):
		return CodeBusy
	case errors.Is(err, ErrPresenceOff):
		return CodePresenceOff
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
