package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// ExampleChannels_Publish publishes from outside any connection, as an HTTP
// API would.
func ExampleChannels_Publish() {
	h, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		panic(err)
	}
	n, err := h.Publish("news", json.RawMessage(`{"title":"hello"}`))
	fmt.Println(n, err)
	_, err = h.Publish("bad channel", json.RawMessage(`1`))
	fmt.Println(err)
	// An API caller gets its error back; only client requests that are
	// answered with an error count as rejected.
	s := h.Stats()
	fmt.Println(s.Published, s.Rejected, s.RejectedByCode[handler.CodeBadChannel])
	// Output:
	// 0 <nil>
	// handler: bad channel name
	// 1 0 0
}

// ExampleEcho serves the applications of this package with package
// wsconn, which runs the protocol and calls them through its Handler
// interface.
func ExampleEcho() {
	channels, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		panic(err)
	}
	srv, err := wsconn.New(wsconn.Config{
		Addr:   "127.0.0.1:0",
		Routes: map[string]wsconn.Handler{"/echo": handler.Echo{}, "/ws": channels},
	})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)

	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addr().String()+"/echo", nil)
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	_ = c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
	typ, reply, _ := c.Read(ctx)
	fmt.Println(typ == websocket.MessageBinary, reply)
	c.Close(websocket.StatusNormalClosure, "")
	// Output: true [1 2 3]
}
