package wsconn

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/poller"
)

// Tests of the invariants in docs/design.md that concern a whole server: one
// descriptor per connection, no goroutine per connection, a worker never
// waits on one client, slow consumers are cut off, shutdown says 1001.
// Clients here are raw sockets (one descriptor, no goroutine each), so the
// process's own counts show the server's.

// invDial opens a WebSocket connection with a bare socket and returns it
// after the 101 response.
func invDial(t testing.TB, srv *Server, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	// Read exactly the response head, byte by byte, so no frame byte is
	// consumed by a buffer.
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("read response: %v (got %q)", err, head)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101 ") {
		t.Fatalf("got response %q, want 101", head)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// invFrame compiles a masked client frame.
func invFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	b, err := ws.CompileFrame(f)
	if err != nil {
		panic(err)
	}
	return b
}

// invReadFrame reads one server frame.
func invReadFrame(t testing.TB, r io.Reader) ws.Frame {
	t.Helper()
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf("read header: %v", err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return ws.Frame{Header: h, Payload: p}
}

func countFds(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestOneDescriptorAndNoGoroutinePerConnection opens 2,000 connections:
// the process gains one descriptor per server-side connection (plus the
// client's own), and the number of goroutines does not grow with them.
func TestOneDescriptorAndNoGoroutinePerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const n = 2000
	srv := startServer(t, Config{Workers: 8})
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	invDial(t, srv, "/echo").Close() // warm up: pools, the sweeper
	eventually(t, 5*time.Second, "warm-up connection closed", func() bool { return srv.Conns() == 0 })
	fds0, g0 := countFds(t), runtime.NumGoroutine()
	for i := 0; i < n; i++ {
		conns = append(conns, invDial(t, srv, "/echo"))
	}
	eventually(t, 5*time.Second, "all connections open", func() bool { return srv.Conns() == n })
	fds1, g1 := countFds(t), runtime.NumGoroutine()
	serverFds := fds1 - fds0 - n // minus the clients' own sockets
	t.Logf("%d connections: +%d server descriptors, goroutines %d -> %d", n, serverFds, g0, g1)
	if serverFds < n-2 || serverFds > n+2 {
		t.Errorf("server descriptors grew by %d for %d connections, want %d (one each, no dup)", serverFds, n, n)
	}
	// The pool may have started its workers; nothing else may grow.
	if grown := g1 - g0; grown > 8+2 {
		t.Errorf("goroutines grew by %d for %d connections, want at most the pool size (8)", grown, n)
	}
}

// TestStalledClientsDoNotBlockOthers: twice as many clients as workers
// each send half a frame and stall; a well-behaved client still gets its
// echo at once, because a partial frame never holds a worker.
func TestStalledClientsDoNotBlockOthers(t *testing.T) {
	const workers = 4
	srv := startServer(t, Config{Workers: workers})
	frame := invFrame(ws.OpText, true, []byte(strings.Repeat("x", 1000)))
	for i := 0; i < 2*workers; i++ {
		c := invDial(t, srv, "/echo")
		defer c.Close()
		if _, err := c.Write(frame[:len(frame)/2]); err != nil {
			t.Fatal(err)
		}
	}
	// Also stall in the handshake.
	for i := 0; i < 2*workers; i++ {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n")
	}
	good := invDial(t, srv, "/echo")
	defer good.Close()
	start := time.Now()
	if _, err := good.Write(invFrame(ws.OpText, true, []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	_ = good.SetReadDeadline(time.Now().Add(5 * time.Second))
	f := invReadFrame(t, good)
	if string(f.Payload) != "hello" {
		t.Fatalf("got echo %q, want %q", f.Payload, "hello")
	}
	t.Logf("echo with %d stalled clients took %v", 4*workers, time.Since(start))
}

// recordingHandler records OnClose codes and OnError errors.
type recordingHandler struct {
	Handler
	mu     sync.Mutex
	closes []StatusCode
	errs   []error
}

func (h *recordingHandler) OnError(c Conn, err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
	h.Handler.OnError(c, err)
}

// failed returns how many errors OnError got that match target.
func (h *recordingHandler) failed(target error) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, err := range h.errs {
		if errors.Is(err, target) {
			n++
		}
	}
	return n
}

func (h *recordingHandler) OnClose(c Conn, code StatusCode, reason string) {
	h.mu.Lock()
	h.closes = append(h.closes, code)
	h.mu.Unlock()
	h.Handler.OnClose(c, code, reason)
}

func (h *recordingHandler) closed(code StatusCode) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.closes {
		if c == code {
			n++
		}
	}
	return n
}

// TestSlowConsumerIsCut: a subscriber that never reads is closed with 1008
// once its queue passes MaxQueueBytes, while the others get every message.
func TestSlowConsumerIsCut(t *testing.T) {
	channels, err := newChannels()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingHandler{Handler: channels}
	srv := startServer(t, Config{
		Routes:         map[string]Handler{"/ws": rec},
		MaxMessageSize: 16 << 10,
		MaxQueueBytes:  64 << 10,
		CloseTimeout:   300 * time.Millisecond, // the slow client will never answer
		SweepInterval:  20 * time.Millisecond,
	})
	subscribe := func(c net.Conn, r *bufio.Reader) {
		t.Helper()
		if _, err := c.Write(invFrame(ws.OpText, true, []byte(`{"op":"subscribe","channel":"news","id":1}`))); err != nil {
			t.Fatal(err)
		}
		if f := invReadFrame(t, r); !strings.Contains(string(f.Payload), `"ack"`) {
			t.Fatalf("got %q, want an ack", f.Payload)
		}
	}
	slow := invDial(t, srv, "/ws")
	defer slow.Close()
	if tc, ok := slow.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // fill up fast
	}
	subscribe(slow, bufio.NewReader(slow))
	// 300 x 32 KiB is more than the kernel's socket buffers hold for a
	// client that never reads (loopback autotunes them to a few MiB).
	const good, msgs = 3, 300
	var wg sync.WaitGroup
	received := make([]int, good)
	for i := 0; i < good; i++ {
		c := invDial(t, srv, "/ws")
		defer c.Close()
		r := bufio.NewReaderSize(c, 64<<10)
		subscribe(c, r)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for received[i] < msgs {
				f := invReadFrame(t, r)
				if f.Header.OpCode == ws.OpText {
					received[i]++
				}
			}
		}(i)
	}
	data, _ := json.Marshal(strings.Repeat("y", 32<<10))
	for i := 0; i < msgs; i++ {
		if _, err := channels.Publish("news", data); err != nil {
			t.Fatal(err)
		}
		// Pace the publisher so that the readers, not the publisher,
		// decide who keeps up.
		eventually(t, 10*time.Second, "readers keep up", func() bool {
			return srv.Stats().QueuedBytes < 256<<10
		})
	}
	wg.Wait()
	for i, n := range received {
		if n != msgs {
			t.Errorf("subscriber %d got %d messages, want %d", i, n, msgs)
		}
	}
	eventually(t, 10*time.Second, "slow consumer closed with 1008", func() bool {
		return rec.closed(StatusPolicyViolation) == 1
	})
	if got := srv.Stats().SlowConsumers; got != 1 {
		t.Errorf("slow consumers = %d, want 1", got)
	}
	// OnError precedes OnClose; its cause is the error Send returns.
	if got := rec.failed(ErrSlowConsumer); got != 1 {
		t.Errorf("OnError got ErrSlowConsumer %d times, want 1", got)
	}
}

