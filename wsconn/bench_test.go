package wsconn

import (
	"bytes"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// Benchmarks of the hot paths (the house style: hot paths aim at zero allocations per operation):
// reading frames, writing a message, and queueing a broadcast frame.
//
//	go test -run '^$' -bench . -benchmem ./wsconn/

// benchConn upgrades one end of a socket pair on srv and returns the
// server's conn and the other end (blocking), as if a client had connected.
func benchConn(b *testing.B, srv *Server, path string) (*conn, int) {
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
	var c *conn
	srv.table.each(func(x *conn) {
		if x.desc.Fd() == fds[0] {
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

type nopHandler struct{ Base }

// benchConfig turns off the per-connection rate limits, which a benchmark
// passes within its first millisecond (and is then closed with 1008).
func benchConfig(cfg Config) Config {
	cfg.MaxMessageRate, cfg.MaxByteRate = -1, -1
	return cfg
}

// readBenchWire is what the read benchmarks parse per operation: 64
// masked 128-byte text frames.
func readBenchWire() []byte {
	var wire []byte
	for range 64 {
		wire = append(wire, invFrame(ws.OpText, true, bytes.Repeat([]byte("a"), 128))...)
	}
	return wire
}

// checkMessagesIn fails b unless srv handled exactly n messages (a
// benchmark closed early would be fast for the wrong reason).
func checkMessagesIn(b *testing.B, srv *Server, n int) {
	if got := srv.Stats().MessagesIn; got != uint64(n) {
		b.Fatalf("handled %d messages, want %d", got, n)
	}
}

// BenchmarkFrameRead parses 64 masked 128-byte text frames per operation
// through the full read path (unmask, UTF-8 check, handler call).
func BenchmarkFrameRead(b *testing.B) {
	srv := startServer(b, benchConfig(Config{Routes: map[string]Handler{"/nop": nopHandler{}}}))
	c, _ := benchConn(b, srv, "/nop")
	wire := readBenchWire()
	work := make([]byte, len(wire))
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		copy(work, wire) // frames are unmasked in place
		c.frames(work, 0)
	}
	b.StopTimer()
	checkMessagesIn(b, srv, 64*b.N)
}

// BenchmarkFrameWrite sends one 128-byte message per operation: compile
// the frame into a pooled buffer and write it to the socket.
func BenchmarkFrameWrite(b *testing.B) {
	srv := startServer(b, benchConfig(Config{MaxQueueBytes: 1 << 30}))
	c, peer := benchConn(b, srv, "/echo")
	go drain(peer)
	msg := bytes.Repeat([]byte("a"), 128)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := c.Send(Text, msg); err != nil {
			b.Fatal(err)
		}
		if i%1024 == 1023 { // let the reader catch up: measure writes, not a growing queue
			for c.queued() {
				runtime.Gosched()
			}
		}
	}
}

func (c *conn) queued() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out != nil
}

// fullConn opens a connection on srv and sends it pm until its socket is
// full and its queue exists.
func fullConn(b *testing.B, srv *Server, pm *PreparedMessage) *conn {
	c, _ := benchConn(b, srv, "/echo")
	for !c.queued() {
		if err := c.SendPrepared(pm); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// trimQueue cuts c's queue back to its first frame, so that a benchmark
// queueing without end does not grow it without bound.
func (c *conn) trimQueue() {
	c.mu.Lock()
	c.hot().queued.Add(-int64(c.out.dropAllButHead()))
	c.mu.Unlock()
}

// BenchmarkBroadcastEnqueue queues one shared prepared frame per operation
// on a connection whose socket is full: the per-recipient cost of a
// broadcast when the recipient is behind.
func BenchmarkBroadcastEnqueue(b *testing.B) {
	srv := startServer(b, benchConfig(Config{MaxQueueBytes: 1 << 30}))
	pm := NewPreparedMessage(Text, bytes.Repeat([]byte("a"), 64))
	c := fullConn(b, srv, pm)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := c.SendPrepared(pm); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 { // keep the queue from growing without bound
			c.trimQueue()
		}
	}
}

// Counting on the hot path. Every send adds to two shared atomics
// (messages and bytes out, or messages out and queued bytes); with several
// workers sending at once those cache lines move between cores. The
// benchmarks below weigh that: the parallel send paths, and one shared
// atomic add against one on a counter of the goroutine's own.
//
//	go test -run '^$' -bench 'Parallel|Counter' -cpu 1,2 ./wsconn/

// BenchmarkBroadcastEnqueueParallel is BenchmarkBroadcastEnqueue with a
// connection per goroutine, all queueing at once.
func BenchmarkBroadcastEnqueueParallel(b *testing.B) {
	srv := startServer(b, benchConfig(Config{MaxQueueBytes: 1 << 30}))
	pm := NewPreparedMessage(Text, bytes.Repeat([]byte("a"), 64))
	conns := make(chan *conn, 64)
	for range cap(conns) {
		conns <- fullConn(b, srv, pm)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-conns
		for i := 0; pb.Next(); i++ {
			if err := c.SendPrepared(pm); err != nil {
				b.Error(err)
				return
			}
			if i%4096 == 4095 {
				c.trimQueue()
			}
		}
	})
}

// BenchmarkFrameReadParallel is BenchmarkFrameRead with a connection per
// goroutine, all parsing at once.
func BenchmarkFrameReadParallel(b *testing.B) {
	srv := startServer(b, benchConfig(Config{Routes: map[string]Handler{"/nop": nopHandler{}}}))
	conns := make(chan *conn, 64)
	for range cap(conns) {
		c, _ := benchConn(b, srv, "/nop")
		conns <- c
	}
	wire := readBenchWire()
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-conns
		work := make([]byte, len(wire))
		for pb.Next() {
			copy(work, wire) // frames are unmasked in place
			c.frames(work, 0)
		}
	})
	b.StopTimer()
	checkMessagesIn(b, srv, 64*b.N)
}

