package wsconn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The raw-client harness: tests speak RFC 6455 to a real server byte by
// byte, so that they can send what no well-behaved client library would (an
// unmasked frame, a reserved opcode, half a header) and see exactly what
// the server answers. Client frames are encoded with gobwas/ws on the test
// side; server frames are decoded with it.

// ioTimeout bounds every read a test makes from the server.
const ioTimeout = 5 * time.Second

// testMask is the masking key of every client frame the tables build: a
// fixed key keeps the encoded tables (and the fuzz seeds made from them)
// deterministic.
var testMask = [4]byte{0xa7, 0x1c, 0x5e, 0x03}

// cframe is one frame a test client sends. The zero value of every field is
// what a correct client sends: final, no RSV bits, masked, minimal length
// encoding.
type cframe struct {
	op       ws.OpCode
	more     bool  // FIN clear: more fragments follow
	rsv      byte  // RSV1..RSV3 as three bits (4 = RSV1, 2 = RSV2, 1 = RSV3)
	unmasked bool  // no mask: clients must mask (RFC 6455 section 5.3)
	len16    bool  // encode the length in 16 bits even if it is below 126
	len64    bool  // encode the length in 64 bits even if it fits in 16
	declare  int64 // if not 0, the length the header announces; only payload follows (a truncated frame)
	payload  []byte
	raw      []byte // if not nil, sent verbatim instead of the fields above
}

// Constructors for the frames the tables use most.

func textFrame(s string) cframe    { return cframe{op: ws.OpText, payload: []byte(s)} }
func binFrame(b []byte) cframe     { return cframe{op: ws.OpBinary, payload: b} }
func contFrame(s string) cframe    { return cframe{op: ws.OpContinuation, payload: []byte(s)} }
func pingFrame(s string) cframe    { return cframe{op: ws.OpPing, payload: []byte(s)} }
func pongFrame(s string) cframe    { return cframe{op: ws.OpPong, payload: []byte(s)} }
func (f cframe) notFinal() cframe  { f.more = true; return f }
func closeFrameOf(p []byte) cframe { return cframe{op: ws.OpClose, payload: p} }
func closeWith(code StatusCode, reason string) cframe {
	return closeFrameOf(closePayload(code, reason))
}

// closePayload is a close frame's payload: the code, big-endian, then the
// reason.
func closePayload(code StatusCode, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(p, reason...)
}

// encode returns f on the wire.
func (f cframe) encode() []byte {
	if f.raw != nil {
		return f.raw
	}
	var b bytes.Buffer
	length := int64(len(f.payload))
	if f.declare != 0 {
		length = f.declare
	}
	b0 := f.rsv<<4 | byte(f.op)
	if !f.more {
		b0 |= 0x80
	}
	var maskBit byte
	if !f.unmasked {
		maskBit = 0x80
	}
	switch {
	case f.len64:
		b.Write([]byte{b0, maskBit | 127})
		b.Write(binary.BigEndian.AppendUint64(nil, uint64(length)))
		if !f.unmasked {
			b.Write(testMask[:])
		}
	case f.len16:
		b.Write([]byte{b0, maskBit | 126})
		b.Write(binary.BigEndian.AppendUint16(nil, uint16(length)))
		if !f.unmasked {
			b.Write(testMask[:])
		}
	default:
		h := ws.Header{Fin: !f.more, Rsv: f.rsv, OpCode: f.op, Masked: !f.unmasked, Length: length}
		if h.Masked {
			h.Mask = testMask
		}
		if err := ws.WriteHeader(&b, h); err != nil {
			panic(fmt.Sprintf("encode %+v: %v", h, err))
		}
	}
	p := append([]byte(nil), f.payload...)
	if !f.unmasked {
		ws.Cipher(p, testMask, 0)
	}
	b.Write(p)
	return b.Bytes()
}

// encodeAll concatenates the wire bytes of frames.
func encodeAll(frames []cframe) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.encode()...)
	}
	return b
}

