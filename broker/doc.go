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
// # When NATS is unreachable
//
// Local delivery goes on. Publishes are not buffered for later: Publish
// fails at once and Channels counts the failure, so that "delivered to
// other processes" never silently means "maybe, later". Connected reports
// the state, OnStateChange is called on each change (the caller logs it),
// and the client reconnects forever, re-subscribing what the process still
// has subscribers for; delivery across processes resumes then.
package broker
