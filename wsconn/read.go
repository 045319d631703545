package wsconn

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wsgate/wsgate/poller"
)

// The read path (docs/design.md invariants 3, 4 and 5). A readable event reads
// what the socket holds into a pooled buffer and feeds it to an incremental
// parser: complete frames are handled at once, and a partial header,
// payload or fragmented message is kept in an inState (bounded by the size
// limits) until the next event. The worker never waits for the rest of a
// frame. A connection between frames holds no inState.

// maxReadsPerEvent bounds the reads one event makes, so that a client
// sending without pause cannot hold a worker; the connection then asks for
// another run after the others waiting (Desc.ReadAgain).
const maxReadsPerEvent = 4

// inState is a connection's unfinished input. Pooled; owned by the worker
// serving the connection.
type inState struct {
	hs      []byte // handshake: the request bytes so far
	discard bool   // ignore further input: failed, or a close frame came

	hdr  [maxFrameHeader]byte // a header split across reads
	hdrN int
	hr   sliceReader // lets gobwas parse a header from bytes without allocating
	hbuf [maxFrameHeader - 2]byte

	h       ws.Header // the frame being received
	inFrame bool
	got     int64 // payload bytes of h received

	ctrl [ws.MaxControlFramePayloadSize]byte // control frame payload

	msg     *buffer              // data message being assembled, or nil; its capacity is reserved (Server.reserveInput)
	deflate wsflate.MessageState // whether the message is compressed (RFC 7692)
	open    bool                 // a fragmented message has started
	msgOp   ws.OpCode            // its opcode (text or binary)
	u8done  int                  // msg.b[:u8done] is valid UTF-8

	// since is the exact time the unfinished frame or message began, 0
	// between messages: MessageTimeout counts from it. It is stamped once
	// per message that spans reads, so the exact clock costs nothing
	// measurable, and a sweeper that falls behind cannot cut a message
	// short.
	since uint32
	// pending is input read but not parsed yet, because the run's budget
	// ran out (see parse); it is parsed first at the next run. Its
	// capacity is reserved like msg's.
	pending *buffer
	// yieldAt is when the current run's budget ends, in ns since the
	// server started; 0: no budget (the rest could not be put aside).
	yieldAt int64

	msgs uint64 // messages handed to the handler, not yet counted in Stats
}

var inStatePool = sync.Pool{New: func() any { return new(inState) }}

func getInState() *inState { return inStatePool.Get().(*inState) }

// release returns st to its pool. Its buffers must have been freed
// (conn.freeInput).
func (st *inState) release() {
	*st = inState{}
	inStatePool.Put(st)
}

// idle reports whether st holds nothing between frames.
func (st *inState) idle() bool {
	return st.between() && st.msg == nil && !st.discard && st.hs == nil && st.pending == nil
}

// between reports whether st is between messages: no frame, header or
// fragmented message begun.
func (st *inState) between() bool { return !st.inFrame && st.hdrN == 0 && !st.open }

// sliceReader is an io.Reader over a byte slice.
type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// readEvent reads and handles what the socket holds, after any input a
// previous run put aside. A short read ends it unless all is set
// (poller.EventReadAll: an EOF or error may wait behind the data).
func (c *conn) readEvent(all bool) {
	budget := c.srv.runBudget()
	if !c.parsePending(budget) {
		return
	}
	if st := c.tlsSession(); st != nil {
		c.readTLS(st, budget)
		c.releaseIdleIn()
		return
	}
	buf := getBuffer(c.srv.cfg.ReadBufferSize)
	defer putBuffer(buf)
	for i := range maxReadsPerEvent {
		n, err := c.desc.Read(buf.b)
		if err != nil {
			if !poller.IsWouldBlock(err) {
				c.lost(err)
				return
			}
			break
		}
		if i == maxReadsPerEvent-1 && (n == len(buf.b) || all) {
			// The run's reads are used up and the socket may hold more,
			// which edge-triggered readiness does not report again: come
			// back after the connections waiting now.
			c.desc.ReadAgain()
		}
		c.hot().bytesIn.Add(uint64(n))
		c.lastRead.Store(c.srv.now())
		c.pingAt.Store(0) // any input proves the peer alive
		if c.drainPassed(n) {
			c.terminate(nil)
			return
		}
		c.consume(buf.b[:n], budget)
		if c.phaseNow() == phaseClosed || n < len(buf.b) && !all || c.yielding() {
			break
		}
	}
	c.releaseIdleIn()
}