// sframe is a frame as the server sends it: final, unmasked, no RSV bits
// (the harness checks that), so only the opcode and payload vary.
type sframe struct {
	op      ws.OpCode
	payload []byte
}

func textEcho(s string) sframe { return sframe{ws.OpText, []byte(s)} }
func binEcho(b []byte) sframe  { return sframe{ws.OpBinary, b} }
func pongOf(s string) sframe   { return sframe{ws.OpPong, []byte(s)} }

func (f sframe) String() string {
	p := f.payload
	if len(p) > 40 {
		return fmt.Sprintf("%v frame, %d bytes %q...", f.op, len(p), p[:40])
	}
	return fmt.Sprintf("%v frame %q", f.op, p)
}

// equal reports whether f and g are the same frame.
func (f sframe) equal(g sframe) bool { return f.op == g.op && bytes.Equal(f.payload, g.payload) }

// newKey returns a random Sec-WebSocket-Key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// acceptFor is the Sec-WebSocket-Accept answer to key (RFC 6455 section
// 4.2.2), computed here independently of the server.
func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// upgradeRequest is a valid upgrade request for target with key, followed
// by the extra header lines ("Name: value").
func upgradeRequest(target, key string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rawClient is a test's end of one connection: a plain socket and a buffered
// reader over it.
type rawClient struct {
	t    testing.TB
	srv  *Server // the server, to see how much of the input it has read
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw connects to srv without a handshake. The connection is closed
// when the test ends.
func dialRaw(t testing.TB, srv *Server) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, srv: srv, conn: conn, br: bufio.NewReader(conn)}
}

// pairClient connects to srv through a socketpair instead of TCP: the
// server's end enters by the same path as an accepted socket
// (Server.accept), without a listener, a port or TIME_WAIT, which lets a
// fuzzer open thousands of connections a second. The client's end is
// closed when the test ends.
func pairClient(t testing.TB, srv *Server) *rawClient {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	f := os.NewFile(uintptr(fds[1]), "client")
	conn, err := net.FileConn(f) // a dup: f is closed below
	_ = f.Close()
	if err != nil {
		_ = syscall.Close(fds[0])
		t.Fatalf("client end: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	srv.accept(fds[0], netip.AddrPort{})
	return &rawClient{t: t, srv: srv, conn: conn, br: bufio.NewReader(conn)}
}

// closeWrite half-closes the client's end (FIN): the server reads EOF.
func (c *rawClient) closeWrite() {
	c.t.Helper()
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok {
		c.t.Fatalf("%T cannot half-close", c.conn)
	}
	if err := cw.CloseWrite(); err != nil {
		c.t.Fatalf("close write: %v", err)
	}
}

// dialWS connects to path on srv and completes the opening handshake with
// a random key and the extra header lines, checking the 101 response and
// its Sec-WebSocket-Accept.
func dialWS(t testing.TB, srv *Server, path string, extra ...string) *rawClient {
	t.Helper()
	c := dialRaw(t, srv)
	key := newKey()
	c.write([]byte(upgradeRequest(path, key, extra...)))
	resp := c.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: got status %d, want 101", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(key); got != want {
		t.Fatalf("handshake: got Sec-WebSocket-Accept %q, want %q", got, want)
	}
	return c
}

// write writes b at once and fails the test on error.
func (c *rawClient) write(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes each frame with one write.
func (c *rawClient) send(frames ...cframe) {
	c.t.Helper()
	for _, f := range frames {
		c.write(f.encode())
	}
}

// feed writes chunks, in order, from a goroutine, so that the test can read
// the server's answers meanwhile (a big message is echoed while it is still
// being sent). With sync set, each chunk is written only after the server
// has read everything before it, which makes every chunk boundary a read
// boundary on the server (a partial read); it stops synchronising if the
// server closes a connection or takes over ioTimeout to read a chunk. Sync counts the server's input, so the client must
// be the only one sending to it meanwhile. The returned function waits for the writer and
// returns its write error: tests that expect the server to close may ignore
// it.
func (c *rawClient) feed(chunks [][]byte, sync bool) (wait func() error) {
	done := make(chan error, 1)
	base, closed := c.srv.bytesIn(), c.srv.stats.closed.Load()
	go func() {
		var sent uint64
		var late error
		for _, ch := range chunks {
			_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := c.conn.Write(ch); err != nil {
				done <- err
				return
			}
			sent += uint64(len(ch))
			if sync && late == nil && !waitRead(c.srv, base+sent, closed) {
				// The rest is still sent, unsynchronised: on a starved
				// machine the test then judges the whole input, not a
				// truncated one, and a server that never reads is caught
				// by what the test expects of the answer.
				late = errors.New("server neither read the input nor closed within ioTimeout")
			}
		}
		done <- late
	}()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(2 * ioTimeout):
			return errors.New("writer stuck")
		}
	}
}

