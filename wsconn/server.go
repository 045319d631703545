package wsconn

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/poller"
)

// Server accepts WebSocket connections on one listener and serves them on
// a poller's reactor and pool. Create it with New, start it with Start or
// Serve, stop it with Shutdown.
type Server struct {
	cfg       Config
	p         *poller.Poller
	ownPoller bool
	routes    map[string]*route
	tickers   []TickHandler   // the routes' handlers that are TickHandlers, each once
	origins   map[string]bool // lower-cased Config.AllowedOrigins
	table     *connTable

	mu        sync.Mutex // guards started, sweepDone
	ln        atomic.Pointer[poller.Listener]
	started   bool
	stop      chan struct{} // closed by Shutdown: stops the sweeper
	sweepDone chan struct{}
	done      chan struct{} // closed when Shutdown has finished

	shuttingDown  atomic.Bool
	start         time.Time     // the zero of connection times
	clock         atomic.Uint32 // coarse now in ms since start; see sweep
	nextID        atomic.Uint64
	conns         atomic.Int64  // connections counted against MaxConns
	rejecting     atomic.Int64  // connections held only to answer 503 or 429 (admitRefusal)
	perIP         *ipCounter    // nil when MaxConnsPerIP is off
	acceptRate    *rate.Limiter // nil when AcceptRate is off
	tlsHandshakes atomic.Int32  // TLS handshake goroutines running
	tlsInFlight   tlsInFlight   // their start times, to end the oldest at MaxTLSHandshakes
	partial       atomic.Int64  // bytes reserved by unfinished input (reserveInput)
	stats         counters
	log           *slog.Logger // Config.Logger
	warns         *warnings
	acceptErrors  uint64 // listener accept errors seen by the sweeper
}

// New checks cfg and prepares a Server; it does not listen yet.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		p:       cfg.Poller,
		routes:  make(map[string]*route, len(cfg.Routes)),
		origins: make(map[string]bool, len(cfg.AllowedOrigins)),
		table:   newConnTable(poller.DescriptorLimit()),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		log:     cfg.Logger,
		warns:   newWarnings(cfg.Logger, cfg.WarnInterval),
	}
	for path, h := range cfg.Routes {
		s.routes[path] = newRoute(path, h)
		if t, ok := h.(TickHandler); ok && !hasTicker(s.tickers, t) {
			s.tickers = append(s.tickers, t)
		}
	}
	if cfg.MaxConnsPerIP > 0 {
		s.perIP = newIPCounter()
	}
	if cfg.AcceptRate > 0 {
		s.acceptRate = rate.NewLimiter(rate.Limit(cfg.AcceptRate), cfg.AcceptRate)
	}
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.ToLower(strings.TrimSpace(o))] = true
	}
	s.start = time.Now()
	return s, nil
}

// Start listens on Config.Addr and starts accepting; it returns at once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shuttingDown.Load():
		return ErrServerClosed
	case s.started:
		return fmt.Errorf("wsconn: server already started")
	}
	if s.p == nil {
		p, err := poller.New(poller.Config{Workers: s.cfg.Workers})
		if err != nil {
			return fmt.Errorf("wsconn: failed to start poller: %w", err)
		}
		s.p, s.ownPoller = p, true
	}
	ln, err := s.p.Listen(poller.ListenConfig{
		Addr:      s.cfg.Addr,
		ReusePort: s.cfg.ReusePort,
		OnAccept:  s.accept,
	})
	if err != nil {
		if s.ownPoller {
			_ = s.p.Close(time.Second)
		}
		return fmt.Errorf("wsconn: failed to listen: %w", err)
	}
	s.ln.Store(ln)
	s.started = true
	s.sweepDone = make(chan struct{})
	go s.sweep(s.stop, s.sweepDone)
	return nil
}

// Serve starts the server and blocks until Shutdown has finished. It
// returns ErrServerClosed after a Shutdown, or the error from Start.
func (s *Server) Serve() error {
	if err := s.Start(); err != nil {
		return err
	}
	<-s.done
	return ErrServerClosed
}

// Addr returns the listening address, or nil before Start.
func (s *Server) Addr() *net.TCPAddr {
	if ln := s.ln.Load(); ln != nil {
		return ln.Addr()
	}
	return nil
}

