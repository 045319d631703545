//go:build linux

package poller

import (
	"sync/atomic"

	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

const (
	// readMask is what every descriptor is armed for. EPOLLRDHUP reports a
	// peer's shutdown even before its data is read.
	readMask = netpoll.EPOLLIN | netpoll.EPOLLRDHUP | netpoll.EPOLLONESHOT
	// edgeMask is what an edge-triggered descriptor is registered for
	// (Poller.AddEdge): an event each time data arrives or the peer hangs
	// up, with no re-arm between. Writability joins it once a write is
	// queued (watchWrite): the kernel then reports it when space frees
	// after a write that did not fit, and never for an idle socket.
	edgeMask = netpoll.EPOLLIN | netpoll.EPOLLRDHUP | netpoll.EPOLLET
	// epollClosed is easygo's private event value for "the epoll instance
	// was closed" (its _EPOLLCLOSED), delivered to every callback on Close.
	epollClosed = 0x20
)

// epollReactor is one easygo Epoll. Its wait loop is the reactor goroutine:
// it calls Desc.onEpoll inline for every event, so onEpoll must not block.
type epollReactor struct {
	ep      *netpoll.Epoll
	waitErr atomic.Pointer[error] // set if the wait loop died
}

func newReactor() (reactor, error) {
	r := &epollReactor{}
	ep, err := netpoll.EpollCreate(&netpoll.EpollConfig{
		OnWaitError: func(err error) { r.waitErr.Store(&err) },
	})
	if err != nil {
		return nil, err
	}
	r.ep = ep
	return r, nil
}

// add registers d.fd with the raw-descriptor API of easygo (Epoll.Add),
// not netpoll.Handle, which would dup the descriptor (docs/design.md invariant 2).
// The callback is a method value bound to d: it carries d's generation.
func (r *epollReactor) add(d *Desc) error {
	return r.ep.Add(int(d.fd), readMask, d.onEpoll)
}

func (r *epollReactor) addEdge(d *Desc) error {
	return r.ep.Add(int(d.fd), edgeMask, d.onEpoll)
}

func (r *epollReactor) watchWrite(fd int) error {
	return r.ep.Mod(fd, edgeMask|netpoll.EPOLLOUT)
}

func (r *epollReactor) rearm(fd int, write bool) error {
	ev := netpoll.EpollEvent(readMask)
	if write {
		ev |= netpoll.EPOLLOUT
	}
	return r.ep.Mod(fd, ev)
}

// disarm leaves fd registered but reporting nothing (EPOLLONESHOT with no
// events), until rearm.
func (r *epollReactor) disarm(fd int) error { return r.ep.Mod(fd, netpoll.EPOLLONESHOT) }

func (r *epollReactor) del(fd int) error { return r.ep.Del(fd) }

func (r *epollReactor) close() error { return r.ep.Close() }

func (r *epollReactor) err() error {
	if e := r.waitErr.Load(); e != nil {
		return *e
	}
	return nil
}

// onEpoll translates an epoll event mask into Events.
func (d *Desc) onEpoll(e netpoll.EpollEvent) {
	d.onReady(toEvent(e))
}

func toEvent(e netpoll.EpollEvent) Event {
	if e&epollClosed != 0 {
		return EventClosed
	}
	var ev Event
	if e&(netpoll.EPOLLIN|netpoll.EPOLLRDHUP|netpoll.EPOLLHUP|netpoll.EPOLLERR|netpoll.EPOLLPRI) != 0 {
		ev |= EventRead
	}
	if e&(netpoll.EPOLLRDHUP|netpoll.EPOLLHUP|netpoll.EPOLLERR) != 0 {
		ev |= EventReadAll
	}
	if e&(netpoll.EPOLLOUT|netpoll.EPOLLHUP|netpoll.EPOLLERR) != 0 {
		ev |= EventWrite
	}
	return ev
}

func closeFd(fd int) error {
	// close(2) must not be retried on EINTR on Linux: the descriptor is
	// released either way.
	if err := unix.Close(fd); err != nil && err != unix.EINTR {
		return err
	}
	return nil
}
