package wsconn

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// A healthy peer of a busy server must not be lost to the heartbeat: these
// tests make the two ways a busy server used to misjudge one.

// pusher sends size bytes in 256 KiB binary messages when it receives
// "push", and echoes anything else.
type pusher struct {
	Base
	size int
}

func (p pusher) OnMessage(c Conn, t MessageType, data []byte) {
	if string(data) != "push" {
		_ = c.Send(t, data)
		return
	}
	chunk := make([]byte, 256<<10)
	for sent := 0; sent < p.size; sent += len(chunk) {
		if err := c.Send(Binary, chunk); err != nil {
			return
		}
	}
}

// TestHeartbeatPingBehindQueue: a peer that reads steadily but slower than
// the server writes, and answers each ping as soon as it reads it. The
// heartbeat ping waits in the outbound queue behind megabytes the peer has
// not read yet; PongTimeout used to count from when it was queued, so the
// peer was dropped (1006) while it was taking every byte. It counts from
// when the ping is written now, and a wait in which the queue moved starts
// again.
func TestHeartbeatPingBehindQueue(t *testing.T) {
	const size = 16 << 20
	cfg := Config{
		PingInterval:  100 * time.Millisecond,
		PongTimeout:   time.Second,
		SweepInterval: 20 * time.Millisecond,
		MaxQueueBytes: 2 * size,
		Routes:        map[string]Handler{"/push": pusher{size: size}},
	}
	srv := startServer(t, cfg)
	// A small receive buffer keeps most of the output in the server's
	// queue rather than in the kernel.
	d := net.Dialer{Timeout: ioTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		_ = rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
		return err
	}}
	dialer := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	conn, br, _, err := dialer.Dial(context.Background(), "ws://"+srv.Addr().String()+"/push")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	} else {
		br.Reset(io.MultiReader(br, conn))
	}
	if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewTextFrame([]byte("push")))); err != nil {
		t.Fatalf("write: %v", err)
	}
	// Read at about 6 MB/s, 64 KiB at a time: the 16 MiB take more than
	// twice PongTimeout to arrive.
	got, pings := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for got < size {
		_ = conn.SetReadDeadline(deadline)
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("after %d of %d bytes and %d pings: %v (stats %+v)", got, size, pings, err, heartbeatStats(srv))
		}
		switch h.OpCode {
		case ws.OpPing:
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(br, payload); err != nil {
				t.Fatalf("ping payload: %v", err)
			}
			pings++
			if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewPongFrame(payload))); err != nil {
				t.Fatalf("pong: %v", err)
			}
		case ws.OpBinary:
			for left := int(h.Length); left > 0; {
				n, err := io.CopyN(io.Discard, br, int64(min(left, 64<<10)))
				left -= int(n)
				got += int(n)
				if err != nil {
					t.Fatalf("after %d of %d bytes and %d pings: %v (stats %+v)", got, size, pings, err, heartbeatStats(srv))
				}
				time.Sleep(10 * time.Millisecond) // the slow reader's pace
			}
		default:
			t.Fatalf("got a %v frame after %d bytes, want pings and binary messages", h.OpCode, got)
		}
	}
	// The ping came after the data: answer it, and the connection is
	// still there to echo.
	for pings == 0 {
		_ = conn.SetReadDeadline(deadline)
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("after the data, waiting for the ping: %v (stats %+v)", err, heartbeatStats(srv))
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatalf("frame payload: %v", err)
		}
		if h.OpCode != ws.OpPing {
			t.Fatalf("got a %v frame after the data, want the ping", h.OpCode)
		}
		pings++
		if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewPongFrame(payload))); err != nil {
			t.Fatalf("pong: %v", err)
		}
	}
	if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewTextFrame([]byte("still here")))); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = conn.SetReadDeadline(deadline)
	if h, err := ws.ReadHeader(br); err != nil || h.OpCode != ws.OpText {
		t.Fatalf("echo: got %v, %v, want a text frame (stats %+v)", h.OpCode, err, heartbeatStats(srv))
	}
	st := srv.Stats()
	if st.HeartbeatTimeouts != 0 {
		t.Errorf("HeartbeatTimeouts = %d, want 0: the peer was reading all along", st.HeartbeatTimeouts)
	}
	if st.PongWaitsRestarted == 0 {
		t.Errorf("PongWaitsRestarted = 0: the ping never waited behind the queue for a PongTimeout, so this test showed nothing (stats %+v)",
			heartbeatStats(srv))
	}
	if n := srv.Conns(); n != 1 {
		t.Errorf("Conns = %d after the transfer, want 1", n)
	}
	t.Logf("%d MiB read at the slow reader's pace, %d pings answered; %+v", size>>20, pings, heartbeatStats(srv))
}