// parsePending parses the input a previous run put aside. It returns false
// if the run should end here: the budget ran out again, or the
// connection closed.
func (c *conn) parsePending(budget int64) bool {
	if c.in == nil || c.in.pending == nil {
		return true
	}
	p := c.in.pending
	c.in.pending = nil
	c.consume(p.b, budget)
	c.srv.releaseInput(cap(p.b))
	putBuffer(p)
	return c.phaseNow() != phaseClosed && !c.yielding()
}

// yielding reports whether this run put input aside and asked for another
// run after the connections waiting now (see putAside).
func (c *conn) yielding() bool { return c.in != nil && c.in.pending != nil }

// releaseIdleIn gives the input state back to its pool between frames.
func (c *conn) releaseIdleIn() {
	if c.in != nil && c.in.idle() {
		c.releaseIn()
	}
}

// lost handles EOF or a read error.
func (c *conn) lost(err error) {
	if errors.Is(err, io.EOF) {
		c.terminate(nil) // 1006 unless close frames were exchanged
		return
	}
	c.terminate(&CloseError{Code: StatusAbnormalClosure, Err: err})
}

// consume feeds input to the handshake or the frame parser. budget is
// when the run should yield (Server.runBudget).
func (c *conn) consume(p []byte, budget int64) {
	if c.in != nil && c.in.discard {
		return
	}
	if c.phaseNow() == phaseHandshake {
		c.handshake(p, budget)
		return
	}
	c.frames(p, budget)
}

// frames parses and handles every complete frame in p, keeping a partial
// one in c.in, and starts the clock of a message left unfinished.
func (c *conn) frames(p []byte, budget int64) {
	if c.in == nil {
		c.in = getInState()
	}
	st := c.in
	st.yieldAt = budget
	c.parse(st, p)
	if c.in != st { // released meanwhile (releaseIn counted then)
		return
	}
	c.countIn(st)
	if st.discard || st.between() {
		return
	}
	if st.since == 0 {
		st.since = max(1, c.srv.nowExact())
		c.armMessageDeadline()
	} else if elapsed(c.srv.now(), st.since) >= c.srv.cfg.MessageTimeout {
		// Checked here too, not only when the deadline wakes the owner:
		// an application's SetPrincipal may have replaced the deadline.
		c.messageTimedOut()
	}
}

// countIn adds the messages st handed over to the server's count: once per
// read, not once per message.
func (c *conn) countIn(st *inState) {
	if st.msgs > 0 {
		c.hot().msgsIn.Add(st.msgs)
		st.msgs = 0
	}
}

// parse is frames' loop. Between frames, once a message has been handed
// over in this read and the run's budget has run out, the rest of p is
// put aside for the next run: one connection's input (a burst of
// publishes that each fan out to many subscribers, say) cannot keep a
// worker from the connections waiting for one.
func (c *conn) parse(st *inState, p []byte) {
	for !st.discard && c.phaseNow() != phaseClosed {
		if !st.inFrame {
			if len(p) == 0 {
				return
			}
			if st.between() {
				st.since = 0
			}
			if st.msgs > 0 && st.yieldAt != 0 && c.srv.sinceStart() >= st.yieldAt && c.putAside(st, p) {
				return
			}
			var ok bool
			if p, ok = c.readHeader(st, p); !ok {
				return
			}
			if st.h.Length == 0 {
				c.frameDone(st, nil)
				continue
			}
		}
		if len(p) == 0 {
			return
		}
		p = c.payload(st, p)
	}
}

