package handler

import (
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/wsconn"
)

// history keeps the recent publications of the channels whose options ask
// for it, in this process's memory: for each such channel a stream with its
// epoch, the offset of its last publication and a bounded run of entries,
// oldest first. Streams are kept apart from the hub's channels because a
// history must outlive its subscribers: the client it is for is the one
// that has just lost its connection.
//
// Locking. shard.mu guards shard.streams (which streams exist); stream.mu
// guards everything in a stream. The order is historyShard.mu, then
// stream.mu, and stream.mu before any of the hub's locks: a publish
// appends and delivers with its stream locked, so that every subscriber
// gets a channel's publications in offset order, and a recovering
// subscribe replays and joins the channel with the stream locked, so that
// no publication falls between the replay and the live pushes, and none
// is in both. Nothing takes historyShard.mu while holding stream.mu.
type history struct {
	seed    maphash.Seed
	shards  []historyShard
	metaTTL time.Duration

	maxStreams int   // about the most streams (admit)
	maxBytes   int64 // about the most framed bytes of all streams (append, sweep)

	next    atomic.Uint64 // sweepNext's last shard
	streams atomic.Int64  // entries of all shards' maps
	entries atomic.Int64  // publications held, all streams
	bytes   atomic.Int64  // their framed bytes
}

// historyShard is one lock's worth of streams.
type historyShard struct {
	mu      sync.RWMutex
	streams map[string]*stream // guarded by mu
	_       [64]byte           // no false sharing between neighbours' locks
}

// stream is one channel's history.
type stream struct {
	mu    sync.Mutex
	opts  ChannelOptions // the channel's; fixed at creation
	epoch string
	top   uint64 // offset of the last publication; 0 before the first
	// entries[start:] are the kept publications, oldest first, with
	// consecutive offsets ending at top. The dead prefix is reclaimed
	// when it outgrows the live part, so the slice is at most twice the
	// history size.
	entries []entry
	start   int
	bytes   int   // framed bytes of entries[start:]
	touched int64 // unix nanoseconds of the last publication or creation
	dead    bool  // removed from its shard; look it up again
	// With a StoreBroker (stored.go) the entries stay empty: the store
	// keeps the publications, and top is the last one this process
	// delivered, valid while synced, for the broker subscription of
	// generation gen.
	gen    uint64
	synced bool
}

// entry is one kept publication. The push is stored framed, as it went to
// the live subscribers, so a replay queues the very same bytes with no
// copy, however many clients recover at once.
type entry struct {
	offset uint64
	at     int64 // unix nanoseconds
	pm     *wsconn.PreparedMessage
}

// newHistory returns a history with n shards; n must be positive.
func newHistory(n int, metaTTL time.Duration, maxStreams int, maxBytes int64) *history {
	h := &history{seed: maphash.MakeSeed(), shards: make([]historyShard, n), metaTTL: metaTTL,
		maxStreams: maxStreams, maxBytes: maxBytes}
	for i := range h.shards {
		h.shards[i].streams = make(map[string]*stream)
	}
	return h
}

// newEpoch returns a fresh epoch: 64 random bits in base 36, so that a
// stream recreated after a restart or an expiry never takes an old one's.
func newEpoch() string { return strconv.FormatUint(rand.Uint64(), 36) }

func (h *history) shardFor(name string) *historyShard {
	return &h.shards[maphash.String(h.seed, name)%uint64(len(h.shards))]
}

// lookup returns the stream of channel name, or nil.
func (h *history) lookup(name string) *stream {
	sh := h.shardFor(name)
	sh.mu.RLock()
	st := sh.streams[name]
	sh.mu.RUnlock()
	return st
}

// admit reports whether channel name may keep a history: it has one, or
// there are fewer than maxStreams. Concurrent first publications may pass
// the cap by a few: it bounds memory, not an exact count.
func (h *history) admit(name string) bool {
	return h.streams.Load() < int64(h.maxStreams) || h.lookup(name) != nil
}

// lock returns the stream of channel name locked, creating it with opts
// if it does not exist and create is set; nil if it does not and create
// is not. The caller unlocks it.
func (h *history) lock(name string, opts ChannelOptions, create bool, now time.Time) *stream {
	for {
		st := h.lookup(name)
		if st == nil {
			if !create {
				return nil
			}
			st = h.create(name, opts, now)
		}
		st.mu.Lock()
		if !st.dead {
			return st
		}
		st.mu.Unlock() // swept since the lookup: look again
	}
}

