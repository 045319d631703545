// Package poller owns wsgate's reactor and worker pool: one epoll instance
// per process (github.com/mailru/easygo netpoll) watching every socket, one
// reactor goroutine waiting on it, and a bounded pool of workers
// (github.com/panjf2000/ants/v2) that does all per-socket work. It knows
// file descriptors, readiness and scheduling, and nothing about WebSocket.
//
// # Data flow
//
//	listening socket ──accept4──▶ Listener.OnAccept(fd) ──▶ owner calls Poller.Add
//	epoll_wait (reactor goroutine) ──event──▶ Desc.notify ──▶ run queue ──▶ pool worker
//	                                                            │
//	                         Handler.HandleEvents(events) ◀──────┘ (one worker per Desc at a time)
//
// # One descriptor per connection
//
// Connections are accepted with a raw accept4(2) (SOCK_NONBLOCK|SOCK_CLOEXEC)
// on a listening socket this package creates itself, and the resulting
// descriptor is handed to epoll as it is. The Go runtime never sees these
// sockets: there is no net.Conn, no runtime poll descriptor, no File()/dup
// (which easygo's netpoll.Handle does, and which can turn the socket blocking,
// easygo issue #11). SyscallConn on a net.Conn would also keep one descriptor,
// but every connection would then carry the runtime's poll descriptor and be
// registered in the runtime's own epoll as well; raw accept4 keeps the memory
// of an idle connection to what its owner allocates (docs/design.md invariants 2
// and 3) and lets the listener accept in batches.
//
// # Readiness and the one-reader rule
//
// Every Desc has a small atomic state word: an event sets a pending bit
// and, if no worker owns the Desc, queues it once. A worker owns the Desc
// until no event is pending. This is what makes invariant 4 hold whatever
// the source of events (epoll, Wake from timers, a stale event): at most
// one HandleEvents call per Desc runs at a time, and events that arrive
// meanwhile are merged into its run, not lost.
//
// Poller.Add registers a descriptor one-shot (EPOLLONESHOT): after an
// event it stays disarmed until its handler calls Desc.Rearm, one
// epoll_ctl per event (the listener, which pauses by not re-arming).
// Poller.AddEdge registers it edge-triggered (EPOLLET), as wsconn does for
// every connection: epoll reports each arrival of input with no re-arm in
// between, so an echoed message costs a read and a write and a share of
// one epoll_wait, and the owner bit alone keeps one reader at a time. The
// price is that input already waiting is not reported again: the handler
// reads until the socket would block, and a handler that stops earlier
// (its run's budget spent) calls Desc.ReadAgain; a hang-up is delivered
// as EventReadAll, because the EOF waits behind any data a short read
// leaves. Writability is added to the mask the first time a write is
// queued (Rearm(true)), and is then reported only when space frees after
// a write that did not fit.
//
// # Stale events and descriptor reuse
//
// easygo's wait loop copies events out of epoll and then looks up the
// callback by descriptor number. Each registration gets its own callback
// bound to its Desc, and Desc.Close marks the Desc dead (its generation
// ends) before the descriptor is deleted from epoll and closed; an event that
// reaches a dead Desc is dropped. If the number was already reused by a new
// connection when a late event is looked up, the new Desc gets a spurious
// wake-up. Handlers therefore treat events as hints: they learn the truth
// from read(2) and write(2) (EAGAIN, 0 for EOF, an error), never from the
// event bits alone, so a stale event costs one EAGAIN and closes nothing.
//
// # The pool and the run queue
//
// ants has no task queue: a full pool blocks Submit. The reactor must never
// block, so events go to a run queue, and at most Config.Workers drainers run
// on the pool, each popping Descs until the queue is empty. A Desc is queued
// at most once at a time (its state word says so), so the queue can never
// hold more entries than there are registered descriptors: it is bounded by
// the descriptor limit and never drops anything. When all workers are busy,
// new events wait in the queue, counted as overflow in Stats.
//
// When the reactor starts a drainer it yields its thread to it at once
// (runtime.Gosched): the drainer was readied on the reactor's own P, and
// would otherwise wait there while the reactor blocks in epoll_wait, until
// another OS thread is woken to steal it or sysmon takes the P back. The
// yield serves a ready socket with no thread switch; a drainer that runs
// long only delays the reactor until the other P picks it up.
//
// Platforms other than Linux get a stub whose New returns ErrUnsupported.
package poller
