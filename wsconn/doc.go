// Package wsconn owns the WebSocket protocol for each connection: the
// opening handshake on the raw socket, the frame parser and writer, the
// closing handshake with its status codes, heartbeats, and the bounded
// outbound queue. It runs on package poller's reactor and pool and calls a
// Handler per route; it knows nothing about channels or JSON.
//
// # The contract with applications
//
// This package also defines what an application sees of a connection, so
// that it depends on no application: the Handler interface (with the
// optional PingHandler and PongHandler, and Base to embed), the Conn it
// acts on, MessageType, PreparedMessage (a message framed, and compressed,
// once for many connections), StatusCode and its named close codes, and
// the errors Conn's methods return (ErrClosed, ErrSlowConsumer,
// ErrInvalidMessage). Package handler holds wsgate's own applications on
// top of it. No type of the frame codec (gobwas/ws) is part of this API:
// a protocol violation is ErrProtocol.
//
// # Life of a connection
//
//	accept ─▶ phaseHandshake ─(request complete, 101)─▶ phaseOpen ─▶ OnOpen
//	  readable ─▶ frames ─▶ OnMessage / ping→pong / close frame
//	  close sent or received ─▶ phaseClosing ─▶ descriptor closed ─▶ OnClose
//
// Every transition happens on the worker that owns the connection at that
// moment (poller guarantees one at a time). Other goroutines only send
// (under conn.mu, never blocking) or wake the owner with a request.
//
// # Memory
//
// A connection is one allocation of 144 bytes plus its epoll registration; rare
// fields (IPv6 address, query, subprotocol, principal, closing state) live
// in a connExtra allocated only when needed. While idle a connection holds
// no buffer: reads use a pooled buffer for the length of one event, a
// partial frame or message is kept in a pooled inState only until it
// completes, and the outbound queue exists only while the socket has not
// taken everything (docs/design.md invariant 3). Statistics cost nothing per
// connection: per-message counters are striped by connection id (stats.go).
//
// # Bounds
//
// Handshake: MaxHandshakeSize (431) and HandshakeTimeout. Frames and
// messages: MaxFrameSize and MaxMessageSize, checked on the header, before
// anything is buffered (1009); a message's buffer grows with the bytes
// that arrive; a message must complete within MessageTimeout (1008), and
// all unfinished messages together within MaxPartialBytes (1013).
// Outbound: MaxQueueBytes per connection, counting what the queue really
// holds (1008 "slow consumer"; queue.go). Connections: MaxConns (503),
// MaxConnsPerIP (429), both answered at once with at most 64 refusals (8
// per address) in progress, AcceptRate (excess closed at accept). Per
// connection: MaxMessageRate (every frame costs a token) and MaxByteRate,
// token buckets refilled from the coarse clock (1008). After its close
// frame the server reads at most CloseDrainLimit more. One run of a
// connection's input keeps a worker about RunBudget at most, then yields
// (poller.Desc.Yield). Protocol errors get 1002, bad UTF-8 1007 (RFC 6455
// sections 5, 7.4, 8.1).
//
// # TLS
//
// With Config.TLS, crypto/tls runs over a non-blocking view of the socket
// (tls.go): a read that would block returns a temporary error, so a
// partial record is kept by crypto/tls and resumed at the next readable
// event, and a worker never waits on one; writes are collected and go
// through the ordinary bounded write path. Only the TLS handshake, which
// crypto/tls cannot resume after a would-block, runs on a goroutine of its
// own, fed by the owner through a channel, for at most HandshakeTimeout;
// MaxTLSHandshakes bounds them, ending the oldest one whose ClientHello is
// incomplete when a new one arrives at the cap.
//
// # Compression, authorization, pages
//
// Config.Compression negotiates permessage-deflate (RFC 7692, negotiate.go)
// without context takeover: no flate state is kept between messages, a
// prepared message is compressed once for every recipient that negotiated
// it (once per variant: full deflate, or Huffman-only for a client that
// asked for a server window below 32 KiB), and inflation stops at
// MaxMessageSize (1009). Config.Authorize decides at the
// handshake (401/403 or any HTTPError) and may set an expiry, after which
// the connection is closed with 1008. Config.Pages answers plain GETs on
// the WebSocket port (the chat demo) and closes.
//
// # Logs
//
// Config.Logger gets per-connection records at debug level only and
// rate-limited warnings for errors clients can repeat (log.go); nothing is
// logged per message.
package wsconn

// Lock order across packages. Conn.mu guards one connection's write side;
// the locks that nest with it, outermost first, never the other way:
//
//   - handler's hub: channel.mu (read), then Conn.mu. A publish reaches
//     every subscriber through SendPrepared with its channel locked. So
//     wsconn calls no Handler method with Conn.mu held (OnOpen, OnMessage,
//     OnPing, OnPong, OnError, OnClose run on the owner with no wsconn
//     lock held), and SendPrepared compresses (PreparedMessage's Once)
//     before it takes Conn.mu.
//   - crypto/tls: a TLS handshake goroutine holds tls.Conn's handshake and
//     input locks while it reads, and its reads take Conn.mu
//     (rawConn.readInbox, flushTLS). So nobody calls tls.Conn.Read or
//     Handshake with Conn.mu held, and tls.Conn.Write only once the
//     handshake is done (it then takes tls.Conn's output lock alone).
//   - Conn.mu, then: tls.Conn's output lock and rawConn.mu (sendLocked on
//     a wss connection); poller's runQueue.mu and the ants pool's lock
//     (Desc.Wake, from afterFlushLocked and others); easygo's Epoll.mu
//     (Desc.Rearm in settle and rawSendLocked, Desc.Close in
//     terminate); the warnings' rate limiters and Config.Logger's
//     slog.Handler (a slow consumer is warned about under Conn.mu: a
//     Logger's handler must not call back into the Server or a Conn).
//     None of them calls back into wsconn: the poller runs a handler with
//     none of its locks held, and easygo calls its callbacks after
//     releasing Epoll.mu.
//   - connTable.mu only serialises the creation of chunks: put takes it
//     at accept with no other lock held, and takes nothing under it.
//     Lookups and walks (the sweeper, Shutdown) take no lock; waking a
//     connection takes runQueue.mu.
//   - Server.mu: Start holds it while it creates the poller and listens
//     (the poller's and easygo's locks under it); Shutdown lets it go
//     before it closes the listener and wakes the connections.
//   - tlsInFlight.mu: taken by the owner without Conn.mu; it cancels a
//     handshake's context and warns under it.
