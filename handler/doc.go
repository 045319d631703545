// Package handler owns wsgate's application layer: the Handler interface
// through which an embedding program sees connections (the counterpart of
// Java-WebSocket's WebSocketServer callbacks), the Conn it acts on, and the
// two applications the wsgate binary serves: Echo at /echo and Channels, a
// publish/subscribe hub with a small JSON protocol, at /ws.
//
// Data flows in from package wsconn, which parses frames and calls
// Handler.OnMessage on a pool worker, and out through Conn.Send or
// Conn.SendPrepared, which frame the message and hand it to the
// connection's non-blocking write path. A message published to a channel is
// framed once (PreparedMessage) and the same bytes are queued for every
// subscriber.
//
// This package knows nothing of sockets or frames beyond PreparedMessage;
// it never blocks on the network.
package handler