// frameHeaderLen is the header length announced by its first two bytes.
func frameHeaderLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// readHeader consumes a frame header from p, or as much of it as p holds.
// It returns the rest of p and whether a valid header is now in st.h.
func (c *conn) readHeader(st *inState, p []byte) ([]byte, bool) {
	var hb []byte
	if st.hdrN == 0 && len(p) >= 2 && len(p) >= frameHeaderLen(p[0], p[1]) {
		n := frameHeaderLen(p[0], p[1])
		hb, p = p[:n], p[n:]
	} else {
		for st.hdrN < 2 && len(p) > 0 {
			st.hdr[st.hdrN], p = p[0], p[1:]
			st.hdrN++
		}
		if st.hdrN < 2 {
			return p, false
		}
		need := frameHeaderLen(st.hdr[0], st.hdr[1])
		k := copy(st.hdr[st.hdrN:need], p)
		st.hdrN, p = st.hdrN+k, p[k:]
		if st.hdrN < need {
			return p, false
		}
		hb, st.hdrN = st.hdr[:need], 0
	}
	st.hr.b = hb
	h, err := ws.ReadHeaderBuffer(&st.hr, st.hbuf[:0])
	if err != nil {
		c.fail(StatusProtocolError, "bad frame header", protocolError{err})
		return nil, false
	}
	if !c.checkHeader(st, h) {
		return nil, false
	}
	st.h, st.inFrame, st.got = h, true, 0
	return p, true
}

// checkHeader applies RFC 6455 section 5 to a client frame header, and the
// size limits before any payload is buffered.
func (c *conn) checkHeader(st *inState, h ws.Header) bool {
	state := ws.StateServerSide
	if st.open {
		state |= ws.StateFragmented
	}
	if c.deflate() {
		// RFC 7692 section 6: RSV1 marks the first frame of a compressed
		// message; anywhere else it is a protocol error. What is left is
		// checked as without extensions.
		var err error
		if h, err = st.deflate.UnsetBits(h); err != nil {
			c.fail(StatusProtocolError, err.Error(), protocolError{err})
			return false
		}
	}
	if err := ws.CheckHeader(h, state); err != nil {
		c.fail(StatusProtocolError, err.Error(), protocolError{err})
		return false
	}
	if h.OpCode.IsControl() {
		return c.takeRate(h, 1)
	}
	cfg := &c.srv.cfg
	if h.Length > cfg.MaxFrameSize || st.msgLen()+h.Length > cfg.MaxMessageSize {
		c.srv.stats.tooBig.Add(1)
		c.fail(StatusMessageTooBig, "message too big", ErrMessageTooBig)
		return false
	}
	if h.OpCode != ws.OpContinuation {
		st.msgOp = h.OpCode
	}
	// Every frame costs a token, continuations too: a message in n
	// fragments counts n, so a stream of empty continuation frames is cut
	// like any other flood (issue 10).
	return c.takeRate(h, 1)
}

// takeRate spends the connection's rate tokens on a frame header (after
// the size checks, so an oversized frame still gets 1009).
func (c *conn) takeRate(h ws.Header, frames int32) bool {
	if c.rate.take(&c.srv.cfg, c.srv.now(), frames, h.Length) {
		return true
	}
	c.srv.stats.rateLimited.Add(1)
	c.srv.warns.warn(warnRateLimited, slog.LevelWarn, "message or byte rate exceeded: closing with 1008",
		func() []any {
			return append(c.connAttrs(), "max_msg_rate", c.srv.cfg.MaxMessageRate, "max_byte_rate", c.srv.cfg.MaxByteRate)
		})
	c.fail(StatusPolicyViolation, "rate limit exceeded", ErrRateLimited)
	return false
}

func (st *inState) msgLen() int64 {
	if st.msg == nil {
		return 0
	}
	return int64(len(st.msg.b))
}

