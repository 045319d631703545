package poller

import "sync/atomic"

// Event is a set of things that happened to a Desc. Events are hints: a
// handler finds out what really happened from read(2) and write(2).
type Event uint32

// Events delivered to Handler.HandleEvents.
const (
	// EventRead: the socket is readable, or the peer hung up or failed
	// (EPOLLIN, EPOLLRDHUP, EPOLLHUP, EPOLLERR). Read until ErrWouldBlock.
	EventRead Event = 1 << iota
	// EventWrite: the socket is writable again (EPOLLOUT).
	EventWrite
	// EventWake: Desc.Wake was called (timers, shutdown, queued work).
	EventWake
	// EventClosed: the poller is closing; release the descriptor.
	EventClosed
	// EventReadAll comes with EventRead when a short read does not prove
	// the socket empty: the peer hung up or the connection failed (its
	// EOF or error waits behind any data, and an edge-triggered
	// descriptor is not told again), or the handler asked with
	// ReadAgain. Read until ErrWouldBlock, EOF or an error.
	EventReadAll

	eventMask = EventRead | EventWrite | EventWake | EventClosed | EventReadAll
)

// State bits of Desc.state besides the pending events.
const (
	stateOwned uint32 = 1 << 30 // queued or being served by a worker
	stateDead  uint32 = 1 << 29 // closed: no event is delivered any more
	stateYield uint32 = 1 << 28 // the handler asked to go to the back of the run queue
	stateEdge  uint32 = 1 << 27 // edge-triggered (Poller.AddEdge): Rearm costs nothing
	stateOut   uint32 = 1 << 26 // edge-triggered and watching writability too
)

// Handler serves the events of one Desc. HandleEvents runs on a pool worker,
// never concurrently with itself for the same Desc, and must not block on
// the network. It must not panic: a panic is recovered and counted, and the
// Desc then gets no more events.
type Handler interface {
	HandleEvents(ev Event)
}

// Desc is the poller's view of one registered descriptor. Owners embed it
// (by value, so that a connection is one allocation) and register it with
// Poller.Add. Its methods are safe for concurrent use.
type Desc struct {
	fd    int32
	state atomic.Uint32 // stateOwned | stateDead | pending Events
	p     *Poller
	h     Handler
}

// Fd returns the descriptor, or -1 before Add.
func (d *Desc) Fd() int {
	if d.p == nil {
		return -1
	}
	return int(d.fd)
}

// Wake delivers EventWake to the Desc's handler from any goroutine. It
// never blocks; wakes that arrive while the handler runs are merged into
// one further call.
func (d *Desc) Wake() {
	if d.p != nil {
		d.p.stats.wakes.Add(1)
		d.notify(EventWake)
	}
}

// Yield asks for another EventWake run of the handler after the Descs
// waiting for a worker now: the run in progress ends when HandleEvents
// returns, and the Desc goes to the back of the run queue. Only the
// handler calls it, from HandleEvents: for work it stopped before the end
// so that other descriptors get a worker in between.
func (d *Desc) Yield() {
	if d.p != nil {
		d.state.Or(uint32(EventWake) | stateYield)
	}
}

// ReadAgain asks for another run of the handler, with EventRead and
// EventReadAll, after the Descs waiting for a worker now, as Yield does
// for EventWake. An edge-triggered handler (Poller.AddEdge) calls it from
// HandleEvents when it stopped reading before the socket said it would
// block: the kernel reports only new input, not what is already waiting.
func (d *Desc) ReadAgain() {
	if d.p != nil {
		d.state.Or(uint32(EventRead|EventReadAll) | stateYield)
	}
}

// notify adds ev to the pending events and, if no worker owns the Desc,
// queues it. It never blocks (the reactor calls it). It reports whether
// a new drainer was started for it.
func (d *Desc) notify(ev Event) bool {
	for {
		s := d.state.Load()
		if s&stateDead != 0 {
			return false // generation over: a stale event for a closed Desc
		}
		n := s | uint32(ev) | stateOwned
		if n == s {
			return false // already queued or running with these events pending
		}
		if d.state.CompareAndSwap(s, n) {
			if s&stateOwned == 0 {
				return d.p.schedule(d)
			}
			return false
		}
	}
}

// run serves pending events on the calling worker. It returns true if the
// Desc still owns a place in the run queue (events kept coming for
// maxRounds rounds) and must be queued again.
func (d *Desc) run(maxRounds int) (requeue bool) {
	for round := 0; round < maxRounds; {
		s := d.state.Load()
		if s&stateDead != 0 {
			return false // stays owned, so nobody queues it again
		}
		ev := Event(s) & eventMask
		if ev == 0 {
			if d.state.CompareAndSwap(s, s&^stateOwned) {
				return false
			}
			continue
		}
		if !d.state.CompareAndSwap(s, s&^uint32(eventMask)) {
			continue
		}
		round++
		d.handle(ev)
		if d.state.Load()&stateYield != 0 {
			d.state.And(^stateYield)
			return true // EventWake is pending: the Desc stays owned
		}
	}
	return true
}

func (d *Desc) handle(ev Event) {
	defer func() {
		if r := recover(); r != nil {
			d.p.stats.panics.Add(1)
			d.state.Or(stateDead)
		}
	}()
	d.h.HandleEvents(ev)
}
