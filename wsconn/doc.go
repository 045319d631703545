// Package wsconn owns the WebSocket protocol for each connection: the
// opening handshake on the raw socket, the frame parser and writer, the
// closing handshake with its status codes, heartbeats, and the bounded
// outbound queue. It runs on package poller's reactor and pool and calls a
// handler.Handler per route; it knows nothing about channels or JSON.
//
// # Life of a connection
//
//	accept ─▶ phaseHandshake ─(request complete, 101)─▶ phaseOpen ─▶ OnOpen
//	  readable ─▶ frames ─▶ OnMessage / ping→pong / close frame
//	  close sent or received ─▶ phaseClosing ─▶ descriptor closed ─▶ OnClose
//
// Every transition happens on the worker that owns the connection at that
// moment (poller guarantees one at a time). Other goroutines only send
// (under Conn.mu, never blocking) or wake the owner with a request.
//
// # Memory
//
// A Conn is one allocation of about 200 bytes plus its epoll registration.
// While idle it holds no buffer: reads use a pooled buffer for the length of
// one event, a partial frame or message is kept in a pooled inState only
// until it completes, and the outbound queue exists only while the socket
// has not taken everything (DESIGN.md invariant 3).
//
// # Bounds
//
// Handshake: MaxHandshakeSize (431) and HandshakeTimeout. Frames and
// messages: MaxFrameSize and MaxMessageSize, checked on the header, before
// anything is buffered (1009). Outbound: MaxQueueBytes per connection (1008
// "slow consumer"). Connections: MaxConns (503 at the handshake).
// Protocol errors get 1002, bad UTF-8 1007 (RFC 6455 sections 5, 7.4, 8.1).
package wsconn
