package poller

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ListenConfig configures a Listener.
type ListenConfig struct {
	// Addr is the TCP address to listen on, "host:port". An empty host
	// listens on every address (dual-stack where IPv6 exists). Port 0 picks
	// a free port; Listener.Addr tells which. Required.
	Addr string
	// ReusePort sets SO_REUSEPORT so that several processes can listen on
	// the same port and the kernel spreads connections over them.
	// Default: false.
	ReusePort bool
	// Backlog is the listen(2) backlog; the kernel caps it at
	// net.core.somaxconn. Default (zero): 65535.
	Backlog int
	// Batch is how many connections one readiness event accepts before the
	// listener yields its worker. Default (zero): 128.
	Batch int
	// MinBackoff and MaxBackoff bound the pause after an accept error such
	// as EMFILE (out of descriptors): the listener stops accepting for the
	// pause, doubling it on each further error, instead of spinning.
	// Defaults (zero): 5ms and 1s.
	MinBackoff, MaxBackoff time.Duration
	// OnAccept is called on a pool worker for each accepted connection with
	// its non-blocking, close-on-exec descriptor, which it now owns, and the
	// peer's address. Required.
	OnAccept func(fd int, remote netip.AddrPort)
}

func (c ListenConfig) withDefaults() ListenConfig {
	if c.Backlog == 0 {
		c.Backlog = 65535
	}
	if c.Batch == 0 {
		c.Batch = 128
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 5 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = time.Second
	}
	return c
}

func (c ListenConfig) validate() error {
	switch {
	case c.Addr == "":
		return fmt.Errorf("%w: listen address is empty", ErrInvalidConfig)
	case c.OnAccept == nil:
		return fmt.Errorf("%w: OnAccept is nil", ErrInvalidConfig)
	case c.Backlog < 0 || c.Batch < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0:
		return fmt.Errorf("%w: negative listener setting", ErrInvalidConfig)
	case c.MaxBackoff != 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("%w: min backoff %v is above max backoff %v", ErrInvalidConfig, c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Listener accepts connections on a socket registered with a Poller, in
// batches on pool workers. Accepting can be paused (for a connection cap)
// and backs off after errors.
type Listener struct {
	Desc
	cfg  ListenConfig
	addr *net.TCPAddr

	mu      sync.Mutex // guards paused, backoff, timer, closed
	paused  bool
	backoff time.Duration // current pause after an error; 0 when healthy
	timer   *time.Timer   // pending resume after a backoff
	closed  bool

	accepted atomic.Uint64
	errors   atomic.Uint64
	backoffs atomic.Uint64
	lastErr  atomic.Pointer[error]
}

// ListenerStats is a snapshot of a Listener's counters.
type ListenerStats struct {
	Accepted uint64 // connections accepted
	Errors   uint64 // accept errors other than EAGAIN (EMFILE, ENFILE, ...)
	Backoffs uint64 // pauses taken after an error
	LastErr  error  // the latest such error, or nil
}

// Listen creates a listening socket for cfg.Addr and registers it with p.
func (p *Poller) Listen(cfg ListenConfig) (*Listener, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	fd, addr, err := listenTCP(cfg.Addr, cfg.ReusePort, cfg.Backlog)
	if err != nil {
		return nil, fmt.Errorf("poller: failed to listen on %s: %w", cfg.Addr, err)
	}
	l := &Listener{cfg: cfg, addr: addr}
	if err := p.Add(&l.Desc, fd, l); err != nil {
		_ = closeFd(fd)
		return nil, err
	}
	return l, nil
}

// Addr returns the address the listener is bound to.
func (l *Listener) Addr() *net.TCPAddr { return l.addr }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	s := ListenerStats{
		Accepted: l.accepted.Load(),
		Errors:   l.errors.Load(),
		Backoffs: l.backoffs.Load(),
	}
	if e := l.lastErr.Load(); e != nil {
		s.LastErr = *e
	}
	return s
}

// Pause stops accepting: pending connections wait in the kernel's backlog.
// The listening socket is disarmed at once; an accept batch already running
// finishes and does not re-arm it.
func (l *Listener) Pause() {
	l.mu.Lock()
	l.paused = true
	l.mu.Unlock()
	_ = l.disarm()
}

// Resume undoes Pause.
func (l *Listener) Resume() {
	l.mu.Lock()
	was := l.paused
	l.paused = false
	armed := was && l.timer == nil && !l.closed
	l.mu.Unlock()
	if armed {
		_ = l.Rearm(false)
	}
}

// Close stops accepting and closes the listening socket.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.mu.Unlock()
	return l.Desc.Close()
}

// HandleEvents accepts up to Batch connections, then re-arms unless paused
// or backing off. It implements Handler.
func (l *Listener) HandleEvents(ev Event) {
	if ev&EventClosed != 0 {
		_ = l.Close()
		return
	}
	for i := 0; i < l.cfg.Batch; i++ {
		fd, remote, err := acceptFd(int(l.fd))
		if err == ErrWouldBlock {
			break
		}
		if err != nil {
			if temporaryAcceptErr(err) {
				continue // the peer gave up before we accepted: next one
			}
			l.failed(err)
			return
		}
		l.accepted.Add(1)
		l.cfg.OnAccept(fd, remote)
		l.healthy()
	}
	l.rearm()
}

func (l *Listener) healthy() {
	l.mu.Lock()
	l.backoff = 0
	l.mu.Unlock()
}

func (l *Listener) rearm() {
	l.mu.Lock()
	ok := !l.paused && !l.closed && l.timer == nil
	l.mu.Unlock()
	if ok {
		_ = l.Rearm(false)
	}
}

// failed counts err and pauses accepting for the current backoff: with
// EMFILE the pending connection stays in the backlog and epoll would
// report it again at once, so re-arming now would spin.
func (l *Listener) failed(err error) {
	l.errors.Add(1)
	l.backoffs.Add(1)
	l.lastErr.Store(&err)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.backoff = min(max(2*l.backoff, l.cfg.MinBackoff), l.cfg.MaxBackoff)
	l.timer = time.AfterFunc(l.backoff, l.resumeAfterBackoff)
}

func (l *Listener) resumeAfterBackoff() {
	l.mu.Lock()
	l.timer = nil
	l.mu.Unlock()
	l.rearm()
}
