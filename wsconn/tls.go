package wsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/poller"
)

// wss: TLS over the reactor (docs/design.md invariants 1, 3 and 5).
//
// crypto/tls works on a net.Conn. Here that net.Conn (rawConn) is a thin
// view of the connection's non-blocking socket:
//
//   - Reads return errWouldBlock, a temporary net.Error, when the socket is
//     empty. crypto/tls keeps a partial record it has read so far and does
//     not make a temporary error sticky, so a worker that meets half a
//     record returns at once and the next readable event resumes the same
//     record. A worker never waits on a partial TLS record.
//   - Writes never fail and never block: crypto/tls serialises its writes,
//     and rawConn only collects the ciphertext, which the caller then hands
//     to the ordinary write path (write what the socket takes, queue the
//     rest, bounded by MaxQueueBytes). crypto/tls makes any write error
//     permanent, so rawConn must not report EAGAIN.
//
// The TLS handshake is the exception: crypto/tls cannot resume a handshake
// after a read that would block (the error sticks). So while a connection
// is in its TLS handshake, and only then, one goroutine runs it: the owner
// still reads the socket on readable events and passes the bytes on through
// a channel, and the goroutine's reads wait on that channel, never on the
// socket, up to HandshakeTimeout. At most MaxTLSHandshakes such goroutines
// exist at once: a new handshake past that ends one in progress (see
// tlsInFlight.add for which). An established TLS connection, like any
// other, has no goroutine.

// errWouldBlock is rawConn's "nothing to read now": temporary, so
// crypto/tls keeps what it has and lets the read be retried.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "wsconn: tls read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// tlsState is a connection's TLS session. Created at accept, before the
// connection is published, and never replaced.
type tlsState struct {
	conn *tls.Conn
	raw  *rawConn
	done bool // handshake finished; owned by the connection's worker
	hs   *tlsHandshake
}

// tlsHandshake is the handshake goroutine's side.
type tlsHandshake struct {
	inbox    chan []byte // ciphertext the owner read, for the goroutine
	result   chan error  // the handshake's outcome, once
	cancel   func()      // ends the handshake early (connection closed)
	answered atomic.Bool // a whole ClientHello came (or the server answered it)

	// The first record's header and the bytes seen so far; owner only.
	head  [5]byte
	headN int
	seen  int
}

// noteInput records ciphertext the owner passes on: once the first TLS
// record, the ClientHello, is whole, the handshake counts as answered, so
// that a burst of stalled clients cannot end it while the server works.
func (hs *tlsHandshake) noteInput(b []byte) {
	if hs.answered.Load() {
		return
	}
	hs.headN += copy(hs.head[hs.headN:], b)
	hs.seen += len(b)
	if hs.headN == len(hs.head) && hs.seen >= len(hs.head)+(int(hs.head[3])<<8|int(hs.head[4])) {
		hs.answered.Store(true)
	}
}

// rawConn is the net.Conn crypto/tls reads and writes.
type rawConn struct {
	c *conn

	// pending is ciphertext the handshake goroutine received but did not
	// consume; read first. Owned by the goroutine during the handshake and
	// by the connection's worker after it.
	pending []byte
	hs      *tlsHandshake // non-nil while reads come from the inbox
	ctx     context.Context

	mu  sync.Mutex // guards out: crypto/tls writes from Read (alerts, key updates) and Write
	out []byte
}

func (r *rawConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		if len(r.pending) == 0 {
			r.pending = nil
		}
		return n, nil
	}
	if r.hs != nil {
		return r.readInbox(p)
	}
	n, err := r.c.desc.Read(p)
	if poller.IsWouldBlock(err) {
		return 0, errWouldBlock
	}
	if n > 0 {
		r.c.hot().bytesIn.Add(uint64(n))
	}
	return n, err
}

// readInbox waits for the owner to pass ciphertext on (handshake only),
// sending what the handshake wrote so far first.
func (r *rawConn) readInbox(p []byte) (int, error) {
	r.c.flushTLS()
	select {
	case b, ok := <-r.hs.inbox:
		if !ok {
			return 0, net.ErrClosed
		}
		n := copy(p, b)
		if n < len(b) {
			r.pending = b[n:]
		}
		return n, nil
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
}

func (r *rawConn) Write(p []byte) (int, error) {
	if hs := r.hs; hs != nil {
		hs.answered.Store(true) // written by the handshake goroutine, which set r.hs
	}
	r.mu.Lock()
	r.out = append(r.out, p...)
	r.mu.Unlock()
	return len(p), nil
}

// take returns the ciphertext written since the last take, in a pooled
// buffer the caller releases (nil if none).
func (r *rawConn) take() *buffer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.out) == 0 {
		return nil
	}
	buf := getBuffer(len(r.out))
	copy(buf.b, r.out)
	r.out = nil // an idle connection keeps no buffer of its own
	return buf
}