// Config returns the effective configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Poller returns the reactor the server runs on (nil before Start).
func (s *Server) Poller() *poller.Poller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// accept runs on a pool worker for each new connection.
func (s *Server) accept(fd int, remote netip.AddrPort) {
	if s.shuttingDown.Load() {
		poller.CloseFd(fd)
		return
	}
	if s.acceptRate != nil && !s.acceptRate.Allow() {
		// A reconnect storm: refuse the excess before it costs anything
		// (no registration, no handshake, no memory).
		s.stats.acceptRefused.Add(1) // before the close: whoever sees it closed finds it counted
		poller.CloseFd(fd)
		s.warns.warn(warnAcceptRate, slog.LevelWarn, "accept rate exceeded: closing new connections at once",
			func() []any { return []any{"accept_rate", s.cfg.AcceptRate, "remote", remote.String()} })
		return
	}
	c := &conn{srv: s, id: s.nextID.Add(1)}
	c.setRemote(remote)
	if s.cfg.TLS != nil {
		c.startTLS(s.cfg.TLS)
	}
	c.lastRead.Store(s.now())
	c.setHandshakeDeadline()
	// The buckets start full at the exact time, not the coarse clock: that
	// may be a sweep behind, and the first refill would credit the new
	// connection with time from before it existed (up to
	// MaxMessageRate x SweepInterval more than the burst at once).
	c.rate.fill(&s.cfg, s.nowExact())
	if s.perIP != nil && s.perIP.add(remote.Addr()) > s.cfg.MaxConnsPerIP {
		c.reject = rejectPerIP
	}
	if n := s.conns.Add(1); n > int64(s.cfg.MaxConns) || c.reject != rejectNone {
		s.conns.Add(-1)
		if c.reject == rejectNone {
			c.reject = rejectFull
		}
		if !s.admitRefusal(remote.Addr()) {
			// Counted and uncounted before the close: whoever sees it
			// closed finds it counted, and its address's count lowered.
			if s.perIP != nil {
				s.perIP.remove(remote.Addr())
			}
			s.stats.rejectDropped.Add(1)
			poller.CloseFd(fd)
			s.warns.warn(warnRejectDropped, slog.LevelWarn, "too many refusals in progress: closing new connections at accept",
				func() []any {
					return []any{"remote", remote.String(), "refusing", s.rejecting.Load(), "max_conns", s.cfg.MaxConns,
						"max_conns_per_ip", s.cfg.MaxConnsPerIP}
				})
			return
		}
	}
	s.stats.accepted.Add(1)
	if err := s.p.AddEdge(&c.desc, fd, c.events()); err != nil {
		s.stats.registerErrors.Add(1)
		s.warns.warn(warnRegister, slog.LevelError, "reactor refused a connection's descriptor",
			func() []any { return []any{"err", err.Error(), "remote", remote.String()} })
		poller.CloseFd(fd) // Add failed: the Desc does not own fd
		s.release(c)
		return
	}
	// The table entry is published only after Add wrote the Desc, which
	// the sweeper and Shutdown read through it. The connection may have
	// ended already (its connClosed found no entry to remove): then the
	// entry is taken out again. The listener accepts one connection at a
	// time, so fd cannot belong to a newer connection yet. A Shutdown
	// that began meanwhile may have walked the table before the entry
	// was there: then the connection asks for its own shutdown.
	s.table.put(fd, c, c.nextVisit())
	switch {
	case c.phaseNow() == phaseClosed:
		s.table.remove(fd, c)
	case s.shuttingDown.Load():
		c.request(reqShutdown)
	case c.reject != rejectNone:
		c.desc.Wake() // the owner answers at once, without waiting for the request
	}
}

// admitRefusal counts a connection that is to be refused, from a, within
// rejectSlack and refusalsPerAddress; false if either is reached.
func (s *Server) admitRefusal(a netip.Addr) bool {
	if s.rejecting.Add(1) > rejectSlack {
		s.rejecting.Add(-1)
		return false
	}
	if s.perIP != nil && !s.perIP.refuse(a) {
		s.rejecting.Add(-1)
		return false
	}
	return true
}

