package wsconn

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/inflatetest"
)

// dialOfferingDeflate connects coder/websocket to srv's /echo, offering
// permessage-deflate without context takeover; closed when the test ends.
func dialOfferingDeflate(t *testing.T, srv *Server) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv, "/echo"),
		&websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, resp
}

func TestDeflateEcho(t *testing.T) {
	srv := startServer(t, Config{Compression: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp := dialOfferingDeflate(t, srv)
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
	if got.Header.OpCode != ws.OpClose || StatusCode(uint16(got.Payload[0])<<8|uint16(got.Payload[1])) != StatusMessageTooBig {
		t.Fatalf("got %v %q, want close 1009", got.Header.OpCode, got.Payload)
	}
}

func TestDeflateNotOfferedWhenOff(t *testing.T) {
	_, resp := dialOfferingDeflate(t, startServer(t, Config{}))
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("extension answer %q, want none with Compression off", ext)
	}
}

// TestDeflateFraming checks RFC 7692 section 6's framing rules on a
// connection that negotiated permessage-deflate.
// compress is p compressed as permessage-deflate sends it (RFC 7692
// section 7.2.1: flushed, without the final 0x00 0x00 0xff 0xff).
func compress(p []byte) []byte {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestSpeed)
	_, _ = fw.Write(p)
	_ = fw.Flush()
	return bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// rsvFrame is a masked client frame with the given RSV1 and RSV2 bits.
func rsvFrame(op ws.OpCode, fin, rsv1, rsv2 bool, p []byte) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), p...))
	f.Header.Rsv = ws.Rsv(rsv1, rsv2, false)
	f = ws.MaskFrameInPlace(f)
	b, _ := ws.CompileFrame(f)
	return b
}

// inflate is the payload of a server frame, decompressed if RSV1 is set.
func inflate(t testing.TB, f ws.Frame) []byte {
	t.Helper()
	if !f.Header.Rsv1() {
		return f.Payload
	}
	p, err := io.ReadAll(flate.NewReader(bytes.NewReader(append(f.Payload, 0, 0, 0xff, 0xff))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("inflate: %v", err)
	}
	return p
}

func TestDeflateFraming(t *testing.T) {
	frame := rsvFrame
	msg := bytes.Repeat([]byte("fragments of one compressed message "), 20)
	z := compress(msg)
	tests := []struct {
		name   string
		frames [][]byte
		echo   []byte     // want this echoed (decompressed on our side)
		code   StatusCode // or this close code
	}{
		{"compressed in one frame", [][]byte{frame(ws.OpText, true, true, false, z)}, msg, 0},
		{"compressed in three fragments", [][]byte{
			frame(ws.OpText, false, true, false, z[:10]),
			frame(ws.OpContinuation, false, false, false, z[10:20]),
			frame(ws.OpContinuation, true, false, false, z[20:]),
		}, msg, 0},
		{"uncompressed message still fine", [][]byte{frame(ws.OpText, true, false, false, []byte("plain"))}, []byte("plain"), 0},
		{"RSV1 on a continuation", [][]byte{
			frame(ws.OpText, false, true, false, z[:10]),
			frame(ws.OpContinuation, true, true, false, z[10:]),
		}, nil, StatusProtocolError},
		{"RSV1 on a ping", [][]byte{frame(ws.OpPing, true, true, false, nil)}, nil, StatusProtocolError},
		{"RSV2 is still reserved", [][]byte{frame(ws.OpText, true, false, true, []byte("x"))}, nil, StatusProtocolError},
		{"not deflate data", [][]byte{frame(ws.OpBinary, true, true, false, []byte{0xff, 0xff, 0xff})}, nil, StatusInvalidFramePayloadData},
		{"compressed invalid UTF-8", [][]byte{frame(ws.OpText, true, true, false, compress([]byte{0xc3, 0x28}))}, nil, StatusInvalidFramePayloadData},
	}
	srv := startServer(t, Config{Compression: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialWS(t, srv, "/echo", "Sec-WebSocket-Extensions: permessage-deflate")
			for _, f := range tt.frames {
				c.write(f)
			}
			_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := invReadFrame(t, c.br)
			if tt.code != 0 {
				if got.Header.OpCode != ws.OpClose || len(got.Payload) < 2 ||
					StatusCode(uint16(got.Payload[0])<<8|uint16(got.Payload[1])) != tt.code {
					t.Fatalf("got %v %q, want close %d", got.Header.OpCode, got.Payload, tt.code)
				}
				return
			}
			if payload := inflate(t, got); !bytes.Equal(payload, tt.echo) {
				t.Fatalf("echo %q, want %q", payload, tt.echo)
			}
		})
	}
}