func (r *rawConn) Close() error                     { return nil }
func (r *rawConn) LocalAddr() net.Addr              { return nil }
func (r *rawConn) RemoteAddr() net.Addr             { return net.TCPAddrFromAddrPort(r.c.RemoteAddr()) }
func (r *rawConn) SetDeadline(time.Time) error      { return nil }
func (r *rawConn) SetReadDeadline(time.Time) error  { return nil }
func (r *rawConn) SetWriteDeadline(time.Time) error { return nil }

// startTLS prepares the TLS session of a new connection. The owner calls it
// at accept, before the connection is published, for every connection of
// a server with Config.TLS: such a connection has its extra from then on,
// and extras never replaces it.
func (c *conn) startTLS(cfg *tls.Config) {
	raw := &rawConn{c: c}
	c.extras().tls = &tlsState{conn: tls.Server(raw, cfg), raw: raw}
}

// tlsSession returns the connection's TLS session, or nil for ws://. Any
// goroutine may call it without c.mu: c.extra, which a close can create
// under c.mu, is read only on a server with Config.TLS, where startTLS
// created it before the connection was published.
func (c *conn) tlsSession() *tlsState {
	if c.srv.cfg.TLS == nil {
		return nil
	}
	return c.extra.tls
}

// flushTLS hands the ciphertext crypto/tls produced to the write path.
func (c *conn) flushTLS() {
	st := c.tlsSession()
	if st == nil {
		return
	}
	if buf := st.raw.take(); buf != nil {
		c.mu.Lock()
		_ = c.rawSendLocked(buf.b, buf, true)
		c.mu.Unlock()
	}
}

// tlsHandshakeEvent runs on the owner while the TLS handshake is not done:
// it passes what the socket holds to the handshake goroutine, starting the
// goroutine with the first bytes, and collects its outcome.
func (c *conn) tlsHandshakeEvent(st *tlsState) {
	buf := getBuffer(c.srv.cfg.ReadBufferSize)
	defer putBuffer(buf)
	for {
		if c.tlsHandshakeFinished(st) {
			return
		}
		n, err := c.desc.Read(buf.b)
		if poller.IsWouldBlock(err) {
			return
		}
		if err != nil {
			c.lost(err)
			return
		}
		c.hot().bytesIn.Add(uint64(n))
		if st.hs == nil {
			c.startTLSHandshake(st)
		}
		st.hs.noteInput(buf.b[:n])
		select {
		case st.hs.inbox <- append([]byte(nil), buf.b[:n]...):
		default:
			// The goroutine took none of the last 16 reads: either it has
			// just finished (then the bytes are application data and
			// tlsHandshakeDone moves them on), or the client floods.
			select {
			case err := <-st.hs.result:
				c.tlsHandshakeDone(st, err, buf.b[:n])
			default:
				c.terminate(errTLSHandshakeFlood)
			}
			return
		}
	}
}

// tlsHandshakeFinished collects the handshake goroutine's outcome if it is
// there, and then reports true: the handshake phase is over (the
// connection is reading application data, or is closed).
func (c *conn) tlsHandshakeFinished(st *tlsState) bool {
	if st.hs == nil {
		return false
	}
	select {
	case err := <-st.hs.result:
		c.tlsHandshakeDone(st, err, nil)
		return true
	default:
		return false
	}
}

var errTLSHandshakeFlood = errors.New("wsconn: tls handshake: too much data before it finished")

// tlsInFlight is the set of TLS handshakes in progress. At
// MaxTLSHandshakes, a new one makes room by ending the oldest: a client
// that stalls its handshake ages out while well-behaved clients, which
// finish in milliseconds, get in. (Refusing newcomers instead would let a
// few stalled handshakes lock every new wss client out until they time
// out.)
type tlsInFlight struct {
	mu    sync.Mutex
	start map[*tlsHandshake]time.Time // guarded by mu
}

