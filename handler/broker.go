package handler

import "context"

// Broker carries publishes between wsgate processes: the workers of one
// machine and the nodes of a cluster. Channels tells it which channels have
// subscribers on this process and hands it every publish; the broker hands
// publishes from other processes to Channels.DeliverRemote. Package broker
// implements it with NATS.
//
// A publish reaches the subscribers on the publishing process directly and
// the others through the broker, exactly once each: a broker must not hand
// a process back its own publishes.
type Broker interface {
	// Interest reports that channel gained its first local subscriber
	// (on) or lost its last one (!on). Calls for one channel arrive in
	// order; they are made with a hub lock held, so Interest must not
	// block or call back into Channels.
	Interest(channel string, on bool)
	// Publish sends push, the JSON bytes of {"channel":…,"data":…}, to the
	// other processes. It must not block on the network and must not keep
	// push after it returns. An error means the other processes will not
	// get it (the broker is disconnected); Channels counts it.
	Publish(channel string, push []byte) error
}

// StoreBroker is a Broker that also stores the publications of the
// channels that keep a history (NATS JetStream, in package broker), so
// that every process agrees on their positions and a client recovers on
// any of them. For those channels Channels publishes through
// PublishStored instead of delivering locally, acks a publish only once
// it is stored, and delivers what the broker hands DeliverStored, which
// includes this process's own publications, in their order.
type StoreBroker interface {
	Broker
	// Stored reports whether channel's publications are stored.
	Stored(channel string) bool
	// Acquire makes the broker receive channel's stored publications
	// (DeliverStored) until the matching Release, and returns once the
	// subscription is in place, with its generation: every subscription
	// the broker makes for a channel has a new one. Interest(channel,
	// true) and (…, false) count as an Acquire and a Release without the
	// wait. It blocks on the network: never call it from a handler call.
	Acquire(ctx context.Context, channel string) (gen uint64, err error)
	// Release ends an Acquire.
	Release(channel string)
	// Generation returns the generation of channel's subscription, 0
	// when there is none.
	Generation(channel string) uint64
	// PublishStored stores data (one JSON value) as channel's next
	// publication and returns its position once stored.
	PublishStored(ctx context.Context, channel string, data []byte) (Position, error)
	// PublishStoredAsync is PublishStored without the wait: done is
	// called once, from another goroutine, with the outcome. An error
	// from PublishStoredAsync itself (too many publications in flight)
	// means done is never called.
	PublishStoredAsync(channel string, data []byte, done func(Position, error)) error
	// Fetch returns channel's stored publications after offset, oldest
	// first, at most max of them and about maxBytes of data (at least
	// one), the channel's epoch, and whether more follow.
	Fetch(ctx context.Context, channel string, after uint64, max, maxBytes int) (msgs []StoredMessage, epoch string, more bool, err error)
	// Last returns the position of channel's last stored publication:
	// offset 0 when there is none, with the epoch all the same.
	Last(ctx context.Context, channel string) (Position, error)
	// Epoch returns the current epoch of channel's store, "" while it is
	// unknown (the store is unreachable).
	Epoch(channel string) string
}

// StoredMessage is one publication a StoreBroker returned.
type StoredMessage struct {
	Offset uint64
	Data   []byte // one JSON value
}
