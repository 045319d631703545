package wsconn

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// frameCase is one exchange with the echo server: the frames a client
// sends and what the server must answer. The same table drives
// TestFrames (whole, pipelined and partial reads) and seeds FuzzReadFrame.
type frameCase struct {
	name   string
	frames []cframe
	want   []sframe   // frames the server sends back, in order
	code   StatusCode // the close code that follows want, or 0: the connection stays open
	// failFast: the frames end in the middle of a message, so only a
	// server that rejects it before the end can answer within a second.
	failFast bool
}

const mib = 1 << 20 // DefaultMaxMessageSize

// pattern returns n bytes of a repeating non-trivial pattern.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// frameCases is the table, built once: it holds a few megabytes.
var frameCases = sync.OnceValue(func() []frameCase {
	const euro = "\u20ac"      // 3 bytes: e2 82 ac
	const smile = "\U0001f600" // 4 bytes: f0 9f 98 80
	cases := []frameCase{
		// Payload lengths and their encodings (RFC 6455 section 5.2).
		{name: "text 0 bytes", frames: []cframe{textFrame("")}, want: []sframe{textEcho("")}},
		{name: "text 1 byte", frames: []cframe{textFrame("a")}, want: []sframe{textEcho("a")}},
		{name: "text 125 bytes", frames: []cframe{textFrame(strings.Repeat("x", 125))}, want: []sframe{textEcho(strings.Repeat("x", 125))}},
		{name: "binary 126 bytes 16-bit length", frames: []cframe{binFrame(pattern(126))}, want: []sframe{binEcho(pattern(126))}},
		{name: "binary 127 bytes", frames: []cframe{binFrame(pattern(127))}, want: []sframe{binEcho(pattern(127))}},
		{name: "binary 65535 bytes", frames: []cframe{binFrame(pattern(65535))}, want: []sframe{binEcho(pattern(65535))}},
		{name: "binary 65536 bytes 64-bit length", frames: []cframe{binFrame(pattern(65536))}, want: []sframe{binEcho(pattern(65536))}},
		{name: "binary 1 MiB, the largest message", frames: []cframe{binFrame(pattern(mib))}, want: []sframe{binEcho(pattern(mib))}},
		{name: "binary 1 MiB+1 is too big", frames: []cframe{binFrame(pattern(mib + 1))}, code: StatusMessageTooBig},
		{name: "fragments adding up to 1 MiB+1 are too big",
			frames: []cframe{binFrame(pattern(mib / 2)).notFinal(), contFrame(string(pattern(mib/2 + 1)))}, code: StatusMessageTooBig},
		{name: "64-bit length of 5 bytes is legal", frames: []cframe{{op: ws.OpText, len64: true, payload: []byte("hello")}}, want: []sframe{textEcho("hello")}},
		{name: "16-bit length of 3 bytes is legal", frames: []cframe{{op: ws.OpBinary, len16: true, payload: []byte{1, 2, 3}}}, want: []sframe{binEcho([]byte{1, 2, 3})}},
		{name: "64-bit length with MSB set", frames: []cframe{{raw: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}}}, code: StatusProtocolError},
		{name: "64-bit length of 2^62", frames: []cframe{{op: ws.OpBinary, len64: true, declare: 1 << 62}}, code: StatusMessageTooBig},

		// Fragmentation (section 5.4), with control frames in between.
		{name: "text in 2 fragments", frames: []cframe{textFrame("Hello, ").notFinal(), contFrame("World")}, want: []sframe{textEcho("Hello, World")}},
		{name: "binary in 10 fragments", frames: manyFragments(ws.OpBinary, pattern(1000), 10), want: []sframe{binEcho(pattern(1000))}},
		{name: "text in 300 fragments", frames: manyFragments(ws.OpText, []byte(strings.Repeat("abc", 100)), 300), want: []sframe{textEcho(strings.Repeat("abc", 100))}},
		{name: "zero-length first, middle and last fragments",
			frames: []cframe{textFrame("").notFinal(), contFrame("ab").notFinal(), contFrame("").notFinal(), contFrame("cd").notFinal(), contFrame("")},
			want:   []sframe{textEcho("abcd")}},
		{name: "all fragments empty", frames: []cframe{binFrame(nil).notFinal(), contFrame("").notFinal(), contFrame("")}, want: []sframe{binEcho([]byte{})}},
		{name: "pings between fragments are answered first",
			frames: []cframe{textFrame("Hel").notFinal(), pingFrame("p1"), contFrame("lo ").notFinal(), pingFrame(""), pingFrame("p3"), contFrame("World")},
			want:   []sframe{pongOf("p1"), pongOf(""), pongOf("p3"), textEcho("Hello World")}},
		{name: "pong between fragments is ignored",
			frames: []cframe{binFrame([]byte{1}).notFinal(), pongFrame("x"), contFrame("\x02")}, want: []sframe{binEcho([]byte{1, 2})}},
		{name: "continuation without a start", frames: []cframe{contFrame("x")}, code: StatusProtocolError},
		{name: "final continuation without a start", frames: []cframe{textFrame("a"), contFrame("x")}, want: []sframe{textEcho("a")}, code: StatusProtocolError},
		{name: "text while a fragmented message is open", frames: []cframe{textFrame("a").notFinal(), textFrame("b")}, code: StatusProtocolError},
		{name: "binary while a fragmented text is open", frames: []cframe{textFrame("a").notFinal(), binFrame([]byte("b")).notFinal()}, code: StatusProtocolError},

		// Header checks (section 5.2, 5.5).
		{name: "RSV1 set", frames: []cframe{{op: ws.OpText, rsv: 4, payload: []byte("x")}}, code: StatusProtocolError},
		{name: "RSV2 set", frames: []cframe{{op: ws.OpText, rsv: 2, payload: []byte("x")}}, code: StatusProtocolError},
		{name: "RSV3 set", frames: []cframe{{op: ws.OpBinary, rsv: 1, payload: []byte("x")}}, code: StatusProtocolError},
		{name: "RSV on a ping", frames: []cframe{{op: ws.OpPing, rsv: 4}}, code: StatusProtocolError},
		{name: "unmasked frame", frames: []cframe{{op: ws.OpText, unmasked: true, payload: []byte("x")}}, code: StatusProtocolError},
		{name: "unmasked empty ping", frames: []cframe{{op: ws.OpPing, unmasked: true}}, code: StatusProtocolError},
		{name: "ping of 126 bytes", frames: []cframe{pingFrame(strings.Repeat("p", 126))}, code: StatusProtocolError},
		{name: "close of 126 bytes", frames: []cframe{closeWith(StatusNormalClosure, strings.Repeat("r", 124))}, code: StatusProtocolError},
		{name: "fragmented ping", frames: []cframe{pingFrame("a").notFinal()}, code: StatusProtocolError},
		{name: "fragmented pong", frames: []cframe{pongFrame("a").notFinal()}, code: StatusProtocolError},

		// UTF-8 (section 8.1): text is checked as it arrives.
		{name: "invalid UTF-8 in a text frame", frames: []cframe{textFrame("ab\xffcd")}, code: StatusInvalidFramePayloadData},
		{name: "overlong in a text frame", frames: []cframe{textFrame("\xc0\xaf")}, code: StatusInvalidFramePayloadData},
		{name: "surrogate in a text frame", frames: []cframe{textFrame("\xed\xa0\x80")}, code: StatusInvalidFramePayloadData},
		{name: "invalid UTF-8 split across fragments",
			frames: []cframe{textFrame("ok\xe2\x82").notFinal(), contFrame("\x28 no")}, code: StatusInvalidFramePayloadData},
		{name: "invalid first fragment fails before the message ends",
			frames: []cframe{textFrame("ok\xff").notFinal()}, code: StatusInvalidFramePayloadData, failFast: true},
		{name: "impossible lead at the end of a first fragment fails before the message ends",
			frames: []cframe{textFrame("ok\xf5").notFinal()}, code: StatusInvalidFramePayloadData, failFast: true},
		{name: "invalid start of a truncated frame fails before the frame ends",
			frames: []cframe{{op: ws.OpText, declare: 100, payload: []byte("ab\xed\xa0")}}, code: StatusInvalidFramePayloadData, failFast: true},
		{name: "invalid UTF-8 after a ping in an open message",
			frames: []cframe{textFrame("a").notFinal(), pingFrame("x"), contFrame("\xc1").notFinal()},
			want:   []sframe{pongOf("x")}, code: StatusInvalidFramePayloadData, failFast: true},
		{name: "text message ends inside a character", frames: []cframe{textFrame("ok" + euro[:2])}, code: StatusInvalidFramePayloadData},
		{name: "fragmented text ends inside a character",
			frames: []cframe{textFrame("ok" + smile[:2]).notFinal(), contFrame(smile[2:3])}, code: StatusInvalidFramePayloadData},
		{name: "binary with invalid UTF-8 is fine", frames: []cframe{binFrame([]byte("\xff\xfe\xc0\xaf"))}, want: []sframe{binEcho([]byte("\xff\xfe\xc0\xaf"))}},
		{name: "4-byte character byte by byte in 4 fragments",
			frames: []cframe{textFrame("<" + smile[:1]).notFinal(), contFrame(smile[1:2]).notFinal(), contFrame(smile[2:3]).notFinal(), contFrame(smile[3:] + ">")},
			want:   []sframe{textEcho("<" + smile + ">")}},

		// Control frames (section 5.5).
		{name: "ping 0 bytes", frames: []cframe{pingFrame("")}, want: []sframe{pongOf("")}},
		{name: "ping 125 bytes", frames: []cframe{pingFrame(strings.Repeat("q", 125))}, want: []sframe{pongOf(strings.Repeat("q", 125))}},
		{name: "ping with binary payload", frames: []cframe{{op: ws.OpPing, payload: []byte{0, 0xff, 0x80}}}, want: []sframe{{ws.OpPong, []byte{0, 0xff, 0x80}}}},
		{name: "unsolicited pong is ignored", frames: []cframe{pongFrame("hi"), pongFrame("")}},
		{name: "messages and pings in order",
			frames: []cframe{textFrame("1"), pingFrame("a"), binFrame([]byte("2")), pingFrame("b"), textFrame("3")},
			want:   []sframe{textEcho("1"), pongOf("a"), binEcho([]byte("2")), pongOf("b"), textEcho("3")}},
	}
	// A 4-byte character split at each byte boundary across two fragments.
	for i := 1; i < len(smile); i++ {
		cases = append(cases, frameCase{
			name:   fmt.Sprintf("4-byte character split after byte %d", i),
			frames: []cframe{textFrame("a" + smile[:i]).notFinal(), contFrame(smile[i:] + "b")},
			want:   []sframe{textEcho("a" + smile + "b")},
		})
	}
	// Reserved opcodes: 0x3-0x7 (data) and 0xB-0xF (control).
	for _, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		cases = append(cases, frameCase{
			name:   fmt.Sprintf("reserved opcode 0x%x", byte(op)),
			frames: []cframe{{op: op, payload: []byte("x")}},
			code:   StatusProtocolError,
		})
	}
	return cases
})

