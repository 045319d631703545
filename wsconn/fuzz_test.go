package wsconn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Fuzz targets. Each runs one server for the whole fuzzing process and
// feeds every input to a fresh connection that enters through a
// socketpair (pairClient), cut into chunks chosen by a split seed; every
// chunk is a read of its own on the server (rawClient.feed with sync), so
// the fuzzer explores partial headers, payloads and requests. Inputs run
// one after the other, so the server's counters belong to the current one.

// chunksOf cuts b into at most 24 chunks at points a PRNG seeded with
// split picks: split 0 sends b whole. Each chunk costs a round trip to
// the server (about 0.1-0.3ms here), so the number of cuts is bounded
// rather than the chunk size: a small input, which the fuzzer makes
// most, can still be cut at every byte.
func chunksOf(b []byte, split uint64) [][]byte {
	if split == 0 || len(b) < 2 {
		return [][]byte{b}
	}
	r := rand.New(rand.NewPCG(split, 0x77a9))
	cuts := map[int]bool{}
	for range min(int(split%24)+1, len(b)-1) {
		cuts[1+r.IntN(len(b)-1)] = true
	}
	var out [][]byte
	last := 0
	for i := 1; i < len(b); i++ {
		if cuts[i] {
			out = append(out, b[last:i])
			last = i
		}
	}
	return append(out, b[last:])
}

// fuzzFrameConfig keeps the size limits small, so that the fuzzer reaches
// them (1009) with small inputs, and has no heartbeat, so that no ping
// appears in the answers.
func fuzzFrameConfig() Config {
	return Config{
		MaxMessageSize: 4096,
		MaxFrameSize:   2048,
		PingInterval:   -1,
		CloseTimeout:   2 * time.Second,
		// The fuzzer opens thousands of connections a second from one
		// "address": the abuse limits would refuse them, which is right
		// for a server and useless for fuzzing the parser.
		AcceptRate:     -1,
		MaxConnsPerIP:  -1,
		MaxMessageRate: -1,
		MaxByteRate:    -1,
	}
}

// echoPrediction is what the echo server answers to some input.
type echoPrediction struct {
	frames []sframe   // data echoes and pongs, in order
	code   StatusCode // the close code that follows, or 0 if none (1005: an empty close frame)
	echo   bool       // the close frame echoes the client's, so it has no reason
}

// predictEcho is a reference model of the echo server, written from RFC
// 6455 rather than from read.go: given every byte a client sends after
// the handshake, it returns the frames the server must send back. Input
// that ends inside a header or a payload simply gets no further answer,
// except that text which is already not UTF-8 fails at once (section
// 8.1). maxFrame and maxMsg are the server's limits.
func predictEcho(in []byte, maxFrame, maxMsg int64) echoPrediction {
	var (
		out   echoPrediction
		open  bool      // a fragmented message has started
		msgOp ws.OpCode // its opcode
		msg   []byte
	)
	fail := func(code StatusCode) echoPrediction { out.code = code; return out }
	for {
		if len(in) < 2 {
			return out
		}
		b0, b1 := in[0], in[1]
		fin, rsv, op, masked := b0&0x80 != 0, b0>>4&7, ws.OpCode(b0&0x0f), b1&0x80 != 0
		hlen := 2
		switch b1 & 0x7f {
		case 126:
			hlen += 2
		case 127:
			hlen += 8
		}
		if masked {
			hlen += 4
		}
		if len(in) < hlen {
			return out
		}
		var length uint64
		switch l := b1 & 0x7f; l {
		case 126:
			length = uint64(binary.BigEndian.Uint16(in[2:]))
		case 127:
			length = binary.BigEndian.Uint64(in[2:])
		default:
			length = uint64(l)
		}
		var mask []byte
		if masked {
			mask = in[hlen-4 : hlen]
		}
		in = in[hlen:]
		control := op >= 8
		switch {
		case length >= 1<<63, // section 5.2: the most significant bit must be 0
			op >= 3 && op <= 7 || op >= 0xb,   // reserved opcodes
			control && (length > 125 || !fin), // section 5.5
			rsv != 0,                          // no extension negotiated
			!masked,                           // section 5.3: clients mask
			open && !control && op != ws.OpContinuation, // section 5.4
			!open && op == ws.OpContinuation:
			return fail(StatusProtocolError)
		case !control && (int64(length) > maxFrame || int64(len(msg))+int64(length) > maxMsg):
			return fail(StatusMessageTooBig)
		}
		n := min(length, uint64(len(in)))
		p := append([]byte(nil), in[:n]...)
		in = in[n:]
		for i := range p {
			p[i] ^= mask[i%4]
		}
		complete := uint64(len(p)) == length
		if control {
			if !complete {
				return out
			}
			switch op {
			case ws.OpPing:
				out.frames = append(out.frames, sframe{ws.OpPong, p})
			case ws.OpClose:
				switch {
				case len(p) == 1:
					return fail(StatusProtocolError)
				case len(p) == 0:
					out.code, out.echo = StatusNoStatusRcvd, true
					return out
				}
				code := int(binary.BigEndian.Uint16(p))
				switch {
				case !rfcValidCode(code):
					return fail(StatusProtocolError)
				case !utf8.Valid(p[2:]):
					return fail(StatusInvalidFramePayloadData)
				}
				out.code, out.echo = StatusCode(code), true
				return out
			}
			continue
		}
		if op != ws.OpContinuation {
			msgOp = op
		}
		msg = append(msg, p...)
		if msgOp == ws.OpText {
			if complete && fin {
				if !utf8.Valid(msg) {
					return fail(StatusInvalidFramePayloadData)
				}
			} else if !completable(msg) { // fail fast
				return fail(StatusInvalidFramePayloadData)
			}
		}
		switch {
		case !complete:
			return out
		case !fin:
			open = true
			continue
		}
		out.frames = append(out.frames, sframe{msgOp, msg})
		open, msg = false, nil
	}
}

