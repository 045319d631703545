package gateway_test

import (
	"context"
	"fmt"
	"net"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/gateway"
)

// Example runs a complete wsgate in this process, on a port the kernel
// picks, echoes one message through /echo, and stops it.
func Example() {
	cfg, err := gateway.Load([]string{"-addr", "127.0.0.1:0", "-admin", "off", "-log-level", "error"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ready := make(chan net.Addr, 1)
	cfg.OnReady = func(ws, _ net.Addr) { ready <- ws }
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Run(ctx, cfg) }() // serves until stop

	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		fmt.Println("wsgate did not start:", err)
		stop()
		return
	}
	c, _, err := websocket.Dial(ctx, "ws://"+addr.String()+"/echo", nil)
	if err == nil {
		err = c.Write(ctx, websocket.MessageText, []byte("hello, wsgate"))
	}
	if err == nil {
		var msg []byte
		if _, msg, err = c.Read(ctx); err == nil {
			fmt.Println(string(msg))
		}
		_ = c.Close(websocket.StatusNormalClosure, "bye")
	}
	if err != nil {
		fmt.Println(err)
	}
	stop()
	fmt.Println("Run returned:", <-done)
	// Output:
	// hello, wsgate
	// Run returned: <nil>
}
