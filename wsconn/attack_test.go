package wsconn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// attackConfig is the tuned configuration of the servers under attack:
// four workers (fewer than the attackers by far, so that an attacker that
// held a worker would show in the good client's round trips), and
// timeouts short enough for a quick test.
func attackConfig() Config {
	return Config{
		Workers:          4,
		HandshakeTimeout: time.Second,
		PingInterval:     500 * time.Millisecond,
		PongTimeout:      500 * time.Millisecond,
		CloseTimeout:     500 * time.Millisecond,
		SweepInterval:    50 * time.Millisecond,
	}
}

const (
	// endLimit is how long an attack's check waits for the server to
	// close an attacker's connection beyond the timeout that should.
	endLimit = 3 * time.Second
	// minAttack is how long an attack that would be over in a tenth of a
	// second is kept up, in waves, so that the good client is sampled
	// throughout it rather than once.
	minAttack = time.Second
)

// TestAttack is the attack suite (issue 5). Each attack runs against its
// own server on 127.0.0.1:0 with timeouts scaled down from seconds to
// fractions of one, while a well-behaved client keeps doing echo round
// trips and opening new connections (every answer within goodBound), and a
// sampler watches the heap, whose peak must stay under a bound that follows
// from the server's limits and which must come back down once the
// attackers are gone, as must the descriptors. Both ends of every
// connection are in this process, under its descriptor limit (20,000
// here): the largest attack holds about 1,300 descriptors at once.
func TestAttack(t *testing.T) {
	t.Run("Slowloris", testSlowloris)
	t.Run("HalfFrames", testHalfFrames)
	t.Run("NeverReader", testNeverReader)
	t.Run("OversizedHeaders", testOversizedHeaders)
	t.Run("PingFlood", testPingFlood)
	t.Run("PingBurstAcrossTick", testPingBurstAcrossTick)
	t.Run("ReconnectStorm", testReconnectStorm)
	t.Run("TLSHandshakeStall", testTLSHandshakeStall)
	t.Run("Combined", testCombined)
}

// Sizes of the attacks (functions: -short is known only once tests run).
func slowlorisConns() int { return attackN(300) }
func halfFrameConns() int { return attackN(300) }
func floodClients() int   { return attackN(20) }
func stormConns() int     { return attackN(5000) }

const (
	slowlorisPace = 100 * time.Millisecond
	floodPings    = 50000
	stormWorkers  = 16
)

// Live-memory estimates of the attacks, from the server's limits (see
// memWatch.heapBound for how they become a bound on the heap).
const (
	// clientConnBytes is the test's own end of a connection: net.Conn,
	// netFD and poll descriptor, a 4 KiB bufio.Reader, a 512-byte read
	// buffer; and the server's conn (144 bytes), its epoll registration
	// and table slot, and an inState while input is partial (~500 bytes).
	clientConnBytes = 8 << 10
)

func slowlorisLive(cfg Config, n int) (uint64, string) {
	return uint64(n * (cfg.MaxHandshakeSize + clientConnBytes)),
		fmt.Sprintf("%d partial requests, each at most MaxHandshakeSize (%d B), with both ends' state", n, cfg.MaxHandshakeSize)
}

func halfFrameLive(n int) (uint64, string) {
	// A partial frame is assembled in a pooled buffer of the size its
	// header announced (1,000 B, a 1 KiB class), checked against
	// MaxFrameSize before anything is buffered.
	return uint64(n * (1<<10 + clientConnBytes)),
		fmt.Sprintf("%d partial 1,000-byte frames, each in a 1 KiB buffer, with both ends' state", n)
}

func floodLive(cfg Config, n int) (uint64, string) {
	// At most the burst of pings passes the rate limit (2 x
	// MaxMessageRate), each answered by a pong in a pooled buffer of the
	// smallest class (256 B) while it is queued; the 6 KB of pings a
	// client writes at once are one shared slice.
	burst := 2 * cfg.withDefaults().MaxMessageRate
	return uint64(n * (burst*256 + clientConnBytes)),
		fmt.Sprintf("%d flooders, each at most %d queued pongs (the rate limit's burst) of 256 B", n, burst)
}

func stormLive(n int) (uint64, string) {
	return uint64(n * 2 << 10), fmt.Sprintf("all %d storm connections at once, 2 KiB each with both ends", n)
}

// testHalfFrames: upgraded connections that send half a frame and stall
// hold no worker, and are closed by the heartbeat.
func testHalfFrames(t *testing.T) {
	cfg := attackConfig()
	srv := startServer(t, cfg)
	a := underAttack(t, srv, wsEchoOpener(srv.Addr().String(), "/echo"), false)
	ends := halfFrames(t, srv, halfFrameConns(), cfg.PingInterval+cfg.PongTimeout+endLimit)
	checkHalfFrames(t, cfg, ends)
	if got := a.delta(func(s Stats) uint64 { return s.HeartbeatTimeouts }); got != uint64(len(ends)) {
		t.Errorf("HeartbeatTimeouts grew by %d, want %d", got, len(ends))
	}
	live, why := halfFrameLive(halfFrameConns())
	a.finish(t, live, why)
}