// heartbeatStats is the part of Stats these tests are about.
func heartbeatStats(srv *Server) map[string]uint64 {
	st := srv.Stats()
	return map[string]uint64{"pings": st.Pings, "heartbeat_timeouts": st.HeartbeatTimeouts,
		"waits_restarted": st.PongWaitsRestarted, "late_pongs": st.LatePongs, "graces": st.PongGraces}
}

// blocker blocks in OnMessage("block") until release is closed, and
// echoes anything else. opened gets the server side of each connection.
type blocker struct {
	Base
	opened  chan *conn
	blocked chan struct{}
	release chan struct{}
}

func (b *blocker) OnOpen(c Conn) { b.opened <- c.(*conn) }

func (b *blocker) OnMessage(c Conn, t MessageType, data []byte) {
	if string(data) == "block" {
		b.blocked <- struct{}{}
		<-b.release
		return
	}
	_ = c.Send(t, data)
}

// TestHeartbeatPongInSocketAtDeadline: the pong has arrived but its
// readiness event has not reached a worker when the pong deadline wakes
// the owner (the descriptor is re-armed only when the run that was in
// progress ends, and the wake was already pending). The connection used to
// be dropped with the pong unread in its socket; the socket is read first
// now. The reactor could win the race this sets up, so it runs a few
// rounds; the old code failed 30 of 30 runs of the test.
func TestHeartbeatPongInSocketAtDeadline(t *testing.T) {
	b := &blocker{opened: make(chan *conn, 1), blocked: make(chan struct{}), release: make(chan struct{})}
	cfg := Config{
		PingInterval:  time.Hour, // pings only from this test
		PongTimeout:   time.Second,
		SweepInterval: 20 * time.Millisecond,
		Routes:        map[string]Handler{"/block": b},
	}
	srv := startServer(t, cfg)
	const rounds = 8
	for i := range rounds {
		c := dialWS(t, srv, "/block")
		sc := <-b.opened
		c.send(textFrame("block"))
		<-b.blocked // the owner runs (and its descriptor is disarmed) until release
		// As if a ping had gone unanswered for longer than PongTimeout.
		sc.pingAt.Store(max(1, srv.now()-uint32(2*cfg.PongTimeout/time.Millisecond)))
		sc.desc.Wake() // what the sweeper does at the deadline: pending, merged into one run
		c.send(pongFrame(""))
		eventually(t, ioTimeout, "the pong in the server's socket", func() bool {
			n, err := unix.IoctlGetInt(sc.desc.Fd(), unix.SIOCINQ)
			return err == nil && n > 0
		})
		// One P: the worker goes on to the pending wake before the
		// reactor's goroutine can deliver the readiness the re-arm
		// reports, as on a machine whose cores are all busy.
		procs := runtime.GOMAXPROCS(1)
		b.release <- struct{}{}
		eventually(t, ioTimeout, "the pong read or the connection dropped", func() bool {
			return sc.pingAt.Load() == 0 || srv.Stats().HeartbeatTimeouts > 0
		})
		runtime.GOMAXPROCS(procs)
		if st := srv.Stats(); st.HeartbeatTimeouts != 0 {
			t.Fatalf("round %d: HeartbeatTimeouts = %d with the pong in the socket, want 0 (%+v)",
				i, st.HeartbeatTimeouts, heartbeatStats(srv))
		}
		c.send(textFrame("still here"))
		c.expectFrame(textEcho("still here"))
		c.closeHandshake()
	}
	// late_pongs counts the rounds in which the pong was read at the
	// deadline; in the others the readiness event came first.
	t.Logf("%d rounds: %+v", rounds, heartbeatStats(srv))
}

