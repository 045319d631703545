package wsconn

import (
	"log/slog"
	"time"

	"github.com/gobwas/ws"

	"wsgate/poller"
)

// Timers without goroutines (DESIGN.md invariant 8), like Java-WebSocket's
// connection-lost timer but without a timer per connection: one sweeper
// goroutine ticks every SweepInterval, refreshes the coarse clock, and
// walks the connection table reading three atomics per connection. A
// connection with something due (handshake deadline, heartbeat ping, pong
// timeout, close deadline) is woken; its owner decides and acts in
// wakeEvent, so all state changes still happen on the worker that owns the
// connection. An idle connection costs the sweeper a few loads per tick.

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
			s.table.each(func(c *Conn) {
				if c.due(now) {
					c.Wake()
				}
			})
			s.checkAcceptErrors()
		}
	}
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

// due reports whether c has a deadline or heartbeat action at now. It runs
// on the sweeper goroutine and only reads atomics.
func (c *Conn) due(now uint32) bool {
	if passed(now, c.deadline.Load()) {
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
func (c *Conn) wakeEvent() {
	reqs := c.takeRequests()
	switch {
	case reqs&reqForce != 0:
		c.terminate(&CloseError{Code: ws.StatusAbnormalClosure, Err: ErrShuttingDown})
		return
	case reqs&reqShutdown != 0:
		c.shutdown()
	}
	if c.refuseAtOnce() {
		return
	}
	if passed(c.srv.nowExact(), c.deadline.Load()) {
		c.deadlinePassed()
		return
	}
	c.heartbeat(c.srv.now())
}

// shutdown closes c because the server is shutting down: 1001 after what is
// already queued, or at once if it is still in its handshake.
func (c *Conn) shutdown() {
	if c.phaseNow() == phaseHandshake {
		c.terminate(nil)
		return
	}
	c.mu.Lock()
	c.sendCloseLocked(ws.StatusGoingAway, "server shutting down", nil)
	c.mu.Unlock()
}

// deadlinePassed ends a handshake that took too long, an HTTP rejection
// whose client did not hang up, or a closing handshake the peer did not
// finish.
func (c *Conn) deadlinePassed() {
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
func (c *Conn) heartbeat(now uint32) {
	cfg := &c.srv.cfg
	if cfg.PingInterval <= 0 || c.phaseNow() != phaseOpen {
		return
	}
	if p := c.pingAt.Load(); p != 0 {
		if elapsed(now, p) >= cfg.PongTimeout {
			c.srv.stats.heartbeatTimeouts.Add(1)
			c.terminate(&CloseError{Code: ws.StatusAbnormalClosure, Err: ErrHeartbeatTimeout})
		}
		return
	}
	if elapsed(now, c.lastRead.Load()) < cfg.PingInterval {
		return
	}
	c.pingAt.Store(max(1, now))
	c.srv.stats.pings.Add(1) // before the ping: a peer that saw it finds it counted
	buf := compileFrame(ws.OpPing, nil)
	c.mu.Lock()
	_ = c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
}

// authorizationDue closes an open connection whose authorization expired
// (Config.Authorize, SetPrincipal), with 1008 "authorization expired". An
// expiry beyond the longest timer was set as a nearer deadline: re-arm it.
func (c *Conn) authorizationDue() {
	c.mu.Lock()
	var expires time.Time
	if c.extra != nil {
		expires = c.extra.expires
	}
	c.mu.Unlock()
	if expires.IsZero() {
		c.deadline.Store(0)
		return
	}
	if time.Until(expires) > 0 {
		c.setExpiry(expires)
		return
	}
	c.srv.stats.authExpired.Add(1)
	c.mu.Lock()
	c.sendCloseLocked(ws.StatusPolicyViolation, "authorization expired",
		&CloseError{Code: ws.StatusPolicyViolation, Reason: "authorization expired", Err: ErrAuthExpired})
	c.mu.Unlock()
}