func TestPredictEcho(t *testing.T) {
	// The model agrees with the frame table it is meant to generalise.
	for _, tc := range frameCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := predictEcho(encodeAll(tc.frames), DefaultMaxMessageSize, DefaultMaxMessageSize)
			if len(got.frames) != len(tc.want) || got.code != tc.code {
				t.Fatalf("got %d frames and close %d, want %d frames and close %d", len(got.frames), got.code, len(tc.want), tc.code)
			}
			for i := range got.frames {
				if !got.frames[i].equal(tc.want[i]) {
					t.Errorf("frame %d: got %v, want %v", i, got.frames[i], tc.want[i])
				}
			}
		})
	}
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			got := predictEcho(closeFrameOf(tc.payload).encode(), DefaultMaxMessageSize, DefaultMaxMessageSize)
			if got.code != tc.want || got.echo == tc.bad {
				t.Errorf("got close %d (echo %v), want %d (echo %v)", got.code, got.echo, tc.want, !tc.bad)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary bytes after a valid handshake, cut into
// arbitrary reads, to the echo server, and checks its answers against
// predictEcho: the same frames, the same close code, then the end of the
// connection; never a recovered panic.
func FuzzReadFrame(f *testing.F) {
	for i, tc := range frameCases() {
		b := encodeAll(tc.frames)
		if len(b) > 1<<16 {
			continue // the megabyte cases run in TestFrames; small seeds mutate better
		}
		f.Add(b, uint64(0))
		f.Add(b, uint64(i+1))
	}
	for i, tc := range closeCases {
		f.Add(closeFrameOf(tc.payload).encode(), uint64(i))
	}
	f.Add(encodeAll([]cframe{textFrame("a"), closeWith(1000, "bye"), textFrame("after")}), uint64(3))

	cfg := fuzzFrameConfig()
	srv := startServer(f, cfg)
	req := []byte(upgradeRequest("/echo", testKey))
	f.Fuzz(func(t *testing.T, data []byte, split uint64) {
		want := predictEcho(data, cfg.MaxFrameSize, cfg.MaxMessageSize)
		c := pairClient(t, srv)
		c.write(req)
		if resp := c.readResponse(); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: got %d, want 101", resp.StatusCode)
		}
		wait := c.feed(chunksOf(data, split), true)
		for i, w := range want.frames {
			got, err := c.readFrame(ioTimeout)
			if err != nil {
				t.Fatalf("frame %d: got %v, want %v", i, err, w)
			}
			if !got.equal(w) {
				t.Fatalf("frame %d: got %v, want %v", i, got, w)
			}
		}
		if want.code != 0 {
			reason := c.expectClose(want.code, ioTimeout)
			if want.echo && reason != "" {
				t.Fatalf("got reason %q in the close echo, want none", reason)
			}
			_ = wait() // the server may close before it read everything
		} else {
			if err := wait(); err != nil {
				t.Fatalf("write: %v", err)
			}
			// The server read everything and answered what it must:
			// at EOF it closes without a further word.
			c.closeWrite()
		}
		c.expectEOF()
		_ = c.conn.Close()
		if !poll(ioTimeout, func() bool { return srv.Conns() == 0 }) {
			t.Fatalf("server kept the connection open after the client closed it")
		}
		if n := srv.Stats().InternalErrors; n != 0 {
			t.Fatalf("server recovered %d internal panics", n)
		}
	})
}

