package wsconn

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The closing handshake (RFC 6455 sections 5.5.1, 7.1 and 7.4).
//
//	server starts (Close, a protocol error, shutdown, slow consumer):
//	  close frame queued after pending data ─▶ flushed ─▶ FIN (shutdown SHUT_WR)
//	  ─▶ peer's close frame, EOF, or CloseTimeout ─▶ descriptor closed ─▶ OnClose
//	peer starts:
//	  close frame received ─▶ echo its code ─▶ flushed ─▶ descriptor closed ─▶ OnClose

// maxCloseReason is the longest reason that fits a control frame with its
// two-byte code.
const maxCloseReason = 123

// Close starts the closing handshake with code and reason. It implements
// Conn. The reason is cut to 123 bytes at a UTF-8 boundary.
func (c *conn) Close(code StatusCode, reason string) error {
	if !validSendCode(code) {
		code = StatusNormalClosure
	}
	c.mu.Lock()
	ok := c.sendCloseLocked(code, reason, nil)
	c.mu.Unlock()
	if !ok {
		return ErrClosed
	}
	c.desc.Wake() // the owner moves the phase on and watches the deadline
	return nil
}

// fail closes the connection because of err: it sends a close frame with
// code and reason after anything already queued, stops parsing input, and
// lets the owner close the descriptor once the frame is out. Only the owner
// calls it.
func (c *conn) fail(code StatusCode, reason string, err error) {
	if c.in != nil {
		c.in.discard = true
	} else {
		c.in = getInState()
		c.in.discard = true
	}
	c.mu.Lock()
	c.sendCloseLocked(code, reason, &CloseError{Code: code, Reason: reason, Err: err})
	c.mu.Unlock()
}

// sendCloseLocked queues a close frame unless one was sent already, records
// it, and starts the close deadline. cause, if not nil, is what OnError
// will report. It returns false if a close frame was already sent or the
// connection is gone. c.mu must be held.
func (c *conn) sendCloseLocked(code StatusCode, reason string, cause error) bool {
	if c.wflags&(wfCloseSent|wfClosed) != 0 {
		return false
	}
	st := c.closingLocked()
	if st.cause == nil {
		st.cause = cause
	}
	reason = truncateUTF8(reason, maxCloseReason)
	st.sentCode, st.sentReason = code, reason
	c.setPhase(phaseClosing)
	c.setCloseDeadline()
	buf := closeFrame(code, reason, st.recvd && st.recvCode == StatusNoStatusRcvd)
	_ = c.sendLocked(buf.b, buf, true)
	c.wflags |= wfCloseSent
	if c.out == nil {
		c.afterFlushLocked()
	}
	return true
}

// drainPassed counts n bytes read from a connection the server has decided
// to close (its close frame sent or queued, or its handshake answered with
// an error) and reports whether they passed CloseDrainLimit: then the
// descriptor should be closed at once, whatever the peer still sends. Only
// the owner calls it.
func (c *conn) drainPassed(n int) bool {
	switch c.phaseNow() {
	case phaseOpen:
		return false
	case phaseHandshake:
		if c.in == nil || !c.in.discard {
			return false
		}
	}
	c.mu.Lock()
	cs := c.closingLocked()
	cs.drained += int64(n)
	over := cs.drained > CloseDrainLimit
	c.mu.Unlock()
	return over
}

// closeFrame compiles a close frame. empty sends no code at all (the answer
// to a close frame that had none).
func closeFrame(code StatusCode, reason string, empty bool) *buffer {
	if empty {
		buf := getBuffer(2)
		putHeader(buf.b, ws.OpClose, 0)
		return buf
	}
	n := 2 + len(reason)
	buf := getBuffer(2 + n)
	putHeader(buf.b, ws.OpClose, n)
	binary.BigEndian.PutUint16(buf.b[2:], uint16(code))
	copy(buf.b[4:], reason)
	return buf
}

// onCloseFrame handles the peer's close frame (RFC 6455 section 5.5.1):
// validate it, answer with the same code if the server has not sent a
// close frame yet, and stop reading data. Only the owner calls it.
func (c *conn) onCloseFrame(payload []byte) {
	code, reason := StatusNoStatusRcvd, ""
	switch {
	case len(payload) == 1:
		c.fail(StatusProtocolError, "close frame payload of 1 byte", protocolError{ws.ErrProtocolControlPayloadOverflow})
		return
	case len(payload) >= 2:
		code = StatusCode(binary.BigEndian.Uint16(payload))
		if !validReceivedCode(code) {
			c.fail(StatusProtocolError, "invalid close code", protocolError{ws.ErrProtocolStatusCodeUnknown})
			return
		}
		if !utf8.Valid(payload[2:]) {
			c.fail(StatusInvalidFramePayloadData, "invalid UTF-8 in close reason", ErrInvalidUTF8)
			return
		}
		reason = string(payload[2:])
	}
	c.in.discard = true // nothing after a close frame is read (section 5.5.1)
	c.mu.Lock()
	cs := c.closingLocked()
	cs.recvd, cs.recvCode, cs.recvReason = true, code, reason
	echo := code
	if echo == StatusNoStatusRcvd {
		echo = StatusNormalClosure // only for the record: the frame goes out empty
	}
	c.sendCloseLocked(echo, "", nil)
	c.mu.Unlock()
}

// validReceivedCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4): 1000-1003 and 1007-1011 defined by the RFC,
// 1012-1014 registered with IANA since, 3000-4999 for libraries and
// applications. 1004 is reserved, 1005, 1006 and 1015 must never be sent,
// and everything below 1000 or in 1016-2999 is invalid.
func validReceivedCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// validSendCode reports whether the server may send code.
func validSendCode(code StatusCode) bool { return validReceivedCode(code) }

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