// waitRead polls until srv has read n bytes in all or closed a connection
// since closed connections, for at most ioTimeout.
func waitRead(srv *Server, n, closed uint64) bool {
	return poll(ioTimeout, func() bool {
		return srv.bytesIn() >= n || srv.stats.closed.Load() > closed
	})
}

// bytesIn is the bytes read from all connections so far.
func (s *Server) bytesIn() uint64 {
	var n uint64
	for i := range s.stats.hot {
		n += s.stats.hot[i].bytesIn.Load()
	}
	return n
}

// poll is eventually without its 2ms sleeps, for conditions polled once
// per byte in partial-read tests or once per fuzz input. It yields for the
// first millisecond (a shorter sleep tends to last a millisecond anyway:
// an idle runtime waits for timers in epoll, with millisecond
// resolution), then sleeps between checks. It reports whether cond held in time.
func poll(timeout time.Duration, cond func() bool) bool {
	start := time.Now()
	for !cond() {
		switch waited := time.Since(start); {
		case waited > timeout:
			return false
		case waited < time.Millisecond:
			runtime.Gosched()
		default:
			time.Sleep(100 * time.Microsecond)
		}
	}
	return true
}

// readResponse reads an HTTP response head from the connection.
func (c *rawClient) readResponse() *http.Response {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read handshake response: %v", err)
	}
	return resp
}

// readFrame reads one server frame within timeout. It fails the test if the
// frame is not one a server may send (masked, RSV bits, fragmented).
func (c *rawClient) readFrame(timeout time.Duration) (sframe, error) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return sframe{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return sframe{}, err
	}
	if h.Masked || h.Rsv != 0 || !h.Fin {
		c.t.Errorf("server sent a frame with header %+v, want final, unmasked, no RSV bits", h)
	}
	return sframe{h.OpCode, p}, nil
}

// expectFrame reads one frame and fails the test unless it is want.
func (c *rawClient) expectFrame(want sframe) {
	c.t.Helper()
	got, err := c.readFrame(ioTimeout)
	if err != nil {
		c.t.Fatalf("reading %v: %v", want, err)
	}
	if !got.equal(want) {
		c.t.Fatalf("got %v, want %v", got, want)
	}
}

// expectClose reads frames until a close frame, within timeout, and checks
// its code. A frame other than a close frame fails the test. It returns
// the reason.
func (c *rawClient) expectClose(want StatusCode, timeout time.Duration) string {
	c.t.Helper()
	f, err := c.readFrame(timeout)
	if err != nil {
		c.t.Fatalf("reading close frame %d: %v", want, err)
	}
	if f.op != ws.OpClose {
		c.t.Fatalf("got %v, want a close frame with %d", f, want)
	}
	code, reason, err := parseClose(f.payload)
	if err != nil {
		c.t.Fatalf("close frame: %v", err)
	}
	if code != want {
		c.t.Fatalf("got close code %d (%q), want %d", code, reason, want)
	}
	return reason
}

