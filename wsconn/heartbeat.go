package wsconn

import (
	"log/slog"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/poller"
)

// Timers without goroutines (docs/design.md invariant 8), like Java-WebSocket's
// connection-lost timer but without a timer per connection: one sweeper
// goroutine ticks every SweepInterval, refreshes the coarse clock, and
// walks the connection table's visit times, one uint32 per descriptor slot
// beside the connection pointers (connTable.due). A connection whose visit
// time has come is checked (due) and, if something is due (handshake
// deadline, heartbeat ping, pong timeout, close deadline, authorization
// expiry, unfinished message), woken; its owner decides and acts in
// wakeEvent, so all state changes still happen on the worker that owns the
// connection. The sweeper then sets its next visit (nextVisit). Whoever
// sets a time limit that may come sooner moves the visit up (revisit);
// input only ever moves a connection's heartbeat later, so the read path
// touches no visit time, except for the pong that ends a ping's wait. An
// idle connection costs the sweeper one 4-byte load per tick, read in
// order, and a look at the connection itself once per PingInterval.

// Connection times are milliseconds since the server started, in uint32,
// so that a connection keeps three of them in 12 bytes. They wrap after 49
// days; every comparison is of differences (elapsed, passed), which stay
// right as long as the times compared are less than 24 days apart, and
// deadlines and heartbeat intervals are limited to far less (Config).

// now is the coarse clock: ms since start as of the last sweep tick. The
// read path stamps lastRead with it, at no cost.
func (s *Server) now() uint32 { return s.clock.Load() }

// nowExact is the time now, for deadlines checked when they are due.
func (s *Server) nowExact() uint32 { return uint32(time.Since(s.start) / time.Millisecond) }

// after is the deadline d from now; never 0, which means "no deadline".
func (s *Server) after(d time.Duration) uint32 {
	return max(1, s.nowExact()+uint32(d/time.Millisecond))
}

// elapsed is the time from then to now.
func elapsed(now, then uint32) time.Duration {
	return time.Duration(int32(now-then)) * time.Millisecond
}

// passed reports whether deadline d (0: none) is at or before now.
func passed(now, d uint32) bool { return d != 0 && int32(now-d) >= 0 }

// Conn.deadline holds a different deadline in each phase (see its
// declaration). The methods below and setExpiry (conn.go) are the only
// ones that set it, one per meaning; deadlineNow reads it whatever it
// means.

// deadlineNow is c's current deadline, or 0: what the sweeper (due) and
// the owner (wakeEvent) compare with the clock. deadlinePassed tells the
// meanings apart by phase.
func (c *conn) deadlineNow() uint32 { return c.deadline.Load() }

// setHandshakeDeadline starts c's HandshakeTimeout. Only accept calls it,
// before the connection is published.
func (c *conn) setHandshakeDeadline() {
	c.deadline.Store(c.srv.after(c.srv.cfg.HandshakeTimeout))
}

// acceptedAt is when c was accepted, derived from the handshake deadline
// (accept time + HandshakeTimeout), so that no connection keeps its accept
// time. It is right only in phaseHandshake while no HTTP answer is out
// (setLingerDeadline replaces the handshake deadline).
func (c *conn) acceptedAt() uint32 {
	return c.deadline.Load() - uint32(c.srv.cfg.HandshakeTimeout/time.Millisecond)
}

// setLingerDeadline bounds the wait for a refused client to hang up once
// the HTTP answer is out, replacing the handshake deadline. c.mu must be
// held (afterFlushLocked).
func (c *conn) setLingerDeadline() {
	d := c.srv.after(min(c.srv.cfg.CloseTimeout, c.srv.cfg.HandshakeTimeout))
	c.deadline.Store(d)
	c.revisit(d)
}

// endHandshakeDeadline clears the handshake deadline at the upgrade: an
// open connection has a deadline only for an authorization expiry
// (setExpiry) or an unfinished message (setMessageDeadline).
func (c *conn) endHandshakeDeadline() {
	c.deadline.Store(0)
	c.revisit(c.nextVisit()) // the first heartbeat
}

