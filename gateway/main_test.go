package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/prefork"
	"github.com/wsgate/wsgate/wsconn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "wsgate-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wsgate")
	out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// freePort returns a loopback port free now, for a wsgate process to
// listen on in a moment. It is chosen below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range): a port from ":0" is one the kernel may
// give, between our close and the process's listen, to any of the
// thousands of connections the tests open (a CI run failed so, "address
// already in use"); below the range only another explicit bind can take
// it.
func freePort(t testing.TB) int {
	t.Helper()
	run := freePortRun(t, 1)
	_ = run[0].Close()
	return run[0].Addr().(*net.TCPAddr).Port
}

// portsBelowEphemeral is the range freePortRun picks from: above the
// well-known and registered ports most services take, below the first
// ephemeral port.
func portsBelowEphemeral(t testing.TB) (lo, hi int) {
	t.Helper()
	lo, hi = 20000, 32767 // below the kernel's default range, 32768-60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if first, err := strconv.Atoi(f[0]); err == nil && first-1 < hi {
				hi = first - 1
			}
		}
	}
	if hi-lo < 1000 {
		t.Skipf("the ephemeral port range starts at %d: no room below it for the tests' own ports", hi+1)
	}
	return lo, hi
}

// startGate runs the wsgate binary with args on a free port and stops it
// (SIGTERM) when the test ends. It returns the address and the process.
func startGate(t *testing.T, args ...string) (string, *exec.Cmd) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd, _ := startGateAt(t, addr, args...)
	return addr, cmd
}

