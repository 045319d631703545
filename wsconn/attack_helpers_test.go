package wsconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"wsgate/handler"
)

// The machinery of the attack suite (attack_test.go): a well-behaved client
// that keeps measuring the server while it is under attack, a sampler of
// the process's heap, and raw-socket helpers that report errors instead of
// failing the test, so that attackers can run on their own goroutines.

const (
	// goodBound is the longest a well-behaved client may wait for any
	// answer while the server is under attack: an echo round trip, or a
	// new connection's dial, handshake and first echo.
	goodBound = 2 * time.Second
	// goodTimeout is the deadline of the good client's reads: past
	// goodBound, so that a slow answer is measured, not cut.
	goodTimeout = 10 * time.Second
	// goodTick paces the good client's round trips (short, so that even
	// an attack over in a tenth of a second is sampled); every
	// goodDialEvery ticks it also opens a new connection.
	goodTick      = 5 * time.Millisecond
	goodDialEvery = 10
	// attackMiB is a mebibyte, for memory figures.
	attackMiB = 1 << 20
	// heapFloor is the smallest heap goal of the Go collector (4 MiB), and
	// room for what the test keeps besides the attack: the good client,
	// the sampler, the pools' buffers (one 16 KiB read buffer per worker).
	heapFloor = 4 << 20
)

// attackN scales an attack's size down in -short mode.
func attackN(n int) int {
	if testing.Short() {
		return max(1, n/4)
	}
	return n
}

// echoConn is one connection of the good client.
type echoConn interface {
	echo(p []byte) error
	close()
}

// goodStats is what the good client measured.
type goodStats struct {
	trips     int           // echo round trips on its long-lived connection
	worstTrip time.Duration // the slowest of them
	dials     int           // new connections: dial, handshake, one echo
	worstDial time.Duration
	refused   int       // new connections refused (only counted when tolerated)
	lastDial  time.Time // when the latest new connection succeeded
	errs      []string  // failures, first few
}

func (s *goodStats) String() string {
	return fmt.Sprintf("good client: %d round trips, worst %v; %d new connections, worst %v, %d refused",
		s.trips, s.worstTrip.Round(time.Millisecond), s.dials, s.worstDial.Round(time.Millisecond), s.refused)
}

// goodClient does echo round trips on one open connection, and opens a new
// connection every so often, for as long as an attack lasts.
type goodClient struct {
	open          func() (echoConn, error)
	tolerateDials bool // a refused new connection is counted, not an error
	stop, done    chan struct{}
	mu            sync.Mutex
	st            goodStats
}

// startGoodClient starts the client's goroutine; stopGood ends it.
func startGoodClient(t testing.TB, open func() (echoConn, error), tolerateDials bool) *goodClient {
	t.Helper()
	g := &goodClient{open: open, tolerateDials: tolerateDials, stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := open()
	if err != nil {
		t.Fatalf("good client: first connection: %v", err)
	}
	go g.run(conn)
	return g
}

func (g *goodClient) fail(format string, a ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.st.errs) < 5 {
		g.st.errs = append(g.st.errs, fmt.Sprintf(format, a...))
	}
}

// run does the round trips; a goroutine of its own opens the new
// connections, so that a slow dial (within goodBound) does not leave the
// long-lived connection silent, its pings unanswered, long enough for the
// heartbeat to close it.
func (g *goodClient) run(conn echoConn) {
	defer close(g.done)
	dialsDone := make(chan struct{})
	go g.dials(dialsDone)
	defer func() { <-dialsDone }()
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	tick := time.NewTicker(goodTick)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		if conn == nil { // the last round trip failed: reconnect
			var err error
			if conn, err = g.open(); err != nil {
				g.fail("reconnect: %v", err)
				continue
			}
		}
		start := time.Now()
		if err := conn.echo(fmt.Appendf(nil, "good %d", i)); err != nil {
			g.fail("round trip %d: %v", i, err)
			conn.close()
			conn = nil
			continue
		}
		g.record(&g.st.trips, &g.st.worstTrip, time.Since(start))
	}
}

