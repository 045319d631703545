package wsconn

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"wsgate/handler"
)

type echoH struct{ handler.Base }

func (echoH) OnMessage(c handler.Conn, t handler.MessageType, p []byte) { _ = c.Send(t, p) }

func TestSmokeEcho(t *testing.T) {
	srv, err := New(Config{Addr: "127.0.0.1:0", Routes: map[string]handler.Handler{"/echo": echoH{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), time.Second)
		defer c()
		srv.Shutdown(sctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(4 << 20)
	for _, n := range []int{0, 1, 125, 126, 1000, 16000, 16384, 20000, 40000, 65535, 65536, 1 << 20} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte('a' + i%26)
		}
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(n, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText || string(got) != string(msg) {
			t.Fatalf("n=%d: got %d bytes %v err %v", n, len(got), typ, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "bye")
	_ = ws.StatusNormalClosure
}
