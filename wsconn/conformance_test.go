package wsconn

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/inflatetest"
)

// The conformance suite: the server against the echo handler, section by
// section, the way Autobahn|Testsuite's fuzzing client drives a server
// (https://github.com/crossbario/autobahn-testsuite). Case names follow
// Autobahn's numbering where a case is Autobahn's; cases it lacks carry
// numbers after its last one in the section. Every case opens a fresh raw
// connection to a server of its own (the close code sweep, 5,001
// connections, shares one), sends its frames cut into writes the
// way the case says, and checks the exact answer: the echoes and pongs in
// order, then either the exact close code followed by the server closing
// TCP, or (a case the server must accept) a probe message echoed and a
// clean closing handshake, which proves nothing else was sent meanwhile.
// The tables are in conformance_cases_test.go.

// confFailFast bounds the wait for a close that the server must send
// before the input it objects to is complete (a message, or a frame,
// whose end is never sent): without failing fast it would never come.
const confFailFast = 2 * time.Second

// confCase is one conformance case.
type confCase struct {
	name   string
	cfg    Config // the server's; zero fields take the defaults
	frames []cframe
	wire   confWire // how frames are cut into writes; zero: one write
	want   []sframe // echoes and pongs, in order
	// code is the close code that follows want (1005: an empty close
	// frame), or 0: the connection stays open.
	code StatusCode
	// echo: the close answers the client's own close frame, so it carries
	// no reason.
	echo bool
	// failFast: frames stop in the middle of a message or frame, so the
	// close must come without the rest (within confFailFast).
	failFast bool
}

// confWire is one way of cutting a case's frames into writes. With sync,
// each write goes out only once the server has read everything before
// it, so that every cut is a read boundary on the server, as Autobahn's
// chops with delays intend, but without sleeping.
type confWire struct {
	name   string
	sync   bool
	chunks func(frames []cframe) [][]byte
}

var (
	// confOneWrite sends all the frames in one write.
	confOneWrite = confWire{name: "one write", chunks: func(fs []cframe) [][]byte {
		return [][]byte{encodeAll(fs)}
	}}
	// confFrameWise sends each frame in a write of its own (Autobahn's
	// "frame-wise chops").
	confFrameWise = confWire{name: "frame-wise", sync: true, chunks: func(fs []cframe) [][]byte {
		var out [][]byte
		for _, f := range fs {
			out = append(out, f.encode())
		}
		return out
	}}
	// confOctetWise sends every byte in a write of its own (Autobahn's
	// "chops of 1 octet").
	confOctetWise = confWire{name: "octet-wise", sync: true, chunks: func(fs []cframe) [][]byte {
		return splitEvery(encodeAll(fs), 1)
	}}
	// confChopped sends each frame's header a byte per write and its
	// payload in chops of 997 bytes (Autobahn 1.1.8).
	confChopped = confWire{name: "chops of 997", sync: true, chunks: func(fs []cframe) [][]byte {
		var out [][]byte
		for _, f := range fs {
			e := f.encode()
			h := len(e) - len(f.payload)
			out = append(append(out, splitEvery(e[:h], 1)...), splitEvery(e[h:], 997)...)
		}
		return out
	}}
	// confPause cuts each frame in the middle of its payload (of its
	// header if it has none) and lets the server read the first half
	// before the second is sent.
	confPause = confWire{name: "pause mid-frame", sync: true, chunks: func(fs []cframe) [][]byte {
		var out [][]byte
		for _, f := range fs {
			e := f.encode()
			h := len(e) - len(f.payload)
			cut := h + len(f.payload)/2
			if len(f.payload) == 0 {
				cut = h / 2
			}
			out = append(out, e[:cut], e[cut:])
		}
		return out
	}}
)

// confWires are the three ways section 1 sends every payload length.
var confWires = []confWire{confOneWrite, confChopped, confPause}

// splitFrame cuts f's wire bytes at the given offsets into raw pieces, so
// that one frame can be sent in several writes (confFrameWise).
func splitFrame(f cframe, at ...int) []cframe {
	e := f.encode()
	var out []cframe
	last := 0
	for _, i := range at {
		out = append(out, cframe{raw: e[last:i]})
		last = i
	}
	return append(out, cframe{raw: e[last:]})
}

