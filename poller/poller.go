package poller

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
)

// Poller is one reactor (an epoll instance and the goroutine that waits on
// it) and the bounded worker pool it dispatches to. A process normally has
// exactly one (docs/design.md invariant 1).
type Poller struct {
	cfg     Config
	ep      reactor
	pool    *ants.Pool
	drainFn func() // p.drain bound once, so Submit does not allocate

	rq     runQueue
	active atomic.Int32 // drainers submitted to the pool and not yet done

	closeOnce sync.Once
	closed    atomic.Bool
	stats     counters
}

// counters are the Poller's monotonic statistics.
type counters struct {
	events   atomic.Uint64 // epoll events delivered to a live Desc
	stale    atomic.Uint64 // events dropped because the Desc was closed
	wakes    atomic.Uint64
	overflow atomic.Uint64 // Descs queued while every worker was busy
	panics   atomic.Uint64
	submits  atomic.Uint64 // drainers started on the pool
	lost     atomic.Uint64 // schedules after Close, never served
}

// Stats is a snapshot of a Poller's counters.
type Stats struct {
	Workers   int    // pool size
	Running   int    // drainers running now
	Queued    int    // Descs waiting for a worker now
	PeakQueue int    // most Descs ever waiting at once
	Events    uint64 // readiness events delivered
	Stale     uint64 // events dropped for closed descriptors
	Wakes     uint64 // Desc.Wake calls delivered
	Overflow  uint64 // Descs that had to wait because every worker was busy
	Panics    uint64 // handler panics recovered
	Drainers  uint64 // drainer tasks submitted to the pool
}

// New starts a reactor and its worker pool.
func New(cfg Config) (*Poller, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Poller{cfg: cfg}
	p.drainFn = p.drain
	// Blocking mode with no cap on waiters: schedule starts at most
	// cfg.Workers drainers, so Submit can only wait for the few
	// instructions between a drainer returning and ants putting its worker
	// back on the idle list. The reactor never waits on a socket.
	pool, err := ants.NewPool(cfg.Workers, ants.WithNonblocking(false), ants.WithMaxBlockingTasks(0))
	if err != nil {
		return nil, fmt.Errorf("poller: failed to create worker pool: %w", err)
	}
	p.pool = pool
	ep, err := newReactor()
	if err != nil {
		pool.Release()
		return nil, fmt.Errorf("poller: failed to create reactor: %w", err)
	}
	p.ep = ep
	return p, nil
}

// Add registers fd, which the caller owns and which must be non-blocking,
// for read readiness (one-shot) and binds it to d and h. d must be new or
// zero. After Add, h.HandleEvents receives d's events; each event ends
// with Rearm, or no more come.
func (p *Poller) Add(d *Desc, fd int, h Handler) error {
	return p.add(d, fd, h, false)
}

// AddEdge registers fd as Add does, but edge-triggered: an event comes
// whenever new input arrives or the peer hangs up, with no re-arm (Rearm
// costs no system call; with write set it adds writability, once, with one
// epoll_ctl). The worker that serves d still serves it alone: events that
// arrive meanwhile are merged into its run. The handler must read until
// the socket would block, or call ReadAgain: input already waiting is not
// reported again.
func (p *Poller) AddEdge(d *Desc, fd int, h Handler) error {
	return p.add(d, fd, h, true)
}

func (p *Poller) add(d *Desc, fd int, h Handler, edge bool) error {
	if p.closed.Load() {
		return ErrClosed
	}
	d.fd, d.p, d.h = int32(fd), p, h
	register := p.ep.add
	if edge {
		d.state.Or(stateEdge)
		register = p.ep.addEdge
	}
	if err := register(d); err != nil {
		d.state.Store(stateDead)
		return fmt.Errorf("poller: failed to register fd %d: %w", fd, err)
	}
	return nil
}

// Rearm re-enables one-shot readiness for d: readable always, writable too
// if write is set. Handlers call it when they are done with an event; it is
// safe from any goroutine (a Rearm while the handler runs only merges one
// more event into its run).
func (d *Desc) Rearm(write bool) error {
	s := d.state.Load()
	switch {
	case s&stateDead != 0:
		return ErrClosed
	case s&stateEdge == 0:
		return d.p.ep.rearm(int(d.fd), write)
	case !write || s&stateOut != 0:
		return nil // edge-triggered: armed for good
	}
	if d.state.Or(stateOut)&stateOut != 0 {
		return nil // another goroutine added it meanwhile
	}
	return d.p.ep.watchWrite(int(d.fd))
}

