package wsconn

import (
	"log/slog"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/poller"
)

// The write path (docs/design.md invariant 5): a frame is compiled into one
// buffer and written at once without blocking; what the socket does not
// take is queued, bounded by MaxQueueBytes, and flushed when epoll reports
// the socket writable. EPOLLOUT is armed only while the queue is not empty
// (see conn.settle and sendLocked). Any goroutine may send; mu serialises
// the writers, and no one waits on the socket while holding it.

// Send frames p as one message and writes or queues it. It implements
// Conn.
func (c *conn) Send(t MessageType, p []byte) error {
	if t != Text && t != Binary {
		return ErrInvalidMessage
	}
	if c.deflate() && len(p) >= MinDeflateSize {
		// Compression costs a prepared message (and its copy of p), but a
		// connection that asked for it sends big messages small.
		return c.SendPrepared(NewPreparedMessage(t, p))
	}
	buf := compileFrame(ws.OpCode(t), p)
	c.mu.Lock()
	err := c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
	if err == nil {
		c.hot().msgsOut.Add(1)
	}
	return err
}

// SendPrepared queues the shared frame of m. It implements Conn.
func (c *conn) SendPrepared(m *PreparedMessage) error {
	if m == nil || m.Frame() == nil {
		return ErrInvalidMessage
	}
	frame := m.Frame()
	if d := c.deflatedFrame(m); d != nil { // compressed once for every such recipient
		frame = d
	}
	c.mu.Lock()
	err := c.sendLocked(frame, nil, false)
	c.mu.Unlock()
	if err == nil {
		c.hot().msgsOut.Add(1)
	}
	return err
}

// compileFrame returns a pooled buffer holding one unmasked, final frame.
func compileFrame(op ws.OpCode, p []byte) *buffer {
	n := headerSize(len(p))
	buf := getBuffer(n + len(p))
	putHeader(buf.b, op, len(p))
	copy(buf.b[n:], p)
	return buf
}

// sendLocked sends one frame: it writes b, or queues what the socket does
// not take; on wss it encrypts b first. buf, if not nil, is b's pooled
// buffer and is released exactly once whatever happens. A close frame
// (isClose) passes the queue bound and is the last frame accepted. c.mu
// must be held.
func (c *conn) sendLocked(b []byte, buf *buffer, isClose bool) error {
	if c.wflags&(wfCloseSent|wfClosed|wfWriteFailed) != 0 {
		putBuffer(buf)
		return ErrClosed
	}
	st := c.tlsSession()
	if st == nil {
		return c.rawSendLocked(b, buf, isClose)
	}
	if !isClose && c.out != nil && c.out.cost+len(b) > c.srv.cfg.MaxQueueBytes {
		putBuffer(buf)
		c.slowConsumerLocked()
		return ErrSlowConsumer
	}
	_, err := st.conn.Write(b) // into st.raw: never blocks
	putBuffer(buf)
	if err != nil {
		c.writeFailedLocked(err)
		return ErrClosed
	}
	if enc := st.raw.take(); enc != nil {
		return c.rawSendLocked(enc.b, enc, true) // the bound was checked above
	}
	return nil
}

// rawSendLocked writes bytes as they are (plaintext on ws://, ciphertext on
// wss://), or queues what the socket does not take. c.mu must be held.
func (c *conn) rawSendLocked(b []byte, buf *buffer, isClose bool) error {
	if c.wflags&(wfClosed|wfWriteFailed) != 0 {
		putBuffer(buf)
		return ErrClosed
	}
	if c.out == nil {
		n, err := c.desc.Write(b)
		c.hot().bytesOut.Add(uint64(n))
		switch {
		case err != nil && !poller.IsWouldBlock(err):
			putBuffer(buf)
			c.writeFailedLocked(err)
			return ErrClosed
		case n == len(b):
			putBuffer(buf)
			c.afterFlushLocked()
			return nil
		}
		c.out = getOutQueue()
		c.out.push(b[n:], buf)
		c.hot().queued.Add(int64(len(b) - n))
		// Ask for EPOLLOUT. Safe while a worker runs this connection: a
		// re-arm only merges one more event into its run.
		_ = c.desc.Rearm(true)
		return nil
	}
	if !isClose && c.out.cost+len(b) > c.srv.cfg.MaxQueueBytes {
		putBuffer(buf)
		c.slowConsumerLocked()
		return ErrSlowConsumer
	}
	c.out.push(b, buf)
	c.hot().queued.Add(int64(len(b)))
	return nil
}