// runConfCases runs each case as a parallel subtest. Cases named
// "group/variant" (one case sent several ways) run as subtests of group.
func runConfCases(t *testing.T, cases []confCase) {
	t.Helper()
	var groups []string
	byGroup := map[string][]confCase{}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("case %q appears twice", tc.name)
		}
		seen[tc.name] = true
		if strings.Count(tc.name, "/") > 1 {
			t.Fatalf("case %q: at most one / (group/variant)", tc.name)
		}
		g, _, _ := strings.Cut(tc.name, "/")
		if byGroup[g] == nil {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], tc)
	}
	for _, g := range groups {
		t.Run(g, func(t *testing.T) {
			t.Parallel()
			for _, tc := range byGroup[g] {
				_, variant, ok := strings.Cut(tc.name, "/")
				if !ok {
					runConf(t, tc)
					continue
				}
				t.Run(variant, func(t *testing.T) {
					t.Parallel()
					runConf(t, tc)
				})
			}
		})
	}
}

// runConf plays tc against an echo server of its own. The server's close
// timeout is a minute, so a server that closes TCP within ioTimeout does
// so because the closing handshake is done, not because a timer fired.
func runConf(t *testing.T, tc confCase) {
	t.Helper()
	cfg := tc.cfg
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = time.Minute
	}
	if cfg.MaxMessageRate == 0 {
		// Every frame costs a token, and the fragmentation cases send
		// thousands of frames at once (9.3.1: 16,384 for one message).
		// Autobahn is run with the rate limits off too; the limits have
		// tests of their own (limits_test.go).
		cfg.MaxMessageRate = -1
	}
	srv := startServer(t, cfg)
	c := dialWS(t, srv, "/echo")
	w := tc.wire
	if w.chunks == nil {
		w = confOneWrite
	}
	wait := c.feed(w.chunks(tc.frames), w.sync)
	for _, f := range tc.want {
		c.expectFrame(f)
	}
	if tc.code == 0 {
		if err := wait(); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.send(textFrame("probe"))
		c.expectFrame(textEcho("probe"))
		c.closeHandshake()
		confExpectReleased(t, srv)
		return
	}
	timeout := ioTimeout
	if tc.failFast {
		timeout = confFailFast
	}
	reason := c.expectClose(tc.code, timeout)
	if tc.echo && reason != "" {
		t.Errorf("got reason %q in the close echo, want none", reason)
	}
	c.expectEOF()
	_ = wait() // the server may close before it has read everything
	if !tc.echo {
		_ = c.conn.Close() // the server waits for our EOF after its close frame
	}
	confExpectReleased(t, srv)
}

// confExpectReleased checks that the server closes its end once the
// closing handshake that the client started is done (RFC 6455 section
// 7.1.1): the client still holds its socket open, and its EOF only shows
// that the server shut down its sending side.
func confExpectReleased(t *testing.T, srv *Server) {
	t.Helper()
	if !poll(ioTimeout, func() bool { return srv.Conns() == 0 }) {
		t.Fatalf("got %d connections %v after the closing handshake, want 0", srv.Conns(), ioTimeout)
	}
	// Every buffer of unfinished input was given back with its reservation.
	if got := srv.Stats().PartialBytes; got != 0 {
		t.Fatalf("PartialBytes = %d with no connection left, want 0", got)
	}
}

// TestConformanceFraming is Autobahn section 1 (framing): payload lengths
// around the 7-bit, 16-bit and 64-bit encodings, up to the limit, each
// sent in one write, header a byte at a time with the payload in chops,
// and with a pause in the middle of the payload; then non-minimal length
// encodings and masking.
func TestConformanceFraming(t *testing.T) { runConfCases(t, confFramingCases()) }

// TestConformancePingPong is Autobahn section 2 (pings and pongs).
func TestConformancePingPong(t *testing.T) { runConfCases(t, confPingCases()) }

// TestConformanceReservedBits is Autobahn section 3: no extension is
// negotiated, so any RSV bit fails the connection with 1002, after
// everything before the bad frame was answered.
func TestConformanceReservedBits(t *testing.T) { runConfCases(t, confRSVCases()) }