// dials opens a new connection every goodDialEvery ticks until stopped.
func (g *goodClient) dials(done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(goodDialEvery * goodTick)
	defer tick.Stop()
	for i := 0; ; i++ {
		g.dialOnce(i)
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
	}
}

// dialOnce opens a new connection, does one round trip and closes it.
func (g *goodClient) dialOnce(i int) {
	start := time.Now()
	c, err := g.open()
	if err == nil {
		err = c.echo(fmt.Appendf(nil, "new %d", i))
		c.close()
	}
	switch {
	case err == nil:
		g.record(&g.st.dials, &g.st.worstDial, time.Since(start))
		g.mu.Lock()
		g.st.lastDial = time.Now()
		g.mu.Unlock()
	case g.tolerateDials:
		g.mu.Lock()
		g.st.refused++
		g.mu.Unlock()
	default:
		g.fail("new connection %d: %v", i, err)
	}
}

func (g *goodClient) record(n *int, worst *time.Duration, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*n++
	*worst = max(*worst, d)
}

// stats returns a snapshot of what the client measured so far.
func (g *goodClient) stats() goodStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.st
	st.errs = append([]string(nil), st.errs...)
	return st
}

// stopGood ends the client, logs its figures and checks that every answer
// came within goodBound.
func (g *goodClient) stopGood(t testing.TB) {
	t.Helper()
	close(g.stop)
	<-g.done
	st := g.stats()
	t.Log(st.String())
	for _, e := range st.errs {
		t.Errorf("good client: %s", e)
	}
	switch {
	case st.trips == 0:
		t.Errorf("good client made no round trip")
	case st.worstTrip > goodBound:
		t.Errorf("good client's worst round trip took %v, want under %v", st.worstTrip, goodBound)
	}
	if st.worstDial > goodBound {
		t.Errorf("good client's worst new connection took %v, want under %v", st.worstDial, goodBound)
	}
}

// rawEcho is a good client's ws:// connection on a bare socket.
type rawEcho struct {
	c  net.Conn
	br *bufio.Reader
}

// wsEchoOpener opens good-client connections to path at addr.
func wsEchoOpener(addr, path string) func() (echoConn, error) {
	return func() (echoConn, error) {
		c, br, err := attackDial(addr, path)
		if err != nil {
			return nil, err
		}
		return &rawEcho{c: c, br: br}, nil
	}
}

// echo sends p as a text message and reads until its echo, answering pings
// on the way.
func (e *rawEcho) echo(p []byte) error {
	_ = e.c.SetDeadline(time.Now().Add(goodTimeout))
	if _, err := e.c.Write(invFrame(ws.OpText, true, p)); err != nil {
		return err
	}
	for {
		h, err := ws.ReadHeader(e.br)
		if err != nil {
			return err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(e.br, payload); err != nil {
			return err
		}
		switch h.OpCode {
		case ws.OpText:
			if !bytes.Equal(payload, p) {
				return fmt.Errorf("got echo %q, want %q", payload, p)
			}
			return nil
		case ws.OpPing:
			if _, err := e.c.Write(invFrame(ws.OpPong, true, payload)); err != nil {
				return err
			}
		case ws.OpPong:
		default:
			return fmt.Errorf("got a %v frame %q, want the echo", h.OpCode, payload)
		}
	}
}

func (e *rawEcho) close() { _ = e.c.Close() }

// coderEcho is a good client's wss:// connection (coder/websocket).
type coderEcho struct{ c *websocket.Conn }

// wssEchoOpener opens good-client wss:// connections to /echo on srv.
func wssEchoOpener(srv *Server, pool *x509.CertPool) func() (echoConn, error) {
	return func() (echoConn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), goodTimeout)
		defer cancel()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer tr.CloseIdleConnections()
		c, _, err := websocket.Dial(ctx, "wss://"+srv.Addr().String()+"/echo",
			&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
		if err != nil {
			return nil, err
		}
		return coderEcho{c}, nil
	}
}