// payload consumes payload bytes of the current frame from p and returns
// the rest.
func (c *conn) payload(st *inState, p []byte) []byte {
	remain := st.h.Length - st.got
	k := int(min(remain, int64(len(p))))
	chunk, rest := p[:k], p[k:]
	ws.Cipher(chunk, st.h.Mask, int(st.got))
	switch {
	case st.h.OpCode.IsControl():
		copy(st.ctrl[st.got:], chunk)
	case st.got == 0 && int64(k) == st.h.Length && st.h.Fin && !st.open && !st.deflate.IsCompressed():
		// The whole message is in this read: hand it over in place,
		// without copying it (the common case for small messages).
		st.inFrame = false
		c.deliver(st.h.OpCode, chunk, false)
		return rest
	default:
		if !c.appendMessage(st, chunk) {
			return nil
		}
	}
	st.got += int64(k)
	if st.got == st.h.Length {
		var ctrl []byte
		if st.h.OpCode.IsControl() {
			ctrl = st.ctrl[:st.h.Length]
		}
		c.frameDone(st, ctrl)
	}
	return rest
}

// appendMessage adds chunk to the message being assembled, growing its
// pooled buffer with the bytes that arrive, and validates text as it
// arrives.
func (c *conn) appendMessage(st *inState, chunk []byte) bool {
	if need := st.msgLen() + int64(len(chunk)); st.msg == nil || int64(cap(st.msg.b)) < need {
		if !c.growMessage(st, need) {
			return false
		}
	}
	st.msg.b = append(st.msg.b, chunk...)
	if st.msgOp == ws.OpText && !st.deflate.IsCompressed() { // compressed text: checked once inflated
		done, ok := validUTF8Prefix(st.msg.b[st.u8done:])
		if !ok {
			c.fail(StatusInvalidFramePayloadData, "invalid UTF-8 in text message", ErrInvalidUTF8)
			return false
		}
		st.u8done += done
	}
	return true
}

// minMessageBuffer is the smallest buffer a message being assembled starts
// with when its frame announces more.
const minMessageBuffer = 4 << 10

// growMessage gives st.msg room for need bytes. It grows with what has
// arrived, doubling, and never past what the frame header announced: a
// header announcing 1 MiB followed by 10 bytes costs a few KiB, not 1 MiB
// (issue 10). The growth is reserved in the process-wide budget for
// unfinished input, MaxPartialBytes; past it the connection is closed with
// 1013 "try again later" and false is returned.
func (c *conn) growMessage(st *inState, need int64) bool {
	announced := st.msgLen() + (st.h.Length - st.got) // within MaxMessageSize: checked on the header
	size := max(need, min(announced, minMessageBuffer))
	if st.msg != nil {
		size = max(need, min(2*int64(cap(st.msg.b)), announced))
	}
	grown := getBuffer(int(size))
	if !c.srv.reserveInput(cap(grown.b) - bufCap(st.msg)) {
		putBuffer(grown)
		c.inputBudgetExceeded()
		return false
	}
	grown.b = grown.b[:0]
	if st.msg != nil {
		grown.b = append(grown.b, st.msg.b...)
		putBuffer(st.msg)
	}
	st.msg = grown
	return true
}

// bufCap is the capacity of buf, or 0 for none.
func bufCap(buf *buffer) int {
	if buf == nil {
		return 0
	}
	return cap(buf.b)
}

// freeMsg releases the message being assembled and its reservation.
func (c *conn) freeMsg(st *inState) {
	if st.msg != nil {
		c.srv.releaseInput(cap(st.msg.b))
		putBuffer(st.msg)
		st.msg = nil
	}
}