// TestConformanceOpcodes is Autobahn section 4: reserved opcodes.
func TestConformanceOpcodes(t *testing.T) { runConfCases(t, confOpcodeCases()) }

// TestConformanceFragmentation is Autobahn section 5.
func TestConformanceFragmentation(t *testing.T) { runConfCases(t, confFragmentCases()) }

// TestConformanceUTF8 is Autobahn section 6: UTF-8 in text messages,
// whole and split across fragments, and failing fast.
func TestConformanceUTF8(t *testing.T) { runConfCases(t, confUTF8Cases()) }

// TestConformanceClose is Autobahn section 7: the closing handshake and
// close frame payloads. The sweep over every code is
// TestConformanceCloseCodes.
func TestConformanceClose(t *testing.T) { runConfCases(t, confCloseCases()) }

// TestConformanceLimits is Autobahn section 9 (limits), scaled to the
// default 1 MiB message limit, and 1009 past it before buffering.
func TestConformanceLimits(t *testing.T) { runConfCases(t, confLimitCases()) }

// TestConformanceCloseCodes is Autobahn 7.7, 7.9 and 7.13 made exhaustive:
// every close code from 0 to 5000, classified by RFC 6455 section 7.4 and
// the IANA registry (rfcValidCode: 1000-1003, 1007-1014, 3000-4999), is
// sent on a connection of its own. A valid code is echoed; any other is
// answered 1002. The connections run 32 at a time against one server.
func TestConformanceCloseCodes(t *testing.T) {
	t.Run("7.14 every code 0-5000", func(t *testing.T) {
		const parallel = 32
		srv := startServer(t, Config{CloseTimeout: time.Minute})
		var (
			wg   sync.WaitGroup
			sem  = make(chan struct{}, parallel)
			errs [5001]string // by code, each written by one goroutine
		)
		for code := range len(errs) {
			want := StatusProtocolError
			if rfcValidCode(code) {
				want = StatusCode(code)
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[code] = confCloseCode(t, srv, StatusCode(code), want, rfcValidCode(code))
			})
		}
		wg.Wait()
		failed := 0
		for _, e := range errs {
			if e == "" {
				continue
			}
			if failed++; failed <= 20 {
				t.Error(e)
			}
		}
		if failed > 20 {
			t.Errorf("... %d codes failed in all", failed)
		}
	})
}

// confCloseCode sends a close frame with code on a fresh connection and
// checks that the server answers want (if echo, without a reason) and
// closes TCP. It returns what went wrong, or "".
func confCloseCode(t *testing.T, srv *Server, code, want StatusCode, echo bool) (failure string) {
	tb := &confGoTB{TB: t}
	done := make(chan struct{})
	go func() { // a goroutine of its own: a failure ends it with Goexit
		defer close(done)
		c := dialWS(tb, srv, "/echo")
		defer func() { _ = c.conn.Close() }()
		c.send(closeWith(code, ""))
		if reason := c.expectClose(want, ioTimeout); echo && reason != "" {
			tb.Errorf("got reason %q in the close echo, want none", reason)
		}
		c.expectEOF()
	}()
	<-done
	if tb.failure != "" {
		return fmt.Sprintf("close code %d: %s", code, tb.failure)
	}
	return ""
}

// confGoTB lets the harness's rawClient run on a goroutine other than the
// test's: a failure is recorded and ends the goroutine (runtime.Goexit,
// which runs its deferred calls), where t.Fatal may not be called.
type confGoTB struct {
	testing.TB
	mu      sync.Mutex
	failure string
}

func (g *confGoTB) Helper() {}

func (g *confGoTB) Errorf(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failure == "" {
		g.failure = fmt.Sprintf(format, args...)
	}
}

func (g *confGoTB) Fatalf(format string, args ...any) {
	g.Errorf(format, args...)
	runtime.Goexit()
}

func (g *confGoTB) Fatal(args ...any) { g.Fatalf("%s", fmt.Sprint(args...)) }