func (e coderEcho) echo(p []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), goodTimeout)
	defer cancel()
	if err := e.c.Write(ctx, websocket.MessageText, p); err != nil {
		return err
	}
	_, got, err := e.c.Read(ctx)
	if err == nil && !bytes.Equal(got, p) {
		err = fmt.Errorf("got echo %q, want %q", got, p)
	}
	return err
}

func (e coderEcho) close() { _ = e.c.CloseNow() }

// attackDial opens a WebSocket connection to path at addr on a bare socket
// and returns it after the 101 response, with the reader to read frames
// from. Unlike invDial it returns errors, for goroutines.
func attackDial(addr, path string) (net.Conn, *bufio.Reader, error) {
	return attackDialer(&net.Dialer{Timeout: goodTimeout}, addr, path)
}

// attackDialer is attackDial with d.
func attackDialer(d *net.Dialer, addr, path string) (net.Conn, *bufio.Reader, error) {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(goodTimeout))
	br := bufio.NewReaderSize(c, 4096)
	if _, err := io.WriteString(c, upgradeRequest(path, "dGhlIHNhbXBsZSBub25jZQ==")); err != nil {
		c.Close()
		return nil, nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, nil, fmt.Errorf("handshake: got status %d, want 101", resp.StatusCode)
	}
	_ = c.SetDeadline(time.Time{})
	return c, br, nil
}

// ending is how one attacker's connection ended, seen from the client.
type ending struct {
	after  time.Duration // from the attacker's start to EOF or reset
	closed bool          // the server closed it (EOF or reset), not the deadline
	err    error         // the read error that ended it
	data   []byte        // what the server sent first (up to 4 KiB)
}

// attackers are stalling connections, each with when its attack began.
type attackers struct {
	conns   []net.Conn
	readers []*bufio.Reader // nil: read the connection itself
	starts  []time.Time
}

func (a *attackers) add(c net.Conn, br *bufio.Reader, start time.Time) {
	a.conns, a.readers, a.starts = append(a.conns, c), append(a.readers, br), append(a.starts, start)
}

func (a *attackers) closeAll() {
	for _, c := range a.conns {
		c.Close()
	}
}

// awaitEnds reads each connection until the server closes it or limit
// passes since its start, one goroutine per connection, and returns how
// each ended.
func (a *attackers) awaitEnds(limit time.Duration) []ending {
	ends := make([]ending, len(a.conns))
	var wg sync.WaitGroup
	for i, c := range a.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var src io.Reader = c
			if a.readers[i] != nil {
				src = a.readers[i]
			}
			_ = c.SetReadDeadline(a.starts[i].Add(limit))
			buf := make([]byte, 512)
			e := &ends[i]
			for {
				n, err := src.Read(buf)
				if len(e.data) < 4096 {
					e.data = append(e.data, buf[:min(n, 4096-len(e.data))]...)
				}
				if err != nil {
					e.after, e.closed, e.err = time.Since(a.starts[i]), isClosedErr(err), err
					return
				}
			}
		}()
	}
	wg.Wait()
	return ends
}

// endSummary counts the connections that were closed and the span of their
// closing times.
type endSummary struct {
	n, closed       int
	first, last     time.Duration
	firstUnclosed   error
	firstUnclosedAt int
}

func summarize(ends []ending) endSummary {
	s := endSummary{n: len(ends), firstUnclosedAt: -1, first: time.Duration(1 << 62)}
	for i, e := range ends {
		if !e.closed {
			if s.firstUnclosedAt < 0 {
				s.firstUnclosed, s.firstUnclosedAt = e.err, i
			}
			continue
		}
		s.closed++
		s.first, s.last = min(s.first, e.after), max(s.last, e.after)
	}
	if s.closed == 0 {
		s.first = 0
	}
	return s
}

func (s endSummary) String() string {
	return fmt.Sprintf("%d of %d closed by the server, after %v to %v",
		s.closed, s.n, s.first.Round(time.Millisecond), s.last.Round(time.Millisecond))
}

