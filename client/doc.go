// Package client is a WebSocket client that keeps a long-lived connection
// alive, and a client of wsgate's /ws channel protocol on top of it.
//
// Conn (conn.go) is the connection layer, for any RFC 6455 server: Dial
// blocks until the connection is open (Java-WebSocket's connectBlocking),
// Connect starts in the background and reports by events (connect);
// Send, SendBinary, Ping, Close with the close handshake, Reconnect,
// permessage-deflate on request (Options.Compression). The
// connection-lost timer pings after PingInterval of silence and drops the
// connection when nothing comes back within PongTimeout. With
// Options.Reconnect it comes back by itself after every loss, with
// exponential backoff and full jitter, except after Close or when the
// server says not to (Final: 1008, 1003, 4000-4999, HTTP 4xx but 408 and
// 429).
//
// Each Conn has one goroutine, that connects, reads and calls the events,
// as gorilla/websocket's reader loop would: a send is written by its
// sender (one at a time; the others queue, within WriteQueue, for it), and
// the connection-lost timer is a time.AfterFunc, so an idle connection
// holds no second goroutine and no queue.
//
// The package imports no wsgate server code: it is what a Go program
// needs to talk to wsgate, or to any WebSocket server.
package client