// BenchmarkFrameWriteParallel is BenchmarkFrameWrite with a connection per
// goroutine, all writing at once.
func BenchmarkFrameWriteParallel(b *testing.B) {
	srv := startServer(b, benchConfig(Config{MaxQueueBytes: 1 << 30}))
	msg := bytes.Repeat([]byte("a"), 128)
	conns := make(chan *conn, 64)
	for range cap(conns) {
		c, peer := benchConn(b, srv, "/echo")
		go drain(peer)
		conns <- c
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-conns
		for i := 0; pb.Next(); i++ {
			if err := c.Send(Text, msg); err != nil {
				b.Error(err)
				return
			}
			if i%1024 == 1023 {
				for c.queued() {
					runtime.Gosched()
				}
			}
		}
	})
}

// BenchmarkCounterShared: one atomic add per operation on a counter all
// goroutines share, as the server's counters are.
func BenchmarkCounterShared(b *testing.B) {
	var n atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Add(1)
		}
	})
}

// BenchmarkCounterOwn: one atomic add per operation on a counter of the
// goroutine's own cache line: what striping the counters would cost at
// best.
func BenchmarkCounterOwn(b *testing.B) {
	type padded struct {
		n atomic.Uint64
		_ [56]byte
	}
	counters := make([]padded, 256)
	var next atomic.Int32
	b.RunParallel(func(pb *testing.PB) {
		n := &counters[next.Add(1)%256].n
		for pb.Next() {
			n.Add(1)
		}
	})
}

// BenchmarkSweep is one sweeper tick over 9,000 open, idle connections
// with heartbeats on, reported per connection. "cold" evicts the CPU
// caches before each tick, as the tick finds them on a server whose
// memory is mostly other connections' data. The tick reads the table's
// visit times; a connection is looked at only when its visit comes.
func BenchmarkSweep(b *testing.B) {
	const n = 9000
	srv := startServer(b, benchConfig(Config{Routes: map[string]Handler{"/nop": nopHandler{}},
		PingInterval: time.Minute, SweepInterval: time.Hour}))
	for range n {
		benchConn(b, srv, "/nop")
	}
	evict := make([]byte, 64<<20)
	for _, cold := range []bool{false, true} {
		name := map[bool]string{false: "warm", true: "cold"}[cold]
		b.Run(name, func(b *testing.B) {
			now := srv.nowExact()
			b.ReportAllocs()
			woken := 0
			for range b.N {
				if cold {
					b.StopTimer()
					for i := 0; i < len(evict); i += 64 {
						evict[i]++
					}
					b.StartTimer()
				}
				woken += srv.sweepConns(now)
			}
			b.StopTimer()
			if woken != 0 {
				b.Fatalf("%d idle connections due", woken)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
		})
	}
}
