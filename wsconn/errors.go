package wsconn

import (
	"errors"
	"fmt"
)

// Errors returned by the methods of Conn. A fake Conn in a Handler's tests
// should return these too.
var (
	// ErrClosed is returned by Conn.Send, Conn.SendPrepared and Conn.Close
	// once the connection is closing or closed.
	ErrClosed = errors.New("wsconn: connection is closed")
	// ErrSlowConsumer is returned by Conn.Send and Conn.SendPrepared for
	// the message that would take the connection's outbound queue past
	// MaxQueueBytes. The connection is then closed with 1008 "slow
	// consumer", and the *CloseError that Handler.OnError gets wraps this
	// same error: errors.Is(err, ErrSlowConsumer) recognises both.
	ErrSlowConsumer = errors.New("wsconn: slow consumer")
	// ErrInvalidMessage is returned by Conn.Send for a message type other
	// than Text or Binary, and by Conn.SendPrepared for a nil or invalid
	// PreparedMessage.
	ErrInvalidMessage = errors.New("wsconn: invalid message type")
)

// Errors reported by this package. The ones a Handler sees through OnError
// are wrapped in a *CloseError that carries the close code the server sent.
var (
	// ErrInvalidConfig wraps every reason a Config is rejected; New and
	// Config.Validate return it, naming the field.
	ErrInvalidConfig = errors.New("wsconn: invalid config")
	// ErrServerClosed is returned by Start and Serve after Shutdown.
	ErrServerClosed = errors.New("wsconn: server closed")
	// ErrMessageTooBig: a frame or message passed MaxFrameSize or
	// MaxMessageSize (close 1009).
	ErrMessageTooBig = errors.New("wsconn: message too big")
	// ErrInvalidUTF8: a text message or close reason was not UTF-8
	// (close 1007).
	ErrInvalidUTF8 = errors.New("wsconn: invalid UTF-8")
	// ErrHeartbeatTimeout: no data and no pong within PongTimeout after a
	// heartbeat ping (close 1001).
	ErrHeartbeatTimeout = errors.New("wsconn: heartbeat timeout: no pong")
	// ErrCloseTimeout: the peer did not finish the closing handshake within
	// CloseTimeout.
	ErrCloseTimeout = errors.New("wsconn: close handshake timed out")
	// ErrHandlerPanic: a Handler method panicked (close 1011).
	ErrHandlerPanic = errors.New("wsconn: handler panicked")
	// ErrInternal: a bug in wsgate itself, recovered (close 1011); the
	// error carries the panic value and stack.
	ErrInternal = errors.New("wsconn: internal error")
	// ErrRateLimited: a connection sent frames or bytes faster than
	// MaxMessageRate or MaxByteRate allow (close 1008).
	ErrRateLimited = errors.New("wsconn: rate limit exceeded")
	// ErrMessageTimeout: a message (or a frame) was not complete within
	// MessageTimeout of its first byte (close 1008).
	ErrMessageTimeout = errors.New("wsconn: message not completed in time")
	// ErrInputBudget: completing a message would have taken the memory
	// held by all unfinished messages past MaxPartialBytes (close 1013
	// "try again later").
	ErrInputBudget = errors.New("wsconn: too much unfinished input held")
	// ErrAuthExpired: the connection's authorization expired (close 1008).
	ErrAuthExpired = errors.New("wsconn: authorization expired")
	// ErrShuttingDown: the server is shutting down (close 1001).
	ErrShuttingDown = errors.New("wsconn: server shutting down")
	// ErrHandshakeTimeout: no complete upgrade request within
	// HandshakeTimeout; the connection was closed without an answer.
	ErrHandshakeTimeout = errors.New("wsconn: handshake timed out")
	// ErrProtocol: the peer broke RFC 6455 or RFC 7692 (close 1002): an
	// unmasked or malformed frame, a reserved opcode or bit, a bad close
	// frame. errors.Is(err, ErrProtocol) holds for every such cause; the
	// error itself says which rule was broken, in the frame codec's words.
	ErrProtocol = errors.New("wsconn: protocol error")
)

// protocolError is the cause of a 1002 close: the codec's error, which
// names the rule broken, marked as ErrProtocol. Its text is the codec's.
type protocolError struct{ err error }

func (e protocolError) Error() string        { return e.err.Error() }
func (e protocolError) Unwrap() error        { return e.err }
func (e protocolError) Is(target error) bool { return target == ErrProtocol }

// CloseError is a failure that ended a connection: what went wrong and the
// close code the server sent for it (1006 if it could send none). Handlers
// receive it through OnError; use AsCloseError to get it.
type CloseError struct {
	Code   StatusCode // close code sent to the peer
	Reason string     // close reason sent to the peer
	Err    error      // the cause: a sentinel above (ErrProtocol for 1002), or a socket error
}

// Error returns "wsconn: closed with 1002 (reason): cause".
func (e *CloseError) Error() string {
	return fmt.Sprintf("wsconn: closed with %d (%s): %v", e.Code, e.Reason, e.Err)
}

// Unwrap returns the cause.
func (e *CloseError) Unwrap() error { return e.Err }

// AsCloseError returns the *CloseError in err's chain, if any.
func AsCloseError(err error) (*CloseError, bool) {
	var ce *CloseError
	ok := errors.As(err, &ce)
	return ce, ok
}