// halfFrames opens n connections to /echo that each send the header and
// half the payload of a 1,000-byte text frame, then nothing, and reads each
// until the server closes it or limit passes (longer while the server has
// not yet counted n heartbeat timeouts: see awaitEndsOnce).
func halfFrames(t testing.TB, srv *Server, n int, limit time.Duration) []ending {
	addr := srv.Addr().String()
	beat0 := srv.Stats().HeartbeatTimeouts
	frame := invFrame(ws.OpText, true, bytes.Repeat([]byte("h"), 1000))
	half := frame[:len(frame)-500]
	var stalled attackers
	defer stalled.closeAll()
	for range n {
		c, br, err := attackDial(addr, "/echo")
		if err != nil {
			t.Errorf("half frames: dial: %v", err)
			return nil
		}
		stalled.add(c, br, time.Now())
		if _, err := c.Write(half); err != nil {
			t.Errorf("half frames: write: %v", err)
			return nil
		}
	}
	// The heartbeat ends them all; until the server has counted n, a busy
	// pool (another attack at once, a loaded machine) only delays it.
	return stalled.awaitEndsOnce(limit, func() bool {
		return srv.Stats().HeartbeatTimeouts-beat0 >= uint64(n)
	})
}

// checkHalfFrames: every connection got heartbeat pings and nothing else
// (no close frame: a lost connection is not told), and was closed once the
// ping went unanswered, not before.
func checkHalfFrames(t testing.TB, cfg Config, ends []ending) {
	t.Helper()
	s := summarize(ends)
	t.Logf("half frames: %v", s)
	s.check(t, "half frames")
	// Not before the ping: the heartbeat closes them (HeartbeatTimeouts
	// says so), no other timeout. (The exact time is PingInterval plus
	// PongTimeout, less up to a sweep or more: lastRead is stamped with
	// the coarse clock, which a starved sweeper lets fall behind.)
	earliest := cfg.PingInterval
	for i, e := range ends {
		if !e.closed {
			continue
		}
		ops, err := frameOps(e.data)
		pingsOnly := err == nil && len(ops) > 0
		for _, op := range ops {
			pingsOnly = pingsOnly && op == ws.OpPing
		}
		if !pingsOnly || e.after < earliest {
			t.Errorf("half-frame connection %d: got frames %v (%v), closed after %v; want pings only, closed after at least %v",
				i, ops, err, e.after, earliest)
			return
		}
	}
}

// frameOps parses the server frames in b and returns their opcodes.
func frameOps(b []byte) ([]ws.OpCode, error) {
	r := bytes.NewReader(b)
	var ops []ws.OpCode
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return ops, err
		}
		if h.Length > int64(r.Len()) {
			return ops, io.ErrUnexpectedEOF
		}
		_, _ = r.Seek(h.Length, io.SeekCurrent)
		ops = append(ops, h.OpCode)
	}
	return ops, nil
}

// testPingFlood: clients that send pings as fast as they can and never read
// the pongs are closed with 1008 by the rate limit.
func testPingFlood(t *testing.T) {
	cfg := attackConfig()
	srv := startServer(t, cfg)
	a := underAttack(t, srv, wsEchoOpener(srv.Addr().String(), "/echo"), false)
	var res []flooder
	waves := 0
	for start := time.Now(); waves == 0 || time.Since(start) < minAttack; waves++ {
		res = append(res, pingFlood(t, srv.Addr().String(), floodClients(), floodPings)...)
	}
	t.Logf("ping flood: %d waves of %d clients", waves, floodClients())
	checkPingFlood(t, cfg, res)
	limited := a.delta(func(s Stats) uint64 { return s.RateLimited + s.SlowConsumers })
	t.Logf("ping flood: RateLimited %d, SlowConsumers %d", a.delta(func(s Stats) uint64 { return s.RateLimited }),
		a.delta(func(s Stats) uint64 { return s.SlowConsumers }))
	if limited != uint64(len(res)) {
		t.Errorf("rate-limited and slow-consumer closes grew by %d, want %d", limited, len(res))
	}
	live, why := floodLive(cfg, floodClients())
	a.finish(t, live, why)
}

// rateAllows is the most frames a connection may send in its first d
// under MaxMessageRate rate: the burst of 2 x rate, and rate a second
// since (one more for the millisecond clock).
func rateAllows(rate int, d time.Duration) int { return 2*rate + int(float64(rate)*d.Seconds()) + 1 }

