package wsconn

import (
	"bytes"
	"net/netip"
	"runtime"
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"wsgate/handler"
)

// Benchmarks of the hot paths (DESIGN.md: zero allocations per operation):
// reading frames, writing a message, and queueing a broadcast frame.
//
//	go test -run '^$' -bench . -benchmem ./wsconn/

// benchConn upgrades one end of a socket pair on srv and returns the
// server's Conn and the other end (blocking), as if a client had connected.
func benchConn(b *testing.B, srv *Server, path string) (*Conn, int) {
	b.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	peer := fds[1]
	if err := unix.SetNonblock(peer, false); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(peer) })
	srv.accept(fds[0], netip.AddrPort{})
	req := "GET " + path + " HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := unix.Write(peer, []byte(req)); err != nil {
		b.Fatal(err)
	}
	var resp []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		if _, err := unix.Read(peer, one); err != nil {
			b.Fatal(err)
		}
		resp = append(resp, one[0])
	}
	var c *Conn
	srv.table.each(func(x *Conn) {
		if x.Fd() == fds[0] {
			c = x
		}
	})
	if c == nil || c.phaseNow() != phaseOpen {
		b.Fatalf("connection not open after %q", resp)
	}
	return c, peer
}

// drain reads and discards everything from fd until it is closed.
func drain(fd int) {
	buf := make([]byte, 64<<10)
	for {
		if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
			return
		}
	}
}

type nopHandler struct{ handler.Base }

// BenchmarkFrameRead parses 64 masked 128-byte text frames per operation
// through the full read path (unmask, UTF-8 check, handler call).
func BenchmarkFrameRead(b *testing.B) {
	srv := startServer(b, Config{Routes: map[string]handler.Handler{"/nop": nopHandler{}}})
	c, _ := benchConn(b, srv, "/nop")
	var wire []byte
	for range 64 {
		wire = append(wire, invFrame(ws.OpText, true, bytes.Repeat([]byte("a"), 128))...)
	}
	work := make([]byte, len(wire))
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		copy(work, wire) // frames are unmasked in place
		c.frames(work)
	}
	b.StopTimer()
	if got := srv.Stats().MessagesIn; got != uint64(64*b.N) {
		b.Fatalf("handled %d messages, want %d", got, 64*b.N)
	}
}

// BenchmarkFrameWrite sends one 128-byte message per operation: compile
// the frame into a pooled buffer and write it to the socket.
func BenchmarkFrameWrite(b *testing.B) {
	srv := startServer(b, Config{MaxQueueBytes: 1 << 30})
	c, peer := benchConn(b, srv, "/echo")
	go drain(peer)
	msg := bytes.Repeat([]byte("a"), 128)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := c.Send(handler.Text, msg); err != nil {
			b.Fatal(err)
		}
		if i%1024 == 1023 { // let the reader catch up: measure writes, not a growing queue
			for c.queued() {
				runtime.Gosched()
			}
		}
	}
}

func (c *Conn) queued() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out != nil
}

// BenchmarkBroadcastEnqueue queues one shared prepared frame per operation
// on a connection whose socket is full: the per-recipient cost of a
// broadcast when the recipient is behind.
func BenchmarkBroadcastEnqueue(b *testing.B) {
	srv := startServer(b, Config{MaxQueueBytes: 1 << 30})
	c, _ := benchConn(b, srv, "/echo")
	pm := handler.NewPreparedMessage(handler.Text, bytes.Repeat([]byte("a"), 64))
	for { // fill the socket until the queue exists
		if err := c.SendPrepared(pm); err != nil {
			b.Fatal(err)
		}
		if c.queued() {
			break
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := c.SendPrepared(pm); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 { // keep the queue from growing without bound
			c.mu.Lock()
			c.out.q = c.out.q[:c.out.head+1]
			c.out.bytes = len(c.out.q[c.out.head].b)
			c.mu.Unlock()
		}
	}
}
