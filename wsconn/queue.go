package wsconn

import (
	"sync"
	"unsafe"
)

// The outbound queue of one connection: what the socket has not taken yet,
// in order. It exists only while something is queued (docs/design.md invariant
// 3). MaxQueueBytes bounds its cost, the memory it really holds, not only
// the bytes of its frames (issue 10: 200 subscribers queued 27-byte pushes
// up to 1 MiB of frames each, and the process grew by 449 MiB, each frame
// costing a 32-byte entry in a slice that grew by doubling):
//
//   - a frame in a buffer of its own costs the buffer's capacity;
//   - a shared (broadcast) frame costs its unwritten bytes;
//   - every slot of the entry slice costs outEntrySize.
//
// Small frames are copied into the spare room of the last entry's buffer,
// or into a new coalesceBuf-byte buffer that the next small frames share,
// so a backlog of small pushes costs about its bytes, and is written a
// buffer at a time. The slice is compacted before it grows, so a queue that
// keeps a short backlog while it drains does not grow without end.

// outEntry is one queued frame, or several small ones copied together: b
// is the part not yet written; buf, if not nil, is the pooled buffer b
// lies in, released when b is done. Shared frames (PreparedMessage) have
// no buf.
type outEntry struct {
	b   []byte
	buf *buffer
}

const (
	outEntrySize = int(unsafe.Sizeof(outEntry{}))
	// coalesceMax is the largest frame copied into a shared buffer rather
	// than queued as an entry of its own.
	coalesceMax = 512
	// coalesceBuf is the size of a buffer small frames are copied into.
	coalesceBuf = 4 << 10
	// keepSlots is the most slots a queue keeps when it goes back to the
	// pool; a larger slice is dropped, not kept for the next connection.
	keepSlots = 64
)

// outQueue holds a connection's unsent frames. Guarded by conn.mu.
type outQueue struct {
	q     []outEntry // q[head:] are queued
	head  int
	bytes int // bytes not yet written
	cost  int // memory held, as above; what MaxQueueBytes bounds
	// The heartbeat's view (heartbeat.go): pingLeft is how many queued
	// bytes are to be written before the heartbeat ping is out, 0 if no
	// ping waits here; moved is whether bytes were written since the
	// heartbeat last looked.
	pingLeft int
	moved    bool
}

var outQueuePool = sync.Pool{New: func() any { return new(outQueue) }}

func getOutQueue() *outQueue {
	q := outQueuePool.Get().(*outQueue)
	q.cost = cap(q.q) * outEntrySize
	return q
}

// release gives the queue back to the pool, releasing what is left in
// it.
func (q *outQueue) release() {
	q.reset()
	if cap(q.q) > keepSlots {
		q.q = nil
	}
	outQueuePool.Put(q)
}

func (q *outQueue) empty() bool { return q.head == len(q.q) }

// push queues b. buf, if not nil, is the pooled buffer b lies in (b
// starting anywhere in it and ending where its data ends); the queue owns
// it from now on.
func (q *outQueue) push(b []byte, buf *buffer) {
	q.bytes += len(b)
	if len(b) <= coalesceMax {
		if t := q.tail(); t != nil && t.buf != nil && cap(t.b)-len(t.b) >= len(b) {
			t.b = append(t.b, b...) // into t.buf: its data ends where t.b does
			putBuffer(buf)
			return
		}
		if buf == nil { // a small shared frame: copied, with room for more
			buf = getBuffer(coalesceBuf)
			buf.b = append(buf.b[:0], b...)
			b = buf.b
		}
	}
	if buf != nil {
		q.cost += cap(buf.b)
	} else {
		q.cost += len(b)
	}
	q.add(outEntry{b: b, buf: buf})
}

// tail is the last queued entry, or nil.
func (q *outQueue) tail() *outEntry {
	if q.empty() {
		return nil
	}
	return &q.q[len(q.q)-1]
}

// add appends e, compacting the slice first if its front is free.
func (q *outQueue) add(e outEntry) {
	if len(q.q) == cap(q.q) && q.head > 0 {
		n := copy(q.q, q.q[q.head:])
		clear(q.q[n:])
		q.q, q.head = q.q[:n], 0
	}
	before := cap(q.q)
	q.q = append(q.q, e)
	q.cost += (cap(q.q) - before) * outEntrySize
}

// wrote accounts for n bytes of the head entry written to the socket, and
// drops the entry once all of it is.
func (q *outQueue) wrote(n int) {
	e := &q.q[q.head]
	q.bytes -= n
	if n > 0 {
		q.moved = true
	}
	if e.buf == nil {
		q.cost -= n
	}
	if e.b = e.b[n:]; len(e.b) > 0 {
		return
	}
	if e.buf != nil {
		q.cost -= cap(e.buf.b)
		putBuffer(e.buf)
	}
	*e = outEntry{}
	q.head++
}

// reset releases every entry and returns how many bytes were still
// unsent.
func (q *outQueue) reset() int {
	n := q.bytes
	for i := q.head; i < len(q.q); i++ {
		putBuffer(q.q[i].buf)
	}
	clear(q.q)
	q.q, q.head, q.bytes = q.q[:0], 0, 0
	q.cost = cap(q.q) * outEntrySize
	q.pingLeft, q.moved = 0, false
	return n
}

// dropAllButHead releases every entry but the head, which the socket may
// have taken part of (cutting it would corrupt the stream), and returns
// how many bytes were dropped.
func (q *outQueue) dropAllButHead() int {
	keep := q.q[q.head]
	q.q[q.head] = outEntry{}
	q.head++
	dropped := q.reset() - len(keep.b)
	q.bytes = len(keep.b)
	if keep.buf != nil {
		q.cost += cap(keep.buf.b)
	} else {
		q.cost += len(keep.b)
	}
	q.add(keep)
	return dropped
}
