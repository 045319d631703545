package wsconn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Interop tests: the server against WebSocket clients that were not written
// here. Each client runs each scenario it can against a fresh server that
// serves a recorded handler.Echo at /echo and a recorded handler.Channels at
// /ws; the client checks what it got back, and the test then checks what
// the server saw (messages, close codes, errors, counters).
//
// The clients: github.com/coder/websocket and github.com/gorilla/websocket
// (Go, test-only dependencies), Node's ws (testdata/interop/node/client.js)
// and Python's websockets (testdata/interop/python/client.py), and a raw
// socket for the one thing no library sends: an unmasked frame. The Node
// and Python libraries come from scripts/deps.sh; without them these
// clients are skipped, or fail when CI is set.
//
// The scenarios and their payloads are defined three times, here and in the
// two scripts, and must agree: the server-side checks below assume them.

const (
	interopTimeout     = 20 * time.Second
	interopMaxMessage  = DefaultMaxMessageSize
	interopCloseReason = "interop bye"
	// interopPublishData is published as these exact bytes; the push must
	// carry them unchanged, whitespace and number spelling included.
	interopPublishData = `{"msg": "h\u00e9llo ✓", "n": [1, 2.5, -3e2], "ok": true, "nil": null}`
	// interopFragText is sent in fragments. Where a client can choose the
	// cut, the first fragment is 12 bytes and ends inside "é".
	interopFragText  = "fragmented é message, done ✓"
	interopNodeDir   = "testdata/interop/node"
	interopPythonDir = "testdata/interop/python"
	interopPython    = "/usr/bin/python3" // sees Debian's python3-websockets, unlike a pyenv python
)

var (
	interopEchoSizes      = []int{0, 1, 125, 126, 65535, 65536, interopMaxMessage}
	interopFragBinarySize = []int{70000, 70000, 70000} // each over 64 KiB: 64-bit frame lengths
	interopPingPayloads   = [][]byte{[]byte("interop-ping"), {}, bytes.Repeat([]byte("p"), 125)}
	interopInvalidUTF8    = []byte("hi\xff\xfe")
)

// interopText is n bytes of valid UTF-8: "é€😀" (9 bytes) when it fits,
// then ASCII letters.
func interopText(n int) []byte {
	b := make([]byte, n)
	k := 0
	if n >= 9 {
		k = copy(b, "é€😀")
	}
	for i := k; i < n; i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// interopBinary is n bytes with every byte value.
func interopBinary(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

// interopBinaryParts are the fragments of the binary fragmented message;
// each starts with its 1-based number.
func interopBinaryParts() [][]byte {
	parts := make([][]byte, len(interopFragBinarySize))
	for i, n := range interopFragBinarySize {
		parts[i] = interopBinary(n)
		parts[i][0] = byte(i + 1)
	}
	return parts
}

// interopMsg is a data message as the server received it.
type interopMsg struct {
	typ MessageType
	n   int
	sum uint32 // CRC-32 of the payload
}

func interopMsgOf(t MessageType, p []byte) interopMsg {
	return interopMsg{typ: t, n: len(p), sum: crc32.ChecksumIEEE(p)}
}

func (m interopMsg) String() string { return fmt.Sprintf("%v/%d/%08x", m.typ, m.n, m.sum) }

// interopClose is an OnClose call.
type interopClose struct {
	code   StatusCode
	reason string
}

// interopRecorder wraps a Handler and records what the server reported to
// it. The server calls it from its workers; the test reads it under mu.
type interopRecorder struct {
	h Handler

	mu     sync.Mutex
	msgs   []interopMsg
	pings  [][]byte
	closes []interopClose
	errs   []error
}

func (r *interopRecorder) OnOpen(c Conn) { r.h.OnOpen(c) }

func (r *interopRecorder) OnMessage(c Conn, t MessageType, data []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, interopMsgOf(t, data))
	r.mu.Unlock()
	r.h.OnMessage(c, t, data)
}

func (r *interopRecorder) OnPing(_ Conn, data []byte) {
	r.mu.Lock()
	r.pings = append(r.pings, bytes.Clone(data))
	r.mu.Unlock()
}

func (r *interopRecorder) OnClose(c Conn, code StatusCode, reason string) {
	r.mu.Lock()
	r.closes = append(r.closes, interopClose{code, reason})
	r.mu.Unlock()
	r.h.OnClose(c, code, reason)
}

func (r *interopRecorder) OnError(c Conn, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.h.OnError(c, err)
}

// snapshot copies what was recorded.
func (r *interopRecorder) snapshot() (msgs []interopMsg, pings [][]byte, closes []interopClose, errs []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs), slices.Clone(r.pings), slices.Clone(r.closes), slices.Clone(r.errs)
}

