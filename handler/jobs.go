package handler

import "sync"

// jobQueue runs functions off the connections' workers, at most max at
// once, each on a goroutine that lives while there is work, with at most
// maxQueue more waiting. An idle queue holds no goroutine.
type jobQueue struct {
	mu       sync.Mutex
	max      int
	maxQueue int
	running  int
	queue    []func()
}

// submit runs f when a slot is free, and reports false, without running
// it, when the queue is full.
func (q *jobQueue) submit(f func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running < q.max {
		q.running++
		go q.run(f)
		return true
	}
	if len(q.queue) >= q.maxQueue {
		return false
	}
	q.queue = append(q.queue, f)
	return true
}

// run runs f, then whatever waits, until the queue is empty.
func (q *jobQueue) run(f func()) {
	for f != nil {
		f()
		q.mu.Lock()
		f = nil
		if len(q.queue) > 0 {
			f = q.queue[0]
			q.queue[0] = nil
			q.queue = q.queue[1:]
		} else {
			q.running--
		}
		q.mu.Unlock()
	}
}

// waiting returns how many jobs run or wait.
func (q *jobQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running + len(q.queue)
}
