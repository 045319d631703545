package wsconn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Attacks on the way in: slowloris, oversized headers, a reconnect storm,
// stalled TLS handshakes (see attack_test.go for the suite).

// testSlowloris: sockets that send an upgrade request a byte at a time are
// all closed at HandshakeTimeout.
func testSlowloris(t *testing.T) {
	cfg := attackConfig()
	srv := startServer(t, cfg)
	a := underAttack(t, srv, wsEchoOpener(srv.Addr().String(), "/echo"), false)
	ends := slowloris(t, srv.Addr().String(), slowlorisConns(), cfg.HandshakeTimeout+endLimit)
	checkSlowloris(t, cfg, ends)
	if got := a.delta(func(s Stats) uint64 { return s.HandshakeTimeouts }); got != uint64(len(ends)) {
		t.Errorf("HandshakeTimeouts grew by %d, want %d", got, len(ends))
	}
	live, why := slowlorisLive(cfg.withDefaults(), slowlorisConns())
	a.finish(t, live, why)
}

// slowloris opens n sockets that each send a valid upgrade request one
// byte every slowlorisPace (it would take 15 s to complete), and reads
// each until the server closes it or limit passes.
func slowloris(t testing.TB, addr string, n int, limit time.Duration) []ending {
	req := []byte(upgradeRequest("/echo", "dGhlIHNhbXBsZSBub25jZQ=="))
	var socks attackers
	defer socks.closeAll()
	for range n {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, goodTimeout)
		if err != nil {
			t.Errorf("slowloris: dial: %v", err)
			return nil
		}
		socks.add(c, nil, start)
	}
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		dead := make([]bool, n)
		tick := time.NewTicker(slowlorisPace)
		defer tick.Stop()
		for pos := 0; ; pos = (pos + 1) % len(req) {
			for i, c := range socks.conns {
				if !dead[i] {
					_ = c.SetWriteDeadline(time.Now().Add(slowlorisPace))
					_, err := c.Write(req[pos : pos+1])
					dead[i] = err != nil
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	ends := socks.awaitEnds(limit)
	close(stop)
	<-writerDone
	return ends
}

// checkSlowloris: every socket was closed by the server, without an answer,
// not before HandshakeTimeout.
func checkSlowloris(t testing.TB, cfg Config, ends []ending) {
	t.Helper()
	s := summarize(ends)
	t.Logf("slowloris: %v", s)
	s.check(t, "slowloris")
	for i, e := range ends {
		if e.closed && (len(e.data) > 0 || e.after < cfg.HandshakeTimeout) {
			t.Errorf("slowloris connection %d: closed after %v with %d bytes of answer, want nothing, not before %v",
				i, e.after, len(e.data), cfg.HandshakeTimeout)
			return
		}
	}
}

// testOversizedHeaders: requests with 64 KiB of headers get 431 (or are
// closed) at once, and none is upgraded.
func testOversizedHeaders(t *testing.T) {
	cfg := attackConfig()
	srv := startServer(t, cfg)
	a := underAttack(t, srv, wsEchoOpener(srv.Addr().String(), "/echo"), false)
	n := attackN(200)
	req := oversizedRequest(64 << 10)
	ans := answers{statuses: map[int]int{}}
	waves := 0
	for start := time.Now(); waves == 0 || time.Since(start) < minAttack; waves++ {
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() { defer wg.Done(); ans.add(sendOversized(srv.Addr().String(), req)) }()
		}
		wg.Wait()
	}
	total := waves * n
	t.Logf("oversized headers: %d waves of %d connections: answers %v, %d closed without one, slowest %v",
		waves, n, ans.statuses, ans.closed, ans.worst.Round(time.Millisecond))
	ans.errs.check(t, "oversized headers")
	if ans.statuses[http.StatusRequestHeaderFieldsTooLarge]+ans.closed != total {
		t.Errorf("got answers %v and %d closed, want %d answered 431 or closed", ans.statuses, ans.closed, total)
	}
	if ans.worst > goodBound {
		t.Errorf("the slowest oversized request was answered after %v, want under %v", ans.worst, goodBound)
	}
	if got := a.delta(func(s Stats) uint64 { return s.Handshakes[http.StatusRequestHeaderFieldsTooLarge] }); got != uint64(total) {
		t.Errorf("server answered %d handshakes with 431, want %d", got, total)
	}
	// A request is read at most MaxHandshakeSize, plus one read buffer
	// while a worker holds it, before it is refused and dropped.
	d := cfg.withDefaults()
	live := uint64(n*(d.MaxHandshakeSize+clientConnBytes) + d.ReadBufferSize*16 + len(req))
	a.finish(t, live, fmt.Sprintf("%d requests, each kept up to MaxHandshakeSize (%d B)", n, d.MaxHandshakeSize))
}

// answers tallies how oversized requests were answered.
type answers struct {
	mu       sync.Mutex
	statuses map[int]int // answers by status
	closed   int         // connections closed without an answer
	worst    time.Duration
	errs     errCount
}

func (a *answers) add(status int, took time.Duration, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.worst = max(a.worst, took)
	switch {
	case err == nil:
		a.statuses[status]++
	case isClosedErr(err) || errors.Is(err, io.ErrUnexpectedEOF):
		a.closed++
	default:
		a.errs.add(err)
	}
}

// oversizedRequest is an upgrade request with size bytes of headers.
func oversizedRequest(size int) []byte {
	var b strings.Builder
	b.WriteString("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "X-Padding-%05d: %s\r\n", i, strings.Repeat("p", 100))
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// sendOversized sends req on a new connection and returns the answer's
// status and how long it took, or the error that ended the connection.
func sendOversized(addr string, req []byte) (int, time.Duration, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, goodTimeout)
	if err != nil {
		return 0, 0, err
	}
	_ = c.SetDeadline(start.Add(goodTimeout))
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = c.Write(req) // fails once the server hangs up
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	took := time.Since(start)
	c.Close()
	<-written
	if err != nil {
		return 0, took, err
	}
	resp.Body.Close()
	return resp.StatusCode, took, nil
}

// testReconnectStorm: thousands of connections opened and dropped as fast
// as 16 goroutines can all end, and leave no connection or descriptor
// behind.
func testReconnectStorm(t *testing.T) {
	cfg := attackConfig()
	cfg.Workers = 0 // the default pool: the storm is about the accept path
	srv := startServer(t, cfg)
	a := underAttack(t, srv, wsEchoOpener(srv.Addr().String(), "/echo"), false)
	start := time.Now()
	r := reconnectStorm(srv.Addr().String(), stormConns(), stormWorkers)
	took := time.Since(start)
	checkStorm(t, r, a.delta(func(s Stats) uint64 { return s.AcceptRefused }))
	t.Logf("reconnect storm: %d connections in %v (%.0f/s)", stormConns(), took.Round(time.Millisecond),
		float64(stormConns())/took.Seconds())
	live, why := stormLive(stormConns())
	a.finish(t, live, why)
}

// storm counts what a reconnect storm's connections did.
type storm struct {
	upgraded, dropped, refused atomic.Int64
	errs                       errCount
}

// reconnectStorm opens total connections from workers goroutines, each
// closed at once: a third right after the TCP connect, a third after half
// an upgrade request, a third after a complete upgrade.
func reconnectStorm(addr string, total, workers int) *storm {
	r := &storm{}
	req := []byte(upgradeRequest("/echo", "dGhlIHNhbXBsZSBub25jZQ=="))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(total); i = next.Add(1) - 1 {
				r.one(addr, req, i%3)
			}
		}()
	}
	wg.Wait()
	return r
}

