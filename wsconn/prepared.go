package wsconn

import (
	"sync"

	"github.com/gobwas/ws"
)

// A MessageType is its frames' opcode: ws.OpCode(t) frames a message of
// type t. The index below is out of range, and the build fails, if not.
var _ = [1]struct{}{}[MessageType(ws.OpText)^Text|MessageType(ws.OpBinary)^Binary]

// PreparedMessage is a message framed once, to be sent to many connections:
// server frames are not masked, so every recipient gets the same bytes
// (docs/design.md invariant 7). It is immutable and safe for concurrent use.
type PreparedMessage struct {
	typ   MessageType
	frame []byte
	data  []byte // the payload, kept for DeflatedFrame; shares frame's array

	deflateOnce sync.Once
	deflated    []byte
	huffmanOnce sync.Once
	huffman     []byte
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
// negotiated it with the full 32 KiB window. It is built once, on first
// use, and shared like Frame. It is nil when the message is small
// (MinDeflateSize) or does not compress: such connections then get Frame.
func (m *PreparedMessage) DeflatedFrame() []byte {
	if m.frame == nil || len(m.data) < MinDeflateSize {
		return nil
	}
	m.deflateOnce.Do(func() { m.deflated = deflateFrame(m.typ, m.data, fullCompressor) })
	return m.deflated
}

// HuffmanOnlyFrame is DeflatedFrame for connections that negotiated a
// window smaller than 32 KiB (server_max_window_bits below 15, RFC 7692
// section 7.1.2.1): the payload is compressed by Huffman coding alone
// (flate.HuffmanOnly), with no LZ77 back-reference, so it fits every
// window. It compresses less: English text and JSON to 61-64 % of their
// size, where DeflatedFrame gets them to 17-50 %. Like DeflatedFrame it is
// built once, on first use, shared by every such recipient, and nil for a
// small or incompressible message.
func (m *PreparedMessage) HuffmanOnlyFrame() []byte {
	if m.frame == nil || len(m.data) < MinDeflateSize {
		return nil
	}
	m.huffmanOnce.Do(func() { m.huffman = deflateFrame(m.typ, m.data, huffmanCompressor) })
	return m.huffman
}

// Type is the message type given to NewPreparedMessage.
func (m *PreparedMessage) Type() MessageType { return m.typ }

// Payload returns the message as given to NewPreparedMessage, without its
// frame header. It is shared: callers must not modify it.
func (m *PreparedMessage) Payload() []byte { return m.data }

// Frame returns the complete wire frame. It is shared: callers must not
// modify it. It is nil for an invalid message.
func (m *PreparedMessage) Frame() []byte { return m.frame }