// parseClose splits a close payload into code and reason: 1005 for an
// empty payload, an error for one the server must never send.
func parseClose(p []byte) (StatusCode, string, error) {
	switch {
	case len(p) == 0:
		return StatusNoStatusRcvd, "", nil
	case len(p) == 1:
		return 0, "", fmt.Errorf("close payload of 1 byte")
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !validReceivedCode(code) {
		return code, "", fmt.Errorf("got close code %d, want a code a peer may send", code)
	}
	return code, string(p[2:]), nil
}

// expectEOF checks that the server closes the connection (its write side at
// least) within ioTimeout with nothing more to read: a read returns EOF or
// a connection reset.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	n, err := c.br.Read(make([]byte, 512))
	switch {
	case n > 0:
		c.t.Fatalf("got %d more bytes, want EOF", n)
	case !isClosedErr(err):
		c.t.Fatalf("got %v, want EOF or reset", err)
	}
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// closeHandshake sends close 1000 and checks that the server answers 1000
// and then closes the connection.
func (c *rawClient) closeHandshake() {
	c.t.Helper()
	c.send(closeWith(StatusNormalClosure, ""))
	c.expectClose(StatusNormalClosure, ioTimeout)
	c.expectEOF()
}

// splitEvery cuts b into chunks of n bytes (the last may be shorter).
func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}

// bytewise cuts b into 1-byte chunks for its first limit bytes and one
// chunk for the rest, so that a header and the start of a payload arrive a
// byte per read while a megabyte payload does not take a million reads.
func bytewise(b []byte, limit int) [][]byte {
	if len(b) <= limit {
		return splitEvery(b, 1)
	}
	return append(splitEvery(b[:limit], 1), b[limit:])
}

// handlerCall is one Handler call seen by a recorder.
type handlerCall struct {
	kind   string // "open", "message", "error", "close"
	conn   Conn
	mt     MessageType
	data   []byte
	err    error
	code   StatusCode
	reason string
}

func (e handlerCall) String() string {
	switch e.kind {
	case "message":
		return fmt.Sprintf("message(%v, %q)", e.mt, e.data)
	case "error":
		return fmt.Sprintf("error(%v)", e.err)
	case "close":
		return fmt.Sprintf("close(%d, %q)", e.code, e.reason)
	}
	return e.kind
}

// recorder is a Handler that records every call on a channel, in order.
// By default it echoes messages; onMessage and onOpen replace that.
type recorder struct {
	events    chan handlerCall
	onOpen    func(c Conn)
	onMessage func(c Conn, t MessageType, data []byte)
}

func newRecorder() *recorder { return &recorder{events: make(chan handlerCall, 1024)} }

func (r *recorder) OnOpen(c Conn) {
	r.events <- handlerCall{kind: "open", conn: c}
	if r.onOpen != nil {
		r.onOpen(c)
	}
}

func (r *recorder) OnMessage(c Conn, t MessageType, data []byte) {
	r.events <- handlerCall{kind: "message", conn: c, mt: t, data: append([]byte(nil), data...)}
	if r.onMessage != nil {
		r.onMessage(c, t, data)
		return
	}
	_ = c.Send(t, data)
}

func (r *recorder) OnError(c Conn, err error) {
	r.events <- handlerCall{kind: "error", conn: c, err: err}
}

func (r *recorder) OnClose(c Conn, code StatusCode, reason string) {
	r.events <- handlerCall{kind: "close", conn: c, code: code, reason: reason}
}

// next returns the next recorded call, failing the test unless it is of
// kind within ioTimeout.
func (r *recorder) next(t testing.TB, kind string) handlerCall {
	t.Helper()
	select {
	case e := <-r.events:
		if e.kind != kind {
			t.Fatalf("got handler call %v, want %s", e, kind)
		}
		return e
	case <-time.After(ioTimeout):
		t.Fatalf("no handler call within %v, want %s", ioTimeout, kind)
	}
	return handlerCall{}
}

// none fails the test if a call was recorded and not consumed yet.
func (r *recorder) none(t testing.TB) {
	t.Helper()
	select {
	case e := <-r.events:
		t.Fatalf("got handler call %v, want none", e)
	default:
	}
}
