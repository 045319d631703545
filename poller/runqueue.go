package poller

import "sync"

// runQueue is a FIFO of Descs waiting for a worker. A Desc is in it at most
// once (see Desc.notify), so its length never exceeds the number of
// registered descriptors; it grows by doubling and never drops an entry.
type runQueue struct {
	// mu is taken under the callers' own locks (wsconn's Conn.mu, when a
	// sender wakes a connection with Desc.Wake), so nothing is called
	// with it held: push and pop only move pointers.
	mu   sync.Mutex
	buf  []*Desc // ring buffer; guarded by mu
	head int     // index of the oldest entry; guarded by mu
	n    int     // number of entries; guarded by mu
	peak int     // largest n seen; guarded by mu
}

func (q *runQueue) push(d *Desc) {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.growLocked()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
	if q.n > q.peak {
		q.peak = q.n
	}
	q.mu.Unlock()
}

// growLocked doubles the ring. q.mu must be held.
func (q *runQueue) growLocked() {
	next := make([]*Desc, max(64, 2*len(q.buf)))
	for i := 0; i < q.n; i++ {
		next[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = next, 0
}

// pop returns the oldest Desc, or nil if the queue is empty.
func (q *runQueue) pop() *Desc {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return nil
	}
	d := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.mu.Unlock()
	return d
}

func (q *runQueue) len() (n, peak int) {
	q.mu.Lock()
	n, peak = q.n, q.peak
	q.mu.Unlock()
	return n, peak
}
