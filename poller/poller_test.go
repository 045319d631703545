//go:build linux

package poller

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// ants starts a default pool in its init; only goroutines started by
	// the tests count.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

func newPoller(t *testing.T, cfg Config) *Poller {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(time.Second) })
	return p
}

func eventually(t *testing.T, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(time.Millisecond)
	}
}

// socketPair returns a connected pair of non-blocking stream sockets.
func socketPair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// recorder is a Handler that counts calls, notices concurrent calls, and
// drains its socket.
type recorder struct {
	d       *Desc
	calls   atomic.Int64
	running atomic.Int32
	overlap atomic.Int32
	events  atomic.Uint32
	hold    time.Duration
}

func (r *recorder) HandleEvents(ev Event) {
	if r.running.Add(1) > 1 {
		r.overlap.Add(1)
	}
	r.calls.Add(1)
	r.events.Or(uint32(ev))
	buf := make([]byte, 64)
	for {
		if _, err := r.d.Read(buf); err != nil {
			break
		}
	}
	time.Sleep(r.hold)
	r.running.Add(-1)
	_ = r.d.Rearm(false)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"workers", Config{Workers: 3}, true},
		{"negative workers", Config{Workers: -1}, false},
		{"too many workers", Config{Workers: 1<<20 + 1}, false},
		{"negative rounds", Config{MaxRounds: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate()
			if got := err == nil; got != tt.ok {
				t.Fatalf("validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestRunQueueFIFOAndGrowth(t *testing.T) {
	var q runQueue
	ds := make([]*Desc, 200)
	for i := range ds {
		ds[i] = &Desc{fd: int32(i)}
		q.push(ds[i])
		if i%3 == 0 { // interleave pops so the ring wraps before it grows
			if got := q.pop(); got != ds[i/3] {
				t.Fatalf("pop %d: got fd %d, want %d", i/3, got.fd, i/3)
			}
		}
	}
	next := 67
	for d := q.pop(); d != nil; d = q.pop() {
		if int(d.fd) != next {
			t.Fatalf("got fd %d, want %d", d.fd, next)
		}
		next++
	}
	if next != 200 {
		t.Fatalf("popped up to %d, want 200", next)
	}
}

// TestOneHandlerAtATime hammers one Desc with readiness and wakes from
// several goroutines: HandleEvents must never run twice at once for it
// (docs/design.md invariant 4), and no event may be lost.
func TestOneHandlerAtATime(t *testing.T) {
	p := newPoller(t, Config{Workers: 8})
	a, b := socketPair(t)
	defer unix.Close(b)
	r := &recorder{hold: 50 * time.Microsecond}
	d := &Desc{}
	r.d = d
	if err := p.Add(d, a, r); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				d.Wake()
				_, _ = unix.Write(b, []byte{1})
			}
		}()
	}
	wg.Wait()
	// One more of each after everything: each must be served. (During the
	// hammering, a handler run woken by Wake may have read every byte
	// before the reactor reported it, so read events are checked here.)
	eventually(t, 5*time.Second, "quiet: no run queued or running", func() bool {
		return d.state.Load()&stateOwned == 0 && r.running.Load() == 0
	})
	r.events.Store(0)
	d.Wake()
	eventually(t, 5*time.Second, "final wake served", func() bool { return Event(r.events.Load())&EventWake != 0 })
	if _, err := unix.Write(b, []byte{1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "final byte reported readable", func() bool { return Event(r.events.Load())&EventRead != 0 })
	if n := r.overlap.Load(); n != 0 {
		t.Fatalf("handler ran concurrently with itself %d times", n)
	}
}

// TestStaleEventAfterReuse closes a registered descriptor and registers a
// new one that gets the same number: the old registration's callback must
// not reach the new handler (generation check), and the new one works.
func TestStaleEventAfterReuse(t *testing.T) {
	p := newPoller(t, Config{Workers: 2})
	a, b := socketPair(t)
	oldRec := &recorder{}
	oldDesc := &Desc{}
	oldRec.d = oldDesc
	if err := p.Add(oldDesc, a, oldRec); err != nil {
		t.Fatal(err)
	}
	staleCallback := oldDesc.onEpoll // what easygo may still hold for a
	if err := oldDesc.Close(); err != nil {
		t.Fatal(err)
	}
	unix.Close(b)

	c, d := socketPair(t) // lowest free number: reuses a
	defer unix.Close(d)
	if c != a {
		t.Logf("descriptor %d not reused (got %d); the stale callback is still checked", a, c)
	}
	newRec := &recorder{}
	newDesc := &Desc{}
	newRec.d = newDesc
	if err := p.Add(newDesc, c, newRec); err != nil {
		t.Fatal(err)
	}
	defer newDesc.Close()

	staleCallback(unix.EPOLLIN | unix.EPOLLHUP)
	if got := p.Stats().Stale; got != 1 {
		t.Fatalf("stale events = %d, want 1", got)
	}
	time.Sleep(10 * time.Millisecond) // nothing must happen: give it a chance
	if n := oldRec.calls.Load() + newRec.calls.Load(); n != 0 {
		t.Fatalf("stale event reached a handler %d times", n)
	}
	_, _ = unix.Write(d, []byte("x"))
	eventually(t, time.Second, "new descriptor served", func() bool { return newRec.calls.Load() > 0 })
}

// TestPoolBoundedUnderLoad registers many more descriptors than workers,
// makes them all readable at once, and checks that every one is served,
// that no more than Workers handlers ever run at once, and that the
// overflow went through the run queue.
func TestPoolBoundedUnderLoad(t *testing.T) {
	const workers, n = 4, 200
	p := newPoller(t, Config{Workers: workers})
	var running, peak atomic.Int32
	served := make([]atomic.Int32, n)
	peers := make([]int, n)
	for i := 0; i < n; i++ {
		a, b := socketPair(t)
		peers[i] = b
		d := &Desc{}
		h := handlerFunc(func(Event) {
			cur := running.Add(1)
			for {
				old := peak.Load()
				if cur <= old || peak.CompareAndSwap(old, cur) {
					break
				}
			}
			buf := make([]byte, 8)
			_, _ = d.Read(buf)
			time.Sleep(200 * time.Microsecond)
			served[i].Add(1)
			running.Add(-1)
		})
		if err := p.Add(d, a, h); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(); unix.Close(b) })
	}
	for _, b := range peers {
		_, _ = unix.Write(b, []byte{1})
	}
	eventually(t, 5*time.Second, "every descriptor served", func() bool {
		for i := range served {
			if served[i].Load() == 0 {
				return false
			}
		}
		return true
	})
	if got := peak.Load(); got > workers {
		t.Fatalf("peak concurrent handlers = %d, want <= %d", got, workers)
	}
	if st := p.Stats(); st.Overflow == 0 || st.PeakQueue < workers {
		t.Fatalf("stats %+v: want overflow > 0 and a queue deeper than the pool", st)
	}
}