// TestConformanceCompression is Autobahn section 12/13 (permessage-deflate,
// RFC 7692) as it stands while compression is not implemented: "12.0"
// checks that an offer is declined, so that the client sends no
// compressed frames, and that a compressed-looking frame (RSV1) still
// fails with 1002. The section grows into 12.x and 13.x when compression
// lands.
func TestConformanceCompression(t *testing.T) {
	offers := []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"permessage-deflate; server_max_window_bits=10, permessage-deflate",
		"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=15",
	}
	for i, offer := range offers {
		t.Run(fmt.Sprintf("12.0.%d offer %q is declined", i+1, offer), func(t *testing.T) {
			t.Parallel()
			c := confDialOffer(t, offer)
			msg := strings.Repeat("compress me ", 20)
			c.send(textFrame(msg))
			c.expectFrame(textEcho(msg))
			c.closeHandshake()
		})
	}
	rsv1 := []struct {
		name   string
		frames []cframe
		want   []sframe
	}{
		{"RSV1 text", []cframe{{op: ws.OpText, rsv: 4, payload: []byte("\xf2\x48\xcd\xc9\xc9\x07\x00")}}, nil},
		{"RSV1 binary after an echo", []cframe{textFrame("plain"), {op: ws.OpBinary, rsv: 4, payload: []byte{0x02, 0x00}}}, []sframe{textEcho("plain")}},
		{"RSV1 first fragment", []cframe{{op: ws.OpText, rsv: 4, more: true, payload: []byte("ab")}, contFrame("cd")}, nil},
		{"RSV1 empty text", []cframe{{op: ws.OpText, rsv: 4}}, nil},
	}
	for i, tc := range rsv1 {
		t.Run(fmt.Sprintf("12.0.%d %s after the offer is 1002", len(offers)+i+1, tc.name), func(t *testing.T) {
			t.Parallel()
			c := confDialOffer(t, "permessage-deflate")
			c.write(encodeAll(tc.frames))
			for _, f := range tc.want {
				c.expectFrame(f)
			}
			c.expectClose(StatusProtocolError, ioTimeout)
			c.expectEOF()
		})
	}
}

// TestConformanceCompressionOn: with Compression on, every offer of
// section 12's negotiations gets the RFC 7692 answer: the first acceptable
// permessage-deflate offer is accepted, always with no context takeover
// both ways, and with the server window it names (12.2 has them all); a
// malformed one (unknown or duplicate parameter, bad value) is declined,
// and a later acceptable one taken; a declined connection treats RSV1 as a
// protocol error, an accepting one echoes a compressed message compressed.
func TestConformanceCompressionOn(t *testing.T) {
	const accepted = deflateAccepted
	tests := []struct {
		offer string
		want  string // the Sec-WebSocket-Extensions answer; "": declined
	}{
		{"permessage-deflate", accepted},
		{"permessage-deflate; client_max_window_bits", accepted},
		{"permessage-deflate; client_max_window_bits=10", accepted},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", accepted},
		{"permessage-deflate; server_max_window_bits=10", accepted + ";server_max_window_bits=10"},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", accepted + ";server_max_window_bits=10"},
		{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=15", accepted},
		{"x-webkit-deflate-frame", ""},
		{"permessage-deflate; unknown_param", ""},
		{"permessage-deflate; unknown_param, permessage-deflate", accepted},
		{"permessage-deflate; server_no_context_takeover=1", ""},
		{"permessage-deflate; client_max_window_bits=7", ""},
		{"permessage-deflate; client_max_window_bits=16", ""},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", ""},
	}
	srv := startServer(t, Config{Compression: true, CloseTimeout: time.Minute})
	msg := []byte(strings.Repeat("compress me ", 40))
	for i, tt := range tests {
		t.Run(fmt.Sprintf("12.1.%d %q", i+1, tt.offer), func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, srv)
			c.write([]byte(upgradeRequest("/echo", newKey(), "Sec-WebSocket-Extensions: "+tt.offer)))
			resp := c.readResponse()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("got status %d, want 101", resp.StatusCode)
			}
			if got := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", "); got != tt.want {
				t.Fatalf("Sec-WebSocket-Extensions %q, want %q", got, tt.want)
			}
			c.write(rsvFrame(ws.OpText, true, true, false, compress(msg)))
			_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
			got := invReadFrame(t, c.br)
			if tt.want == "" {
				if got.Header.OpCode != ws.OpClose || StatusCode(uint16(got.Payload[0])<<8|uint16(got.Payload[1])) != StatusProtocolError {
					t.Fatalf("RSV1 without compression: got %v %q, want close 1002", got.Header.OpCode, got.Payload)
				}
				return
			}
			if got.Header.OpCode != ws.OpText || !got.Header.Rsv1() || !bytes.Equal(inflate(t, got), msg) {
				t.Fatalf("got %v RSV1=%v %q, want the message echoed compressed", got.Header.OpCode, got.Header.Rsv1(), inflate(t, got))
			}
		})
	}
}