// manyFragments splits p into n fragments of a message of type op.
func manyFragments(op ws.OpCode, p []byte, n int) []cframe {
	var frames []cframe
	step := (len(p) + n - 1) / n
	for i := 0; i < n; i++ {
		lo, hi := min(i*step, len(p)), min((i+1)*step, len(p))
		f := cframe{op: ws.OpContinuation, payload: p[lo:hi], more: i < n-1}
		if i == 0 {
			f.op = op
		}
		frames = append(frames, f)
	}
	return frames
}

// sendMode is one way of putting a case's frames on the wire.
type sendMode struct {
	name   string
	sync   bool // wait for the server to read each chunk before the next
	chunks func(frames []cframe) [][]byte
}

var sendModes = []sendMode{
	// One write per frame, each read by the server before the next.
	{name: "whole", sync: true, chunks: func(frames []cframe) [][]byte {
		var out [][]byte
		for _, f := range frames {
			out = append(out, f.encode())
		}
		return out
	}},
	// Every frame in one write: many frames per read.
	{name: "pipelined", chunks: func(frames []cframe) [][]byte {
		return [][]byte{encodeAll(frames)}
	}},
	// Every byte of every header (and of the first few hundred payload
	// bytes) in a read of its own.
	{name: "bytewise", sync: true, chunks: func(frames []cframe) [][]byte {
		var out [][]byte
		for _, f := range frames {
			out = append(out, bytewise(f.encode(), 300)...)
		}
		return out
	}},
}

