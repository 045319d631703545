// Package broker joins wsgate processes through NATS, an existing message
// broker: the workers of one machine (with an embedded NATS server run by
// the supervisor) and the nodes of a cluster (with an external NATS
// cluster). It implements handler.Broker and knows nothing of WebSocket.
//
// # Data flow
//
//	Channels.Publish ─▶ local subscribers
//	                 └▶ NATS.Publish ─▶ subject wsgate.ch.<base64url(channel)> ─▶ other processes
//	other processes ─▶ NATS subscription (only while a local subscriber exists)
//	                 ─▶ dispatcher goroutine (one per hash of the channel: per-channel order kept)
//	                 ─▶ Channels.DeliverRemote ─▶ local subscribers
//
// The connection uses NATS's no-echo option, so the server never hands a
// process its own publishes: each subscriber gets each message once. A
// process subscribes to a channel's subject only while it has a local
// subscriber on it (handler.Broker.Interest).
//
// # Channels with history: JetStream
//
// With Config.Histories the broker is also a handler.StoreBroker
// (jetstream.go): the channels a history rule covers are published into a
// JetStream stream, one per rule, and their publications reach every
// process, the publisher's included, through the stream's republished
// copies, which carry the stream sequence (the channel's offset, the same
// on every process) and the channel's previous sequence (so a process
// that missed one fetches it before going on). A publish is acked only
// once JetStream stored it; while JetStream is unreachable it fails with
// ErrUnavailable and nothing is delivered anywhere, so nothing acked is
// ever missing from the history while its size and TTL keep it.
//
//	Channels.Publish ─▶ JetStream publish, subject wsgate.ch.h.<rule>.<channel> ─▶ stored, PubAck ─▶ ack
//	                    stream republish ─▶ wsgate.ch.r.<rule>.<channel> (+ Nats-Sequence, Nats-Last-Sequence)
//	                    ─▶ every process with a subscriber ─▶ Channels.DeliverStored ─▶ local subscribers
//	recovery         ─▶ batch direct get (after an offset) ─▶ replay, then live
//
// # Presence
//
// Each process answers presence requests for its own subscribers
// (presence.go): the asker publishes one request per channel and gathers
// the answers for PresenceWait (100 ms). No process keeps another's
// clients, so a process that dies, even by SIGKILL, is out of every
// presence answer from the next request on; there is no entry to expire
// and no TTL to tune. Join and leave pushes travel as a channel without
// history does; the leaves of a dead process's clients are not pushed.
//
// # When NATS is unreachable
//
// For channels without history, local delivery goes on. Publishes are not
// buffered for later: Publish
// fails at once and Channels counts the failure, so that "delivered to
// other processes" never silently means "maybe, later". Connected reports
// the state, OnStateChange is called on each change (the caller logs it),
// and the client reconnects forever, re-subscribing what the process still
// has subscribers for; delivery across processes resumes then.
package broker