func (r *storm) one(addr string, req []byte, kind int64) {
	c, err := net.DialTimeout("tcp", addr, goodTimeout)
	if err != nil {
		r.errs.add(err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(goodTimeout))
	switch kind {
	case 0:
		r.dropped.Add(1)
		return
	case 1:
		_, _ = c.Write(req[:len(req)/2])
		r.dropped.Add(1)
		return
	}
	_, err = c.Write(req)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	}
	switch {
	case err == nil && resp.StatusCode == http.StatusSwitchingProtocols:
		r.upgraded.Add(1)
	case err == nil:
		r.errs.add(fmt.Errorf("got status %d, want 101", resp.StatusCode))
	case isClosedErr(err) || errors.Is(err, syscall.EPIPE):
		r.refused.Add(1) // closed at accept, past AcceptRate
	default:
		r.errs.add(err)
	}
}

// checkStorm: no connection failed other than by being refused at accept,
// which the server counted.
func checkStorm(t testing.TB, r *storm, acceptRefused uint64) {
	t.Helper()
	t.Logf("reconnect storm: %d upgraded, %d dropped by the client, %d refused (server: AcceptRefused %d)",
		r.upgraded.Load(), r.dropped.Load(), r.refused.Load(), acceptRefused)
	r.errs.check(t, "reconnect storm")
	if uint64(r.refused.Load()) > acceptRefused {
		t.Errorf("%d upgrades were closed unanswered, but the server refused only %d at accept",
			r.refused.Load(), acceptRefused)
	}
}

