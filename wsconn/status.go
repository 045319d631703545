package wsconn

// StatusCode is the status code of a close frame (RFC 6455 section 7.4):
// the code a Handler passes to Conn.Close, the one Handler.OnClose gets,
// and the one a CloseError records.
//
// A server may send the codes defined by the RFC that are not reserved
// (1000-1003, 1007-1011), those the IANA registry added since (1012-1014),
// and 3000-4999, for libraries and applications. Conn.Close sends 1000 for
// any other code.
type StatusCode uint16

// Close codes of RFC 6455 section 7.4.1 and the IANA WebSocket registry.
const (
	// StatusNormalClosure (1000): the purpose of the connection was
	// fulfilled.
	StatusNormalClosure StatusCode = 1000
	// StatusGoingAway (1001): the server is shutting down, or a heartbeat
	// went unanswered.
	StatusGoingAway StatusCode = 1001
	// StatusProtocolError (1002): the peer broke the protocol.
	StatusProtocolError StatusCode = 1002
	// StatusUnsupportedData (1003): a message of a type the endpoint does
	// not accept.
	StatusUnsupportedData StatusCode = 1003
	// StatusNoStatusRcvd (1005) is never sent: OnClose gets it when the
	// peer's close frame had no code.
	StatusNoStatusRcvd StatusCode = 1005
	// StatusAbnormalClosure (1006) is never sent: OnClose gets it when the
	// connection ended without a close frame.
	StatusAbnormalClosure StatusCode = 1006
	// StatusInvalidFramePayloadData (1007): a text message or close reason
	// that is not UTF-8, or compressed data that does not inflate.
	StatusInvalidFramePayloadData StatusCode = 1007
	// StatusPolicyViolation (1008): a rate limit, a slow consumer, an
	// expired authorization, a message not completed in time.
	StatusPolicyViolation StatusCode = 1008
	// StatusMessageTooBig (1009): a frame or message over its bound.
	StatusMessageTooBig StatusCode = 1009
	// StatusMandatoryExt (1010): the client needed an extension the server
	// did not negotiate.
	StatusMandatoryExt StatusCode = 1010
	// StatusInternalServerError (1011): a handler panicked or the server
	// failed.
	StatusInternalServerError StatusCode = 1011
	// StatusServiceRestart (1012): the server is restarting.
	StatusServiceRestart StatusCode = 1012
	// StatusTryAgainLater (1013): the server is overloaded; the client may
	// reconnect later.
	StatusTryAgainLater StatusCode = 1013
	// StatusBadGateway (1014): a gateway got an invalid answer upstream.
	StatusBadGateway StatusCode = 1014
)
