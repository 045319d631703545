package poller

// reactor is the platform's readiness notifier: epoll on Linux.
type reactor interface {
	add(d *Desc) error
	addEdge(d *Desc) error // edge-triggered, for reading and peer hang-ups
	rearm(fd int, write bool) error
	watchWrite(fd int) error // adds writability to an edge-triggered fd
	disarm(fd int) error
	del(fd int) error
	close() error
	err() error // why the wait loop died, or nil
}