func (r *interopRecorder) pingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pings)
}

// interopEnv is one scenario's server.
type interopEnv struct {
	srv      *Server
	base     string // ws://127.0.0.1:port
	echo     *interopRecorder
	pubsub   *interopRecorder
	channels channelsHandler
}

func startInterop(t *testing.T) *interopEnv {
	t.Helper()
	channels, err := newChannels()
	if err != nil {
		t.Fatalf("NewChannels: %v", err)
	}
	e := &interopEnv{
		echo:     &interopRecorder{h: echoHandler{}},
		pubsub:   &interopRecorder{h: channels},
		channels: channels,
	}
	// MaxMessageRate off: every frame costs a token, and the gorilla
	// scenario sends 210,000 bytes in 12-byte fragments to check
	// reassembly, far more frames than any client needs.
	e.srv = startServer(t, Config{Routes: map[string]Handler{"/echo": e.echo, "/ws": e.pubsub}, MaxMessageRate: -1})
	e.base = wsURL(e.srv, "")
	return e
}

// interopScenario is one thing every client does, and what the server
// must have seen once the client is done.
type interopScenario struct {
	name   string
	verify func(*testing.T, *interopEnv, *interopClient)
}

var interopScenarios = []interopScenario{
	{"echo", func(t *testing.T, e *interopEnv, _ *interopClient) {
		var want []interopMsg
		for _, n := range interopEchoSizes {
			want = append(want, interopMsgOf(Text, interopText(n)), interopMsgOf(Binary, interopBinary(n)))
		}
		interopVerify(t, e, e.echo, want, interopClose{1000, ""}, nil)
	}},
	{"fragmented", func(t *testing.T, e *interopEnv, _ *interopClient) {
		want := []interopMsg{interopMsgOf(Text, []byte(interopFragText)),
			interopMsgOf(Binary, bytes.Join(interopBinaryParts(), nil))}
		interopVerify(t, e, e.echo, want, interopClose{1000, ""}, nil)
		if _, pings, _, _ := e.echo.snapshot(); len(pings) != 1 {
			t.Errorf("server saw %d pings, want 1 (between fragments)", len(pings))
		}
	}},
	{"ping", func(t *testing.T, e *interopEnv, c *interopClient) {
		interopVerify(t, e, e.echo, nil, interopClose{1000, ""}, nil)
		want := interopPingPayloads
		if c.pings != nil {
			want = c.pings
		}
		if _, pings, _, _ := e.echo.snapshot(); !slices.EqualFunc(pings, want, bytes.Equal) {
			t.Errorf("server saw pings %q, want %q", pings, want)
		}
	}},
	{"close-1000", func(t *testing.T, e *interopEnv, _ *interopClient) {
		interopVerify(t, e, e.echo, nil, interopClose{1000, ""}, nil)
	}},
	{"close-4001", func(t *testing.T, e *interopEnv, _ *interopClient) {
		interopVerify(t, e, e.echo, nil, interopClose{4001, interopCloseReason}, nil)
	}},
	{"invalid-utf8", func(t *testing.T, e *interopEnv, _ *interopClient) {
		interopVerify(t, e, e.echo, nil, interopClose{1007, "invalid UTF-8 in text message"}, ErrInvalidUTF8)
	}},
	{"too-big", func(t *testing.T, e *interopEnv, _ *interopClient) {
		interopVerify(t, e, e.echo, nil, interopClose{1009, "message too big"}, ErrMessageTooBig)
		if n := e.srv.Stats().TooBig; n != 1 {
			t.Errorf("Stats().TooBig = %d, want 1", n)
		}
	}},
	{"unmasked", func(t *testing.T, e *interopEnv, _ *interopClient) {
		interopVerify(t, e, e.echo, nil, interopClose{1002, ws.ErrProtocolMaskRequired.Error()}, ws.ErrProtocolMaskRequired)
	}},
	{"channels", func(t *testing.T, e *interopEnv, c *interopClient) {
		sub := `{"op":"subscribe","channel":"` + c.channel() + `","id":"sub-1"}`
		pub := `{"op":"publish","channel":"` + c.channel() + `","data":` + interopPublishData + `,"id":42}`
		want := []interopMsg{interopMsgOf(Text, []byte(sub)), interopMsgOf(Text, []byte(pub))}
		interopVerify(t, e, e.pubsub, want, interopClose{1000, ""}, nil)
		st := e.channels.Counts()
		if st.Published != 1 || st.Delivered != 1 || st.Dropped != 0 || st.Rejected != 0 || st.Subscriptions != 0 {
			t.Errorf("channels stats: got %+v, want 1 published, 1 delivered, none dropped or rejected, no subscriptions left", st)
		}
	}},
}

