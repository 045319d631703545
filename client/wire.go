package client

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// One open connection on the wire: serving it (the reader loop and the
// control frames), writing (from the sender, compressed or not), and the
// connection-lost timer. conn.go has the Conn, its options and its
// reconnect loop.

// flush writes pending out on nc until none is left; the caller set
// writing. One sender writes at a time; the others only queue, so a send
// costs no goroutine and no copy beyond the frame's.
func (c *Conn) flush(nc net.Conn) {
	for {
		c.mu.Lock()
		batch := c.pending
		c.pending = nil
		if len(batch) == 0 || c.conn != nc {
			c.pending = append(batch, c.pending...)
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.writeMu.Lock()
		_ = nc.SetWriteDeadline(time.Now().Add(c.opts.CloseTimeout + c.opts.PongTimeout))
		var err error
		for _, f := range batch {
			if err = c.writeMessage(nc, f.op, f.buf); err != nil {
				break
			}
		}
		c.writeMu.Unlock()
		if err != nil {
			c.drop(nc, err)
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// writeMessage writes one message, compressed when it is data on a
// connection that negotiated permessage-deflate. c.writeMu is held.
func (c *Conn) writeMessage(nc net.Conn, op ws.OpCode, buf []byte) error {
	p := buf[headroom:]
	if !c.compressed.Load() || op.IsControl() {
		// Masked in place and sent with its header in one write: the
		// payload is this package's copy, written once.
		_, err := nc.Write(frameInPlace(op, buf))
		return err
	}
	z, err := wsflate.CompressFrame(ws.NewFrame(op, true, p)) // sets RSV1
	if err != nil {
		return err
	}
	return ws.WriteFrame(nc, ws.MaskFrameInPlace(z))
}

// drop ends nc for err, which the close event reports.
func (c *Conn) drop(nc net.Conn, err error) {
	c.cause.CompareAndSwap(nil, &err)
	_ = nc.Close()
}

// closeFrame is the reader's error for a close frame received.
type closeFrame struct {
	code   int
	reason string
}

func (closeFrame) Error() string { return "close frame" }

// serve runs one open connection until it ends, and says how.
func (c *Conn) serve(nc net.Conn, br *bufio.Reader) CloseEvent {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		_ = nc.Close()
		return CloseEvent{Code: 1000, Reason: "closed before it opened", Final: true}
	}
	c.conn = nc
	c.mu.Unlock()
	c.cause.Store(nil)
	c.lastRead.Store(time.Now().UnixNano())
	c.connected.Store(true)
	hb := c.startHeartbeat(nc)
	c.mu.Lock()
	flush := len(c.pending) > 0 && !c.writing // queued while down
	c.writing = c.writing || flush
	c.mu.Unlock()
	if flush {
		c.flush(nc)
	}
	c.event(func() {
		if c.opts.OnOpen != nil {
			c.opts.OnOpen(c)
		}
	})
	e := c.read(nc, br)
	hb.Stop()
	_ = nc.Close()
	c.mu.Lock()
	c.conn = nil
	if !c.opts.QueueWhileDown {
		c.pending = nil // what this connection did not write is not the next one's
	}
	c.mu.Unlock()
	c.connected.Store(false)
	if p := c.cause.Load(); p != nil && !e.ByServer {
		e.Err, e.Reason = *p, (*p).Error()
	}
	return e
}

// read reads messages until the connection ends.
func (c *Conn) read(nc net.Conn, br *bufio.Reader) CloseEvent {
	var src io.Reader = nc
	if br != nil && br.Buffered() > 0 {
		src = io.MultiReader(br, nc)
	}
	control := func(h ws.Header, r io.Reader) error { return c.control(nc, h, r) }
	var msg wsflate.MessageState
	rd := wsutil.Reader{Source: src, State: ws.StateClientSide, OnIntermediate: control}
	if c.compressed.Load() {
		rd.State |= ws.StateExtended // RSV1 means compressed
		rd.Extensions = []wsutil.RecvExtension{&msg}
	}
	for {
		h, err := rd.NextFrame()
		if err == nil {
			c.lastRead.Store(time.Now().UnixNano())
			if h.OpCode.IsControl() {
				err = control(h, &rd)
				if err == nil {
					continue
				}
			} else {
				var data []byte
				data, err = io.ReadAll(io.LimitReader(&rd, c.opts.MaxMessageSize+1))
				if err == nil && msg.IsCompressed() {
					data, err = inflate(data, c.opts.MaxMessageSize)
				}
				if err == nil && int64(len(data)) > c.opts.MaxMessageSize {
					c.writeClose(nc, 1009, "message too big")
					return CloseEvent{Code: 1009, Reason: "message too big", Err: ErrMessageTooLarge}
				}
				if err == nil && h.OpCode == ws.OpText && !utf8.Valid(data) {
					err = wsutil.ErrInvalidUTF8 // wsutil's check misses some split sequences: checked here, whole
				}
				if err == nil {
					t := MessageType(h.OpCode)
					c.event(func() {
						if c.opts.OnMessage != nil {
							c.opts.OnMessage(c, t, data)
						}
					})
					continue
				}
			}
		}
		var cf closeFrame
		if errors.As(err, &cf) {
			return CloseEvent{Code: cf.code, Reason: cf.reason, ByServer: true}
		}
		if errors.Is(err, wsutil.ErrInvalidUTF8) {
			c.writeClose(nc, 1007, "invalid UTF-8")
		}
		return CloseEvent{Code: 1006, Reason: err.Error(), Err: err}
	}
}

// inflate decompresses a permessage-deflate message, reading at most
// limit+1 bytes out of it (a larger one is reported as such: a small
// compressed message may inflate to any size).
func inflate(p []byte, limit int64) ([]byte, error) {
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, limit+1))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // the stream ends at the sync marker, without a final block
	}
	return out, err
}

