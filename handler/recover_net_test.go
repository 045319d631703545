package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// TestRecoverAfterTCPReset is issue 12's first test over real sockets, with
// a client library nobody here wrote (coder/websocket): a subscriber is cut
// with a TCP reset, 100 publications happen, it reconnects with recover
// and gets exactly those 100, in order, then the live ones, none twice.
func TestRecoverAfterTCPReset(t *testing.T) {
	channels, err := handler.NewChannels(handler.ChannelsConfig{}) // default rules: history on
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wsconn.New(wsconn.Config{Addr: "127.0.0.1:0", Routes: map[string]wsconn.Handler{"/ws": channels}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)
	url := "ws://" + srv.Addr().String() + "/ws"

	// dial connects and returns the client and its TCP connection.
	dial := func() (*websocket.Conn, *net.TCPConn) {
		var tcp *net.TCPConn
		client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				tcp = c.(*net.TCPConn)
			}
			return c, err
		}}}
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
		if err != nil {
			t.Fatal(err)
		}
		return c, tcp
	}
	type message struct {
		Op        string `json:"op"`
		Offset    uint64 `json:"offset"`
		Epoch     string `json:"epoch"`
		Recovered *bool  `json:"recovered"`
		Reason    string `json:"reason"`
		Data      int    `json:"data"`
	}
	read := func(c *websocket.Conn) message {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return m
	}
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := channels.Publish("room", json.RawMessage(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}

	c, tcp := dial()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	ack := read(c)
	if ack.Op != "ack" || ack.Epoch == "" {
		t.Fatalf("got %+v, want an ack with an epoch", ack)
	}
	publish(0, 1)
	last := read(c)
	if last.Offset != ack.Offset+1 || last.Data != 0 {
		t.Fatalf("got push %+v after ack %+v", last, ack)
	}
	if err := tcp.SetLinger(0); err != nil { // close sends a reset
		t.Fatal(err)
	}
	tcp.Close()
	c.CloseNow()
	publish(1, 101)

	c, _ = dial()
	defer c.CloseNow()
	sub := fmt.Sprintf(`{"op":"subscribe","channel":"room","id":2,"recover":{"offset":%d,"epoch":"%s"}}`, last.Offset, ack.Epoch)
	if err := c.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	if ack := read(c); ack.Recovered == nil || !*ack.Recovered || ack.Offset != last.Offset+100 {
		t.Fatalf("got %+v, want recovered at offset %d", ack, last.Offset+100)
	}
	for i := 1; i <= 100; i++ {
		if m := read(c); m.Offset != last.Offset+uint64(i) || m.Data != i {
			t.Fatalf("replayed push %d: got %+v, want offset %d data %d", i, m, last.Offset+uint64(i), i)
		}
	}
	publish(101, 106)
	for i := 101; i < 106; i++ {
		if m := read(c); m.Offset != last.Offset+uint64(i) || m.Data != i {
			t.Fatalf("live push %d: got %+v", i, m)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}
