package wsconn

import (
	"sync"
	"sync/atomic"
)

const chunkBits = 10 // 1024 slots per chunk

type tableChunk [1 << chunkBits]atomic.Pointer[conn]

// connTable maps a descriptor number to its connection, for the sweeper and
// Shutdown. It costs 8 bytes per descriptor slot, allocated in chunks as
// descriptor numbers are first used. Lookups and iteration take no lock.
type connTable struct {
	mu     sync.Mutex                   // serialises chunk creation
	chunks []atomic.Pointer[tableChunk] // fixed length: covers the descriptor limit
}

func newConnTable(maxFd int) *connTable {
	return &connTable{chunks: make([]atomic.Pointer[tableChunk], maxFd>>chunkBits+1)}
}

// put stores c at fd. It returns false if fd is beyond the table, which
// cannot happen for descriptors below the limit the table was made for.
func (t *connTable) put(fd int, c *conn) bool {
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
	ch[fd&(1<<chunkBits-1)].Store(c)
	return true
}

// remove clears fd's slot if it still holds c.
func (t *connTable) remove(fd int, c *conn) {
	i := fd >> chunkBits
	if fd < 0 || i >= len(t.chunks) {
		return
	}
	if ch := t.chunks[i].Load(); ch != nil {
		ch[fd&(1<<chunkBits-1)].CompareAndSwap(c, nil)
	}
}

// each calls f for every connection in the table.
func (t *connTable) each(f func(*conn)) {
	for i := range t.chunks {
		ch := t.chunks[i].Load()
		if ch == nil {
			continue
		}
		for j := range ch {
			if c := ch[j].Load(); c != nil {
				f(c)
			}
		}
	}
}
