package client

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// chunkConn is a net.Conn whose reads return data in chunks of the given
// sizes, as partial reads arrive, and whose writes go nowhere.
type chunkConn struct {
	data   []byte
	chunks []byte // sizes, cycled; 0 counts as 1
	i      int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.chunks) > 0 {
		n = max(1, int(c.chunks[c.i%len(c.chunks)]))
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *chunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRead feeds arbitrary bytes, split into arbitrary reads, as what a
// server sends after the handshake, with permessage-deflate negotiated or
// not (the first chunk size's low bit). The reader must not panic, must
// deliver no message over MaxMessageSize and no invalid UTF-8 text, and
// must end with a close event.
func FuzzRead(f *testing.F) {
	frame := func(op ws.OpCode, fin bool, p []byte) []byte {
		b, _ := ws.CompileFrame(ws.NewFrame(op, fin, p))
		return b
	}
	f.Add(frame(ws.OpText, true, []byte("hello")), []byte{1})
	f.Add(append(frame(ws.OpText, false, []byte("he")), append(frame(ws.OpPing, true, []byte("p")),
		frame(ws.OpContinuation, true, []byte("llo"))...)...), []byte{3, 1, 7})
	f.Add(frame(ws.OpClose, true, ws.NewCloseFrameBody(1008, "no")), []byte{2})
	f.Add(frame(ws.OpText, true, []byte{0xff, 0xfe}), []byte{1})
	f.Add(frame(ws.OpBinary, true, make([]byte, 300)), []byte{200})
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, []byte{4}) // a 4 GiB text frame announced
	f.Add([]byte{0x89, 126, 0, 200}, []byte{1})                              // a control frame over 125 bytes
	bomb, _ := wsflate.CompressFrame(ws.NewFrame(ws.OpText, true, make([]byte, 1<<20)))
	bombBytes, _ := ws.CompileFrame(bomb)
	f.Add(bombBytes, []byte{1, 9}) // odd first chunk: compression negotiated; 1 MiB of zeros in a few bytes
	small, _ := wsflate.CompressFrame(ws.NewFrame(ws.OpText, true, []byte("compressed hello")))
	smallBytes, _ := ws.CompileFrame(small)
	f.Add(smallBytes, []byte{3})
	f.Fuzz(func(t *testing.T, data, chunks []byte) {
		var got [][]byte
		c := newConn("ws://fuzz/", Options{MaxMessageSize: 256,
			OnMessage: func(_ *Conn, typ MessageType, p []byte) {
				if len(p) > 256 {
					t.Fatalf("a message of %d bytes, over MaxMessageSize", len(p))
				}
				if typ == Text && !utf8.Valid(p) {
					t.Fatalf("invalid UTF-8 text delivered: %q", p)
				}
				got = append(got, p)
			},
		})
		c.compressed.Store(len(chunks) > 0 && chunks[0]&1 == 1) // as if negotiated
		e := c.read(&chunkConn{data: data, chunks: chunks}, nil)
		if e.Code == 0 {
			t.Fatalf("close event without a code: %+v", e)
		}
		_ = got
	})
}

// TestInflateBomb: a compressed message that inflates past MaxMessageSize
// is not inflated further: the connection closes with 1009.
func TestInflateBomb(t *testing.T) {
	bomb, err := wsflate.CompressFrame(ws.NewFrame(ws.OpText, true, make([]byte, 64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ws.CompileFrame(bomb)
	c := newConn("ws://bomb/", Options{MaxMessageSize: 1 << 20})
	c.compressed.Store(true)
	if e := c.read(&chunkConn{data: b, chunks: []byte{200}}, nil); e.Code != 1009 {
		t.Fatalf("64 MiB in %d compressed bytes: got %+v, want 1009", len(b), e)
	}
}

// TestFrameInPlace checks the frames the sender writes against gobwas's
// reader at each header size's edges: the header, the mask, the payload.
func TestFrameInPlace(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpPing} {
			if op == ws.OpPing && n > 125 {
				continue
			}
			payload := bytes.Repeat([]byte{'x'}, n)
			buf := make([]byte, headroom+n)
			copy(buf[headroom:], payload)
			r := bytes.NewReader(frameInPlace(op, buf))
			h, err := ws.ReadHeader(r)
			if err != nil {
				t.Fatalf("%d bytes, op %v: %v", n, op, err)
			}
			if !h.Fin || h.OpCode != op || !h.Masked || h.Length != int64(n) || int64(r.Len()) != h.Length {
				t.Fatalf("%d bytes, op %v: header %+v, %d bytes after it", n, op, h, r.Len())
			}
			got := make([]byte, n)
			_, _ = io.ReadFull(r, got)
			ws.Cipher(got, h.Mask, 0)
			if !bytes.Equal(got, payload) {
				t.Fatalf("%d bytes, op %v: payload differs after unmasking", n, op)
			}
		}
	}
}
