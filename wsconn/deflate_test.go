package wsconn

import (
	"bytes"
	"compress/flate"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

func TestDeflateEcho(t *testing.T) {
	srv := startServer(t, Config{Compression: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv, "/echo"),
		&websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if !strings.Contains(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") {
		t.Fatalf("extension answer %q, want permessage-deflate with no context takeover", ext)
	}
	c.SetReadLimit(4 << 20)
	before := srv.Stats().BytesOut
	for _, msg := range [][]byte{
		[]byte("short"), // below MinDeflateSize: sent plain
		bytes.Repeat([]byte("wsgate compresses. "), 10000), // 190 KB of text
		bytes.Repeat([]byte{0, 1, 2, 3}, 1<<18),            // 1 MiB of binary
	} {
		typ := websocket.MessageText
		if msg[0] == 0 {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: got %d bytes %v, %v", len(msg), len(got), gotTyp, err)
		}
	}
	if sent := srv.Stats().BytesOut - before; sent > 100<<10 {
		t.Fatalf("the server sent %d bytes for ~1.2 MB of repetitive data: not compressed", sent)
	}
}

// TestDeflateBomb: a small compressed message that inflates past
// MaxMessageSize is refused with 1009, having cost at most the limit.
func TestDeflateBomb(t *testing.T) {
	srv := startServer(t, Config{Compression: true, MaxMessageSize: 64 << 10})
	c := dialWS(t, srv, "/echo", "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover")
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	_, _ = fw.Write(make([]byte, 8<<20)) // 8 MiB of zeros
	_ = fw.Flush()
	payload := bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
	f := ws.NewFrame(ws.OpBinary, true, payload)
	f.Header.Rsv = ws.Rsv(true, false, false)
	f = ws.MaskFrameInPlace(f)
	b, _ := ws.CompileFrame(f)
	t.Logf("bomb: %d compressed bytes for 8 MiB", len(payload))
	c.write(b)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := invReadFrame(t, c.br)
	if got.Header.OpCode != ws.OpClose || ws.StatusCode(uint16(got.Payload[0])<<8|uint16(got.Payload[1])) != ws.StatusMessageTooBig {
		t.Fatalf("got %v %q, want close 1009", got.Header.OpCode, got.Payload)
	}
}

func TestDeflateNotOfferedWhenOff(t *testing.T) {
	srv := startServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv, "/echo"),
		&websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("extension answer %q, want none with Compression off", ext)
	}
}