// add registers hs. If max are running, it first ends the oldest one the
// server has not answered (its client has not sent a whole ClientHello:
// what a stalled or trickling client looks like), or, if every one was
// answered, the oldest. A new handshake always gets in, and a well-behaved
// client whose ClientHello came in one piece, as they do, is not ended by
// a burst of stalled ones arriving while it finishes. Ending the oldest
// rather than refusing the newest means a stalled client ages out: under
// a steady stream of them, each lasts as long as max of them take to
// arrive, not HandshakeTimeout.
func (f *tlsInFlight) add(hs *tlsHandshake, max int, st *counters, w *warnings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.start == nil {
		f.start = map[*tlsHandshake]time.Time{}
	}
	if len(f.start) >= max {
		var victim, oldest *tlsHandshake
		var victimAt, oldestAt time.Time
		for h, t := range f.start {
			if oldest == nil || t.Before(oldestAt) {
				oldest, oldestAt = h, t
			}
			if !h.answered.Load() && (victim == nil || t.Before(victimAt)) {
				victim, victimAt = h, t
			}
		}
		if victim == nil {
			victim, victimAt = oldest, oldestAt
		}
		delete(f.start, victim)
		victim.cancel() // its goroutine ends; its owner closes the connection
		st.tlsHandshakeLimit.Add(1)
		answered := victim.answered.Load()
		w.warn(warnTLSLimit, slog.LevelWarn, "TLS handshakes at their cap: ending the oldest unanswered one",
			func() []any {
				return []any{"max_tls_handshakes", max, "age", time.Since(victimAt).String(), "answered", answered}
			})
	}
	f.start[hs] = time.Now()
}

func (f *tlsInFlight) remove(hs *tlsHandshake) {
	f.mu.Lock()
	delete(f.start, hs)
	f.mu.Unlock()
}

// startTLSHandshake starts the handshake goroutine, ending another one if
// MaxTLSHandshakes are running (tlsInFlight.add).
func (c *conn) startTLSHandshake(st *tlsState) {
	s := c.srv
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	hs := &tlsHandshake{inbox: make(chan []byte, 16), result: make(chan error, 1), cancel: cancel}
	s.tlsInFlight.add(hs, s.cfg.MaxTLSHandshakes, &s.stats, s.warns)
	s.tlsHandshakes.Add(1)
	st.hs, st.raw.hs, st.raw.ctx = hs, hs, ctx
	go func() {
		defer s.tlsHandshakes.Add(-1)
		defer s.tlsInFlight.remove(hs)
		err := st.conn.HandshakeContext(ctx)
		c.flushTLS()
		hs.result <- err
		c.desc.Wake() // the owner collects the result
	}()
}

// tlsHandshakeDone ends the handshake phase: reads go to the socket from
// now on, through crypto/tls.
func (c *conn) tlsHandshakeDone(st *tlsState, err error, more []byte) {
	st.hs.cancel()
	// Ciphertext the owner passed on after the handshake's last read, then
	// more (read but not passed on), is the start of the application data:
	// it is read first, in that order.
	for drained := false; !drained; {
		select {
		case b := <-st.hs.inbox:
			st.raw.pending = append(st.raw.pending, b...)
		default:
			drained = true
		}
	}
	st.raw.pending = append(st.raw.pending, more...)
	st.raw.hs, st.raw.ctx = nil, nil
	st.hs = nil
	if err != nil {
		c.srv.stats.tlsHandshakeErrors.Add(1)
		c.srv.warns.warn(warnTLSHandshake, slog.LevelWarn, "TLS handshake failed",
			func() []any { return append(c.connAttrs(), "err", err.Error()) })
		c.terminate(err)
		return
	}
	st.done = true
	c.readTLS(st, c.srv.runBudget()) // bytes may have come with the last handshake flight
}

// readTLS reads and handles application data until crypto/tls has no
// complete record left and the socket is empty, or the run's budget ran
// out (then the owner runs again soon and goes on: crypto/tls keeps the
// records it has not handed over yet).
func (c *conn) readTLS(st *tlsState, budget int64) {
	buf := getBuffer(c.srv.cfg.ReadBufferSize)
	defer putBuffer(buf)
	for c.phaseNow() != phaseClosed && !c.yielding() {
		n, err := st.conn.Read(buf.b)
		c.flushTLS() // alerts, key updates
		if n > 0 {
			c.lastRead.Store(c.srv.now())
			if c.pingAt.Swap(0) != 0 {
				c.revisit(c.nextVisit())
			}
			if c.drainPassed(n) {
				c.terminate(nil)
				return
			}
			c.consume(buf.b[:n], budget)
		}
		if err != nil {
			if !errors.Is(err, errWouldBlock) { // crypto/tls hands ours back as it is
				c.lost(err)
				return
			}
			releaseTLSInput(st.conn) // the socket is empty: keep no buffer while idle
			return
		}
	}
}

// stopTLSHandshakeLocked ends a handshake goroutine still running when
// the connection closes. c.mu must be held (terminate).
func (c *conn) stopTLSHandshakeLocked() {
	if st := c.tlsSession(); st != nil && st.hs != nil {
		st.hs.cancel()
	}
}