// setMessageDeadline makes d, the unfinished message's MessageTimeout, the
// open connection's deadline (armMessageDeadline decides whether it is the
// nearer one). Only the owner calls it, in phaseOpen.
func (c *conn) setMessageDeadline(d uint32) {
	c.deadline.Store(d)
	c.revisit(d)
}

// setCloseDeadline starts the closing handshake's CloseTimeout, replacing
// any deadline of the open connection. c.mu must be held
// (sendCloseLocked).
func (c *conn) setCloseDeadline() {
	d := c.srv.after(c.srv.cfg.CloseTimeout)
	c.deadline.Store(d)
	c.revisit(d)
}

// sweep runs until stop is closed.
func (s *Server) sweep(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			now := s.nowExact()
			s.clock.Store(now)
			s.sweepConns(now)
			s.checkAcceptErrors()
			for _, h := range s.tickers {
				h.OnTick(time.Now())
			}
		}
	}
}

// sweepConns wakes every connection with something due at now. It looks
// only at the connections whose visit time has come (connTable.due); one
// that is due is looked at again next tick, until its owner has acted.
// It returns how many it woke.
func (s *Server) sweepConns(now uint32) (woken int) {
	s.table.due(now, func(c *conn) uint32 {
		if c.due(now) {
			c.desc.Wake()
			woken++
			return max(1, now+1)
		}
		return c.nextVisit()
	})
	return woken
}

// checkAcceptErrors warns (rate-limited) when the listener failed to
// accept since the last tick: out of descriptors, most often, while the
// kernel's backlog fills. It runs on the sweeper goroutine.
func (s *Server) checkAcceptErrors() {
	ln := s.ln.Load()
	if ln == nil {
		return
	}
	st := ln.Stats()
	if st.Errors == s.acceptErrors {
		return
	}
	n := st.Errors - s.acceptErrors
	s.acceptErrors = st.Errors
	s.warns.warn(warnAccept, slog.LevelWarn, "accept failing: backing off", func() []any {
		args := []any{"errors", n, "conns", s.Conns(), "descriptor_limit", poller.DescriptorLimit()}
		if st.LastErr != nil {
			args = append(args, "err", st.LastErr.Error())
		}
		return args
	})
}

// nextVisit is when the sweeper next has to look at c: its deadline or its
// heartbeat's next step (a ping, or the pong's deadline), whichever is
// first; 0 if neither. It may be early (the peer was heard from since, or
// a ping's deadline moved on): the sweeper then finds nothing due and asks
// again. Setting a time limit that could make it late calls revisit.
func (c *conn) nextVisit() uint32 {
	next := c.deadlineNow()
	cfg := &c.srv.cfg
	if cfg.PingInterval > 0 {
		var hb uint32
		if p := c.pingAt.Load(); p != 0 {
			hb = p + uint32(cfg.PongTimeout/time.Millisecond)
		} else {
			hb = c.lastRead.Load() + uint32(cfg.PingInterval/time.Millisecond)
		}
		hb = max(1, hb)
		if next == 0 || int32(hb-next) < 0 {
			next = hb
		}
	}
	return next
}

// revisit makes the sweeper look at c no later than at (0: no change),
// after a time limit was set that may come before its next visit.
func (c *conn) revisit(at uint32) { c.srv.table.visitBy(c.desc.Fd(), c, at) }

// due reports whether c has a deadline or heartbeat action at now. It runs
// on the sweeper goroutine and only reads atomics.
func (c *conn) due(now uint32) bool {
	if passed(now, c.deadlineNow()) {
		return true
	}
	cfg := &c.srv.cfg
	if cfg.PingInterval <= 0 || c.phaseNow() != phaseOpen {
		return false
	}
	if p := c.pingAt.Load(); p != 0 {
		return elapsed(now, p) >= cfg.PongTimeout
	}
	return elapsed(now, c.lastRead.Load()) >= cfg.PingInterval
}