// interopVerify waits until every connection of the scenario has closed,
// then checks what rec saw: the data messages want in order, every
// connection closed with close, and errs matching wantErr (none if nil).
// It also checks the server's counters for those closes.
func interopVerify(t *testing.T, e *interopEnv, rec *interopRecorder, want []interopMsg, close interopClose, wantErr error) {
	t.Helper()
	conns := 1
	if rec == e.pubsub {
		conns = 2
	}
	eventually(t, 5*time.Second, "the server closing every connection", func() bool {
		_, _, closes, _ := rec.snapshot()
		return len(closes) >= conns
	})
	msgs, _, closes, errs := rec.snapshot()
	if !slices.Equal(msgs, want) {
		t.Errorf("server received messages %v, want %v", msgs, want)
	}
	for i, got := range closes {
		if got != close {
			t.Errorf("OnClose %d: got %d %q, want %d %q", i, got.code, got.reason, close.code, close.reason)
		}
	}
	switch {
	case wantErr == nil && len(errs) > 0:
		t.Errorf("OnError: got %v, want no error", errs)
	case wantErr != nil && (len(errs) != 1 || !errors.Is(errs[0], wantErr)):
		t.Errorf("OnError: got %v, want one %v", errs, wantErr)
	}
	st := e.srv.Stats()
	key := int(close.code)
	if close.code >= 3000 {
		key = 0 // codes the server does not count one by one
	}
	if st.Closes[key] != uint64(conns) || len(st.Closes) != 1 {
		t.Errorf("Stats().Closes = %v, want map[%d:%d]", st.Closes, key, conns)
	}
	if uint64(len(want)) != st.MessagesIn {
		t.Errorf("Stats().MessagesIn = %d, want %d", st.MessagesIn, len(want))
	}
	if st.Conns != 0 || st.QueuedBytes != 0 || st.UnsentBytes != 0 || st.InternalErrors != 0 {
		t.Errorf("after the closes: Conns %d, QueuedBytes %d, UnsentBytes %d, InternalErrors %d; want all 0",
			st.Conns, st.QueuedBytes, st.UnsentBytes, st.InternalErrors)
	}
}

// interopClient is one WebSocket client implementation.
type interopClient struct {
	name string
	// missing says why the client cannot run here ("" if it can).
	missing func() string
	// scenarios the client runs, by name.
	scenarios map[string]interopRun
	// pings are the payloads the client's ping scenario sends, if not
	// interopPingPayloads.
	pings [][]byte
}

// interopRun runs one scenario against e's server and returns what the
// client found wrong in the server's answers.
type interopRun func(ctx context.Context, t *testing.T, e *interopEnv) error

// channel is the channel name the client's channels scenario uses.
func (c *interopClient) channel() string { return "interop." + c.name }

func TestInterop(t *testing.T) {
	for _, c := range interopClients() {
		t.Run(c.name, func(t *testing.T) {
			if why := c.missing(); why != "" {
				if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
					t.Fatalf("%s; CI is set, so this is a failure: run scripts/deps.sh", why)
				}
				t.Skipf("%s: run scripts/deps.sh", why)
			}
			for _, sc := range interopScenarios {
				run := c.scenarios[sc.name]
				if run == nil {
					continue
				}
				t.Run(sc.name, func(t *testing.T) {
					e := startInterop(t)
					ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
					defer cancel()
					if err := run(ctx, t, e); err != nil {
						t.Fatalf("%s client, %s: %v", c.name, sc.name, err)
					}
					sc.verify(t, e, c)
				})
			}
		})
	}
}