// flushLocked writes queued frames until the socket is full or the queue
// is empty. c.mu must be held.
func (c *conn) flushLocked() {
	q := c.out
	if q == nil || c.wflags&wfClosed != 0 {
		return
	}
	for !q.empty() {
		b := q.q[q.head].b
		n, err := c.desc.Write(b)
		c.hot().bytesOut.Add(uint64(n))
		c.hot().queued.Add(-int64(n))
		q.wrote(n)
		if q.pingLeft > 0 && n > 0 {
			c.pingWrittenLocked(q, n)
		}
		if err != nil {
			if !poller.IsWouldBlock(err) {
				c.writeFailedLocked(err)
			}
			return
		}
		if n < len(b) {
			return
		}
	}
	q.release()
	c.out = nil
	c.afterFlushLocked()
}

// afterFlushLocked runs when nothing is left to write: once the close frame
// is out, send FIN (RFC 6455 section 7.1.1: the server closes first). c.mu
// must be held.
func (c *conn) afterFlushLocked() {
	if c.wflags&wfCloseSent != 0 && c.wflags&wfShutWr == 0 {
		c.wflags |= wfShutWr
		_ = c.desc.ShutdownWrite()
		c.desc.Wake() // the owner decides whether the descriptor can be closed
	}
	if c.wflags&wfCloseAfter != 0 && c.wflags&wfShutWr == 0 {
		// The HTTP answer is out: send FIN and read (discarding) until the
		// client hangs up, so that closing does not reset the connection
		// with request bytes unread, which could destroy the answer on
		// its way. The deadline bounds the wait.
		c.wflags |= wfShutWr
		_ = c.desc.ShutdownWrite()
		c.setLingerDeadline()
	}
}

// dropQueueLocked discards the queue and returns how many bytes were
// unsent. c.mu must be held.
func (c *conn) dropQueueLocked() int {
	if c.out == nil {
		return 0
	}
	n := c.out.reset()
	c.hot().queued.Add(-int64(n))
	c.out.release()
	c.out = nil
	return n
}

// writeFailedLocked records a socket write error (EPIPE, ECONNRESET): the
// owner terminates the connection at its next event. c.mu must be held.
func (c *conn) writeFailedLocked(err error) {
	c.wflags |= wfWriteFailed
	if cs := c.closingLocked(); cs.cause == nil {
		cs.cause = &CloseError{Code: StatusAbnormalClosure, Err: err}
	}
	c.desc.Wake()
}

// slowConsumerLocked closes a connection whose queue passed its bound with
// 1008 "slow consumer". The queued frames are dropped (counted), except
// one the socket already took part of: cutting it would corrupt the stream
// before the close frame. c.mu must be held.
func (c *conn) slowConsumerLocked() {
	c.srv.stats.slowConsumers.Add(1)
	c.srv.warns.warn(warnSlowConsumer, slog.LevelWarn, "slow consumer: closing with 1008",
		func() []any { return append(c.connAttrsLocked(), "max_queue", c.srv.cfg.MaxQueueBytes) })
	if c.tlsSession() != nil {
		// TLS records cannot be dropped from the middle of the stream (the
		// peer could not decrypt what follows), so no close frame can go
		// out after them: the connection is cut, and reported as 1008.
		cs := c.closingLocked()
		cs.sentCode, cs.sentReason = StatusPolicyViolation, "slow consumer"
		if cs.cause == nil {
			cs.cause = &CloseError{Code: StatusPolicyViolation, Reason: "slow consumer", Err: ErrSlowConsumer}
		}
		c.wflags |= wfWriteFailed
		c.desc.Wake()
		return
	}
	if q := c.out; q != nil && !q.empty() {
		dropped := q.dropAllButHead()
		c.hot().queued.Add(-int64(dropped))
		c.srv.stats.droppedBytes.Add(uint64(dropped))
	}
	c.sendCloseLocked(StatusPolicyViolation, "slow consumer",
		&CloseError{Code: StatusPolicyViolation, Reason: "slow consumer", Err: ErrSlowConsumer})
}

// headerSize is the length of an unmasked frame header for an n-byte
// payload.
func headerSize(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// putHeader writes a final, unmasked frame header for an n-byte payload
// into p (RFC 6455 section 5.2) and returns its length.
func putHeader(p []byte, op ws.OpCode, n int) int {
	p[0] = 0x80 | byte(op)
	switch {
	case n < 126:
		p[1] = byte(n)
		return 2
	case n <= 0xffff:
		p[1] = 126
		p[2], p[3] = byte(n>>8), byte(n)
		return 4
	}
	p[1] = 127
	for i := range 8 {
		p[2+i] = byte(uint64(n) >> (56 - 8*i))
	}
	return 10
}