// fuzzUpgradeConfig is the handshake table's server with a small request
// limit and a short handshake timeout: each stalled input waits for it.
func fuzzUpgradeConfig() Config {
	cfg := handshakeConfig()
	cfg.MaxHandshakeSize = 1024
	cfg.HandshakeTimeout = 50 * time.Millisecond
	cfg.SweepInterval = 5 * time.Millisecond
	cfg.PingInterval = -1
	cfg.AcceptRate, cfg.MaxConnsPerIP = -1, -1 // thousands of connections a second: see fuzzFrameConfig
	return cfg
}

// FuzzUpgrade feeds arbitrary bytes, cut into arbitrary reads, to a
// connection in its handshake. The server must answer a complete request
// with an HTTP status (101 only with a correct accept for a known route,
// else 4xx or 5xx) and close after a rejection; answer a request over the
// size limit with 431; say nothing to an incomplete one, and close it at
// EOF or after HandshakeTimeout (stall: no EOF from the client). It must
// never panic.
func FuzzUpgrade(f *testing.F) {
	for i, tc := range handshakeCases {
		b := append([]byte(tc.req), encodeAll(tc.after)...)
		f.Add(b, uint64(0), false)
		f.Add(b, uint64(i+1), false)
	}
	f.Add([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n"), uint64(5), true)
	f.Add([]byte("\r\n\r\n"), uint64(0), false)

	cfg := fuzzUpgradeConfig()
	srv := startServer(f, cfg)
	f.Fuzz(func(t *testing.T, data []byte, split uint64, stall bool) {
		limit := cfg.MaxHandshakeSize
		end := bytes.Index(data, headerEnd)
		complete := end >= 0 && end+len(headerEnd) <= limit
		tooBig := !complete && (end >= 0 || len(data) >= limit)

		req := data
		if end >= 0 {
			req = data[:end+len(headerEnd)]
		}

		start := time.Now() // before the server accepts: its deadline runs from there
		c := pairClient(t, srv)
		wait := c.feed(chunksOf(data, split), true)
		_ = wait() // a rejected client may find the socket closed
		fed := time.Now()
		if !stall || complete || tooBig {
			c.closeWrite()
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout + ioTimeout))
		out, err := io.ReadAll(c.br)
		if err != nil && !isClosedErr(err) {
			t.Fatalf("reading the answer: %v (after %d bytes)", err, len(out))
		}
		if d := time.Since(fed); d > cfg.HandshakeTimeout+time.Second {
			t.Fatalf("closed %v after the input, want within HandshakeTimeout (%v)", d, cfg.HandshakeTimeout)
		}
		timedOut := time.Since(start) >= cfg.HandshakeTimeout

		switch {
		case len(out) == 0 && complete && !timedOut:
			t.Fatalf("got no answer to a complete request, want a status")
		case len(out) == 0 && tooBig && !timedOut:
			t.Fatalf("got no answer to an oversized request, want 431")
		case len(out) == 0:
		case !complete && !tooBig:
			t.Fatalf("got %q for an incomplete request, want nothing", firstLine(out))
		default:
			checkUpgradeAnswer(t, req, out, tooBig)
		}
		_ = c.conn.Close()
		if !poll(ioTimeout, func() bool { return srv.Conns() == 0 }) {
			t.Fatalf("server kept the connection open after the client closed it")
		}
		if n := srv.Stats().InternalErrors; n != 0 {
			t.Fatalf("server recovered %d internal panics", n)
		}
	})
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(line)
}

// checkUpgradeAnswer checks the server's answer out to the request req.
func checkUpgradeAnswer(t *testing.T, req, out []byte, tooBig bool) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("got %q, want an HTTP response: %v", firstLine(out), err)
	}
	switch {
	case tooBig:
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %q for an oversized request, want 431", firstLine(out))
		}
	case resp.StatusCode == http.StatusSwitchingProtocols:
		line, _, _ := bytes.Cut(req, []byte("\r\n"))
		fields := strings.Fields(string(line))
		if len(fields) != 3 {
			t.Fatalf("got 101 for request line %q, want a rejection", line)
		}
		path, _, _ := strings.Cut(fields[1], "?")
		if path != "/echo" && path != "/info" {
			t.Fatalf("got 101 for path %q, want 404", path)
		}
		accept := resp.Header.Get("Sec-WebSocket-Accept")
		for _, key := range headerValues(req, "Sec-WebSocket-Key") {
			if accept == acceptFor(key) {
				return
			}
		}
		t.Fatalf("got Sec-WebSocket-Accept %q, want the answer to a key of %q", accept, req)
	case resp.StatusCode < 400 || resp.StatusCode > 599:
		t.Fatalf("got %q, want 101, 4xx or 5xx", firstLine(out))
	}
}

// headerValues returns the values of the header lines named name in req.
func headerValues(req []byte, name string) []string {
	var vs []string
	for _, line := range strings.Split(string(req), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			vs = append(vs, strings.Trim(v, " \t\r"))
		}
	}
	return vs
}