// check fails the test unless every connection was closed by the server.
func (s endSummary) check(t testing.TB, what string) {
	t.Helper()
	if s.closed != s.n {
		t.Errorf("%s: %d of %d connections closed by the server; connection %d: %v",
			what, s.closed, s.n, s.firstUnclosedAt, s.firstUnclosed)
	}
}

// memWatch samples the heap while an attack runs.
type memWatch struct {
	base       uint64 // HeapInuse after two collections, before the attack
	peak       atomic.Uint64
	stop, done chan struct{}
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// watchMemory measures the baseline and starts sampling HeapInuse.
func watchMemory() *memWatch {
	runtime.GC()
	runtime.GC() // the second cycle also empties the sync.Pools
	m := &memWatch{base: heapInuse(), stop: make(chan struct{}), done: make(chan struct{})}
	m.peak.Store(m.base)
	go func() {
		defer close(m.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				if h := heapInuse(); h > m.peak.Load() {
					m.peak.Store(h)
				}
			}
		}
	}()
	return m
}

// heapBound is the most HeapInuse may reach while an attack holds live
// bytes besides the baseline: HeapInuse counts garbage not collected yet,
// and with GOGC=100 the collector lets the heap grow to twice what was live
// after its last cycle, and never below heapFloor.
func (m *memWatch) heapBound(live uint64) uint64 { return 2*(m.base+live) + heapFloor }

// finish stops sampling, logs the figures, and checks the peak against
// heapBound(live); why says where live comes from.
func (m *memWatch) finish(t testing.TB, live uint64, why string) {
	t.Helper()
	close(m.stop)
	<-m.done
	peak, bound := m.peak.Load(), m.heapBound(live)
	t.Logf("heap in use: %.1f MiB before, peak %.1f MiB, bound %.1f MiB (attack may hold %.1f MiB: %s)",
		float64(m.base)/attackMiB, float64(peak)/attackMiB, float64(bound)/attackMiB, float64(live)/attackMiB, why)
	if peak > bound {
		t.Errorf("heap in use peaked at %.1f MiB, want at most %.1f MiB", float64(peak)/attackMiB, float64(bound)/attackMiB)
	}
}

// backDown polls, collecting each time, until HeapInuse is back within
// slack of the baseline.
func (m *memWatch) backDown(t testing.TB, slack uint64) {
	t.Helper()
	var h uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if h = heapInuse(); h <= m.base+slack {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("heap in use stayed at %.1f MiB after the attack, want at most %.1f MiB (baseline + %.1f MiB)",
				float64(h)/attackMiB, float64(m.base+slack)/attackMiB, float64(slack)/attackMiB)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("heap in use back to %.1f MiB", float64(h)/attackMiB)
}

// attackRun is one server under attack: the good client, the heap
// sampler, and the counters and descriptors before the attack.
type attackRun struct {
	srv  *Server
	good *goodClient
	mem  *memWatch
	st0  Stats
	fds0 int
}

// underAttack starts measuring srv: baseline, heap sampler, good client.
func underAttack(t testing.TB, srv *Server, open func() (echoConn, error), tolerateDials bool) *attackRun {
	t.Helper()
	a := &attackRun{srv: srv, st0: srv.Stats(), fds0: countFds(t)}
	a.mem = watchMemory()
	a.good = startGoodClient(t, open, tolerateDials)
	return a
}

// finish ends a run once the attackers are gone: it stops the good client
// and checks its figures, checks the heap's peak against what the attack
// may hold (live, explained by why), waits for every connection to end,
// and checks that the heap and the descriptors came back down.
func (a *attackRun) finish(t testing.TB, live uint64, why string) {
	t.Helper()
	a.good.stopGood(t)
	a.mem.finish(t, live, why)
	eventually(t, 10*time.Second, "every connection ended", func() bool { return a.srv.Conns() == 0 })
	a.mem.backDown(t, 2*attackMiB)
	// Both ends are in this process; each closed socket gives its
	// descriptor back at once, the server's when it closes it.
	var fds int
	if !poll(5*time.Second, func() bool { fds = countFds(t); return fds <= a.fds0+3 }) {
		t.Errorf("descriptors: %d before the attack, %d after, want back to the baseline", a.fds0, fds)
	}
}

// delta returns how much the counter picked by f grew since the run began.
func (a *attackRun) delta(f func(Stats) uint64) uint64 { return f(a.srv.Stats()) - f(a.st0) }

// errCount is a goroutine-safe count of unexpected errors, keeping the
// first for the report.
type errCount struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (e *errCount) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err
		e.mu.Unlock()
	}
}