// TestBroadcastCompressedOnce: a prepared message sent to several
// connections that negotiated compression is compressed once per variant:
// those with the full window all get the same bytes (DeflatedFrame), those
// that asked for a small window (server_max_window_bits=9) all get the
// Huffman-only bytes, and sending it to more of either allocates nothing
// (compressing would take a flate writer and an output buffer).
func TestBroadcastCompressedOnce(t *testing.T) {
	srv := startServer(t, Config{Compression: true, Routes: map[string]Handler{"/nop": nopHandler{}}})
	pm := NewPreparedMessage(Text, bytes.Repeat([]byte("the same news for everyone. "), 100))
	groups := []struct {
		name    string
		offer   string
		huffman bool // want stDeflateHuffman
		frame   func() []byte
	}{
		{"full window", "permessage-deflate; client_no_context_takeover", false, pm.DeflatedFrame},
		{"window 9", "permessage-deflate; client_no_context_takeover; server_max_window_bits=9", true, pm.HuffmanOnlyFrame},
	}
	const n = 4 // connections per group
	clients := make([][]*rawClient, len(groups))
	for g, gr := range groups {
		for range n {
			clients[g] = append(clients[g], dialWS(t, srv, "/nop", "Sec-WebSocket-Extensions: "+gr.offer))
		}
	}
	var conns []*conn
	perGroup := make([]int, len(groups))
	srv.table.each(func(c *conn) {
		if s := c.state.Load(); s&stDeflate != 0 {
			conns = append(conns, c)
			if s&stDeflateHuffman != 0 {
				perGroup[1]++
			} else {
				perGroup[0]++
			}
		}
	})
	for g, gr := range groups {
		if perGroup[g] != n {
			t.Fatalf("%s: got %d connections that negotiated it, want %d", gr.name, perGroup[g], n)
		}
	}
	for _, c := range conns {
		if err := c.SendPrepared(pm); err != nil {
			t.Fatal(err)
		}
	}
	for g, gr := range groups {
		want := gr.frame()
		if want == nil || want[0]&0x40 == 0 {
			t.Fatalf("%s: got no compressed frame (RSV1) for a 2,800-byte repetitive message, want one", gr.name)
		}
		for i, c := range clients[g] {
			got := make([]byte, len(want))
			_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
			if _, err := io.ReadFull(c.br, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s, client %d: got %x (%v), want the shared compressed frame %x", gr.name, i, got, err, want)
			}
		}
	}
	if bytes.Equal(groups[0].frame(), groups[1].frame()) {
		t.Fatalf("got the same frame for both windows, want the Huffman-only variant for window 9")
	}
	allocs := testing.AllocsPerRun(20, func() {
		for _, c := range conns {
			_ = c.SendPrepared(pm)
		}
	})
	if allocs != 0 {
		t.Fatalf("got %v allocations sending a compressed broadcast to %d more connections (%d per variant), want 0 (compressed once per variant)", allocs, len(conns), n)
	}
}

