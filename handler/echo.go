package handler

import "github.com/wsgate/wsgate/wsconn"

// Echo is the wsconn.Handler served at /echo: it sends every message back
// to its sender unchanged, with the same type and bytes. It holds no state
// and allocates nothing beyond what the connection's Send does.
type Echo struct {
	wsconn.Base
}

// OnMessage sends data back to c as a message of type t. A send error
// means the connection is closing (wsconn.ErrClosed,
// wsconn.ErrSlowConsumer); OnClose follows, so there is nothing to do
// about it here.
func (Echo) OnMessage(c wsconn.Conn, t wsconn.MessageType, data []byte) {
	_ = c.Send(t, data)
}
