package wsconn

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wsgate/wsgate/internal/inflatetest"
)

// inflateModel is what the server must make of a compressed message with
// this payload: the message, or the close code (1009 past limit, checked
// before a decoding error, as the server reads; 1007 for bad data or bad
// UTF-8 in text).
func inflateModel(payload []byte, text bool, limit int64) ([]byte, StatusCode) {
	r := wsflate.NewReader(bytes.NewReader(payload), func(r io.Reader) wsflate.Decompressor { return flate.NewReader(r) })
	defer r.Close()
	var out []byte
	var chunk [4096]byte
	for {
		n, err := r.Read(chunk[:])
		if int64(len(out)+n) > limit {
			return nil, StatusMessageTooBig
		}
		out = append(out, chunk[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, StatusInvalidFramePayloadData
		}
	}
	if text && !utf8.Valid(out) {
		return nil, StatusInvalidFramePayloadData
	}
	return out, 0
}

// FuzzReadDeflate feeds arbitrary compressed payloads, in one RSV1 frame
// cut into arbitrary reads, to a connection that negotiated
// permessage-deflate, with the full window or (window9) with
// server_max_window_bits=9. The server must echo exactly what inflating
// gives (compressed again if long enough, within the window), or close
// with the code the model says: never a panic, never more than
// MaxMessageSize inflated.
func FuzzReadDeflate(f *testing.F) {
	for _, seed := range [][]byte{
		compress([]byte("hello")),
		compress(bytes.Repeat([]byte("wsgate "), 100)),
		compress(bytes.Repeat([]byte{0}, 8192)), // inflates past the limit
		compress([]byte{0xc3, 0x28}),            // invalid UTF-8
		{0xff, 0xff, 0xff},                      // not deflate data
		{},
	} {
		f.Add(seed, true, uint64(0), false)
		f.Add(seed, false, uint64(7), true)
	}
	cfg := fuzzFrameConfig()
	cfg.Compression = true
	srv := startServer(f, cfg)
	reqs := map[bool][]byte{
		false: []byte(upgradeRequest("/echo", testKey, "Sec-WebSocket-Extensions: permessage-deflate")),
		true:  []byte(upgradeRequest("/echo", testKey, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9")),
	}
	f.Fuzz(func(t *testing.T, payload []byte, text bool, split uint64, window9 bool) {
		op := ws.OpBinary
		if text {
			op = ws.OpText
		}
		var want []byte
		code := StatusCode(0)
		if int64(len(payload)) > cfg.MaxFrameSize {
			code = StatusMessageTooBig // refused on the header, before anything is inflated
		} else {
			want, code = inflateModel(payload, text, cfg.MaxMessageSize)
		}
		c := pairClient(t, srv)
		c.write(reqs[window9])
		if resp := c.readResponse(); resp.StatusCode != http.StatusSwitchingProtocols ||
			resp.Header.Get("Sec-WebSocket-Extensions") == "" {
			t.Fatalf("handshake: got %d %q, want 101 with permessage-deflate", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
		}
		wait := c.feed(chunksOf(rsvFrame(op, true, true, false, payload), split), true)
		got := invReadFrame(t, c.br)
		switch {
		case code != 0:
			if got.Header.OpCode != ws.OpClose || len(got.Payload) < 2 ||
				StatusCode(uint16(got.Payload[0])<<8|uint16(got.Payload[1])) != code {
				t.Fatalf("got %v %q, want close %d", got.Header.OpCode, got.Payload, code)
			}
		case got.Header.OpCode != op || !bytes.Equal(inflate(t, got), want):
			t.Fatalf("got %v %q, want the %v echo %q", got.Header.OpCode, inflate(t, got), op, want)
		case got.Header.Rsv1():
			window := 1 << 15
			if window9 {
				window = 1 << 9
			}
			if res, err := inflatetest.Inflate(got.Payload); err != nil || !bytes.Equal(res.Out, want) || res.MaxDistance > window {
				t.Fatalf("got echo inflating alone to %d bytes, farthest back-reference %d, %v; want the %d bytes within %d",
					len(res.Out), res.MaxDistance, err, len(want), window)
			}
		}
		_ = wait()
		_ = c.conn.Close()
		if !poll(ioTimeout, func() bool { return srv.Conns() == 0 }) {
			t.Fatalf("server kept the connection open after the client closed it")
		}
		if n := srv.Stats().InternalErrors; n != 0 {
			t.Fatalf("server recovered %d internal panics", n)
		}
	})
}
