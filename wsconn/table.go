package wsconn

import (
	"sync"
	"sync/atomic"
)

const chunkBits = 10 // 1024 slots per chunk

// tableChunk holds 1024 descriptor slots: each slot's connection and when
// the sweeper next looks at it (visit, in the server's milliseconds; 0:
// not until a deadline is set). The visit times are dense, so that the
// sweeper's pass over a million slots reads 4 MB in order and touches a
// connection only when it has something due, instead of reading every
// connection's struct (a cache miss each) every tick.
type tableChunk struct {
	conns [1 << chunkBits]atomic.Pointer[conn]
	visit [1 << chunkBits]atomic.Uint32
}

// connTable maps a descriptor number to its connection, for the sweeper and
// Shutdown. It costs 12 bytes per descriptor slot, allocated in chunks as
// descriptor numbers are first used. Lookups and iteration take no lock.
type connTable struct {
	mu     sync.Mutex                   // serialises chunk creation
	chunks []atomic.Pointer[tableChunk] // fixed length: covers the descriptor limit
}

func newConnTable(maxFd int) *connTable {
	return &connTable{chunks: make([]atomic.Pointer[tableChunk], maxFd>>chunkBits+1)}
}

// put stores c at fd, to be visited by the sweeper at visit (0: not until
// a deadline is set). It returns false if fd is beyond the table, which
// cannot happen for descriptors below the limit the table was made for.
func (t *connTable) put(fd int, c *conn, visit uint32) bool {
	i := fd >> chunkBits
	if fd < 0 || i >= len(t.chunks) {
		return false
	}
	ch := t.chunks[i].Load()
	if ch == nil {
		t.mu.Lock()
		if ch = t.chunks[i].Load(); ch == nil {
			ch = new(tableChunk)
			t.chunks[i].Store(ch)
		}
		t.mu.Unlock()
	}
	j := fd & (1<<chunkBits - 1)
	ch.visit[j].Store(visit)
	ch.conns[j].Store(c)
	return true
}

// slot returns fd's chunk (nil if fd is out of range or its chunk was
// never made) and its index in it.
func (t *connTable) slot(fd int) (*tableChunk, int) {
	i := fd >> chunkBits
	if fd < 0 || i >= len(t.chunks) {
		return nil, 0
	}
	return t.chunks[i].Load(), fd & (1<<chunkBits - 1)
}

// remove clears fd's slot if it still holds c.
func (t *connTable) remove(fd int, c *conn) {
	if ch, j := t.slot(fd); ch != nil {
		ch.conns[j].CompareAndSwap(c, nil)
	}
}

// visitBy makes the sweeper look at c, at fd, no later than at (0: no
// change). Whoever sets a time limit on c stores it first and then calls
// visitBy: the sweeper clears a slot's visit before it reads the
// connection, so either it sees the new limit or visitBy sees the cleared
// slot. It does nothing if fd's slot does not hold c (not published yet:
// put takes the visit time then; or already removed).
func (t *connTable) visitBy(fd int, c *conn, at uint32) {
	if ch, j := t.slot(fd); ch != nil {
		ch.visitBy(j, c, at)
	}
}

// visitBy is connTable.visitBy for slot j of ch.
func (ch *tableChunk) visitBy(j int, c *conn, at uint32) {
	if at == 0 || ch.conns[j].Load() != c {
		return
	}
	for {
		v := ch.visit[j].Load()
		if v != 0 && int32(at-v) >= 0 {
			return // visited no later already
		}
		if ch.visit[j].CompareAndSwap(v, at) {
			return
		}
	}
}

// due calls f for every connection whose visit time is at or before now,
// after clearing it; f returns the connection's next visit time (0: none).
func (t *connTable) due(now uint32, f func(*conn) uint32) {
	for i := range t.chunks {
		ch := t.chunks[i].Load()
		if ch == nil {
			continue
		}
		for j := range ch.visit {
			v := ch.visit[j].Load()
			if !passed(now, v) {
				continue
			}
			c := ch.conns[j].Load()
			if c == nil {
				continue
			}
			ch.visit[j].Store(0)
			ch.visitBy(j, c, f(c))
		}
	}
}

// each calls f for every connection in the table.
func (t *connTable) each(f func(*conn)) {
	for i := range t.chunks {
		ch := t.chunks[i].Load()
		if ch == nil {
			continue
		}
		for j := range ch.conns {
			if c := ch.conns[j].Load(); c != nil {
				f(c)
			}
		}
	}
}
