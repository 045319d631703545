package wsconn

import (
	"time"

	"github.com/gobwas/ws"
)

// Timers without goroutines (DESIGN.md invariant 8), like Java-WebSocket's
// connection-lost timer but without a timer per connection: one sweeper
// goroutine ticks every SweepInterval, refreshes the coarse clock, and
// walks the connection table reading three atomics per connection. A
// connection with something due (handshake deadline, heartbeat ping, pong
// timeout, close deadline) is woken; its owner decides and acts in
// wakeEvent, so all state changes still happen on the worker that owns the
// connection. An idle connection costs the sweeper a few loads per tick.

// sweep runs until stop is closed.
func (s *Server) sweep(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			s.clock.Store(ns)
			s.table.each(func(c *Conn) {
				if c.due(ns) {
					c.Wake()
				}
			})
		}
	}
}

// now is the coarse clock: unix nanoseconds as of the last sweep tick.
func (s *Server) now() int64 { return s.clock.Load() }

// due reports whether c has a deadline or heartbeat action at now. It runs
// on the sweeper goroutine and only reads atomics.
func (c *Conn) due(now int64) bool {
	if d := c.deadline.Load(); d != 0 && now >= d {
		return true
	}
	cfg := &c.srv.cfg
	if cfg.PingInterval <= 0 || c.phase.Load() != phaseOpen {
		return false
	}
	if p := c.pingAt.Load(); p != 0 {
		return now-p >= int64(cfg.PongTimeout)
	}
	return now-c.lastRead.Load() >= int64(cfg.PingInterval)
}

// wakeEvent acts on whatever woke the owner: a shutdown request, a passed
// deadline, a heartbeat. Only the owner calls it.
func (c *Conn) wakeEvent() {
	reqs := c.reqs.Swap(0)
	switch {
	case reqs&reqForce != 0:
		c.terminate(&CloseError{Code: ws.StatusAbnormalClosure, Err: ErrShuttingDown})
		return
	case reqs&reqShutdown != 0:
		c.shutdown()
	}
	now := time.Now().UnixNano()
	if d := c.deadline.Load(); d != 0 && now >= d {
		c.deadlinePassed()
		return
	}
	c.heartbeat(c.srv.now())
}

// shutdown closes c because the server is shutting down: 1001 after what is
// already queued, or at once if it is still in its handshake.
func (c *Conn) shutdown() {
	if c.phase.Load() == phaseHandshake {
		c.terminate(nil)
		return
	}
	c.mu.Lock()
	c.sendCloseLocked(ws.StatusGoingAway, "server shutting down", nil)
	c.mu.Unlock()
}

// deadlinePassed ends a handshake that took too long or a closing
// handshake the peer did not finish.
func (c *Conn) deadlinePassed() {
	switch c.phase.Load() {
	case phaseHandshake:
		c.srv.stats.handshakeTimeouts.Add(1)
		c.terminate(nil)
	case phaseClosing:
		c.mu.Lock()
		failed := c.closing != nil && c.closing.cause != nil
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
func (c *Conn) heartbeat(now int64) {
	cfg := &c.srv.cfg
	if cfg.PingInterval <= 0 || c.phase.Load() != phaseOpen {
		return
	}
	if p := c.pingAt.Load(); p != 0 {
		if now-p >= int64(cfg.PongTimeout) {
			c.srv.stats.heartbeatTimeouts.Add(1)
			c.terminate(&CloseError{Code: ws.StatusAbnormalClosure, Err: ErrHeartbeatTimeout})
		}
		return
	}
	if now-c.lastRead.Load() < int64(cfg.PingInterval) {
		return
	}
	c.pingAt.Store(now)
	buf := compileFrame(ws.OpPing, nil)
	c.mu.Lock()
	_ = c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
	c.srv.stats.pings.Add(1)
}
