package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/wsproto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// startServer serves the baseline's routes on an httptest.Server; cleanup
// closes the listener and every WebSocket connection and waits for their
// goroutines.
func startServer(t *testing.T) (*server, string) {
	t.Helper()
	s := newServer()
	ts := httptest.NewServer(s.routes())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.closeAll(ctx); err != nil {
			t.Errorf("closeAll: %v", err)
		}
	})
	return s, "ws" + strings.TrimPrefix(ts.URL, "http")
}

// dial opens a client connection to url, closed at cleanup.
func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("failed to dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(t *testing.T, c *websocket.Conn, typ int, msg string) {
	t.Helper()
	if err := c.WriteMessage(typ, []byte(msg)); err != nil {
		t.Fatalf("failed to send %q: %v", msg, err)
	}
}

// expect reads one message and checks its type and bytes.
func expect(t *testing.T, c *websocket.Conn, wantType int, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("failed to read, want %q: %v", want, err)
	}
	if typ != wantType || string(got) != want {
		t.Fatalf("got message type %d %q, want type %d %q", typ, got, wantType, want)
	}
}

func TestEcho(t *testing.T) {
	_, url := startServer(t)
	c := dial(t, url+"/echo")
	tests := []struct {
		name string
		typ  int
		msg  string
	}{
		{name: "text", typ: websocket.TextMessage, msg: "hello, wsgate"},
		{name: "binary", typ: websocket.BinaryMessage, msg: "\x00\xff\x01binary"},
		{name: "empty text", typ: websocket.TextMessage, msg: ""},
		{name: "64 KiB binary", typ: websocket.BinaryMessage, msg: strings.Repeat("x", 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, c, tt.typ, tt.msg)
			expect(t, c, tt.typ, tt.msg)
		})
	}
}

func TestEchoTooBigIs1009(t *testing.T) {
	_, url := startServer(t)
	c := dial(t, url+"/echo")
	send(t, c, websocket.BinaryMessage, strings.Repeat("x", maxMessageSize+1))
	expectClose(t, c, websocket.CloseMessageTooBig)
}

func TestChannelsBetweenTwoClients(t *testing.T) {
	_, url := startServer(t)
	sub, pub := dial(t, url+"/ws"), dial(t, url+"/ws")

	send(t, sub, websocket.TextMessage, `{"op":"subscribe","channel":"news","id":"s1"}`)
	expect(t, sub, websocket.TextMessage, `{"op":"ack","id":"s1"}`)

	send(t, pub, websocket.TextMessage, `{"op":"publish","channel":"news","data":{"title":"hi"},"id":7}`)
	expect(t, pub, websocket.TextMessage, `{"op":"ack","id":7,"delivered":1}`)
	expect(t, sub, websocket.TextMessage, `{"channel":"news","data":{"title":"hi"}}`)

	send(t, sub, websocket.TextMessage, `{"op":"unsubscribe","channel":"news","id":"s2"}`)
	expect(t, sub, websocket.TextMessage, `{"op":"ack","id":"s2"}`)
	send(t, pub, websocket.TextMessage, `{"op":"publish","channel":"news","data":1,"id":8}`)
	expect(t, pub, websocket.TextMessage, `{"op":"ack","id":8,"delivered":0}`)
}

