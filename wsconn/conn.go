package wsconn

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/poller"
)

// phase is where a connection is in its life. Phases only move forward:
// handshake, open, closing, closed. It is held in the low bits of
// Conn.state (statePhase); phaseNow reads it and setPhase advances it.
type phase uint32

// Phases of a connection.
const (
	phaseHandshake phase = iota // reading the upgrade request
	phaseOpen                   // upgraded; messages flow
	phaseClosing                // a close frame was sent or received
	phaseClosed                 // descriptor closed; OnClose called
)

// Fields of conn.state, an atomic shared by the owner and the goroutines
// that wake it:
//
//	bits 0-1  the phase (statePhase), set only by setPhase, only forward
//	bits 3-4  stDeflate, stDeflateHuffman: set once, at the upgrade
//	bits 8-9  req*: wake requests other goroutines leave for the owner
//	          (request), cleared by the owner (takeRequests)
const (
	statePhase uint32 = 1<<2 - 1 // mask of the phase

	stDeflate uint32 = 1 << 3 // permessage-deflate negotiated (set at the upgrade)
	// stDeflateHuffman: with stDeflate, the client asked for a window
	// below 32 KiB (server_max_window_bits < 15): send Huffman-only frames.
	stDeflateHuffman uint32 = 1 << 4

	reqShutdown uint32 = 1 << 8 // close 1001: the server is shutting down
	reqForce    uint32 = 1 << 9 // close now: the shutdown deadline passed
	reqMask            = reqShutdown | reqForce
)

// Flags guarded by conn.mu.
const (
	wfCloseSent   uint8 = 1 << iota // a close frame is queued or written; no more sends
	wfShutWr                        // the close frame (or HTTP answer) went out and FIN followed
	wfCloseAfter                    // an HTTP rejection: close once the answer is out and the peer is done
	wfWriteFailed                   // a write failed; the owner must terminate
	wfClosed                        // descriptor closed
)

// conn is one client connection. It implements Conn; the poller
// reaches it through connEvents. An idle conn is one 144-byte allocation
// and holds no buffer: in and out are nil (docs/design.md invariant 3).
//
// Ownership: the worker that runs handleEvents (one at a time, see
// package poller) owns in, rt, reject, rate, and the read side; mu guards the
// write side (out, wflags, the closing state in extra) and value; the
// atomics are shared with the sweeper. Times are milliseconds since the
// server started (uint32: see Server.now).
type conn struct {
	desc  poller.Desc // registered with c.events() as its handler
	srv   *Server
	rt    *route // nil until the upgrade succeeded
	id    uint64
	in    *inState   // partial handshake, frame or message; nil when idle
	extra *connExtra // rarely needed details; nil for most connections

	// mu guards the write side; for the locks that nest with it, see
	// "Lock order across packages" in doc.go.
	mu    sync.Mutex
	out   *outQueue // bytes the socket has not taken; nil when empty
	value any       // Conn.SetValue

	lastRead atomic.Uint32 // coarse time of the last byte read
	pingAt   atomic.Uint32 // when the unanswered heartbeat ping was sent, or 0
	// deadline is when the sweeper wakes the owner for a time limit, or
	// 0. A Conn has room for one such time, so it means what the phase
	// needs, and is set only by the method named after each meaning
	// (heartbeat.go; deadlineNow reads it, deadlinePassed acts by phase):
	//   - phaseHandshake: the handshake deadline, accept time +
	//     HandshakeTimeout (setHandshakeDeadline; acceptedAt derives the
	//     accept time from it), then, once an HTTP refusal is out, the
	//     linger deadline for the client to hang up (setLingerDeadline);
	//   - phaseOpen: none at the upgrade (endHandshakeDeadline); then the
	//     authorization expiry (setExpiry) or, if nearer, the unfinished
	//     message's MessageTimeout (armMessageDeadline);
	//   - phaseClosing: the close deadline, CloseTimeout from the close
	//     frame (setCloseDeadline).
	deadline atomic.Uint32
	state    atomic.Uint32 // phase, st* flags and req* wake requests (see statePhase)

	ip4    [4]byte // peer address if IPv4 (else in extra)
	port   uint16  // peer port
	reject uint8   // reject*: answer the handshake with an error status
	wflags uint8   // wf* flags; guarded by mu
	graces uint8   // pong waits extended for the ping in flight (pongGrace); owner only
	rate   rateBucket
}