// testTLSHandshakeStall: clients that stall in the TLS handshake after the
// first bytes of a ClientHello: the server closes those past
// MaxTLSHandshakes at once and the rest at HandshakeTimeout, and a
// well-behaved wss client keeps its echoes and connects again.
func testTLSHandshakeStall(t *testing.T) {
	cfg := attackConfig()
	cfg.MaxTLSHandshakes = 64
	srv, pool := startTLSServer(t, cfg)
	// At MaxTLSHandshakes a new handshake ends the oldest unanswered one,
	// so the good client's new wss connections get in and are not ended
	// by the burst while they finish: none may fail.
	a := underAttack(t, srv, wssEchoOpener(srv, pool), false)
	n := attackN(200)
	hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01} // a record header for a 512-byte ClientHello, and its type
	var stalled attackers
	defer stalled.closeAll()
	for range n {
		start := time.Now()
		c, err := net.DialTimeout("tcp", srv.Addr().String(), goodTimeout)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		stalled.add(c, nil, start)
		if _, err := c.Write(hello); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	ends := stalled.awaitEnds(cfg.HandshakeTimeout + endLimit)
	over := time.Now()
	s := summarize(ends)
	s.check(t, "stalled TLS handshakes")
	atOnce, atTimeout := 0, 0
	for i, e := range ends {
		switch {
		case !e.closed:
		case e.after < cfg.HandshakeTimeout/2:
			atOnce++
		case e.after >= cfg.HandshakeTimeout-cfg.SweepInterval:
			atTimeout++
		default:
			t.Errorf("stalled handshake %d closed after %v, want at once or at the handshake timeout (%v)",
				i, e.after, cfg.HandshakeTimeout)
		}
	}
	limited := a.delta(func(s Stats) uint64 { return s.TLSHandshakeLimit })
	t.Logf("stalled TLS handshakes: %v; %d closed at once, %d at the handshake timeout; server: TLSHandshakeLimit %d, TLSHandshakeErrors %d, HandshakeTimeouts %d",
		s, atOnce, atTimeout, limited, a.delta(func(s Stats) uint64 { return s.TLSHandshakeErrors }),
		a.delta(func(s Stats) uint64 { return s.HandshakeTimeouts }))
	if atTimeout > cfg.MaxTLSHandshakes || atOnce < n-cfg.MaxTLSHandshakes || uint64(atOnce) > limited {
		t.Errorf("%d closed at once (server counted %d past the cap), %d at the timeout; want at most %d at the timeout",
			atOnce, limited, atTimeout, cfg.MaxTLSHandshakes)
	}
	eventually(t, 5*time.Second, "a new wss connection after the stalled handshakes", func() bool {
		return a.good.stats().lastDial.After(over)
	})
	stalled.closeAll()
	// crypto/tls reads at most one record (16 KiB) ahead while a
	// handshake is in progress; the conn, its tls.Conn and both ends'
	// sockets add the rest.
	live := uint64(n * (16<<10 + clientConnBytes))
	a.finish(t, live, fmt.Sprintf("%d TLS handshakes, each at most one 16 KiB record buffered", n))
}
