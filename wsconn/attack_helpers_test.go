package wsconn

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The machinery of the attack suite (attack_test.go): a well-behaved client
// that keeps measuring the server while it is under attack, a sampler of
// the process's heap, and raw-socket helpers that report errors instead of
// failing the test, so that attackers can run on their own goroutines.

const (
	// goodBound is the longest a well-behaved client may wait for any
	// answer while the server is under attack: an echo round trip, or a
	// new connection's dial, handshake and first echo. It catches a
	// worker or the listener held for good (the holes these tests were
	// written for held them for 5 s or forever), not a slow machine: with
	// two race-enabled suites at once on two cores, a dial once took
	// 2.1 s with nothing wrong.
	goodBound = 5 * time.Second
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
	return a.awaitEndsOnce(limit, nil)
}

// maxAwait bounds awaitEndsOnce's wait for a server that never says done.
const maxAwait = 30 * time.Second

// awaitEndsOnce is awaitEnds for ends the server counts: until done
// reports true (polled), the wait goes on past limit, up to maxAwait; once
// it does, each connection gets at least endLimit more, since the server
// closes a socket right after counting it. The bound is then on what the
// test means, the server closing what it counted, not on how soon a busy
// server gets round to it. A nil done is awaitEnds.
func (a *attackers) awaitEndsOnce(limit time.Duration, done func() bool) []ending {
	ends := make([]ending, len(a.conns))
	if done != nil {
		for i, c := range a.conns {
			_ = c.SetReadDeadline(a.starts[i].Add(maxAwait))
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for !done() {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
			for i, c := range a.conns {
				_ = c.SetReadDeadline(later(a.starts[i].Add(limit), time.Now().Add(endLimit)))
			}
		}()
	}
	var wg sync.WaitGroup
	for i, c := range a.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var src io.Reader = c
			if a.readers[i] != nil {
				src = a.readers[i]
			}
			if done == nil {
				_ = c.SetReadDeadline(a.starts[i].Add(limit))
			}
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

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