// flooder is what one ping flooder saw.
type flooder struct {
	sent   int           // pings written (the server reads and drops those after its close frame)
	pongs  int           // pongs read afterwards
	took   time.Duration // from before the dial to the end of the connection
	code   StatusCode    // the close frame's code, 0 if none came
	reason string
	closed bool // the server closed the connection
	err    error
}

// pingFlood connects n clients to /echo that each write pings pings as
// fast as the socket takes them, without reading; then each reads what
// came back, up to the close frame and EOF.
func pingFlood(t testing.TB, addr string, n, pings int) []flooder {
	const batch = 1000
	ping := invFrame(ws.OpPing, true, []byte("p"))
	burst := bytes.Repeat(ping, batch)
	res := make([]flooder, n)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &res[i]
			start := time.Now() // the rate buckets fill at accept
			c, br, err := attackDial(addr, "/echo")
			if err != nil {
				f.err = err
				return
			}
			defer c.Close()
			defer func() { f.took = time.Since(start) }()
			_ = c.SetDeadline(start.Add(goodTimeout))
			for f.sent < pings {
				k := min(batch, pings-f.sent)
				if _, err := c.Write(burst[:k*len(ping)]); err != nil {
					break
				}
				f.sent += k
			}
			f.readBack(br)
		}()
	}
	wg.Wait()
	return res
}

// readBack reads pongs until the close frame, then until the server closes.
func (f *flooder) readBack(br *bufio.Reader) {
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			f.closed, f.err = isClosedErr(err), err
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			f.closed, f.err = isClosedErr(err), err
			return
		}
		switch {
		case h.OpCode == ws.OpPong:
			f.pongs++
		case h.OpCode == ws.OpClose && len(p) >= 2:
			f.code, f.reason = StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
		default:
			f.err = fmt.Errorf("got a %v frame", h.OpCode)
			return
		}
	}
}

// checkPingFlood: every flooder was closed by the server, with 1008 when
// the close frame reached it (a reset may destroy it on the way), having
// had no more pongs than the rate limit lets pings through.
func checkPingFlood(t testing.TB, cfg Config, res []flooder) {
	t.Helper()
	rate := cfg.withDefaults().MaxMessageRate
	sent, pongs, most, frames := 0, 0, 0, 0
	for i, f := range res {
		sent, pongs, most = sent+f.sent, pongs+f.pongs, max(most, f.pongs)
		if f.code != 0 {
			frames++
		}
		allowed := rateAllows(rate, f.took)
		if !f.closed || (f.code != 0 && f.code != StatusPolicyViolation) || f.pongs > allowed {
			t.Errorf("flooder %d: sent %d pings, got %d pongs in %v, close %d %q, ended with %v; "+
				"want closed with 1008, at most %d pongs", i, f.sent, f.pongs, f.took, f.code, f.reason, f.err, allowed)
		}
	}
	t.Logf("ping flood: %d clients wrote %d pings (the server discards what follows its close frame), "+
		"got %d pongs (at most %d each), %d got the 1008 close frame", len(res), sent, pongs, most, frames)
}