// TestChannelsErrors checks a few error replies byte for byte; the texts
// are wsgate's (internal/wsproto).
func TestChannelsErrors(t *testing.T) {
	_, url := startServer(t)
	c := dial(t, url+"/ws")
	tests := []struct {
		name string
		typ  int
		in   string
		want string
	}{
		{
			name: "bad JSON",
			typ:  websocket.TextMessage,
			in:   `{"op":"subscribe",`,
			want: `{"op":"error","code":"bad_json","message":"` + wsproto.ErrorMessage(wsproto.CodeBadJSON) + `"}`,
		},
		{
			name: "wrong field type keeps id",
			typ:  websocket.TextMessage,
			in:   `{"op":1,"channel":"news","id":"k"}`,
			want: `{"op":"error","id":"k","code":"bad_json","message":"` + wsproto.ErrorMessage(wsproto.CodeBadJSON) + `"}`,
		},
		{
			name: "binary",
			typ:  websocket.BinaryMessage,
			in:   `{"op":"subscribe","channel":"news"}`,
			want: `{"op":"error","code":"binary_not_supported","message":"` + wsproto.ErrorMessage(wsproto.CodeBinaryNotSupported) + `"}`,
		},
		{
			name: "unknown op",
			typ:  websocket.TextMessage,
			in:   `{"op":"shout","channel":"news","id":1}`,
			want: `{"op":"error","id":1,"code":"unknown_op","message":"` + wsproto.ErrorMessage(wsproto.CodeUnknownOp) + `"}`,
		},
		{
			name: "bad channel",
			typ:  websocket.TextMessage,
			in:   `{"op":"subscribe","channel":"a b","id":2}`,
			want: `{"op":"error","id":2,"code":"bad_channel","message":"` + wsproto.ErrorMessage(wsproto.CodeBadChannel) + `"}`,
		},
		{
			name: "not subscribed",
			typ:  websocket.TextMessage,
			in:   `{"op":"unsubscribe","channel":"news","id":3}`,
			want: `{"op":"error","id":3,"code":"not_subscribed","message":"` + wsproto.ErrorMessage(wsproto.CodeNotSubscribed) + `"}`,
		},
		{
			name: "publish without data",
			typ:  websocket.TextMessage,
			in:   `{"op":"publish","channel":"news","id":4}`,
			want: `{"op":"error","id":4,"code":"bad_json","message":"` + wsproto.ErrorMessage(wsproto.CodeBadJSON) + `"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, c, tt.typ, tt.in)
			expect(t, c, websocket.TextMessage, tt.want)
		})
	}
	// Errors never close the connection.
	send(t, c, websocket.TextMessage, `{"op":"subscribe","channel":"news","id":5}`)
	expect(t, c, websocket.TextMessage, `{"op":"ack","id":5}`)
}

func TestShutdownSendsGoingAway(t *testing.T) {
	s, url := startServer(t)
	c := dial(t, url+"/ws")
	send(t, c, websocket.TextMessage, `{"op":"subscribe","channel":"news","id":1}`)
	expect(t, c, websocket.TextMessage, `{"op":"ack","id":1}`)

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- s.closeAll(ctx)
	}()
	expectClose(t, c, websocket.CloseGoingAway)
	// gorilla's client answered the close frame while reading it.
	if err := <-closed; err != nil {
		t.Errorf("got closeAll error %v, want nil", err)
	}
	s.hub.mu.RLock()
	n := len(s.hub.channels)
	s.hub.mu.RUnlock()
	if n != 0 {
		t.Errorf("got %d channels after shutdown, want 0", n)
	}
}

// TestFullQueueIsSlowConsumer fills a client's queue without a writer
// draining it: the next message is refused and the client is told to close
// with 1008.
func TestFullQueueIsSlowConsumer(t *testing.T) {
	c := newClient(nil)
	for i := range sendQueueMessages {
		if !c.trySend(outbound{typ: websocket.TextMessage}) {
			t.Fatalf("message %d refused, want queued", i)
		}
	}
	if c.trySend(outbound{typ: websocket.TextMessage}) {
		t.Fatal("got message queued past the bound, want refused")
	}
	select {
	case <-c.quit:
	default:
		t.Fatal("client not closing after a full queue")
	}
	if c.closeCode != websocket.ClosePolicyViolation || c.closeText != "slow consumer" {
		t.Errorf("got close %d %q, want 1008 \"slow consumer\"", c.closeCode, c.closeText)
	}
}

// expectClose reads until the server's close frame and checks its code.
func expectClose(t *testing.T, c *websocket.Conn, code int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("got %v, want close code %d", err, code)
		}
		return
	}
}