// control handles one control frame: a ping is answered, a close is
// answered (unless Close sent one) and ends the read.
func (c *Conn) control(nc net.Conn, h ws.Header, r io.Reader) error {
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return err
	}
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		c.writeMu.Lock()
		_ = nc.SetWriteDeadline(time.Now().Add(c.opts.CloseTimeout))
		err := wsutil.WriteClientMessage(nc, ws.OpPong, payload)
		c.writeMu.Unlock()
		return err
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		if !c.isClosing() {
			c.writeClose(nc, int(code), "")
		}
		if code == 0 {
			code = ws.StatusNoStatusRcvd
		}
		return closeFrame{int(code), reason}
	}
	return nil // a pong: lastRead is enough
}

// writeClose writes a close frame.
func (c *Conn) writeClose(nc net.Conn, code int, reason string) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = nc.SetWriteDeadline(time.Now().Add(c.opts.CloseTimeout))
	_ = wsutil.WriteClientMessage(nc, ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

// heartbeat is a connection's connection-lost timer: a time.AfterFunc
// that checks and re-arms itself, so an idle connection holds no
// goroutine for it.
type heartbeat struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

// Stop ends the timer for good.
func (h *heartbeat) Stop() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.stopped = true
	if h.t != nil {
		h.t.Stop()
	}
	h.mu.Unlock()
}

// startHeartbeat starts nc's connection-lost timer, if PingInterval is
// positive.
func (c *Conn) startHeartbeat(nc net.Conn) *heartbeat {
	if c.opts.PingInterval <= 0 {
		return nil
	}
	h := &heartbeat{}
	every := max(min(c.opts.PingInterval, c.opts.PongTimeout)/4, 10*time.Millisecond)
	var pingAt int64 // when the unanswered ping went; 0: none
	check := func() {
		now, last := time.Now().UnixNano(), c.lastRead.Load()
		switch {
		case pingAt != 0 && last > pingAt:
			pingAt = 0 // answered
		case pingAt != 0 && now-pingAt > int64(c.opts.PongTimeout):
			c.drop(nc, ErrPongTimeout)
			return
		case pingAt == 0 && now-last >= int64(c.opts.PingInterval):
			pingAt = now
			c.writeMu.Lock()
			_ = nc.SetWriteDeadline(time.Now().Add(c.opts.PongTimeout))
			err := wsutil.WriteClientMessage(nc, ws.OpPing, nil)
			c.writeMu.Unlock()
			if err != nil {
				c.drop(nc, err)
				return
			}
		}
		h.mu.Lock()
		if !h.stopped {
			h.t.Reset(every)
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	h.t = time.AfterFunc(every, check)
	h.mu.Unlock()
	return h
}

// headroom is the room a queued frame keeps in front of its payload for
// the longest client frame header: 2 bytes, 8 of extended length, 4 of
// mask (RFC 6455 section 5.2).
const headroom = 14

// frameInPlace masks the payload that follows buf's headroom with a fresh
// key and writes a final frame's header in front of it, returning the
// whole frame.
func frameInPlace(op ws.OpCode, buf []byte) []byte {
	p := buf[headroom:]
	n := len(p)
	var hdr []byte
	switch {
	case n < 126:
		hdr = buf[headroom-6 : headroom]
		hdr[1] = 0x80 | byte(n)
	case n <= 0xffff:
		hdr = buf[headroom-8 : headroom]
		hdr[1] = 0x80 | 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
	default:
		hdr = buf[:headroom]
		hdr[1] = 0x80 | 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
	}
	hdr[0] = 0x80 | byte(op) // FIN
	mask := ws.NewMask()
	copy(hdr[len(hdr)-4:], mask[:])
	ws.Cipher(p, mask, 0)
	return buf[headroom-len(hdr):]
}
