package handler

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