func interopClients() []*interopClient {
	script := func(run func(e *interopEnv, scenario string) []string) map[string]interopRun {
		m := make(map[string]interopRun)
		for _, sc := range interopScenarios {
			if sc.name != "unmasked" {
				m[sc.name] = func(ctx context.Context, t *testing.T, e *interopEnv) error {
					return interopRunScript(ctx, t, run(e, sc.name))
				}
			}
		}
		return m
	}
	available := func() string { return "" }
	return []*interopClient{
		{name: "coder", missing: available, scenarios: interopGoScenarios("coder", interopDialCoder, interopCoderFragmented, interopCoderPing),
			pings: [][]byte{[]byte("1"), []byte("2"), []byte("3")}}, // coder's Ping numbers its payloads
		{name: "gorilla", missing: available, scenarios: interopGoScenarios("gorilla", interopDialGorilla, interopGorillaFragmented, interopGorillaPing)},
		{name: "node", missing: interopNodeMissing, scenarios: script(func(e *interopEnv, sc string) []string {
			return []string{"node", interopNodeDir + "/client.js", e.base, sc}
		})},
		{name: "python", missing: interopPythonMissing, scenarios: script(func(e *interopEnv, sc string) []string {
			return []string{interopPython, interopPythonDir + "/client.py", e.base, sc}
		})},
		{name: "raw", missing: available, scenarios: map[string]interopRun{"unmasked": interopRawUnmasked}},
	}
}

var interopNodeMissing = sync.OnceValue(func() string {
	if _, err := exec.LookPath("node"); err != nil {
		return "node is not on PATH"
	}
	if _, err := os.Stat(interopNodeDir + "/node_modules/ws/package.json"); err != nil {
		return "Node's ws is not installed in wsconn/" + interopNodeDir + " (npm ci)"
	}
	return ""
})

var interopPythonMissing = sync.OnceValue(func() string {
	if out, err := exec.Command(interopPython, "-c", "import websockets").CombinedOutput(); err != nil {
		return fmt.Sprintf("%s cannot import websockets (Debian's python3-websockets): %v: %s",
			interopPython, err, bytes.TrimSpace(out))
	}
	return ""
})

// interopRunScript runs an interop client script (argv), logs its output, and
// fails if it exits non-zero.
func interopRunScript(ctx context.Context, t *testing.T, argv []string) error {
	t.Helper()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", strings.Join(argv, " "), out)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s did not finish in time (%v); its output is logged above", argv[0], ctx.Err())
	case err != nil:
		return fmt.Errorf("%s exited with %v; its output is logged above", argv[0], err)
	}
	return nil
}

// interopCheckEcho compares a message read back with what was sent.
func interopCheckEcho(what string, gotType, wantType MessageType, got, want []byte) error {
	if gotType != wantType || !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		return fmt.Errorf("%s: got a %v message of %d bytes, want %v of %d bytes (first difference at byte %d)",
			what, gotType, len(got), wantType, len(want), i)
	}
	return nil
}

// interopWaitFor polls cond until it holds or ctx is done.
func interopWaitFor(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// interopRawUnmasked sends a text frame without a mask over a plain TCP socket
// after a hand-written handshake: every client library masks (RFC 6455
// section 5.1), so none can send it. The server must close with 1002.
func interopRawUnmasked(ctx context.Context, _ *testing.T, e *interopEnv) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.srv.Addr().String())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 section 1.3's example
	req := "GET /echo HTTP/1.1\r\nHost: " + e.srv.Addr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the handshake response: %w", err)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; resp.StatusCode != http.StatusSwitchingProtocols || got != want {
		return fmt.Errorf("handshake: got %s with accept %q, want 101 with %q", resp.Status, got, want)
	}
	if _, err := conn.Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil { // FIN, text, no mask, 2 bytes
		return err
	}
	h, err := ws.ReadHeader(br)
	if err != nil {
		return fmt.Errorf("reading the server's frame: %w", err)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(br, payload); err != nil {
		return err
	}
	if h.OpCode != ws.OpClose || h.Masked || len(payload) < 2 {
		return fmt.Errorf("got frame %+v with %q, want an unmasked close frame with a code", h, payload)
	}
	if code, _ := ws.ParseCloseFrameData(payload); StatusCode(code) != StatusProtocolError {
		return fmt.Errorf("got close code %d, want 1002", code)
	}
	return nil
}