// wakeEvent acts on whatever woke the owner: a shutdown request, a passed
// deadline, a heartbeat. Only the owner calls it.
func (c *conn) wakeEvent() {
	reqs := c.takeRequests()
	switch {
	case reqs&reqForce != 0:
		c.terminate(&CloseError{Code: StatusAbnormalClosure, Err: ErrShuttingDown})
		return
	case reqs&reqShutdown != 0:
		c.shutdown()
	}
	if c.refuseAtOnce() {
		return
	}
	if passed(c.srv.nowExact(), c.deadlineNow()) {
		c.deadlinePassed()
		return
	}
	c.heartbeat(c.srv.now())
}

// shutdown closes c because the server is shutting down: 1001 after what is
// already queued, or at once if it is still in its handshake.
func (c *conn) shutdown() {
	if c.phaseNow() == phaseHandshake {
		c.terminate(nil)
		return
	}
	c.mu.Lock()
	c.sendCloseLocked(StatusGoingAway, "server shutting down", nil)
	c.mu.Unlock()
}

// deadlinePassed ends a handshake that took too long, an HTTP rejection
// whose client did not hang up, or a closing handshake the peer did not
// finish.
func (c *conn) deadlinePassed() {
	switch c.phaseNow() {
	case phaseHandshake:
		if c.in != nil && c.in.discard { // an answered rejection
			c.terminate(nil)
			return
		}
		c.srv.stats.handshakeTimeouts.Add(1)
		c.terminate(ErrHandshakeTimeout)
	case phaseOpen:
		if st := c.in; st != nil && st.since != 0 && elapsed(c.srv.nowExact(), st.since) >= c.srv.cfg.MessageTimeout {
			c.messageTimedOut()
			return
		}
		c.authorizationDue()
		c.armMessageDeadline() // the expiry may have replaced its deadline
	case phaseClosing:
		c.mu.Lock()
		failed := c.extra != nil && c.extra.cs.cause != nil
		c.mu.Unlock()
		if failed {
			c.terminate(nil) // the cause is already recorded
			return
		}
		c.terminate(ErrCloseTimeout)
	}
}

// heartbeat pings a silent connection and gives up on one that did not
// answer within PongTimeout (Java-WebSocket's connection-lost timer). A
// lost connection gets no close frame (nobody would read it): it is
// reported with 1006.
func (c *conn) heartbeat(now uint32) {
	cfg := &c.srv.cfg
	if cfg.PingInterval <= 0 || c.phaseNow() != phaseOpen {
		return
	}
	if p := c.pingAt.Load(); p != 0 {
		if elapsed(now, p) >= cfg.PongTimeout && !c.aliveAtPongDeadline(now) {
			c.heartbeatLost(p)
		}
		return
	}
	if elapsed(now, c.lastRead.Load()) < cfg.PingInterval {
		return
	}
	c.pingAt.Store(max(1, now))
	c.graces = 0
	c.srv.stats.pings.Add(1) // before the ping: a peer that saw it finds it counted
	buf := compileFrame(ws.OpPing, nil)
	c.mu.Lock()
	if c.sendLocked(buf.b, buf, false) == nil && c.out != nil && c.out.bytes > 0 {
		// The ping waits behind earlier output: PongTimeout counts from
		// when it is written (pingWrittenLocked).
		c.out.pingLeft, c.out.moved = c.out.bytes, false
	}
	c.mu.Unlock()
}

// pingWrittenLocked notes that n more queued bytes were written: once the
// heartbeat ping is among them, the peer has PongTimeout from now to
// answer it. c.mu must be held.
func (c *conn) pingWrittenLocked(q *outQueue, n int) {
	if q.pingLeft -= n; q.pingLeft <= 0 {
		q.pingLeft = 0
		if c.pingAt.Load() != 0 { // not answered by other input meanwhile
			c.pingAt.Store(max(1, c.srv.now()))
		}
	}
}