// TestConformanceCompressionWindow is section 12.2: the offers of
// negotiateCases on the wire, among them Autobahn's 13.1 to 13.7 (a server
// window of 8, 9 or 15 asked for, with or without server_no_context_takeover),
// client windows with and without a value, and malformed offers. Each gets
// its exact answer. A declined connection fails RSV1 with 1002; an accepted
// one echoes two compressed messages compressed, each inflating on its own
// (no context takeover) to what was sent, with no back-reference farther
// than the window the answer names. The message repeats itself 20,000
// bytes on, so a compressor that ignored a window of 2^14 or less would be
// caught.
func TestConformanceCompressionWindow(t *testing.T) {
	srv := startServer(t, Config{Compression: true, CloseTimeout: time.Minute})
	half := make([]byte, 20000)
	rng := rand.New(rand.NewPCG(12, 2))
	for i := range half {
		half[i] = 'a' + byte(rng.IntN(26))
	}
	msgs := [][]byte{append(half[:len(half):len(half)], half...), []byte(strings.Repeat("the second message ", 50))}
	for i, tt := range negotiateCases {
		t.Run(fmt.Sprintf("12.2.%d %s", i+1, tt.name), func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, srv)
			var headers []string
			for _, o := range tt.offers {
				headers = append(headers, "Sec-WebSocket-Extensions: "+o)
			}
			c.write([]byte(upgradeRequest("/echo", newKey(), headers...)))
			resp := c.readResponse()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("got status %d, want 101", resp.StatusCode)
			}
			if got := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", "); got != tt.want {
				t.Fatalf("got Sec-WebSocket-Extensions %q, want %q", got, tt.want)
			}
			_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
			if tt.want == "" {
				c.write(rsvFrame(ws.OpText, true, true, false, compress(msgs[1])))
				got := invReadFrame(t, c.br)
				if got.Header.OpCode != ws.OpClose || len(got.Payload) < 2 ||
					StatusCode(uint16(got.Payload[0])<<8|uint16(got.Payload[1])) != StatusProtocolError {
					t.Fatalf("got %v %q for RSV1 without compression, want close 1002", got.Header.OpCode, got.Payload)
				}
				return
			}
			for _, msg := range msgs {
				c.write(rsvFrame(ws.OpText, true, true, false, compress(msg)))
				got := invReadFrame(t, c.br)
				if got.Header.OpCode != ws.OpText || !got.Header.Rsv1() {
					t.Fatalf("got %v RSV1=%v, want a compressed text echo", got.Header.OpCode, got.Header.Rsv1())
				}
				res, err := inflatetest.Inflate(got.Payload)
				if err != nil || !bytes.Equal(res.Out, msg) {
					t.Fatalf("got %d bytes inflated on their own, %v; want the %d bytes sent", len(res.Out), err, len(msg))
				}
				if window := 1 << tt.bits; res.MaxDistance > window {
					t.Fatalf("got a back-reference %d bytes back, want none beyond the %d-byte window", res.MaxDistance, window)
				}
			}
			c.closeHandshake()
		})
	}
}

// confDialOffer opens a connection to a server of its own, offering the
// extensions in offer, and checks that the 101 answer accepts none.
func confDialOffer(t *testing.T, offer string) *rawClient {
	t.Helper()
	srv := startServer(t, Config{CloseTimeout: time.Minute})
	c := dialRaw(t, srv)
	key := newKey()
	c.write([]byte(upgradeRequest("/echo", key, "Sec-WebSocket-Extensions: "+offer)))
	resp := c.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: got status %d, want 101", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(key); got != want {
		t.Fatalf("handshake: got Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if ext := resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) != 0 {
		t.Fatalf("handshake: got Sec-WebSocket-Extensions %q, want none accepted", ext)
	}
	return c
}
