package handler

import (
	"sync"

	"github.com/gobwas/ws"
)

// PreparedMessage is a message framed once, to be sent to many connections:
// server frames are not masked, so every recipient gets the same bytes
// (DESIGN.md invariant 7). It is immutable and safe for concurrent use.
type PreparedMessage struct {
	typ   MessageType
	frame []byte
	data  []byte // the payload, kept for DeflatedFrame; shares frame's array

	deflateOnce sync.Once
	deflated    []byte
}

// NewPreparedMessage frames data as one unfragmented message of type t. It
// copies data. t must be Text or Binary; for any other value the message
// is rejected by Conn.SendPrepared with ErrInvalidMessage.
func NewPreparedMessage(t MessageType, data []byte) *PreparedMessage {
	if t != Text && t != Binary {
		return &PreparedMessage{typ: t}
	}
	// CompileFrame copies the payload after the header into one buffer,
	// so the frame goes out in one write (gobwas WriteFrame makes two).
	frame, err := ws.CompileFrame(ws.NewFrame(ws.OpCode(t), true, data))
	if err != nil { // only for lengths beyond 2^63
		return &PreparedMessage{typ: t}
	}
	return &PreparedMessage{typ: t, frame: frame, data: frame[len(frame)-len(data):]}
}

// DeflatedFrame returns the message framed with its payload compressed
// (permessage-deflate, RFC 7692, no context takeover) for connections that
// negotiated it. It is built once, on first use, and shared like Frame.
// It is nil when the message is small (MinDeflateSize) or does not
// compress: such connections then get Frame.
func (m *PreparedMessage) DeflatedFrame() []byte {
	if m.frame == nil || len(m.data) < MinDeflateSize {
		return nil
	}
	m.deflateOnce.Do(func() { m.deflated = deflateFrame(m.typ, m.data) })
	return m.deflated
}

// Type is the message type given to NewPreparedMessage.
func (m *PreparedMessage) Type() MessageType { return m.typ }

// Frame returns the complete wire frame. It is shared: callers must not
// modify it. It is nil for an invalid message.
func (m *PreparedMessage) Frame() []byte { return m.frame }