// TestDeflateWindowPython: Python's websockets asks for server windows of
// 8, 9 and 15, as Autobahn 13.3 to 13.6 do, takes the answer, and reads
// back compressed echoes of messages that repeat themselves up to 20,000
// bytes back (testdata/interop/python/deflate_window.py). Its zlib is told
// the window but does not enforce it within one message:
// TestConformanceCompressionWindow checks that with a strict decoder.
func TestDeflateWindowPython(t *testing.T) {
	if why := interopPythonMissing(); why != "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("%s; CI is set, so this is a failure: run scripts/deps.sh", why)
		}
		t.Skipf("%s: run scripts/deps.sh", why)
	}
	srv := startServer(t, Config{Compression: true})
	for _, bits := range []int{8, 9, 15} {
		t.Run(fmt.Sprintf("server_max_window_bits=%d", bits), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
			defer cancel()
			argv := []string{interopPython, interopPythonDir + "/deflate_window.py", wsURL(srv, "/echo"), strconv.Itoa(bits)}
			if err := interopRunScript(ctx, t, argv); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// deflateVariants are PreparedMessage's compressed frames and the farthest
// back-reference each may hold: 32 KiB (server_max_window_bits=15, or
// none offered) and none at all (Huffman-only, for smaller windows).
var deflateVariants = []struct {
	name    string
	frame   func(*PreparedMessage) []byte
	maxDist int
}{
	{"DeflatedFrame", (*PreparedMessage).DeflatedFrame, 1 << 15},
	{"HuffmanOnlyFrame", (*PreparedMessage).HuffmanOnlyFrame, 0},
}

func TestDeflatedFrame(t *testing.T) {
	data := bytes.Repeat([]byte("a broadcast compressed once; "), 200)
	for _, v := range deflateVariants {
		t.Run(v.name, func(t *testing.T) {
			m := NewPreparedMessage(Text, data)
			d := v.frame(m)
			if d == nil || len(d) >= len(m.Frame()) {
				t.Fatalf("got a compressed frame of %d bytes for a %d-byte frame, want a smaller one", len(d), len(m.Frame()))
			}
			if again := v.frame(m); &again[0] != &d[0] {
				t.Fatal("got two compressions of one message, want the same bytes for every recipient")
			}
			h, err := ws.ReadHeader(bytes.NewReader(d))
			if err != nil || !h.Fin || !h.Rsv1() || h.OpCode != ws.OpText || h.Masked {
				t.Fatalf("got header %+v, %v; want a final unmasked text frame with RSV1", h, err)
			}
			payload := d[len(d)-int(h.Length):]
			r := flate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
			got, _ := io.ReadAll(r) // the stream has no final block: ReadAll ends with ErrUnexpectedEOF
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes inflated by compress/flate, want the %d-byte message", len(got), len(data))
			}
			res, err := inflatetest.Inflate(payload)
			if err != nil || !bytes.Equal(res.Out, data) {
				t.Fatalf("got %d bytes inflated alone, %v; want the %d-byte message", len(res.Out), err, len(data))
			}
			if res.MaxDistance > v.maxDist {
				t.Fatalf("got a back-reference %d bytes back, want at most %d", res.MaxDistance, v.maxDist)
			}
			if v.maxDist > 0 && res.Matches == 0 {
				t.Fatalf("got no back-reference in a repetitive message: not LZ77")
			}
			for _, small := range [][]byte{[]byte("hi"), bytes.Repeat([]byte{'x'}, MinDeflateSize-1)} {
				if v.frame(NewPreparedMessage(Binary, small)) != nil {
					t.Errorf("got a %d-byte message compressed, want it sent plain", len(small))
				}
			}
			random := make([]byte, 4096)
			for i := range random {
				random[i] = byte(i*7919 + i*i*31)
			}
			if f := v.frame(NewPreparedMessage(Binary, random)); f != nil && len(f) >= len(random) {
				t.Errorf("got a %d-byte compressed frame for a %d-byte incompressible message, want none", len(f), len(random))
			}
			if f := v.frame(NewPreparedMessage(MessageType(ws.OpPing), data)); f != nil {
				t.Errorf("got a compressed frame for an invalid message, want none")
			}
		})
	}
}

// TestDeflateVariantsApart: the two variants of one message are built
// apart, each once: asking for one does not build or change the other.
func TestDeflateVariantsApart(t *testing.T) {
	m := NewPreparedMessage(Binary, bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 1000))
	huff := m.HuffmanOnlyFrame()
	if m.deflated != nil {
		t.Fatalf("got the full variant built by HuffmanOnlyFrame, want it built only when asked for")
	}
	full := m.DeflatedFrame()
	if huff == nil || full == nil || bytes.Equal(huff, full) {
		t.Fatalf("got variants of %d and %d bytes (equal: %v), want two different compressed frames", len(huff), len(full), bytes.Equal(huff, full))
	}
	if again := m.HuffmanOnlyFrame(); &again[0] != &huff[0] {
		t.Fatalf("got HuffmanOnlyFrame compressed again after DeflatedFrame, want the same bytes")
	}
}
