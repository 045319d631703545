package wsconn

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"

	"wsgate/handler"
	"wsgate/poller"
)

// Phases of a connection, in Conn.phase.
const (
	phaseHandshake uint32 = iota // reading the upgrade request
	phaseOpen                    // upgraded; messages flow
	phaseClosing                 // a close frame was sent or received
	phaseClosed                  // descriptor closed; OnClose called
)

// Wake requests, in Conn.reqs: why another goroutine woke the owner.
const (
	reqShutdown uint32 = 1 << iota // close 1001: the server is shutting down
	reqForce                       // close now: the shutdown deadline passed
)

// Flags guarded by Conn.mu.
const (
	wfCloseSent   uint8 = 1 << iota // a close frame is queued or written; no more sends
	wfShutWr                        // the close frame went out and FIN followed
	wfCloseAfter                    // close the descriptor once the queue is flushed (HTTP rejections)
	wfWriteFailed                   // a write failed; the owner must terminate
	wfClosed                        // descriptor closed
)

// Conn is one client connection. It implements handler.Conn and
// poller.Handler. An idle Conn holds no buffer: in and out are nil
// (DESIGN.md invariant 3).
//
// Ownership: the worker that runs HandleEvents (one at a time, see
// package poller) owns in, rt, reject, and the read side; mu guards the
// write side (out, wflags, closing) and value; the atomics are shared with
// the sweeper.
type Conn struct {
	poller.Desc
	srv    *Server
	rt     *route // nil until the upgrade succeeded
	id     uint64
	in     *inState   // partial handshake, frame or message; nil when idle
	extra  *connExtra // rarely set details; nil for most connections
	reject bool       // over MaxConns: answer the handshake with 503

	mu      sync.Mutex
	wflags  uint8       // wf* flags
	out     *outQueue   // bytes the socket has not taken; nil when empty
	closing *closeState // allocated when the connection starts closing
	value   any         // handler.Conn.SetValue

	phase    atomic.Uint32
	reqs     atomic.Uint32
	lastRead atomic.Int64 // coarse clock of the last byte read
	pingAt   atomic.Int64 // when the unanswered heartbeat ping was sent, or 0
	deadline atomic.Int64 // handshake or close deadline (unix ns), or 0

	ip4  [4]byte // peer address if IPv4 (else in extra)
	port uint16  // peer port
}

// connExtra holds what most connections do not have, to keep Conn small:
// a query string, a subprotocol, an IPv6 peer address. Written by the
// owner during the handshake, before OnOpen; read-only afterwards.
type connExtra struct {
	query string
	proto string
	ip6   netip.Addr
}

func (c *Conn) extras() *connExtra {
	if c.extra == nil {
		c.extra = &connExtra{}
	}
	return c.extra
}

func (c *Conn) setRemote(ap netip.AddrPort) {
	c.port = ap.Port()
	if a := ap.Addr(); a.Is4() {
		c.ip4 = a.As4()
	} else if a.IsValid() {
		c.extras().ip6 = a
	}
}

// closeState records the closing handshake. Guarded by Conn.mu.
type closeState struct {
	sentCode   ws.StatusCode
	sentReason string
	recvd      bool
	recvCode   ws.StatusCode
	recvReason string
	cause      error // the failure that started the close, for OnError
}

// route is one entry of Config.Routes, with its optional interfaces
// resolved once.
type route struct {
	path string
	h    handler.Handler
	ping handler.PingHandler
	pong handler.PongHandler
}

func newRoute(path string, h handler.Handler) *route {
	r := &route{path: path, h: h}
	r.ping, _ = h.(handler.PingHandler)
	r.pong, _ = h.(handler.PongHandler)
	return r
}

// ID is unique among this server's connections.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() netip.AddrPort {
	if c.extra != nil && c.extra.ip6.IsValid() {
		return netip.AddrPortFrom(c.extra.ip6, c.port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(c.ip4), c.port)
}

// Path is the request path that selected the handler.
func (c *Conn) Path() string {
	if c.rt == nil {
		return ""
	}
	return c.rt.path
}

// Query is the raw query string of the upgrade request.
func (c *Conn) Query() string {
	if c.extra == nil {
		return ""
	}
	return c.extra.query
}

// Subprotocol is the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string {
	if c.extra == nil {
		return ""
	}
	return c.extra.proto
}

// Value returns the value stored by SetValue.
func (c *Conn) Value() any {
	c.mu.Lock()
	v := c.value
	c.mu.Unlock()
	return v
}

