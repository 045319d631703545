// Package client is a WebSocket client that keeps a long-lived connection
// alive, and a client of wsgate's /ws channel protocol on top of it.
//
// Conn (conn.go) is the connection layer, for any RFC 6455 server: Dial
// blocks until the connection is open (Java-WebSocket's connectBlocking),
// Connect starts in the background and reports by events (connect);
// Send, SendBinary, Ping, Close with the close handshake, Reconnect. The
// connection-lost timer pings after PingInterval of silence and drops the
// connection when nothing comes back within PongTimeout. With
// Options.Reconnect it comes back by itself after every loss, with
// exponential backoff and full jitter, except after Close or when the
// server says not to (Final: 1008, 1003, 4000-4999, HTTP 4xx but 408 and
// 429).
//
// Each Conn has a goroutine that connects, reads and calls the events,
// and one that writes while connected: a client holds few connections, so
// it spends goroutines where a server would not.
//
// The package imports no wsgate server code: it is what a Go program
// needs to talk to wsgate, or to any WebSocket server.
package client
