package wsconn

import (
	"net/netip"
	"time"
)

// MessageType is the kind of a data message (RFC 6455 section 5.6).
type MessageType uint8

// Message types. The values are the frame opcodes.
const (
	// Text is a UTF-8 text message (opcode 0x1). The server validates
	// incoming text before a Handler sees it.
	Text MessageType = 0x1
	// Binary is an opaque binary message (opcode 0x2).
	Binary MessageType = 0x2
)

// String returns "text" or "binary".
func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	default:
		return "invalid"
	}
}

// Conn is one open WebSocket connection as a Handler sees it. The Server
// implements it; a test of a Handler may implement it with a fake.
//
// All methods are safe to call from any goroutine, and none of them blocks
// on the network: a send either writes what the socket takes at once or
// queues the rest, bounded per connection.
type Conn interface {
	// ID is unique among the connections of one server process.
	ID() uint64
	// RemoteAddr is the peer's address.
	RemoteAddr() netip.AddrPort
	// Path is the path of the request that opened the connection, without
	// the query string.
	Path() string
	// Query is the raw query string of that request, without the '?'.
	Query() string
	// Subprotocol is the negotiated Sec-WebSocket-Protocol, or "".
	Subprotocol() string

	// Send frames p as one message of type t and sends or queues it. The
	// connection keeps no reference to p after Send returns.
	//
	// It returns ErrClosed once the connection is closing, ErrSlowConsumer
	// if the outbound queue bound was passed (the connection is then being
	// closed with 1008), and ErrInvalidMessage for a bad t.
	Send(t MessageType, p []byte) error
	// SendPrepared queues the bytes of a message framed once for many
	// connections (see PreparedMessage). Its errors are those of Send.
	SendPrepared(m *PreparedMessage) error
	// Close starts the closing handshake (RFC 6455 section 7.1.2) with code
	// and reason: queued messages are flushed, then the close frame is sent,
	// and the socket is closed when the peer answers or the close timeout
	// passes. Handler.OnClose follows. Calling Close on a closing connection
	// does nothing and returns ErrClosed.
	Close(code StatusCode, reason string) error

	// Principal returns who the connection acts for, as the server's
	// authorization hook established it (for wsgate: the verified token's
	// claims), or nil without authorization.
	Principal() any
	// SetPrincipal replaces the principal and when it expires (zero:
	// never), as after a token refresh. At expiry the server closes the
	// connection with 1008.
	SetPrincipal(p any, expires time.Time)

	// Value returns what SetValue stored, or nil.
	Value() any
	// SetValue stores one application value with the connection. The
	// channels handler uses it for the connection's subscriptions; an
	// application that needs several values stores a struct.
	SetValue(v any)
}

// Handler receives the events of the connections on one route, like
// Java-WebSocket's WebSocketServer callbacks.
//
// The server calls a Handler's methods for one connection one at a time and
// in order, on a worker of its bounded pool; calls for different connections
// run concurrently. A method must not block for long: while it runs, its
// worker serves no one else.
type Handler interface {
	// OnOpen is called once, after the handshake response was sent.
	OnOpen(c Conn)
	// OnMessage is called for each complete data message. Text messages are
	// valid UTF-8. data is only valid until OnMessage returns; copy it to
	// keep it.
	OnMessage(c Conn, t MessageType, data []byte)
	// OnClose is called once for every connection that was opened, after
	// its socket was closed. code is the status the peer sent, the one the
	// server closed with, or 1006 (abnormal closure) if the connection was
	// lost without a close frame. After OnClose, sends return ErrClosed.
	OnClose(c Conn, code StatusCode, reason string)
	// OnError reports what went wrong before an unplanned close: a protocol
	// violation, a read or write error, a slow consumer, a lost heartbeat.
	// OnClose always follows.
	OnError(c Conn, err error)
}

// PingHandler is implemented by a Handler that wants to see pings. The
// server answers every ping with a pong itself, before OnPing is called.
type PingHandler interface {
	// OnPing is called with the ping's payload, valid until it returns.
	OnPing(c Conn, data []byte)
}

// PongHandler is implemented by a Handler that wants to see pongs, such as
// the answers to the server's heartbeat pings.
type PongHandler interface {
	// OnPong is called with the pong's payload, valid until it returns.
	OnPong(c Conn, data []byte)
}

// TickHandler is implemented by a Handler that has its own housekeeping
// to do on the server's timer tick, such as expiring what it stores.
// OnTick is called on the sweeper goroutine once every SweepInterval (once
// per handler, however many routes it serves), with the time of the tick.
// It delays every connection timer while it runs: it must do a bounded
// amount of work and never wait on a lock a client can hold up.
type TickHandler interface {
	OnTick(now time.Time)
}

// Base implements every Handler method as a no-op, for embedding in a
// Handler that needs only some of them.
type Base struct{}

// OnOpen does nothing.
func (Base) OnOpen(Conn) {}

// OnMessage does nothing.
func (Base) OnMessage(Conn, MessageType, []byte) {}

// OnClose does nothing.
func (Base) OnClose(Conn, StatusCode, string) {}

// OnError does nothing.
func (Base) OnError(Conn, error) {}