// SetValue stores v with the connection.
func (c *Conn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// String identifies the connection in logs.
func (c *Conn) String() string { return fmt.Sprintf("conn#%d(%s)", c.id, c.RemoteAddr()) }

// HandleEvents serves the socket's events. It implements poller.Handler and
// runs on a pool worker, one call per connection at a time.
func (c *Conn) HandleEvents(ev poller.Event) {
	if c.phase.Load() == phaseClosed {
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
	if ev&poller.EventRead != 0 {
		c.readEvent()
	}
	if ev&poller.EventWake != 0 {
		c.wakeEvent()
	}
	c.settle()
}

// settle ends an event: it closes the descriptor if the connection is done,
// or re-arms readiness (writable too while bytes are queued).
func (c *Conn) settle() {
	if c.phase.Load() == phaseClosed {
		return
	}
	c.mu.Lock()
	done, cause := c.doneLocked()
	if !done {
		_ = c.Rearm(c.out != nil)
	}
	c.mu.Unlock()
	if done {
		c.terminate(cause)
	}
}

// doneLocked reports whether the descriptor should be closed now. c.mu must
// be held.
func (c *Conn) doneLocked() (bool, error) {
	switch {
	case c.wflags&wfWriteFailed != 0:
		return true, nil // cause recorded by writeFailedLocked
	case c.wflags&wfCloseAfter != 0 && c.out == nil:
		return true, nil
	case c.wflags&wfShutWr != 0 && c.closing != nil && c.closing.recvd:
		return true, nil // both close frames exchanged; ours is out
	}
	return false, nil
}

// terminate closes the descriptor and reports the end to the handler. Only
// the owner calls it. cause, if not nil, is reported through OnError unless
// a cause was already recorded.
func (c *Conn) terminate(cause error) {
	c.mu.Lock()
	if c.wflags&wfClosed != 0 {
		c.mu.Unlock()
		return
	}
	c.wflags |= wfClosed
	unsent := c.dropQueueLocked()
	_ = c.Desc.Close()
	st := c.closing
	if cause != nil && (st == nil || st.cause == nil) {
		if st == nil {
			st = &closeState{}
			c.closing = st
		}
		st.cause = cause
	}
	c.mu.Unlock()
	c.phase.Store(phaseClosed)
	c.releaseIn()
	c.srv.connClosed(c, unsent)
	if c.rt == nil {
		return // never opened: the handler never saw it
	}
	code, reason := c.closeStatus(st)
	c.srv.stats.countClose(code)
	if st != nil && st.cause != nil {
		c.callOnError(st.cause)
	}
	c.callOnClose(code, reason)
}

// closeStatus is the code and reason OnClose reports: the peer's close
// frame if one came, else ours, else 1006.
func (c *Conn) closeStatus(st *closeState) (ws.StatusCode, string) {
	switch {
	case st == nil:
		return ws.StatusAbnormalClosure, ""
	case st.recvd:
		return st.recvCode, st.recvReason
	case st.sentCode != 0:
		return st.sentCode, st.sentReason
	}
	return ws.StatusAbnormalClosure, ""
}

func (c *Conn) releaseIn() {
	if c.in != nil {
		c.in.release()
		c.in = nil
	}
}

// Handler calls. A panicking handler does not take the server down: the
// connection is failed with 1011.

func (c *Conn) callOnOpen() {
	defer c.recoverHandler()
	c.rt.h.OnOpen(c)
}

func (c *Conn) callOnMessage(t handler.MessageType, data []byte) {
	defer c.recoverHandler()
	c.srv.stats.msgsIn.Add(1)
	c.rt.h.OnMessage(c, t, data)
}

func (c *Conn) callOnPing(data []byte) {
	if c.rt.ping == nil {
		return
	}
	defer c.recoverHandler()
	c.rt.ping.OnPing(c, data)
}

func (c *Conn) callOnPong(data []byte) {
	if c.rt.pong == nil {
		return
	}
	defer c.recoverHandler()
	c.rt.pong.OnPong(c, data)
}

func (c *Conn) callOnError(err error) {
	defer func() { _ = recover() }()
	c.rt.h.OnError(c, err)
}

func (c *Conn) callOnClose(code ws.StatusCode, reason string) {
	defer func() { _ = recover() }()
	c.rt.h.OnClose(c, code, reason)
}

// recoverInternal turns a bug in this package into a closed connection
// (1011) and a counted panic rather than a stuck one.
func (c *Conn) recoverInternal() {
	r := recover()
	if r == nil {
		return
	}
	c.srv.stats.panics.Add(1)
	c.srv.stats.internalErrors.Add(1)
	err := &CloseError{Code: ws.StatusInternalServerError, Reason: "internal error",
		Err: fmt.Errorf("%w: %v\n%s", ErrInternal, r, debug.Stack())}
	c.mu.Lock()
	if c.wflags&wfCloseSent == 0 && c.rt != nil {
		c.sendCloseLocked(ws.StatusInternalServerError, "internal error", err)
	}
	c.mu.Unlock()
	c.terminate(err)
}

func (c *Conn) recoverHandler() {
	if r := recover(); r != nil {
		c.srv.stats.panics.Add(1)
		c.fail(ws.StatusInternalServerError, "internal error", fmt.Errorf("%w: %v", ErrHandlerPanic, r))
	}
}