// testPingBurstAcrossTick: a client that spends its burst of pings just
// before the sweeper's tick and sends more just after is cut where the
// rate allows since it connected. (Its bucket used to start at the coarse
// clock, up to a sweep stale, and the first refill credited time from
// before the connection existed: 2,990 of these pings passed.)
func testPingBurstAcrossTick(t *testing.T) {
	cfg := attackConfig()
	cfg.SweepInterval = 200 * time.Millisecond
	srv := startServer(t, cfg)
	rate := cfg.withDefaults().MaxMessageRate
	c0 := srv.now()
	eventually(t, 2*cfg.SweepInterval, "a tick of the coarse clock", func() bool { return srv.now() != c0 })
	time.Sleep(cfg.SweepInterval - 20*time.Millisecond) // connect just before the next tick
	start := time.Now()
	c, br, err := attackDial(srv.Addr().String(), "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(goodTimeout))
	ping := invFrame(ws.OpPing, true, []byte("p"))
	_, _ = c.Write(bytes.Repeat(ping, 2*rate-10))
	time.Sleep(60 * time.Millisecond) // the tick passes
	_, _ = c.Write(bytes.Repeat(ping, rate))
	took := time.Since(start)
	var f flooder
	f.readBack(br)
	t.Logf("%d pongs within %v, then close %d %q", f.pongs, took.Round(time.Millisecond), f.code, f.reason)
	if allowed := rateAllows(rate, took); f.pongs > allowed || f.code != StatusPolicyViolation {
		t.Errorf("got %d pongs, then close %d %q (%v); want at most %d, then 1008", f.pongs, f.code, f.reason, f.err, allowed)
	}
}

// testCombined: slowloris, half frames, ping flood and reconnect storm at
// once, on one server.
func testCombined(t *testing.T) {
	cfg := attackConfig()
	srv := startServer(t, cfg)
	addr := srv.Addr().String()
	a := underAttack(t, srv, wsEchoOpener(addr, "/echo"), false)
	var (
		wg       sync.WaitGroup
		slow     []ending
		half     []ending
		flood    []flooder
		stormRes *storm
	)
	wg.Add(4)
	go func() { defer wg.Done(); slow = slowloris(t, addr, slowlorisConns(), cfg.HandshakeTimeout+endLimit) }()
	go func() {
		defer wg.Done()
		half = halfFrames(t, srv, halfFrameConns(), cfg.PingInterval+cfg.PongTimeout+endLimit)
	}()
	go func() { defer wg.Done(); flood = pingFlood(t, addr, floodClients(), floodPings) }()
	go func() { defer wg.Done(); stormRes = reconnectStorm(addr, stormConns(), stormWorkers) }()
	wg.Wait()
	checkSlowloris(t, cfg, slow)
	checkHalfFrames(t, cfg, half)
	checkPingFlood(t, cfg, flood)
	checkStorm(t, stormRes, a.delta(func(s Stats) uint64 { return s.AcceptRefused }))
	for _, c := range []struct {
		name string
		got  uint64
		want int
	}{
		{"HandshakeTimeouts", a.delta(func(s Stats) uint64 { return s.HandshakeTimeouts }), slowlorisConns()},
		{"HeartbeatTimeouts", a.delta(func(s Stats) uint64 { return s.HeartbeatTimeouts }), halfFrameConns()},
		{"RateLimited+SlowConsumers", a.delta(func(s Stats) uint64 { return s.RateLimited + s.SlowConsumers }), floodClients()},
	} {
		t.Logf("%s: %d", c.name, c.got)
		if c.got < uint64(c.want) {
			t.Errorf("%s grew by %d, want at least %d", c.name, c.got, c.want)
		}
	}
	l1, why1 := slowlorisLive(cfg.withDefaults(), slowlorisConns())
	l2, why2 := halfFrameLive(halfFrameConns())
	l3, why3 := floodLive(cfg, floodClients())
	l4, why4 := stormLive(stormConns())
	a.finish(t, l1+l2+l3+l4, strings.Join([]string{why1, why2, why3, why4}, "; "))
}

// testNeverReader: a subscriber that never reads, among readers that keep
// up, during a broadcast of 8 KiB messages: the readers get every message
// in order, the non-reader is closed with 1008 "slow consumer", and memory
// stays bounded by MaxQueueBytes.
func testNeverReader(t *testing.T) {
	channels, err := newChannels()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingHandler{Handler: channels}
	cfg := attackConfig()
	cfg.Workers = 0
	cfg.Routes = map[string]Handler{"/ws": rec, "/echo": echoHandler{}}
	cfg.MaxMessageSize = 16 << 10
	cfg.MaxQueueBytes = 128 << 10
	// Subscribers send nothing after subscribing: no heartbeat during the
	// broadcast. The non-reader gets time to drain its socket and read
	// the close frame before the server gives up on the closing handshake.
	cfg.PingInterval, cfg.CloseTimeout = time.Minute, 5*time.Second
	srv := startServer(t, cfg)
	addr := srv.Addr().String()
	a := underAttack(t, srv, wsEchoOpener(addr, "/echo"), false)
	b := newBroadcast(t, addr, attackN(50))
	defer b.closeAll()
	b.run(t, channels, srv, a.st0.SlowConsumers)
	eventually(t, 10*time.Second, "the non-reader closed with 1008", func() bool {
		return rec.closed(StatusPolicyViolation) == 1
	})
	if got := a.delta(func(s Stats) uint64 { return s.SlowConsumers }); got != 1 {
		t.Errorf("SlowConsumers grew by %d, want 1", got)
	}
	b.closeAll()
	// Frames are shared between subscribers (serialised once). The
	// publisher stays at most broadcastLag messages ahead of the slowest
	// reader, and the non-reader's queue holds at most MaxQueueBytes, so
	// the frames alive at once are at most MaxQueueBytes' worth plus
	// broadcastLag+1 messages.
	live := uint64(cfg.MaxQueueBytes + (broadcastLag+1)*(broadcastSize+64) + len(b.readers)*(broadcastBuf+clientConnBytes))
	a.finish(t, live, fmt.Sprintf("MaxQueueBytes (%d B) of shared frames, %d messages in flight, %d readers' buffers",
		cfg.MaxQueueBytes, broadcastLag+1, len(b.readers)))
}