// disarm stops readiness events for d until the next Rearm.
func (d *Desc) disarm() error {
	if d.state.Load()&stateDead != 0 {
		return ErrClosed
	}
	return d.p.ep.disarm(int(d.fd))
}

// Close ends d's generation (later events are dropped), removes the
// descriptor from epoll and closes it. The owner must make sure nothing
// uses the descriptor number afterwards: it may at once belong to another
// connection.
func (d *Desc) Close() error {
	s := d.state.Or(stateDead)
	if s&stateDead != 0 {
		return ErrClosed
	}
	if d.p == nil {
		return nil
	}
	_ = d.p.ep.del(int(d.fd)) // fails only if the poller closed first
	return closeFd(int(d.fd))
}

// onReady runs on the reactor goroutine for every epoll event of d.
func (d *Desc) onReady(ev Event) {
	if d.state.Load()&stateDead != 0 {
		d.p.stats.stale.Add(1)
		return
	}
	d.p.stats.events.Add(1)
	if d.notify(ev) {
		runtime.Gosched() // run the drainer on this thread now (see "The pool and the run queue" in doc.go)
	}
}

// schedule queues d (which the caller just made owned) and makes sure a
// drainer will pop it. It reports whether it started a new drainer.
func (p *Poller) schedule(d *Desc) bool {
	p.rq.push(d)
	for {
		a := p.active.Load()
		if int(a) >= p.cfg.Workers {
			// Every drainer is busy; one of them will pop d, because a
			// drainer checks the queue again after it stops counting
			// itself as active (see drain).
			p.stats.overflow.Add(1)
			return false
		}
		if p.active.CompareAndSwap(a, a+1) {
			break
		}
	}
	p.stats.submits.Add(1)
	if err := p.pool.Submit(p.drainFn); err != nil {
		// Only after Close released the pool. Running the drainer here
		// could re-enter a lock the caller holds, so d stays queued:
		// after Close every descriptor has been told EventClosed.
		p.active.Add(-1)
		p.stats.lost.Add(1)
		return false
	}
	return true
}

// drain pops and serves Descs until the run queue is empty.
func (p *Poller) drain() {
	for {
		for d := p.rq.pop(); d != nil; d = p.rq.pop() {
			if d.run(p.cfg.MaxRounds) {
				p.rq.push(d)
				// The Desc yielded or kept this worker MaxRounds in a
				// row: let the goroutines waiting for this P run too (the
				// reactor, above all, which queues the Descs waiting for
				// a worker), rather than only at the runtime's next
				// preemption, up to 10 ms away.
				runtime.Gosched()
			}
		}
		p.active.Add(-1)
		// A push that saw us still active did not start a drainer: if the
		// queue is not empty, become active again and go on.
		if n, _ := p.rq.len(); n == 0 || !p.reactivate() {
			return
		}
	}
}

func (p *Poller) reactivate() bool {
	for {
		a := p.active.Load()
		if int(a) >= p.cfg.Workers {
			return false
		}
		if p.active.CompareAndSwap(a, a+1) {
			return true
		}
	}
}

// Stats returns a snapshot of the poller's counters.
func (p *Poller) Stats() Stats {
	n, peak := p.rq.len()
	return Stats{
		Workers:   p.cfg.Workers,
		Running:   int(p.active.Load()),
		Queued:    n,
		PeakQueue: peak,
		Events:    p.stats.events.Load(),
		Stale:     p.stats.stale.Load(),
		Wakes:     p.stats.wakes.Load(),
		Overflow:  p.stats.overflow.Load(),
		Panics:    p.stats.panics.Load(),
		Drainers:  p.stats.submits.Load(),
	}
}

// Close stops the reactor, delivers EventClosed to every Desc still
// registered, waits up to timeout for the workers to finish, and releases
// the pool. Owners should close their descriptors before (wsconn's
// Shutdown does).
func (p *Poller) Close(timeout time.Duration) error {
	err := ErrClosed
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		err = p.ep.close()
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if n, _ := p.rq.len(); n == 0 && p.active.Load() == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if e := p.pool.ReleaseTimeout(max(timeout, time.Second)); e != nil && err == nil {
			err = fmt.Errorf("poller: failed to release pool: %w", e)
		}
	})
	return err
}