// startGateAt runs the wsgate binary with args on addr and waits until it
// listens. stop sends SIGTERM and waits for the process to end (at most
// 15 s, then SIGKILL and a test error); it runs when the test ends, if not
// before.
func startGateAt(t testing.TB, addr string, args ...string) (cmd *exec.Cmd, stop func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts wsgate processes")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, append([]string{"-addr", addr, "-admin", "off", "-log-level", "warn"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("wsgate did not stop within 15s of SIGTERM")
		}
	})
	t.Cleanup(stop)
	eventually(t, 10*time.Second, "wsgate listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd, stop
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a WebSocket client that knows which worker it landed on.
type client struct {
	c      *websocket.Conn
	worker string
	msgs   chan string
}

func dial(t *testing.T, addr, path string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	cl := &client{c: c, worker: resp.Header.Get("X-Wsgate-Worker"), msgs: make(chan string, 1000)}
	go func() {
		defer close(cl.msgs)
		for {
			_, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			cl.msgs <- string(p)
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return cl
}

func (c *client) send(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next returns the next message, or "" after timeout.
func (c *client) next(timeout time.Duration) string {
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		return ""
	}
}

// onWorkers dials until it has one client on each of the given workers.
func onWorkers(t *testing.T, addr, path string, workers ...string) map[string]*client {
	t.Helper()
	got := map[string]*client{}
	for i := 0; i < 200 && len(got) < len(workers); i++ {
		c := dial(t, addr, path)
		if _, ok := got[c.worker]; !ok {
			got[c.worker] = c
			continue
		}
		_ = c.c.CloseNow()
	}
	for _, w := range workers {
		if got[w] == nil {
			t.Fatalf("no connection landed on worker %q in 200 tries (got %v)", w, keys(got))
		}
	}
	return got
}

func keys(m map[string]*client) []string {
	var k []string
	for w := range m {
		k = append(k, w)
	}
	return k
}

// subscribe subscribes c to channel and waits for the ack, which carries
// the channel's position when it keeps a history.
func subscribe(t *testing.T, c *client, channel string) {
	t.Helper()
	c.send(t, `{"op":"subscribe","channel":"`+channel+`","id":"s"}`)
	m := c.next(5 * time.Second)
	var ack struct {
		Op, ID, Code string
		Epoch        *string
	}
	if err := json.Unmarshal([]byte(m), &ack); err != nil || ack.Op != "ack" || ack.ID != "s" || ack.Code != "" ||
		ack.Epoch != nil && *ack.Epoch == "" {
		t.Fatalf("subscribe: got %q, want the ack", m)
	}
}

// crossDelivered publishes from pub until sub (on another worker) gets a
// push, then checks that one last publish reaches each subscriber exactly
// once.
func crossDelivered(t *testing.T, pub *client, subs ...*client) {
	t.Helper()
	probe := 0
	eventually(t, 10*time.Second, "a publish on one worker reaches the other", func() bool {
		probe++
		pub.send(t, fmt.Sprintf(`{"op":"publish","channel":"room","data":"probe %d"}`, probe))
		return strings.Contains(subs[len(subs)-1].next(200*time.Millisecond), "probe")
	})
	for _, s := range subs { // forget the probes
		for s.next(300*time.Millisecond) != "" {
		}
	}
	pub.send(t, `{"op":"publish","channel":"room","data":"final"}`)
	for i, s := range subs {
		want := `{"channel":"room","data":"final"}`
		if got := s.next(5 * time.Second); got != want {
			t.Fatalf("subscriber %d (worker %s): got %q, want %q", i, s.worker, got, want)
		}
		if extra := s.next(300 * time.Millisecond); extra != "" {
			t.Fatalf("subscriber %d (worker %s) got the message twice: %q", i, s.worker, extra)
		}
	}
}

// TestWorkersShareChannels: two workers with embedded NATS; a subscriber
// on each; a publish on one reaches both, exactly once. Channels without
// history here: they go through core NATS (TestWorkersHistory has the
// JetStream ones).
func TestWorkersShareChannels(t *testing.T) {
	addr, _ := startGate(t, "-workers", "2", "-history-size", "0")
	cs := onWorkers(t, addr, "/ws", "0", "1")
	subscribe(t, cs["0"], "room")
	subscribe(t, cs["1"], "room")
	crossDelivered(t, cs["0"], cs["0"], cs["1"])
}

// TestBrokerRestart: workers joined by an external NATS that goes away and
// comes back: local delivery goes on meanwhile, cross-worker delivery
// resumes afterwards.
func TestBrokerRestart(t *testing.T) {
	nats, err := broker.StartEmbedded("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Shutdown) // also when startGate skips the test
	u, _ := url.Parse(nats.URL())
	port, _ := strconv.Atoi(u.Port())
	addr, _ := startGate(t, "-workers", "2", "-nats", nats.URL(), "-history-size", "0")
	cs := onWorkers(t, addr, "/ws", "0", "1")
	subscribe(t, cs["0"], "room")
	subscribe(t, cs["1"], "room")
	crossDelivered(t, cs["0"], cs["0"], cs["1"])

	nats.Shutdown()
	time.Sleep(200 * time.Millisecond) // let the workers notice
	cs["0"].send(t, `{"op":"publish","channel":"room","data":"local","id":1}`)
	if m := cs["0"].next(5 * time.Second); m != `{"channel":"room","data":"local"}` {
		t.Fatalf("with NATS down, the publisher's own worker: got %q, want the push", m)
	}
	if m := cs["0"].next(5 * time.Second); m != `{"op":"ack","id":1,"delivered":1}` {
		t.Fatalf("with NATS down: got %q, want an ack with one local delivery", m)
	}

	again, err := broker.StartEmbedded("127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Shutdown()
	crossDelivered(t, cs["0"], cs["0"], cs["1"])
}

// TestKilledWorkerRestarts: SIGKILL one worker; its clients lose their
// connection, the other worker's clients see nothing, and the supervisor
// starts a new worker in its place.
func TestKilledWorkerRestarts(t *testing.T) {
	addr, sup := startGate(t, "-workers", "2")
	cs := onWorkers(t, addr, "/echo", "0", "1")
	victim := workerPid(t, sup.Process.Pid, "1")
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if m, ok := <-cs["1"].msgs; ok {
		t.Fatalf("client of the killed worker got %q, want its connection closed", m)
	}
	for i := 0; i < 5; i++ { // the survivor's connection is untouched
		cs["0"].send(t, "still here "+strconv.Itoa(i))
		if m := cs["0"].next(5 * time.Second); m != "still here "+strconv.Itoa(i) {
			t.Fatalf("client of worker 0: got %q", m)
		}
	}
	eventually(t, 10*time.Second, "worker 1 restarted", func() bool {
		pid := findWorker(sup.Process.Pid, "1")
		return pid != 0 && pid != victim
	})
	eventually(t, 10*time.Second, "the new worker 1 serves", func() bool {
		c := dial(t, addr, "/echo")
		defer c.c.CloseNow()
		return c.worker == "1"
	})
}

// workerPid finds the pid of worker id among the supervisor's children.
func workerPid(t *testing.T, parent int, id string) int {
	t.Helper()
	var pid int
	eventually(t, 5*time.Second, "worker "+id+" found", func() bool {
		pid = findWorker(parent, id)
		return pid != 0
	})
	return pid
}

func findWorker(parent int, id string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if len(f) < 2 || f[1] != strconv.Itoa(parent) || f[0] == "Z" {
			continue
		}
		env, _ := os.ReadFile(d + "/environ")
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == "WSGATE_WORKER_ID="+id {
				pid, _ := strconv.Atoi(filepath.Base(d))
				return pid
			}
		}
	}
	return 0
}

func TestWorkerArithmetic(t *testing.T) {
	per := wsconn.DefaultMaxConns() // under this machine's descriptor limit
	if got := autoWorkers(1_000_000); got*per < 1_100_000 || (got-1)*per >= 1_100_000 {
		t.Errorf("autoWorkers(1M) = %d: want the fewest workers holding 1.1M at %d each", got, per)
	}
	if got, want := workerShare(1_000_000, 56), min(per, 19643); got != want {
		t.Errorf("workerShare(1M, 56) = %d, want %d", got, want)
	}
	if got := workerShare(10_000_000, 2); got != per {
		t.Errorf("workerShare past the descriptor limit = %d, want the limit %d", got, per)
	}
}

// TestStartWorkersConfigExit: a worker that exits with status 2 before it
// is ready makes startWorkers return a *workerConfigError naming it (main
// exits 2); another exit status does not.
func TestStartWorkersConfigExit(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string // the error's pattern
		config bool
	}{
		{"status 2", "exit 2", `^worker [01] exited with status 2 \(a configuration error\) before it was ready$`, true},
		{"status 1", "exit 1", `^prefork: worker [01] exited before it was ready \(exit status 1\)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sup, err := startWorkers(prefork.Config{Workers: 2, Path: "/bin/sh", Args: []string{"-c", tt.script}})
			if err == nil {
				_ = sup.Shutdown(context.Background())
				t.Fatal("got no error, want one")
			}
			var cfgErr *workerConfigError
			if errors.As(err, &cfgErr) != tt.config || !regexp.MustCompile(tt.want).MatchString(err.Error()) {
				t.Errorf("got error %q (config error: %v), want one matching %q (config error: %v)",
					err, errors.As(err, &cfgErr), tt.want, tt.config)
			}
		})
	}
}

// TestWorkerConfigErrorExits2: a worker that finds a configuration error
// the supervisor could not see (here a share of -max-conns past the
// descriptor limit, passed the way the supervisor passes it) exits 2 before
// it is ready, and the supervisor stops and exits 2 with a line naming it.
func TestWorkerConfigErrorExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the wsgate binary")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-workers", "2", "-addr", "127.0.0.1:0", "-admin", "off", "-log-level", "error")
	cmd.Env = append(os.Environ(), envWorkerMaxConns+"=999999999")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("got exit status %d (%v), want 2", code, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	last := regexp.MustCompile(`^wsgate: worker [01] exited with status 2 \(a configuration error\) before it was ready$`)
	if !last.MatchString(lines[len(lines)-1]) {
		t.Errorf("got output %q, want it to end with a line matching %q", out, last)
	}
}
