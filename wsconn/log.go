package wsconn

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Logging. Nothing is logged per message. Per connection, at debug level
// only: a refused or timed-out handshake, and the end of each connection
// (code, reason, cause). Errors that one client, or a crowd of them, can
// repeat at will (a full server, an address over its cap, a reconnect
// storm, TLS handshakes failing, slow consumers, rate-limit closes,
// handler panics, accept failing) are warnings, at most one per kind per
// Config.WarnInterval; the next one says how many of its kind were left
// out in between. Counters (Stats) count every one.

// warnKind names a kind of rate-limited warning.
type warnKind uint8

const (
	warnFull          warnKind = iota // 503: MaxConns reached
	warnPerIP                         // 429: MaxConnsPerIP reached
	warnAcceptRate                    // AcceptRate exceeded
	warnTLSHandshake                  // a TLS handshake failed
	warnTLSLimit                      // MaxTLSHandshakes: the oldest ended
	warnSlowConsumer                  // 1008 slow consumer
	warnRateLimited                   // 1008 rate limit exceeded
	warnPanic                         // a handler panicked
	warnInternal                      // a bug in this package (1011)
	warnRegister                      // the reactor refused a descriptor
	warnAccept                        // accept failing (EMFILE, ENFILE, ...)
	warnInputBudget                   // 1013: MaxPartialBytes reached
	warnRejectDropped                 // refusals past their slack dropped at accept
	warnHeartbeat                     // a connection lost for want of a pong
	numWarnKinds
)

// warnings holds one limiter per kind.
type warnings struct {
	log   *slog.Logger
	kinds [numWarnKinds]struct {
		lim        *rate.Limiter
		suppressed atomic.Uint64
	}
}

func newWarnings(log *slog.Logger, every time.Duration) *warnings {
	w := &warnings{log: log}
	for i := range w.kinds {
		w.kinds[i].lim = rate.NewLimiter(rate.Every(every), 1)
	}
	return w
}

// warn logs msg with args at level unless a record of kind k was logged
// within the interval; then it only counts it. args are built lazily by
// attrs, which runs only when the record is logged.
func (w *warnings) warn(k warnKind, level slog.Level, msg string, attrs func() []any) {
	if !w.log.Enabled(context.Background(), level) {
		return
	}
	kind := &w.kinds[k]
	if !kind.lim.Allow() {
		kind.suppressed.Add(1)
		return
	}
	args := attrs()
	if n := kind.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	w.log.Log(context.Background(), level, msg, args...)
}

// debugEnabled reports whether per-connection debug records are wanted.
func (s *Server) debugEnabled() bool {
	return s.log.Enabled(context.Background(), slog.LevelDebug)
}

// connAttrs identifies a connection in a log record. It takes c.mu
// (RemoteAddr does): under c.mu, use connAttrsLocked.
func (c *conn) connAttrs() []any {
	return []any{"conn", c.id, "remote", c.RemoteAddr().String()}
}

// connAttrsLocked is connAttrs for a caller holding c.mu.
func (c *conn) connAttrsLocked() []any {
	return []any{"conn", c.id, "remote", c.remoteLocked().String()}
}

// logRefused logs a refused handshake at debug level, and the refusals a
// crowd repeats (503, 429) as rate-limited warnings.
func (c *conn) logRefused(status int, reason string) {
	s := c.srv
	switch status {
	case 503:
		if !s.shuttingDown.Load() {
			s.warns.warn(warnFull, slog.LevelWarn, "connection cap reached: refusing handshakes with 503",
				func() []any { return []any{"max_conns", s.cfg.MaxConns, "remote", c.RemoteAddr().String()} })
		}
	case 429:
		s.warns.warn(warnPerIP, slog.LevelWarn, "connections per address capped: refusing with 429",
			func() []any {
				return []any{"remote", c.RemoteAddr().Addr().String(), "max_conns_per_ip", s.cfg.MaxConnsPerIP}
			})
	}
	if s.debugEnabled() {
		s.log.Debug("handshake refused", append(c.connAttrs(), "status", status, "reason", reason)...)
	}
}

// logClosed logs the end of a connection at debug level.
func (c *conn) logClosed(opened bool, code int, reason string, cause error) {
	s := c.srv
	if !s.debugEnabled() {
		return
	}
	args := c.connAttrs()
	switch {
	case opened:
		args = append(args, "path", c.rt.path, "code", code, "reason", reason)
	case c.in != nil && c.in.discard:
		return // refused: logged by logRefused
	}
	if cause != nil {
		args = append(args, "err", cause.Error())
	}
	if opened {
		s.log.Debug("connection closed", args...)
	} else {
		s.log.Debug("connection closed before the upgrade", args...)
	}
}