// putAside keeps the rest of this run's input, p, for the next run and
// asks the poller for that run after the connections waiting now. It
// returns false, and the run goes on, if the budget for unfinished input
// cannot hold p.
func (c *conn) putAside(st *inState, p []byte) bool {
	buf := getBuffer(len(p))
	if !c.srv.reserveInput(cap(buf.b)) {
		putBuffer(buf)
		st.yieldAt = 0 // no budget for the rest of this run
		return false
	}
	copy(buf.b, p)
	st.pending = buf
	c.srv.stats.yields.Add(1)
	c.desc.Yield()
	return true
}

// inputBudgetExceeded closes a connection whose message would take the
// memory held by unfinished messages past MaxPartialBytes.
func (c *conn) inputBudgetExceeded() {
	c.srv.stats.inputBudget.Add(1)
	c.srv.warns.warn(warnInputBudget, slog.LevelWarn, "unfinished messages hold max-partial: closing with 1013",
		func() []any { return append(c.connAttrs(), "max_partial", c.srv.cfg.MaxPartialBytes) })
	c.fail(StatusTryAgainLater, "server busy, try again later", ErrInputBudget)
}

// messageTimedOut closes a connection whose message (or frame) was not
// complete within MessageTimeout of its first byte.
func (c *conn) messageTimedOut() {
	c.srv.stats.messageTimeouts.Add(1)
	c.fail(StatusPolicyViolation, "message not completed in time", ErrMessageTimeout)
}

// armMessageDeadline makes the sweeper wake the owner when the unfinished
// message's MessageTimeout passes, unless a nearer deadline (an
// authorization expiry) is set. Only the owner calls it, in phaseOpen.
func (c *conn) armMessageDeadline() {
	st := c.in
	if st == nil || st.since == 0 || c.phaseNow() != phaseOpen {
		return
	}
	d := max(1, st.since+uint32(c.srv.cfg.MessageTimeout/time.Millisecond))
	if cur := c.deadlineNow(); cur == 0 || int32(d-cur) < 0 {
		c.setMessageDeadline(d)
	}
}

// frameDone handles a complete frame. ctrl is its payload if it is a
// control frame.
func (c *conn) frameDone(st *inState, ctrl []byte) {
	st.inFrame = false
	switch st.h.OpCode {
	case ws.OpPing:
		c.onPing(ctrl)
	case ws.OpPong:
		if c.pingAt.Swap(0) != 0 {
			c.revisit(c.nextVisit()) // the next ping may come before the pong's deadline
		}
		c.callOnPong(ctrl)
	case ws.OpClose:
		c.onCloseFrame(ctrl)
	default:
		if !st.h.Fin {
			st.open = true
			return
		}
		var data []byte
		if st.msg != nil {
			data = st.msg.b
		}
		if st.deflate.IsCompressed() {
			c.deliverInflated(st, data)
		} else if st.msgOp == ws.OpText && st.u8done != len(data) && st.msg != nil {
			c.fail(StatusInvalidFramePayloadData, "text message ends inside a character", ErrInvalidUTF8)
			return
		} else {
			c.deliver(st.msgOp, data, st.msg != nil)
		}
		c.freeMsg(st)
		st.open, st.u8done = false, 0
		st.deflate.SetCompressed(false)
	}
}

// deliver hands a complete data message to the handler. validated says
// whether text was already checked while it was assembled.
func (c *conn) deliver(op ws.OpCode, data []byte, validated bool) {
	if c.phaseNow() != phaseOpen {
		return // closing: data after our close frame is dropped (section 5.5.1)
	}
	t := Binary
	if op == ws.OpText {
		t = Text
		if !validated && !utf8.Valid(data) {
			c.fail(StatusInvalidFramePayloadData, "invalid UTF-8 in text message", ErrInvalidUTF8)
			return
		}
	}
	c.callOnMessage(t, data)
}

// onPing answers a ping with a pong carrying the same payload (section
// 5.5.2), then tells the handler.
func (c *conn) onPing(payload []byte) {
	buf := compileFrame(ws.OpPong, payload)
	c.mu.Lock()
	_ = c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
	c.callOnPing(payload)
}