// Reasons to answer a handshake with an error, in conn.reject.
const (
	rejectNone  uint8 = iota
	rejectFull        // over MaxConns: 503
	rejectPerIP       // over MaxConnsPerIP: 429
)

// connExtra holds what most connections do not have, to keep conn small: a
// query string, a subprotocol, an IPv6 peer address (written by the owner
// during the handshake, read-only after OnOpen), and the closing handshake
// (guarded by conn.mu).
type connExtra struct {
	query     string
	proto     string
	ip6       netip.Addr
	tls       *tlsState // wss: set at accept, never replaced
	principal any       // from Config.Authorize or SetPrincipal; guarded by conn.mu after OnOpen
	expires   time.Time // when principal stops being valid; zero: never
	cs        closeState
}

// extras returns c.extra, creating it. Before OnOpen only the owner calls
// it; after, only with c.mu held. Once created, c.extra is never replaced
// (tlsSession relies on it).
func (c *conn) extras() *connExtra {
	if c.extra == nil {
		c.extra = &connExtra{}
	}
	return c.extra
}

// closingLocked returns c's closing state. c.mu must be held.
func (c *conn) closingLocked() *closeState { return &c.extras().cs }

// phaseNow returns c's phase.
func (c *conn) phaseNow() phase { return phase(c.state.Load() & statePhase) }

// deflate reports whether the connection negotiated permessage-deflate.
func (c *conn) deflate() bool { return c.state.Load()&stDeflate != 0 }

// setPhase moves c to phase p. Phases only move forward: if c is at p or
// past it already, nothing changes. The other bits of state are kept.
func (c *conn) setPhase(p phase) {
	for {
		s := c.state.Load()
		if phase(s&statePhase) >= p || c.state.CompareAndSwap(s, s&^statePhase|uint32(p)) {
			return
		}
	}
}

// request leaves wake requests for the owner and wakes it.
func (c *conn) request(r uint32) {
	c.state.Or(r)
	c.desc.Wake()
}

// takeRequests returns and clears the pending wake requests.
func (c *conn) takeRequests() uint32 { return c.state.And(^reqMask) & reqMask }

func (c *conn) setRemote(ap netip.AddrPort) {
	c.port = ap.Port()
	if a := ap.Addr(); a.Is4() {
		c.ip4 = a.As4()
	} else if a.IsValid() {
		c.extras().ip6 = a
	}
}

// closeState records the closing handshake. Guarded by conn.mu.
type closeState struct {
	sentCode   StatusCode
	sentReason string
	recvd      bool
	recvCode   StatusCode
	recvReason string
	cause      error // the failure that started the close, for OnError
	drained    int64 // bytes read since the server decided to close (drainPassed)
}

// route is one entry of Config.Routes, with its optional interfaces
// resolved once.
type route struct {
	path string
	h    Handler
	ping PingHandler
	pong PongHandler
}

func newRoute(path string, h Handler) *route {
	r := &route{path: path, h: h}
	r.ping, _ = h.(PingHandler)
	r.pong, _ = h.(PongHandler)
	return r
}

// ID is unique among this server's connections.
func (c *conn) ID() uint64 { return c.id }

// RemoteAddr is the peer's address.
func (c *conn) RemoteAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteLocked()
}

// remoteLocked is RemoteAddr for a caller holding c.mu.
func (c *conn) remoteLocked() netip.AddrPort {
	if c.extra != nil && c.extra.ip6.IsValid() {
		return netip.AddrPortFrom(c.extra.ip6, c.port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(c.ip4), c.port)
}

// Path is the request path that selected the handler.
func (c *conn) Path() string {
	if c.rt == nil {
		return ""
	}
	return c.rt.path
}

// Query is the raw query string of the upgrade request.
func (c *conn) Query() string {
	if e := c.extraNow(); e != nil {
		return e.query
	}
	return ""
}

// Subprotocol is the negotiated subprotocol, or "".
func (c *conn) Subprotocol() string {
	if e := c.extraNow(); e != nil {
		return e.proto
	}
	return ""
}

// Principal returns what Config.Authorize (or SetPrincipal) gave the
// connection, or nil. It implements Conn.
func (c *conn) Principal() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.extra == nil {
		return nil
	}
	return c.extra.principal
}