type handlerFunc func(Event)

func (f handlerFunc) HandleEvents(ev Event) { f(ev) }

func TestPanicIsContained(t *testing.T) {
	p := newPoller(t, Config{Workers: 1})
	a, b := socketPair(t)
	defer unix.Close(b)
	d := &Desc{}
	if err := p.Add(d, a, handlerFunc(func(Event) { panic("boom") })); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(a)
	d.Wake()
	eventually(t, time.Second, "panic counted", func() bool { return p.Stats().Panics == 1 })
	d.Wake() // dead now: dropped
	// The single worker must still serve others.
	c, e := socketPair(t)
	defer unix.Close(e)
	var ok atomic.Bool
	d2 := &Desc{}
	if err := p.Add(d2, c, handlerFunc(func(Event) { ok.Store(true) })); err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	d2.Wake()
	eventually(t, time.Second, "pool still serves", ok.Load)
}

// dial connects to the listener from a goroutine-free blocking socket.
func dial(t *testing.T, addr *net.TCPAddr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListenerAccepts(t *testing.T) {
	p := newPoller(t, Config{})
	var mu sync.Mutex
	var got []netip.AddrPort
	ln, err := p.Listen(ListenConfig{Addr: "127.0.0.1:0", OnAccept: func(fd int, remote netip.AddrPort) {
		mu.Lock()
		got = append(got, remote)
		mu.Unlock()
		unix.Close(fd)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for i := 0; i < 20; i++ {
		dial(t, ln.Addr())
	}
	eventually(t, 2*time.Second, "20 accepted", func() bool { return ln.Stats().Accepted == 20 })
	mu.Lock()
	defer mu.Unlock()
	if !got[0].Addr().IsLoopback() {
		t.Fatalf("remote %v, want a loopback address", got[0])
	}
}

func TestListenerBadConfig(t *testing.T) {
	p := newPoller(t, Config{})
	for _, cfg := range []ListenConfig{
		{Addr: "", OnAccept: func(int, netip.AddrPort) {}},
		{Addr: "127.0.0.1:0"},
		{Addr: "127.0.0.1:0", OnAccept: func(int, netip.AddrPort) {}, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		{Addr: "nonsense:addr:1", OnAccept: func(int, netip.AddrPort) {}},
	} {
		if ln, err := p.Listen(cfg); err == nil {
			ln.Close()
			t.Errorf("Listen(%+v) succeeded, want an error", cfg)
		}
	}
}

// TestListenerBacksOffOnEMFILE runs out of descriptors while connections
// wait: accept must fail with EMFILE, back off (a handful of retries, not
// a spin), and accept them once descriptors are free again.
func TestListenerBacksOffOnEMFILE(t *testing.T) {
	p := newPoller(t, Config{})
	var accepted atomic.Int32
	ln, err := p.Listen(ListenConfig{Addr: "127.0.0.1:0", MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 40 * time.Millisecond, OnAccept: func(fd int, _ netip.AddrPort) {
			accepted.Add(1)
			unix.Close(fd)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.Pause()
	for i := 0; i < 3; i++ {
		dial(t, ln.Addr()) // completes in the kernel backlog
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Fill the descriptor table up to a lowered limit.
	lowered := old
	lowered.Cur = uint64(countFds(t) + 4)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	var fillers []int
	restore := func() { // also when the test fails half way: the next tests need descriptors
		for _, fd := range fillers {
			unix.Close(fd)
		}
		fillers = nil
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	}
	t.Cleanup(restore)
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fillers = append(fillers, fd)
	}
	ln.Resume()
	eventually(t, 2*time.Second, "EMFILE seen", func() bool { return ln.Stats().Errors > 0 })
	time.Sleep(200 * time.Millisecond)
	st := ln.Stats()
	restore()
	if st.LastErr != unix.EMFILE {
		t.Errorf("last error %v, want EMFILE", st.LastErr)
	}
	// 200ms at a backoff of 10-40ms is at most ~10 retries; a spin would be thousands.
	if st.Backoffs > 20 {
		t.Errorf("%d backoffs in 200ms: accept is spinning", st.Backoffs)
	}
	eventually(t, 2*time.Second, "backlog accepted after recovery", func() bool { return accepted.Load() == 3 })
}

func countFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestYieldGoesToTheBack: a handler that yields runs again only after the
// Descs that were waiting for a worker meanwhile, and with EventWake.
// Without Yield, a Wake from inside the run would be served at once by the
// same worker (the run's next round).
func TestYieldGoesToTheBack(t *testing.T) {
	p := newPoller(t, Config{Workers: 1})
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	bQueued := make(chan struct{})
	a, a2 := socketPair(t)
	b, b2 := socketPair(t)
	for _, fd := range []int{a2, b2} {
		defer unix.Close(fd)
	}
	da, db := &Desc{}, &Desc{}
	calls := 0
	if err := p.Add(da, a, handlerFunc(func(ev Event) {
		calls++
		note(fmt.Sprintf("a%d:%v", calls, ev&EventWake != 0))
		if calls == 1 {
			<-bQueued // b is in the run queue behind a's run
			da.Yield()
		}
	})); err != nil {
		t.Fatal(err)
	}
	defer da.Close()
	if err := p.Add(db, b, handlerFunc(func(Event) { note("b") })); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	da.Wake()
	eventually(t, time.Second, "a running", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 1 })
	db.Wake()
	close(bQueued)
	eventually(t, time.Second, "three runs", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(order, " "), "a1:true b a2:true"; got != want {
		t.Fatalf("got runs %q, want %q", got, want)
	}
}
