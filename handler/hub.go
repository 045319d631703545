package handler

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/wsconn"
)

// hub is the set of channels with their subscribers, split into shards by a
// hash of the channel name so that work on one channel does not lock the
// others.
//
// Locking. The order is shard.mu, then channel.mu; no code takes them the
// other way round.
//   - shard.mu guards shard.channels: which channels exist.
//   - channel.mu guards channel.subs and channel.dead.
//
// Publishing takes shard.mu (read) only to look the channel up, then
// channel.mu (read) to walk its subscribers. A channel leaves its shard's
// map only when it has no subscribers, with both locks held, and is marked
// dead at the same moment. A subscriber that looked it up just before sees
// dead under channel.mu and looks again, so nobody is ever added to a
// channel that is no longer in the map.
//
// Across packages, two locks are taken under the hub's:
//   - channel.mu (read), then the connection's own lock: deliver calls
//     Conn.SendPrepared, which in wsconn takes Conn.mu. So a Conn must
//     never call into the hub, and wsconn calls no Handler method with
//     Conn.mu held (see wsconn's doc.go); OnClose, which unsubscribes, runs
//     later on the connection's worker.
//   - shard.mu (write), then the broker's: interest calls Broker.Interest,
//     which in broker.NATS takes NATS.mu and the NATS client's locks. So a
//     Broker must not call into the Channels handler from Interest; its
//     deliveries come from its own goroutines with none of its locks held.
type hub struct {
	seed   maphash.Seed
	shards []shard
	// interest is told when a channel appears (first subscriber) and
	// disappears (last one left), with the channel's shard locked.
	interest func(name string, on bool)

	subscriptions atomic.Int64 // (connection, channel) pairs
	channels      atomic.Int64 // entries in all shards' maps
}

// shard is one lock's worth of channels.
type shard struct {
	mu       sync.RWMutex
	channels map[string]*channel // guarded by mu
	// A cache line between neighbouring shards' locks, so that publishers
	// on different shards do not share one (false sharing).
	_ [64]byte
}

// channel is one named channel and its subscribers.
type channel struct {
	name  string
	shard *shard

	mu   sync.RWMutex
	subs subscriberSet // guarded by mu
	dead bool          // guarded by mu (set with shard.mu held too)
}

// newHub returns a hub with n shards; n must be positive. interest, if not
// nil, is told about channels appearing and disappearing.
func newHub(n int, interest func(name string, on bool)) *hub {
	if interest == nil {
		interest = func(string, bool) {}
	}
	h := &hub{seed: maphash.MakeSeed(), shards: make([]shard, n), interest: interest}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channel)
	}
	return h
}

// shardFor returns the shard that holds the channel called name.
func (h *hub) shardFor(name string) *shard {
	return &h.shards[maphash.String(h.seed, name)%uint64(len(h.shards))]
}

// lookup returns the channel called name, or nil.
func (h *hub) lookup(name string) *channel {
	sh := h.shardFor(name)
	sh.mu.RLock()
	ch := sh.channels[name]
	sh.mu.RUnlock()
	return ch
}

// lookupOrCreate returns the channel called name, creating it if needed.
func (h *hub) lookupOrCreate(name string) *channel {
	if ch := h.lookup(name); ch != nil {
		return ch
	}
	sh := h.shardFor(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch := sh.channels[name]
	if ch == nil {
		ch = &channel{name: name, shard: sh}
		sh.channels[name] = ch
		h.channels.Add(1)
		h.interest(name, true)
	}
	return ch
}

// subscribe adds c to the channel called name, creating the channel if
// needed, and returns it. Adding c twice is a no-op.
func (h *hub) subscribe(name string, c wsconn.Conn) *channel {
	for {
		ch := h.lookupOrCreate(name)
		ch.mu.Lock()
		if ch.dead { // emptied and removed since the lookup: look again
			ch.mu.Unlock()
			continue
		}
		added := ch.subs.add(c)
		ch.mu.Unlock()
		if added {
			h.subscriptions.Add(1)
		}
		return ch
	}
}

// unsubscribe removes c from ch, and ch from its shard if c was the last
// subscriber. ch must be what subscribe returned for c.
func (h *hub) unsubscribe(ch *channel, c wsconn.Conn) {
	ch.mu.Lock()
	removed := ch.subs.remove(c)
	empty := ch.subs.len() == 0
	ch.mu.Unlock()
	if removed {
		h.subscriptions.Add(-1)
	}
	if empty {
		h.removeIfEmpty(ch)
	}
}

// removeIfEmpty deletes ch from its shard and marks it dead, unless someone
// subscribed again since it was seen empty or it is already gone.
func (h *hub) removeIfEmpty(ch *channel) {
	ch.shard.mu.Lock()
	defer ch.shard.mu.Unlock()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead || ch.subs.len() > 0 {
		return
	}
	ch.dead = true
	delete(ch.shard.channels, ch.name)
	h.channels.Add(-1)
	h.interest(ch.name, false)
}

// deliver queues pm to every subscriber of the channel called name and
// returns how many took it and how many refused it (wsconn.ErrClosed,
// wsconn.ErrSlowConsumer). One refusal does not stop the others.
//
// SendPrepared is called with channel.mu read-locked: it must not block
// and must not call back into the hub (Conn promises the first; OnClose,
// which unsubscribes, runs later on a worker, never inside a send).
func (h *hub) deliver(name string, pm *wsconn.PreparedMessage) (delivered, dropped int) {
	ch := h.lookup(name)
	if ch == nil {
		return 0, 0
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	for _, c := range ch.subs.conns {
		if c.SendPrepared(pm) != nil {
			dropped++
		} else {
			delivered++
		}
	}
	return delivered, dropped
}

// subscribers returns the number of subscribers of the channel called name.
func (h *hub) subscribers(name string) int {
	ch := h.lookup(name)
	if ch == nil {
		return 0
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	return ch.subs.len()
}

// snapshot returns every channel with at least one subscriber and its
// subscriber count. Shards are visited one at a time, so under concurrent
// changes the result is consistent per channel, not across channels.
func (h *hub) snapshot() map[string]int {
	out := make(map[string]int)
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for name, ch := range sh.channels {
			ch.mu.RLock()
			if n := ch.subs.len(); n > 0 {
				out[name] = n
			}
			ch.mu.RUnlock()
		}
		sh.mu.RUnlock()
	}
	return out
}

// subscriberSet is a set of connections with O(1) add, remove and
// iteration over a dense slice. It is not safe for concurrent use: the
// owning channel's mu guards it.
type subscriberSet struct {
	conns []wsconn.Conn
	index map[uint64]int // Conn.ID → position in conns
}

// add inserts c and reports whether it was not already there.
func (s *subscriberSet) add(c wsconn.Conn) bool {
	id := c.ID()
	if _, ok := s.index[id]; ok {
		return false
	}
	if s.index == nil {
		s.index = make(map[uint64]int)
	}
	s.index[id] = len(s.conns)
	s.conns = append(s.conns, c)
	return true
}

// remove deletes c by moving the last element into its place, and reports
// whether c was there.
func (s *subscriberSet) remove(c wsconn.Conn) bool {
	id := c.ID()
	i, ok := s.index[id]
	if !ok {
		return false
	}
	last := len(s.conns) - 1
	if i != last {
		moved := s.conns[last]
		s.conns[i] = moved
		s.index[moved.ID()] = i
	}
	s.conns[last] = nil // drop the reference for the collector
	s.conns = s.conns[:last]
	delete(s.index, id)
	return true
}

// len returns the number of connections in the set.
func (s *subscriberSet) len() int { return len(s.conns) }