// create returns the stream of channel name, adding it if needed.
func (h *history) create(name string, opts ChannelOptions, now time.Time) *stream {
	sh := h.shardFor(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.streams[name]
	if st == nil {
		st = &stream{opts: opts, epoch: newEpoch(), touched: now.UnixNano()}
		sh.streams[name] = st
		h.streams.Add(1)
	}
	return st
}

// append adds pm as the stream's next publication at time now, evicting
// what the size, byte and age limits no longer allow, and returns its
// offset. The stream is locked.
func (h *history) append(st *stream, pm *wsconn.PreparedMessage, now time.Time) uint64 {
	st.top++
	at := now.UnixNano()
	st.entries = append(st.entries, entry{offset: st.top, at: at, pm: pm})
	st.bytes += len(pm.Frame())
	st.touched = at
	h.entries.Add(1)
	h.bytes.Add(int64(len(pm.Frame())))
	h.evict(st, at)
	for h.bytes.Load() > h.maxBytes && len(st.entries)-st.start > 1 {
		h.drop(st, 1) // all histories together are past maxBytes: this one gives first
	}
	return st.top
}

// drop evicts the n oldest entries of st, at most all but the newest.
// The stream is locked.
func (h *history) drop(st *stream, n int) {
	n = min(n, len(st.entries)-st.start-1)
	freed := 0
	for range n {
		e := &st.entries[st.start]
		size := len(e.pm.Frame())
		st.bytes -= size
		freed += size
		*e = entry{}
		st.start++
	}
	h.entries.Add(-int64(max(n, 0)))
	h.bytes.Add(-int64(freed))
}

// evict drops the oldest entries while there are more than the history
// size or bytes allow, or they are older than its TTL at now (unix
// nanoseconds). The newest entry stays even when it alone passes the byte
// limit: a publication that was acked is in the history while its TTL
// lasts. The stream is locked.
func (h *history) evict(st *stream, now int64) {
	cutoff := now - int64(st.opts.HistoryTTL)
	n, freed := 0, 0
	for st.start < len(st.entries) {
		e := &st.entries[st.start]
		live := len(st.entries) - st.start
		tooMany := live > st.opts.HistorySize || st.bytes > st.opts.HistoryBytes && live > 1
		if !tooMany && e.at > cutoff {
			break
		}
		size := len(e.pm.Frame())
		st.bytes -= size
		freed += size
		*e = entry{} // drop the message for the collector
		st.start++
		n++
	}
	if n == 0 {
		return
	}
	h.entries.Add(-int64(n))
	h.bytes.Add(-int64(freed))
	if live := len(st.entries) - st.start; live == 0 {
		st.entries, st.start = st.entries[:0], 0
	} else if st.start > live {
		copy(st.entries, st.entries[st.start:])
		clear(st.entries[live:])
		st.entries, st.start = st.entries[:live], 0
	}
}

// since returns the kept entries after offset, oldest first; the slice
// shares the stream's array and is valid only while the stream is locked.
// It assumes offset is within the stream's epoch and at most top.
func (st *stream) since(offset uint64) []entry {
	live := st.entries[st.start:]
	if len(live) == 0 || offset < live[0].offset {
		return live
	}
	return live[offset-live[0].offset+1:] // offsets are consecutive
}

// first returns the offset of the oldest kept entry, or top+1 if none is
// kept.
func (st *stream) first() uint64 {
	if st.start < len(st.entries) {
		return st.entries[st.start].offset
	}
	return st.top + 1
}

// sweep evicts expired entries from every stream and removes the streams
// that are empty and untouched for their TTL plus metaTTL at now.
func (h *history) sweep(now time.Time) {
	for i := range h.shards {
		h.sweepShard(&h.shards[i], now.UnixNano(), false)
	}
}

// sweepNext is sweep for the timer tick: one shard per call, round robin,
// and without waiting: a shard or stream whose lock is taken is skipped
// until the next round (whoever holds a stream's lock evicts it anyway).
func (h *history) sweepNext(now time.Time) {
	i := h.next.Add(1) % uint64(len(h.shards))
	h.sweepShard(&h.shards[i], now.UnixNano(), true)
}

// sweepShard is sweep's work on one shard; with try, it skips what is
// locked instead of waiting.
func (h *history) sweepShard(sh *historyShard, at int64, try bool) {
	if !try {
		sh.mu.Lock()
	} else if !sh.mu.TryLock() {
		return
	}
	defer sh.mu.Unlock()
	for name, st := range sh.streams {
		if !try {
			st.mu.Lock()
		} else if !st.mu.TryLock() {
			continue
		}
		h.evict(st, at)
		if h.bytes.Load() > h.maxBytes {
			h.drop(st, (len(st.entries)-st.start)/2) // past maxBytes: every history halves in turn
		}
		if st.start == len(st.entries) && at-st.touched > int64(st.opts.HistoryTTL+h.metaTTL) {
			st.dead = true
			delete(sh.streams, name)
			h.streams.Add(-1)
		}
		st.mu.Unlock()
	}
}
