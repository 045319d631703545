package wsconn

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/inflatetest"
)

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