// TestShutdownSendsGoingAway: Shutdown sends every connection a 1001 close
// frame after what was queued, and returns once the clients answered.
func TestShutdownSendsGoingAway(t *testing.T) {
	srv := startServer(t, Config{})
	const n = 50
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = invDial(t, srv, "/echo")
		defer conns[i].Close()
	}
	var wg sync.WaitGroup
	codes := make([]StatusCode, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			h, err := ws.ReadHeader(c)
			if err != nil || h.OpCode != ws.OpClose {
				return
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(c, p); err != nil || len(p) < 2 {
				return
			}
			codes[i] = StatusCode(binary.BigEndian.Uint16(p))
			_, _ = c.Write(invFrame(ws.OpClose, true, p[:2])) // answer it
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	for i, code := range codes {
		if code != StatusGoingAway {
			t.Errorf("connection %d got close code %d, want 1001", i, code)
		}
	}
	if st := srv.Stats(); st.ForcedCloses != 0 || st.Conns != 0 {
		t.Errorf("after shutdown: forced %d, open %d, want 0 and 0", st.ForcedCloses, st.Conns)
	}
}

// TestShutdownDeadlineReportsLoss: a client that neither reads nor answers
// keeps its connection past the deadline; Shutdown closes it and says so.
func TestShutdownDeadlineReportsLoss(t *testing.T) {
	srv := startServer(t, Config{CloseTimeout: time.Minute})
	c := invDial(t, srv, "/echo")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 connections closed") {
		t.Fatalf("Shutdown = %v, want a report of 1 forced close", err)
	}
}

// TestMaxConnsAnswers503 checks the connection cap from a client's view.
func TestMaxConnsAnswers503(t *testing.T) {
	srv := startServer(t, Config{MaxConns: 2})
	a := invDial(t, srv, "/echo")
	defer a.Close()
	b := invDial(t, srv, "/echo")
	defer b.Close()
	resp := rawHandshakeStatus(t, srv, "/echo")
	if resp != http.StatusServiceUnavailable {
		t.Fatalf("third connection got %d, want 503", resp)
	}
	a.Close()
	eventually(t, 5*time.Second, "slot freed", func() bool { return srv.Conns() == 1 })
	c := invDial(t, srv, "/echo")
	c.Close()
}

// rawHandshakeStatus sends an upgrade request and returns the HTTP status.
func rawHandshakeStatus(t testing.TB, srv *Server, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConnSize guards the memory of an idle connection (docs/design.md
// invariant 3): a conn is one allocation in the 144-byte size class.
func TestConnSize(t *testing.T) {
	if got := unsafe.Sizeof(conn{}); got > 144 {
		t.Fatalf("conn is %d bytes, want at most 144: keep rare fields in connExtra", got)
	}
}

// TestConnHidesDescriptor guards Conn's method set: the poller's
// descriptor is a field, and its handler is connEvents, so a handler
// holding a Conn cannot read, write or re-arm its socket.
func TestConnHidesDescriptor(t *testing.T) {
	var c any = &conn{}
	if _, ok := c.(poller.Handler); ok {
		t.Fatal("*conn implements poller.Handler: HandleEvents belongs on connEvents")
	}
	if _, ok := c.(interface{ Wake() }); ok {
		t.Fatal("*conn has the poller descriptor's methods: keep poller.Desc a field, not embedded")
	}
	var _ poller.Handler = (*connEvents)(nil)
}
