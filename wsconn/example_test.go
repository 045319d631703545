package wsconn_test

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// upper is a Handler that answers every text message in capitals.
type upper struct{ wsconn.Base }

func (upper) OnMessage(c wsconn.Conn, t wsconn.MessageType, data []byte) {
	out := make([]byte, len(data))
	for i, b := range data {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		out[i] = b
	}
	_ = c.Send(t, out)
}

// Example embeds wsgate: a handler per path, New, Start, Shutdown.
func Example() {
	srv, err := wsconn.New(wsconn.Config{
		Addr:   "127.0.0.1:0",
		Routes: map[string]wsconn.Handler{"/echo": handler.Echo{}, "/upper": upper{}},
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

	// Any WebSocket client will do; this one is github.com/coder/websocket.
	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addr().String()+"/upper", nil)
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	_ = c.Write(ctx, websocket.MessageText, []byte("hello, wsgate"))
	_, reply, _ := c.Read(ctx)
	fmt.Println(string(reply))
	c.Close(websocket.StatusNormalClosure, "")
	// Output: HELLO, WSGATE
}
