package wsconn

import (
	"net/netip"
	"sync"
)

// Abuse limits that need state: connections per source address, and the
// per-connection message and byte rates. The accept rate is a
// golang.org/x/time/rate limiter in Server; sizes and times are checked
// where they are read.

// ipCounter counts connections per source address, and among them those
// held only to be refused (429 or 503). Only addresses with connections
// have an entry.
type ipCounter struct {
	mu sync.Mutex
	n  map[netip.Addr]ipCount // guarded by mu
}

type ipCount struct {
	conns    int32 // connections from the address, refused ones included
	refusing int32 // of those, held only to be answered 429 or 503
}

func newIPCounter() *ipCounter { return &ipCounter{n: map[netip.Addr]ipCount{}} }

// add counts one more connection from a and returns the new count.
func (c *ipCounter) add(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n[a]
	n.conns++
	c.n[a] = n
	return int(n.conns)
}

// remove counts one connection from a less.
func (c *ipCounter) remove(a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n[a]
	if n.conns <= 1 {
		delete(c.n, a)
		return
	}
	n.conns--
	c.n[a] = n
}

// refuse counts a connection from a (already added) as one to be refused,
// unless refusalsPerAddress of its connections already are: then it
// returns false.
func (c *ipCounter) refuse(a netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n[a]
	if n.refusing >= refusalsPerAddress {
		return false
	}
	n.refusing++
	c.n[a] = n
	return true
}

// refused undoes refuse, before remove.
func (c *ipCounter) refused(a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.n[a]; ok && n.refusing > 0 {
		n.refusing--
		c.n[a] = n
	}
}

// rateBucket is a connection's token buckets for messages (and control
// frames) and payload bytes
// (MaxMessageRate, MaxByteRate): 12 bytes in conn, owned by the worker
// serving the connection. Tokens refill with the coarse clock, so they come
// in steps of SweepInterval.
type rateBucket struct {
	msgs  int32
	bytes int32
	last  uint32 // time of the last refill (exact at accept, then the coarse clock)
}

// fill starts the buckets full.
func (b *rateBucket) fill(cfg *Config, now uint32) {
	b.msgs, b.bytes, b.last = int32(msgBurst(cfg)), int32(byteBurst(cfg)), now
}

func msgBurst(cfg *Config) int { return 2 * cfg.MaxMessageRate }

func byteBurst(cfg *Config) int {
	return max(2*cfg.MaxByteRate, int(min(cfg.MaxMessageSize, 1<<30)))
}

// take spends frames (messages and control frames; 0 for a continuation)
// and n payload bytes; false means over the limit.
func (b *rateBucket) take(cfg *Config, now uint32, frames int32, n int64) bool {
	if ms := elapsed(now, b.last).Milliseconds(); ms > 0 {
		b.last = now
		b.msgs = refill(b.msgs, cfg.MaxMessageRate, msgBurst(cfg), ms)
		b.bytes = refill(b.bytes, cfg.MaxByteRate, byteBurst(cfg), ms)
	}
	ok := true
	if cfg.MaxMessageRate > 0 {
		b.msgs -= frames
		ok = b.msgs >= 0
	}
	if cfg.MaxByteRate > 0 {
		b.bytes -= int32(min(n, 1<<30))
		ok = ok && b.bytes >= 0
	}
	return ok
}

func refill(tokens int32, perSec, burst int, ms int64) int32 {
	if perSec <= 0 {
		return tokens
	}
	return int32(min(int64(tokens)+int64(perSec)*ms/1000, int64(burst)))
}
