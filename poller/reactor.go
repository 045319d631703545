package poller

// reactor is the platform's readiness notifier: epoll on Linux.
type reactor interface {
	add(d *Desc) error
	rearm(fd int, write bool) error
	disarm(fd int) error
	del(fd int) error
	close() error
	err() error // why the wait loop died, or nil
}
