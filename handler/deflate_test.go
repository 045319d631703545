package handler

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

func TestDeflatedFrame(t *testing.T) {
	data := bytes.Repeat([]byte("a broadcast compressed once; "), 200)
	m := NewPreparedMessage(Text, data)
	d := m.DeflatedFrame()
	if d == nil || len(d) >= len(m.Frame()) {
		t.Fatalf("deflated frame of %d bytes for a %d-byte frame, want a smaller one", len(d), len(m.Frame()))
	}
	if again := m.DeflatedFrame(); &again[0] != &d[0] {
		t.Fatal("DeflatedFrame compressed twice: want the same bytes for every recipient")
	}
	h, err := ws.ReadHeader(bytes.NewReader(d))
	if err != nil || !h.Fin || !h.Rsv1() || h.OpCode != ws.OpText || h.Masked {
		t.Fatalf("header %+v, %v: want a final unmasked text frame with RSV1", h, err)
	}
	payload := d[len(d)-int(h.Length):]
	r := flate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	got, _ := io.ReadAll(r) // the stream has no final block: ReadAll ends with ErrUnexpectedEOF
	if !bytes.Equal(got, data) {
		t.Fatalf("inflated %d bytes, want the %d-byte message", len(got), len(data))
	}
	for _, small := range [][]byte{[]byte("hi"), bytes.Repeat([]byte{'x'}, MinDeflateSize-1)} {
		if NewPreparedMessage(Binary, small).DeflatedFrame() != nil {
			t.Errorf("a %d-byte message was compressed, want it sent plain", len(small))
		}
	}
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(i*7919 + i*i*31)
	}
	if f := NewPreparedMessage(Binary, random).DeflatedFrame(); f != nil && len(f) >= len(random) {
		t.Errorf("an incompressible message got a bigger compressed frame")
	}
}