// SetPrincipal replaces the connection's principal and its expiry (zero:
// never), for instance after the client presented a fresh token. It
// implements Conn.
func (c *conn) SetPrincipal(p any, expires time.Time) {
	c.mu.Lock()
	e := c.extras()
	e.principal, e.expires = p, expires
	c.mu.Unlock()
	c.setExpiry(expires)
}

// setExpiry makes the sweeper close an open connection at t (zero: never):
// it is the authorization expiry meaning of conn.deadline. An open
// connection's deadline is free for this: the handshake deadline is
// cleared on upgrade and the close deadline replaces it.
func (c *conn) setExpiry(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(0)
		return
	}
	d := c.srv.after(min(time.Until(t), maxTimer))
	c.deadline.Store(d)
	c.revisit(d)
}

// extraNow reads c.extra for any goroutine: after OnOpen it may be created
// under c.mu.
func (c *conn) extraNow() *connExtra {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.extra
}

// Value returns the value stored by SetValue.
func (c *conn) Value() any {
	c.mu.Lock()
	v := c.value
	c.mu.Unlock()
	return v
}

// SetValue stores v with the connection.
func (c *conn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// String identifies the connection in logs.
func (c *conn) String() string { return fmt.Sprintf("conn#%d(%s)", c.id, c.RemoteAddr()) }

// connEvents is a conn as the poller's handler of its descriptor (see
// events): HandleEvents is on connEvents, not on conn, so that conn's
// exported methods are the connection's contract only. The conversion
// costs nothing: a *connEvents is the *conn.
type connEvents conn

// events returns c as its descriptor's poller.Handler.
func (c *conn) events() poller.Handler { return (*connEvents)(c) }

// HandleEvents implements poller.Handler (conn.handleEvents).
func (e *connEvents) HandleEvents(ev poller.Event) { (*conn)(e).handleEvents(ev) }

// handleEvents serves the socket's events. It runs on a pool worker, one
// call per connection at a time.
func (c *conn) handleEvents(ev poller.Event) {
	if c.phaseNow() == phaseClosed {
		return
	}
	defer c.recoverInternal()
	if ev&poller.EventClosed != 0 {
		c.terminate(ErrServerClosed)
		return
	}
	if ev&poller.EventWrite != 0 {
		c.mu.Lock()
		c.flushLocked()
		c.mu.Unlock()
	}
	if st := c.tlsSession(); st != nil && !st.done {
		if ev&(poller.EventRead|poller.EventWake) != 0 {
			c.tlsHandshakeEvent(st)
			if st.done && c.phaseNow() != phaseClosed {
				// Input may wait behind the handshake's last read, and
				// edge-triggered readiness does not report it again.
				c.desc.ReadAgain()
			}
		}
	} else if ev&poller.EventRead != 0 || c.yielding() {
		c.readEvent(ev&poller.EventReadAll != 0)
	}
	if ev&poller.EventWake != 0 {
		c.wakeEvent()
	}
	c.settle()
}

// settle ends an event: it closes the descriptor if the connection is done,
// or makes sure writability is watched while bytes are queued (the
// descriptor is edge-triggered: Rearm makes no system call once it is).
func (c *conn) settle() {
	if c.phaseNow() == phaseClosed {
		return
	}
	c.mu.Lock()
	done, cause := c.doneLocked()
	if !done {
		_ = c.desc.Rearm(c.out != nil)
	}
	c.mu.Unlock()
	if done {
		c.terminate(cause)
	}
}

// doneLocked reports whether the descriptor should be closed now. c.mu must
// be held.
func (c *conn) doneLocked() (bool, error) {
	switch {
	case c.wflags&wfWriteFailed != 0:
		return true, nil // cause recorded by writeFailedLocked
	case c.wflags&wfShutWr != 0 && c.extra != nil && c.extra.cs.recvd:
		return true, nil // both close frames exchanged; ours is out
	}
	return false, nil
}

// terminate closes the descriptor and reports the end to the handler. Only
// the owner calls it. cause, if not nil, is reported through OnError unless
// a cause was already recorded.
func (c *conn) terminate(cause error) {
	c.mu.Lock()
	if c.wflags&wfClosed != 0 {
		c.mu.Unlock()
		return
	}
	c.wflags |= wfClosed
	unsent := c.dropQueueLocked()
	_ = c.desc.Close()
	c.stopTLSHandshakeLocked()
	var st closeState
	if cause != nil || c.extra != nil {
		cs := c.closingLocked()
		if cs.cause == nil {
			cs.cause = cause
		}
		st = *cs
	}
	c.mu.Unlock()
	c.setPhase(phaseClosed)
	if c.rt == nil {
		c.logClosed(false, 0, "", st.cause)
	}
	c.releaseIn()
	if c.rt == nil {
		c.srv.connClosed(c, unsent)
		return // never opened: the handler never saw it
	}
	// The close is counted before connClosed takes the connection out of
	// the table and Conns: once Conns says it is gone, Stats counts it.
	code, reason := closeStatus(&st)
	c.srv.stats.countClose(code)
	c.srv.connClosed(c, unsent)
	c.logClosed(true, int(code), reason, st.cause)
	if st.cause != nil {
		c.callOnError(st.cause)
	}
	c.callOnClose(code, reason)
}

// closeStatus is the code and reason OnClose reports: the peer's close
// frame if one came, else ours, else 1006.
func closeStatus(st *closeState) (StatusCode, string) {
	switch {
	case st.recvd:
		return st.recvCode, st.recvReason
	case st.sentCode != 0:
		return st.sentCode, st.sentReason
	}
	return StatusAbnormalClosure, ""
}

// releaseIn counts what the input state handed over and gives it and its
// buffers back.
func (c *conn) releaseIn() {
	st := c.in
	if st == nil {
		return
	}
	c.countIn(st)
	c.freeMsg(st)
	if st.pending != nil {
		c.srv.releaseInput(cap(st.pending.b))
		putBuffer(st.pending)
	}
	st.release()
	c.in = nil
}

// Handler calls. A panicking handler does not take the server down: the
// connection is failed with 1011.

func (c *conn) callOnOpen() {
	defer c.recoverHandler()
	c.rt.h.OnOpen(c)
}

func (c *conn) callOnMessage(t MessageType, data []byte) {
	defer c.recoverHandler()
	if c.in != nil {
		c.in.msgs++ // counted once per read by frames
	} else {
		c.hot().msgsIn.Add(1)
	}
	c.rt.h.OnMessage(c, t, data)
}

func (c *conn) callOnPing(data []byte) {
	if c.rt.ping == nil {
		return
	}
	defer c.recoverHandler()
	c.rt.ping.OnPing(c, data)
}

func (c *conn) callOnPong(data []byte) {
	if c.rt.pong == nil {
		return
	}
	defer c.recoverHandler()
	c.rt.pong.OnPong(c, data)
}

func (c *conn) callOnError(err error) {
	defer func() { _ = recover() }()
	c.rt.h.OnError(c, err)
}

func (c *conn) callOnClose(code StatusCode, reason string) {
	defer func() { _ = recover() }()
	c.rt.h.OnClose(c, code, reason)
}

// recoverInternal turns a bug in this package into a closed connection
// (1011) and a counted panic rather than a stuck one.
func (c *conn) recoverInternal() {
	r := recover()
	if r == nil {
		return
	}
	c.srv.stats.panics.Add(1)
	c.srv.stats.internalErrors.Add(1)
	err := &CloseError{Code: StatusInternalServerError, Reason: "internal error",
		Err: fmt.Errorf("%w: %v\n%s", ErrInternal, r, debug.Stack())}
	c.srv.warns.warn(warnInternal, slog.LevelError, "internal error: closing with 1011 (please report it)",
		func() []any { return append(c.connAttrs(), "err", err.Err.Error()) })
	c.mu.Lock()
	if c.wflags&wfCloseSent == 0 && c.rt != nil {
		c.sendCloseLocked(StatusInternalServerError, "internal error", err)
	}
	c.mu.Unlock()
	c.terminate(err)
}

func (c *conn) recoverHandler() {
	if r := recover(); r != nil {
		c.srv.stats.panics.Add(1)
		c.srv.warns.warn(warnPanic, slog.LevelError, "handler panicked: closing with 1011",
			func() []any { return append(c.connAttrs(), "panic", fmt.Sprint(r), "stack", string(debug.Stack())) })
		c.fail(StatusInternalServerError, "internal error", fmt.Errorf("%w: %v", ErrHandlerPanic, r))
	}
}
