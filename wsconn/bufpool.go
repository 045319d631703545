package wsconn

import (
	"math/bits"
	"sync"
)

// Buffers come from size-classed pools while a frame is read or a message
// is queued, and go back afterwards: an idle connection holds none
// (docs/design.md invariant 3). Every get has exactly one put, on every path.

const (
	minClassBits = 8  // 256 B
	maxClassBits = 22 // 4 MiB
)

// buffer is a pooled byte slice. The pools hold *buffer so that a put does
// not allocate.
type buffer struct {
	b      []byte
	pooled bool // false for a buffer too big for any class
}

var bufPools [maxClassBits - minClassBits + 1]sync.Pool

// getBuffer returns a buffer whose b has length n.
func getBuffer(n int) *buffer {
	class := classOf(n)
	if class < 0 {
		return &buffer{b: make([]byte, n)}
	}
	if v := bufPools[class].Get(); v != nil {
		buf := v.(*buffer)
		buf.b = buf.b[:n]
		return buf
	}
	return &buffer{b: make([]byte, n, 1<<(class+minClassBits)), pooled: true}
}

// putBuffer returns buf to its pool. buf must not be used afterwards.
func putBuffer(buf *buffer) {
	if buf == nil || !buf.pooled {
		return
	}
	bufPools[classOf(cap(buf.b))].Put(buf)
}

// classOf returns the pool index for a buffer of n bytes, or -1 if n is
// larger than the largest class.
func classOf(n int) int {
	if n <= 1<<minClassBits {
		return 0
	}
	b := bits.Len(uint(n - 1))
	if b > maxClassBits {
		return -1
	}
	return b - minClassBits
}