// runBudget is when a run starting now should yield (RunBudget), in ns
// since the server started.
func (s *Server) runBudget() int64 { return s.sinceStart() + int64(RunBudget) }

// sinceStart is the monotonic time since the server started, in ns.
func (s *Server) sinceStart() int64 { return int64(time.Since(s.start)) }

// reserveInput takes n bytes of the process-wide budget for unfinished
// input (MaxPartialBytes); false if that would pass it. n may be negative
// (a buffer that shrank).
func (s *Server) reserveInput(n int) bool {
	if total := s.partial.Add(int64(n)); n > 0 && s.cfg.MaxPartialBytes > 0 && total > s.cfg.MaxPartialBytes {
		s.partial.Add(-int64(n))
		return false
	}
	return true
}

// releaseInput gives back n bytes reserved by reserveInput.
func (s *Server) releaseInput(n int) { s.partial.Add(-int64(n)) }

// connClosed runs once per connection, after its descriptor was closed.
func (s *Server) connClosed(c *conn, unsent int) {
	s.table.remove(c.desc.Fd(), c)
	s.stats.closed.Add(1)
	if unsent > 0 {
		s.stats.unsentBytes.Add(uint64(unsent))
	}
	s.release(c)
}

func (s *Server) release(c *conn) {
	a := c.RemoteAddr().Addr()
	if c.reject != rejectNone {
		s.rejecting.Add(-1)
		if s.perIP != nil {
			s.perIP.refused(a)
		}
	} else {
		s.conns.Add(-1)
	}
	if s.perIP != nil {
		s.perIP.remove(a)
	}
}

// Conns returns how many connections are open (handshaking, open or
// closing), not counting those held only to be answered 503.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// Shutdown stops accepting, sends close 1001 to every connection after
// what is already queued for it, and waits until every connection is
// closed or ctx is done. Connections still open then are closed at once;
// Shutdown then returns an error that says how many there were and how
// many queued bytes they lost. It stops the sweeper, and the poller if the
// Server created it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shuttingDown.Swap(true) {
		s.mu.Unlock()
		<-s.done
		return ErrServerClosed
	}
	ln := s.ln.Load()
	s.mu.Unlock()
	defer close(s.done)
	if ln != nil {
		_ = ln.Close()
	}
	s.table.each(func(c *conn) {
		c.request(reqShutdown)
	})
	err := s.waitClosed(ctx)
	close(s.stop)
	if s.sweepDone != nil {
		<-s.sweepDone
	}
	if s.ownPoller && s.p != nil {
		if e := s.p.Close(time.Second); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// waitClosed polls until no connection is left, forcing the rest closed
// when ctx is done.
func (s *Server) waitClosed(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.tableLen() > 0 {
		select {
		case <-ctx.Done():
			return s.forceClose()
		case <-tick.C:
		}
	}
	return nil
}

// forceClose terminates every remaining connection and reports the loss.
func (s *Server) forceClose() error {
	forced := s.tableLen()
	before := s.stats.unsentBytes.Load()
	s.table.each(func(c *conn) {
		c.request(reqForce)
	})
	deadline := time.Now().Add(2 * time.Second)
	for s.tableLen() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	lost := s.stats.unsentBytes.Load() - before
	s.stats.forcedCloses.Add(uint64(forced))
	return fmt.Errorf("wsconn: shutdown deadline passed: %d connections closed without a closing handshake, %d queued bytes unsent", forced, lost)
}

func (s *Server) tableLen() int {
	n := 0
	s.table.each(func(*conn) { n++ })
	return n
}

// Routes returns the handler registered for each path.
func (s *Server) Routes() map[string]Handler {
	m := make(map[string]Handler, len(s.routes))
	for p, r := range s.routes {
		m[p] = r.h
	}
	return m
}

// hasTicker reports whether ts holds t already. A handler of a type that
// Go cannot compare (a func or a struct holding a slice) counts as new.
func hasTicker(ts []TickHandler, t TickHandler) bool {
	if !reflect.ValueOf(t).Comparable() {
		return false
	}
	for _, u := range ts {
		if reflect.TypeOf(u) == reflect.TypeOf(t) && u == t {
			return true
		}
	}
	return false
}