func (e *errCount) check(t testing.TB, what string) {
	t.Helper()
	if n := e.n.Load(); n > 0 {
		e.mu.Lock()
		defer e.mu.Unlock()
		t.Errorf("%s: %d unexpected errors, the first: %v", what, n, e.first)
	}
}

// The never-reader attack: readers that keep up with a broadcast, and one
// subscriber that never reads.

const (
	broadcastSize = 8 << 10 // bytes of each message's data
	broadcastLag  = 12      // messages the publisher may be ahead of the slowest reader
	broadcastBuf  = 16 << 10
	broadcastMin  = 2000 // messages published at least: 16 MiB, well past the heap bound
	broadcastMax  = 8000 // give up if the non-reader is not cut by then
	pushPrefix    = `{"channel":"news","data":"`
	endSeq        = 99999999 // the last message's sequence number
)

// broadcast is the never-reader attack: readers that keep up and one
// subscriber that never reads.
type broadcast struct {
	readers   []*bcReader
	nonReader net.Conn
	nrReader  *bufio.Reader
	once      sync.Once
}

// bcReader is a subscriber that reads every push and checks its sequence
// number.
type bcReader struct {
	c   net.Conn
	br  *bufio.Reader
	got atomic.Int64
	err error
}

func newBroadcast(t *testing.T, addr string, n int) *broadcast {
	b := &broadcast{}
	// The non-reader's receive buffer is small, so that the server's
	// queue for it fills soon.
	small := &net.Dialer{Timeout: goodTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	var err error
	if b.nonReader, b.nrReader, err = attackDialer(small, addr, "/ws"); err != nil {
		t.Fatalf("non-reader: %v", err)
	}
	subscribe(t, b.nonReader, b.nrReader)
	for range n {
		c, br, err := attackDial(addr, "/ws")
		if err != nil {
			b.closeAll()
			t.Fatalf("reader: %v", err)
		}
		r := &bcReader{c: c, br: bufio.NewReaderSize(br, broadcastBuf)}
		b.readers = append(b.readers, r)
		subscribe(t, c, r.br)
	}
	return b
}

// closeAll closes every subscriber and lets go of the readers' buffers.
func (b *broadcast) closeAll() {
	b.once.Do(func() {
		b.nonReader.Close()
		b.nrReader = nil
		for _, r := range b.readers {
			r.c.Close()
			r.br = nil
		}
	})
}

// subscribe subscribes c to "news" and reads the ack.
func subscribe(t *testing.T, c net.Conn, br *bufio.Reader) { subscribeTo(t, c, br, "news") }

// subscribeTo subscribes c to channel and reads the ack.
func subscribeTo(t *testing.T, c net.Conn, br *bufio.Reader, channel string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(goodTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(invFrame(ws.OpText, true, []byte(`{"op":"subscribe","channel":"`+channel+`","id":1}`))); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if f := invReadFrame(t, br); !bytes.Contains(f.Payload, []byte(`"ack"`)) {
		t.Fatalf("subscribe: got %q, want an ack", f.Payload)
	}
}

// read reads pushes until the last one, checking that each carries the
// next sequence number.
func (r *bcReader) read() {
	for {
		_ = r.c.SetReadDeadline(time.Now().Add(goodTimeout))
		h, err := ws.ReadHeader(r.br)
		if err != nil {
			r.err = err
			return
		}
		head, err := r.br.Peek(len(pushPrefix) + 8)
		if err != nil || h.OpCode != ws.OpText || !bytes.HasPrefix(head, []byte(pushPrefix)) {
			r.err = fmt.Errorf("got a %v frame starting %q (%v), want a push", h.OpCode, head, err)
			return
		}
		seq, _ := strconv.Atoi(string(head[len(pushPrefix):]))
		if _, err := r.br.Discard(int(h.Length)); err != nil {
			r.err = err
			return
		}
		if seq == endSeq {
			return
		}
		if want := r.got.Load(); int64(seq) != want {
			r.err = fmt.Errorf("got message %d, want %d", seq, want)
			return
		}
		r.got.Add(1)
	}
}

// run publishes until the non-reader has been cut as a slow consumer and
// at least broadcastMin messages went out, pacing the publisher on the
// slowest reader, then checks that every reader got every message and that
// the non-reader got the 1008 close frame.
func (b *broadcast) run(t *testing.T, channels *handler.Channels, srv *Server, slow0 uint64) {
	var wg sync.WaitGroup
	for _, r := range b.readers {
		wg.Add(1)
		go func() { defer wg.Done(); r.read() }()
	}
	data := []byte(`"` + strings.Repeat("x", broadcastSize-2) + `"`)
	publish := func(seq int) {
		copy(data[1:], fmt.Sprintf("%08d", seq))
		if _, err := channels.Publish("news", data); err != nil {
			t.Errorf("publish %d: %v", seq, err)
		}
	}
	var nr nonReaderEnd
	drained := make(chan struct{})
	sent, cutAt := 0, -1
	start := time.Now()
	for ; sent < broadcastMax && (cutAt < 0 || sent < max(broadcastMin, cutAt+100)); sent++ {
		if cutAt < 0 && srv.stats.slowConsumers.Load() > slow0 {
			cutAt = sent
			go func() { defer close(drained); nr = drainNonReader(b.nonReader, b.nrReader) }()
		}
		if !poll(goodTimeout, func() bool { return b.slowest() >= int64(sent-broadcastLag) }) {
			t.Errorf("readers stopped at %d messages of %d", b.slowest(), sent)
			break
		}
		publish(sent)
	}
	publish(endSeq)
	wg.Wait()
	took := time.Since(start)
	for i, r := range b.readers {
		if got := r.got.Load(); got != int64(sent) || r.err != nil {
			t.Errorf("reader %d got %d messages of %d, then %v", i, got, sent, r.err)
		}
	}
	if cutAt < 0 {
		t.Fatalf("the non-reader was not cut after %d messages (%d MiB)", sent, sent*broadcastSize>>20)
	}
	<-drained
	b.nonReader.Close() // the server reads EOF and ends the closing handshake
	t.Logf("broadcast: %d messages of %d KiB to %d readers in %v; the non-reader was cut after %d, had %d in its socket, then close %d %q (%v)",
		sent, broadcastSize>>10, len(b.readers), took.Round(time.Millisecond), cutAt, nr.pushes, nr.code, nr.reason, nr.err)
	if nr.code != ws.StatusPolicyViolation || nr.reason != "slow consumer" {
		t.Errorf("the non-reader got close %d %q, want 1008 \"slow consumer\"", nr.code, nr.reason)
	}
}

func (b *broadcast) slowest() int64 {
	n := int64(1 << 62)
	for _, r := range b.readers {
		n = min(n, r.got.Load())
	}
	return n
}

// nonReaderEnd is what the non-reader finds once it reads after all.
type nonReaderEnd struct {
	pushes int
	code   ws.StatusCode
	reason string
	err    error
}

// drainNonReader reads the non-reader's socket up to the close frame.
func drainNonReader(c net.Conn, br *bufio.Reader) (e nonReaderEnd) {
	_ = c.SetReadDeadline(time.Now().Add(goodTimeout))
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			e.err = err
			return e
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			e.err = err
			return e
		}
		switch {
		case h.OpCode == ws.OpText:
			e.pushes++
		case h.OpCode == ws.OpClose && len(p) >= 2:
			e.code, e.reason = ws.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
			return e
		default:
			e.err = fmt.Errorf("got a %v frame, want pushes then close", h.OpCode)
			return e
		}
	}
}