// graceConfig pings after 400 ms of silence and waits 100 ms for a pong:
// four graces of 100 ms fit in the ping interval.
func graceConfig(rec *recorder) Config {
	return Config{
		PingInterval:  400 * time.Millisecond,
		PongTimeout:   100 * time.Millisecond,
		SweepInterval: 10 * time.Millisecond,
		Routes:        map[string]Handler{"/rec": rec},
	}
}

// TestHeartbeatGraceForAcknowledgedPing: a peer whose TCP stack took the
// ping but whose application answers late (a busy machine) gets more time
// while its kernel has acknowledged everything; a PongTimeout used to be
// all it had. It answers once the server has extended its wait.
func TestHeartbeatGraceForAcknowledgedPing(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, graceConfig(rec))
	c := dialWS(t, srv, "/rec")
	f, err := c.readFrame(ioTimeout)
	if err != nil || f.op != ws.OpPing {
		t.Fatalf("got %v, %v, want a ping", f, err)
	}
	eventually(t, ioTimeout, "the pong wait extended", func() bool {
		st := srv.Stats()
		return st.PongGraces > 0 || st.HeartbeatTimeouts > 0
	})
	if st := srv.Stats(); st.HeartbeatTimeouts != 0 {
		t.Fatalf("dropped at the first pong deadline, with the ping acknowledged: %+v", heartbeatStats(srv))
	}
	c.send(pongFrame(string(f.payload)))
	c.send(textFrame("late, not lost"))
	c.expectFrame(textEcho("late, not lost"))
	if st := srv.Stats(); st.HeartbeatTimeouts != 0 {
		t.Errorf("HeartbeatTimeouts = %d, want 0", st.HeartbeatTimeouts)
	}
	c.closeHandshake()
}

// TestHeartbeatGraceIsBounded: a peer whose kernel acknowledges the ping
// but whose application never answers (it hangs) is still dropped, once
// the graces that fit in PingInterval are spent: exactly four here.
func TestHeartbeatGraceIsBounded(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, graceConfig(rec))
	c := dialWS(t, srv, "/rec")
	if f, err := c.readFrame(ioTimeout); err != nil || f.op != ws.OpPing {
		t.Fatalf("got %v, %v, want a ping", f, err)
	}
	c.expectEOF()
	eventually(t, ioTimeout, "the heartbeat timeout counted", func() bool { return srv.Stats().HeartbeatTimeouts == 1 })
	if st := srv.Stats(); st.PongGraces != 4 {
		t.Errorf("PongGraces = %d before the drop, want 4 (400 ms interval / 100 ms timeout)", st.PongGraces)
	}
}

// TestMaxGraces: as many PongTimeouts as fit in PingInterval, at most 255.
func TestMaxGraces(t *testing.T) {
	for _, tc := range []struct {
		ping, pong time.Duration
		want       int
	}{
		{30 * time.Second, 10 * time.Second, 3},
		{5 * time.Minute, time.Minute, 5},
		{100 * time.Millisecond, 200 * time.Millisecond, 0},
		{time.Hour, time.Millisecond, 255},
		{time.Second, 0, 0},
	} {
		cfg := Config{PingInterval: tc.ping, PongTimeout: tc.pong}
		if got := maxGraces(&cfg); got != tc.want {
			t.Errorf("maxGraces(ping %v, pong %v) = %d, want %d", tc.ping, tc.pong, got, tc.want)
		}
	}
}
