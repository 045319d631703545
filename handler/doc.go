// Package handler holds the applications the wsgate binary serves, each a
// wsconn.Handler: Echo at /echo, and Channels, a publish/subscribe hub
// with a small JSON protocol, at /ws, with the Broker interface through
// which Channels reaches the other wsgate processes.
//
// The connection contract, the Handler and Conn interfaces, message types
// and PreparedMessage, belongs to package wsconn, which runs the protocol
// and calls a Handler per route; this package imports it and nothing
// imports this package from below. Data flows in from wsconn, which parses
// frames and calls Handler.OnMessage on a pool worker, and out through
// Conn.Send or Conn.SendPrepared, which frame the message and hand it to
// the connection's non-blocking write path. A message published to a
// channel is framed once (wsconn.PreparedMessage) and the same bytes are
// queued for every subscriber.
//
// This package knows nothing of sockets or frames; it never blocks on the
// network.
package handler