// TestFrames sends every frameCase to the echo server in every sendMode:
// the answers must not depend on how the input is cut into reads.
func TestFrames(t *testing.T) {
	for _, mode := range sendModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range frameCases() {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					runFrameCase(t, tc, mode)
				})
			}
		})
	}
}

// runFrameCase plays tc on a server of its own.
func runFrameCase(t *testing.T, tc frameCase, mode sendMode) {
	t.Helper()
	srv := startServer(t, Config{})
	c := dialWS(t, srv, "/echo")
	wait := c.feed(mode.chunks(tc.frames), mode.sync)
	for _, w := range tc.want {
		c.expectFrame(w)
	}
	if tc.code != 0 {
		timeout := ioTimeout
		if tc.failFast {
			timeout = time.Second
		}
		c.expectClose(tc.code, timeout)
		c.expectEOF()
		_ = wait() // the server may close before it read everything
		return
	}
	if err := wait(); err != nil {
		t.Fatalf("write: %v", err)
	}
	// Nothing else is pending: the next answer is the probe's echo.
	c.send(textFrame("probe"))
	c.expectFrame(textEcho("probe"))
	c.closeHandshake()
}

// TestPipelinedMessages sends many messages and pings in one write: every
// one is answered, in order.
func TestPipelinedMessages(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialWS(t, srv, "/echo")
	var frames []cframe
	var want []sframe
	for i := range 500 {
		s := fmt.Sprintf("message %d", i)
		switch i % 3 {
		case 0:
			frames, want = append(frames, textFrame(s)), append(want, textEcho(s))
		case 1:
			frames, want = append(frames, binFrame([]byte(s))), append(want, binEcho([]byte(s)))
		case 2:
			frames, want = append(frames, pingFrame(s)), append(want, pongOf(s))
		}
	}
	wait := c.feed([][]byte{encodeAll(frames)}, false)
	for _, w := range want {
		c.expectFrame(w)
	}
	if err := wait(); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.closeHandshake()
}