// aliveAtPongDeadline looks again before giving up on a connection whose
// ping went unanswered for PongTimeout, because a busy machine delays a
// healthy peer's answer in ways that are not the peer's fault:
//   - the ping is still queued behind earlier output the peer has been
//     taking (moved): the wait starts again; it ends when the ping is out
//     (pingWrittenLocked) or a PongTimeout passes in which nothing moved;
//   - the pong is in the socket, but its readiness event has not reached
//     a worker yet (a loaded reactor or pool): it is read now;
//   - the peer's TCP stack acknowledged the ping, and everything before
//     it, but its application has not answered yet (a busy peer): see
//     pongGrace.
//
// It reports whether the connection is to be kept (or was closed here by
// what was read). Only the owner calls it, in phaseOpen.
func (c *conn) aliveAtPongDeadline(now uint32) bool {
	c.mu.Lock()
	if q := c.out; q != nil && q.pingLeft > 0 {
		moved := q.moved
		q.moved = false
		c.mu.Unlock()
		if moved {
			c.pingAt.Store(max(1, now))
			c.srv.stats.pongWaitsRestarted.Add(1)
		}
		return moved
	}
	c.mu.Unlock()
	c.readEvent(true)
	switch {
	case c.phaseNow() != phaseOpen:
		return true // what was read ended it (EOF, a close frame, a violation)
	case c.pingAt.Load() == 0:
		c.srv.stats.pongsLate.Add(1)
		return true
	}
	return c.pongGrace(now)
}

// pongGrace gives a peer another PongTimeout to answer when its TCP stack
// has acknowledged every byte sent to it, the ping included: the path and
// the peer's host are alive, and what is late is its application, which a
// busy machine delays (in the million-connection run, pongs came minutes
// late with every connection healthy). A vanished peer or a cut path
// leaves the ping unacknowledged and is dropped at the first deadline, and
// a peer that crashed sent FIN or RST long before. The waits together are
// bounded by PingInterval, so a peer whose application hangs is still
// dropped, later. It reports whether the wait was extended.
func (c *conn) pongGrace(now uint32) bool {
	cfg := &c.srv.cfg
	if int(c.graces) >= maxGraces(cfg) {
		return false
	}
	c.mu.Lock()
	queued := c.out != nil
	c.mu.Unlock()
	if queued {
		return false // not all sent, so not all acknowledged
	}
	if n, err := c.desc.Unacknowledged(); err != nil || n != 0 {
		return false
	}
	c.graces++
	c.pingAt.Store(max(1, now))
	c.srv.stats.pongGraces.Add(1)
	return true
}

// maxGraces is how many times pongGrace extends one ping's wait: as many
// PongTimeouts as fit in PingInterval, at most 255.
func maxGraces(cfg *Config) int {
	if cfg.PongTimeout <= 0 {
		return 0
	}
	return int(min(cfg.PingInterval/cfg.PongTimeout, 255))
}

// heartbeatLost drops a connection whose ping (written at pinged) went
// unanswered: 1006, no close frame.
func (c *conn) heartbeatLost(pinged uint32) {
	c.srv.stats.heartbeatTimeouts.Add(1)
	c.srv.warns.warn(warnHeartbeat, slog.LevelWarn, "heartbeat: connection lost for want of a pong", func() []any {
		return []any{"conn", c.String(), "ping_age", elapsed(c.srv.nowExact(), pinged).Round(time.Millisecond),
			"conns", c.srv.Conns()}
	})
	c.terminate(&CloseError{Code: StatusAbnormalClosure, Err: ErrHeartbeatTimeout})
}

// authorizationDue closes an open connection whose authorization expired
// (Config.Authorize, SetPrincipal), with 1008 "authorization expired". An
// expiry beyond the longest timer was set as a nearer deadline: re-arm it.
func (c *conn) authorizationDue() {
	c.mu.Lock()
	var expires time.Time
	if c.extra != nil {
		expires = c.extra.expires
	}
	c.mu.Unlock()
	if expires.IsZero() {
		c.setExpiry(expires) // none
		return
	}
	if time.Until(expires) > 0 {
		c.setExpiry(expires)
		return
	}
	c.srv.stats.authExpired.Add(1)
	c.mu.Lock()
	c.sendCloseLocked(StatusPolicyViolation, "authorization expired",
		&CloseError{Code: StatusPolicyViolation, Reason: "authorization expired", Err: ErrAuthExpired})
	c.mu.Unlock()
}