// TestFrameHeaderLen checks the header length announced by the first two
// bytes of a frame.
func TestFrameHeaderLen(t *testing.T) {
	tests := []struct {
		b0, b1 byte
		want   int
	}{
		{0x81, 0x00, 2},
		{0x81, 0x7d, 2},
		{0x81, 0x80, 6},
		{0x81, 0xfd, 6},
		{0x82, 0x7e, 4},
		{0x82, 0xfe, 8},
		{0x82, 0x7f, 10},
		{0x82, 0xff, 14},
		{0x00, 0x7f, 10}, // the first byte does not matter
		{0xff, 0xff, 14},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%02x %02x", tt.b0, tt.b1), func(t *testing.T) {
			if got := frameHeaderLen(tt.b0, tt.b1); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// headerCases are server frame headers with their wire form: putHeader and
// headerSize must produce the wire form, and gobwas/ws must read it back.
var headerCases = []struct {
	op   ws.OpCode
	n    int
	wire []byte
}{
	{ws.OpText, 0, []byte{0x81, 0x00}},
	{ws.OpText, 1, []byte{0x81, 0x01}},
	{ws.OpBinary, 125, []byte{0x82, 0x7d}},
	{ws.OpBinary, 126, []byte{0x82, 0x7e, 0x00, 0x7e}},
	{ws.OpBinary, 127, []byte{0x82, 0x7e, 0x00, 0x7f}},
	{ws.OpText, 65535, []byte{0x81, 0x7e, 0xff, 0xff}},
	{ws.OpText, 65536, []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
	{ws.OpBinary, 1 << 20, []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0x10, 0x00, 0x00}},
	{ws.OpBinary, 1<<32 + 5, []byte{0x82, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0x05}},
	{ws.OpPing, 0, []byte{0x89, 0x00}},
	{ws.OpPong, 125, []byte{0x8a, 0x7d}},
	{ws.OpClose, 2, []byte{0x88, 0x02}},
}

func TestPutHeader(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(fmt.Sprintf("%v %d", tc.op, tc.n), func(t *testing.T) {
			if got := headerSize(tc.n); got != len(tc.wire) {
				t.Errorf("headerSize: got %d, want %d", got, len(tc.wire))
			}
			var p [maxFrameHeader]byte
			n := putHeader(p[:], tc.op, tc.n)
			if got := p[:n]; !bytes.Equal(got, tc.wire) {
				t.Errorf("putHeader: got % x, want % x", got, tc.wire)
			}
		})
	}
}

func TestHeaderDecodes(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(fmt.Sprintf("%v %d", tc.op, tc.n), func(t *testing.T) {
			h, err := ws.ReadHeader(bytes.NewReader(tc.wire))
			if err != nil {
				t.Fatalf("ws.ReadHeader: %v", err)
			}
			want := ws.Header{Fin: true, OpCode: tc.op, Length: int64(tc.n)}
			if h != want {
				t.Errorf("got %+v, want %+v", h, want)
			}
		})
	}
}
