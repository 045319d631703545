package main

import (
	"context"
	"errors"
	"flag"
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

	"wsgate/broker"
	"wsgate/prefork"
	"wsgate/wsconn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// envOf is a fake os.LookupEnv: the variables of env are set.
func envOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{"WSGATE_MAX_CONNS": "100", "WSGATE_ADDR": ":9000", "WSGATE_NATS": "nats://a:1,nats://b:2"}
	getenv := envOf(env)
	tests := []struct {
		name    string
		args    []string
		check   func(options) error
		wantErr string
	}{
		{name: "env fills what flags leave", args: nil, check: func(o options) error {
			if o.ws.MaxConns != 100 || o.ws.Addr != ":9000" || len(o.nats) != 2 {
				return fmt.Errorf("got max-conns %d addr %q nats %v", o.ws.MaxConns, o.ws.Addr, o.nats)
			}
			return nil
		}},
		{name: "flag beats env", args: []string{"-max-conns", "7"}, check: func(o options) error {
			if o.ws.MaxConns != 7 {
				return fmt.Errorf("got max-conns %d, want 7", o.ws.MaxConns)
			}
			return nil
		}},
		{name: "sizes", args: []string{"-max-message", "2M", "-max-queue", "64KiB"}, check: func(o options) error {
			if o.ws.MaxMessageSize != 2<<20 || o.ws.MaxQueueBytes != 64<<10 {
				return fmt.Errorf("got %d and %d", o.ws.MaxMessageSize, o.ws.MaxQueueBytes)
			}
			return nil
		}},
		{name: "workers auto", args: []string{"-workers", "auto"}, check: func(o options) error {
			if o.workers != 0 {
				return fmt.Errorf("got workers %d, want 0 (auto)", o.workers)
			}
			return nil
		}},
		{name: "negative byte rate: no cap", args: []string{"-max-byte-rate", "-1"}, check: func(o options) error {
			if o.ws.MaxByteRate != -1 {
				return fmt.Errorf("got max-byte-rate %d, want -1", o.ws.MaxByteRate)
			}
			return nil
		}},
		{name: "byte rate with suffix", args: []string{"-max-byte-rate", "16M"}, check: func(o options) error {
			if o.ws.MaxByteRate != 16<<20 {
				return fmt.Errorf("got max-byte-rate %d, want 16M", o.ws.MaxByteRate)
			}
			return nil
		}},
		{name: "bad size", args: []string{"-max-message", "lots"}, wantErr: "bad size"},
		{name: "negative size where none is allowed", args: []string{"-max-queue", "-1"}, wantErr: "bad size"},
		{name: "bad negative byte rate", args: []string{"-max-byte-rate", "-x"}, wantErr: "bad size"},
		{name: "bad workers", args: []string{"-workers", "0"}, wantErr: "want a number from 1 to 4096"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.check(o); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Process-level tests: the real binary, as a supervisor of workers.

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "wsgate-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wsgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
func startGateAt(t *testing.T, addr string, args ...string) (cmd *exec.Cmd, stop func()) {
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

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
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

// subscribe subscribes c to channel and waits for the ack.
func subscribe(t *testing.T, c *client, channel string) {
	t.Helper()
	c.send(t, `{"op":"subscribe","channel":"`+channel+`","id":"s"}`)
	if m := c.next(5 * time.Second); m != `{"op":"ack","id":"s"}` {
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
// on each; a publish on one reaches both, exactly once.
func TestWorkersShareChannels(t *testing.T) {
	addr, _ := startGate(t, "-workers", "2")
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
	u, _ := url.Parse(nats.URL())
	port, _ := strconv.Atoi(u.Port())
	addr, _ := startGate(t, "-workers", "2", "-nats", nats.URL())
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

// writeConfig writes a config file into a fresh directory and returns its
// path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wsgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFile: each setting comes from the highest source that has it,
// command line > environment > config file > default, and every problem
// with the file is one error naming the file, the line and the key.
func TestConfigFile(t *testing.T) {
	const file = `# settings
max-conns: 50000
addr: ":7000"
ping-interval: 45s
max-queue: 8M
origins: "https://a.example,https://b.example"
reuse-port: true
`
	type want struct {
		maxConns     int
		addr         string
		pingInterval time.Duration
		maxQueue     int
		origins      []string
		reusePort    bool
		pongTimeout  time.Duration
		sources      map[string]source
	}
	fromFileOnly := want{50000, ":7000", 45 * time.Second, 8 << 20, []string{"https://a.example", "https://b.example"}, true,
		wsconn.DefaultPongTimeout,
		map[string]source{"max-conns": fromFile, "addr": fromFile, "ping-interval": fromFile, "pong-timeout": fromDefault}}
	tests := []struct {
		name    string
		file    string // "": no file written
		args    []string
		env     map[string]string
		want    *want
		wantErr string // with "FILE" for the file's path
	}{
		{name: "file over defaults", file: file, want: &fromFileOnly},
		{name: "file named by WSGATE_CONFIG", file: file, env: map[string]string{"WSGATE_CONFIG": "FILE"}, want: &fromFileOnly},
		{name: "flag > env > file > default", file: file,
			args: []string{"-max-conns", "7"},
			env:  map[string]string{"WSGATE_MAX_CONNS": "100", "WSGATE_ADDR": ":9000"},
			want: &want{7, ":9000", 45 * time.Second, 8 << 20, []string{"https://a.example", "https://b.example"}, true,
				wsconn.DefaultPongTimeout,
				map[string]source{"max-conns": fromFlag, "addr": fromEnv, "ping-interval": fromFile, "pong-timeout": fromDefault}}},
		{name: "bool flag over file", file: file, args: []string{"-reuse-port=false"},
			want: &want{50000, ":7000", 45 * time.Second, 8 << 20, []string{"https://a.example", "https://b.example"}, false,
				wsconn.DefaultPongTimeout, map[string]source{"reuse-port": fromFlag}}},
		{name: "-config on the command line wins over WSGATE_CONFIG", file: file,
			env: map[string]string{"WSGATE_CONFIG": "/nonexistent/wsgate.yaml"}, want: &fromFileOnly},
		{name: "empty file", file: "# nothing yet\n", want: &want{0, ":8080", wsconn.DefaultPingInterval, 0, nil, false,
			wsconn.DefaultPongTimeout, map[string]source{"max-conns": fromDefault}}},

		{name: "unknown key", file: "max-conns: 1\nmax-con: 2\n", wantErr: `FILE:2: unknown key "max-con"`},
		{name: "key spelt as env", file: "max_conns: 2\n", wantErr: `FILE:1: unknown key "max_conns" (did you mean "max-conns"?)`},
		{name: "bad int", file: "max-conns: lots\n", wantErr: `FILE:1: invalid value "lots" for max-conns`},
		{name: "bad size", file: "\nmax-queue: 4Q\n", wantErr: `FILE:2: invalid value "4Q" for max-queue: bad size`},
		{name: "bad duration", file: "ping-interval: 30\n", wantErr: `FILE:1: invalid value "30" for ping-interval`},
		{name: "bad value under a flag is still an error", file: "max-conns: lots\n", args: []string{"-max-conns", "1"},
			wantErr: `FILE:1: invalid value "lots" for max-conns`},
		{name: "list", file: "origins: [a, b]\n", wantErr: "FILE:1: origins: want a single value"},
		{name: "null", file: "max-conns:\n", wantErr: "FILE:1: max-conns: no value"},
		{name: "twice", file: "max-conns: 1\nmax-conns: 2\n", wantErr: `FILE:2: key "max-conns" given twice`},
		{name: "not a mapping", file: "- max-conns\n", wantErr: "FILE:1: want a mapping"},
		{name: "not YAML", file: "max-conns: [\n", wantErr: "FILE: yaml:"},
		{name: "config in config", file: "config: other.yaml\n", wantErr: `FILE:1: "config" cannot be set in a config file`},
		{name: "semantic check names the file", file: "api-key: short\n", wantErr: "-api-key (in FILE) is 5 bytes"},
		{name: "missing file", args: []string{"-config", "/nonexistent/wsgate.yaml"},
			wantErr: "failed to read the config file (-config): open /nonexistent/wsgate.yaml: no such file or directory"},
		{name: "missing file from env", env: map[string]string{"WSGATE_CONFIG": "/nonexistent/wsgate.yaml"},
			wantErr: "failed to read the config file (WSGATE_CONFIG): open /nonexistent/wsgate.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, args := "", tt.args
			if tt.file != "" {
				path = writeConfig(t, tt.file)
				if tt.env["WSGATE_CONFIG"] != "FILE" {
					args = append([]string{"-config", path}, args...)
				}
			}
			getenv := func(k string) (string, bool) {
				v, ok := tt.env[k]
				return strings.ReplaceAll(v, "FILE", path), ok
			}
			o, err := parseFlags(args, getenv)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "FILE", path)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got error %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			got := want{o.ws.MaxConns, o.ws.Addr, o.ws.PingInterval, o.ws.MaxQueueBytes, o.ws.AllowedOrigins, o.ws.ReusePort,
				o.ws.PongTimeout, nil}
			if fmt.Sprint(got.maxConns, got.addr, got.pingInterval, got.maxQueue, got.origins, got.reusePort, got.pongTimeout) !=
				fmt.Sprint(w.maxConns, w.addr, w.pingInterval, w.maxQueue, w.origins, w.reusePort, w.pongTimeout) {
				t.Errorf("got %+v, want %+v", got, *w)
			}
			for name, src := range w.sources {
				if o.sources[name] != src {
					t.Errorf("source of %s: got %q, want %q", name, o.sources[name], src)
				}
			}
		})
	}
}

// TestPrintConfig: -print-config lists every setting with its source, hides
// secrets, and reads back as a config file into the same settings.
func TestPrintConfig(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef" // a JWT secret and an API key
	file := writeConfig(t, "max-conns: 50000\nping-interval: 1m30s\nmax-message: 2M\nlog-format: json\n")
	env := map[string]string{"WSGATE_ADDR": "127.0.0.1:9000", "WSGATE_JWT_SECRET": secret, "WSGATE_API_KEY": secret,
		"WSGATE_NATS": "nats://a:4222,nats://b:4222"}
	getenv := envOf(env)
	args := []string{"-config", file, "-print-config", "-max-conns", "7", "-origins", `https://a.example,"odd" \ one`,
		"-workers", "auto", "-max-queue", "12345", "-admin", "off"}
	o, err := parseFlags(args, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if !o.printConfig {
		t.Fatal("printConfig not set")
	}
	out := o.effective
	t.Logf("-print-config:\n%s", out)
	for _, want := range []string{
		`max-conns: 7 `, "# flag\n",
		`addr: "127.0.0.1:9000" `, "# env WSGATE_ADDR\n",
		`ping-interval: "1m30s" `, `max-message: "2M" `, `log-format: "json" `, "# file\n",
		`pong-timeout: "10s" `, "# default\n",
		`jwt-secret: "<redacted>" `, `api-key: "<redacted>" `,
		`origins: "https://a.example,\"odd\" \\ one" `,
		"# config file: " + file + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, secret) {
		t.Error("output shows a secret")
	}
	for _, hidden := range []string{"\nconfig:", "\nprint-config:"} {
		if strings.Contains(out, hidden) {
			t.Errorf("output lists %q, a command-line action", hidden)
		}
	}
	lines := strings.Count(out, "\n") - 2 // two header lines
	settings := 0
	newFlagSet(&flagTargets{}).VisitAll(func(f *flag.Flag) {
		if !cliOnly[f.Name] {
			settings++
		}
	})
	if lines != settings {
		t.Errorf("got %d settings printed, want all %d", lines, settings)
	}

	// Read back as the only source (secrets from the environment, as they
	// would be): the same settings.
	printed := writeConfig(t, out)
	secrets := envOf(map[string]string{"WSGATE_JWT_SECRET": secret, "WSGATE_API_KEY": secret})
	back, err := parseFlags([]string{"-config", printed}, secrets)
	if err != nil {
		t.Fatalf("reading the printed configuration back: %v", err)
	}
	for name, src := range back.sources {
		if want := fromFile; src != want && !secretFlags[name] && !cliOnly[name] {
			t.Errorf("read back, source of %s: got %q, want %q", name, src, want)
		}
	}
	// Compare everything the flags set, except what only the first run had.
	o.sources, back.sources = nil, nil
	o.configFile, back.configFile = "", ""
	o.printConfig, o.effective = false, ""
	if o.jwt == nil || back.jwt == nil {
		t.Fatalf("JWT settings: got %v, want %v", back.jwt, o.jwt)
	}
	jwt, backJWT := *o.jwt, *back.jwt
	o.jwt, back.jwt = nil, nil
	if got, want := fmt.Sprintf("%+v %+v", back, backJWT), fmt.Sprintf("%+v %+v", o, jwt); got != want {
		t.Errorf("read back:\n got %s\nwant %s", got, want)
	}

	// Read back without the secrets: "<redacted>" is no usable key.
	if _, err := parseFlags([]string{"-config", printed}, envOf(nil)); err == nil ||
		!strings.Contains(err.Error(), "-api-key (in "+printed+") is 10 bytes") {
		t.Errorf("read back without secrets: got %v, want the redacted API key refused", err)
	}
}

// TestSettingRanges: numbers out of their flag's range are one line naming
// the flag and its source; an explicit zero where zero would silently mean
// a non-zero default is refused.
func TestSettingRanges(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string // config file contents; "": none
		wantErr string // "": accepted; FILE is the file's path
	}{
		{name: "frame over message", args: []string{"-max-frame", "2M", "-max-message", "1M"},
			wantErr: "invalid -max-frame 2M: want at most -max-message (1M)"},
		{name: "frame over default message", args: []string{"-max-frame", "2M"},
			wantErr: "invalid -max-frame 2M: want at most -max-message (1M)"},
		{name: "frame up to message", args: []string{"-max-frame", "2M", "-max-message", "2M"}},
		{name: "negative pool", args: []string{"-pool", "-3"},
			wantErr: "invalid -pool -3: want a positive size, or 0 for max(16, 8*GOMAXPROCS)"},
		{name: "negative max-conns", args: []string{"-max-conns", "-1"},
			wantErr: "invalid -max-conns -1: want a positive cap, or 0 for the descriptor limit - 128"},
		{name: "zero max-conns-per-ip", args: []string{"-max-conns-per-ip", "0"},
			wantErr: "invalid -max-conns-per-ip 0: want a positive cap, or -1 for none"},
		{name: "zero max-conns-per-ip from env", env: map[string]string{"WSGATE_MAX_CONNS_PER_IP": "0"},
			wantErr: "invalid -max-conns-per-ip 0 (WSGATE_MAX_CONNS_PER_IP): want a positive cap, or -1 for none"},
		{name: "zero max-conns-per-ip from file", file: "max-conns-per-ip: 0\n",
			wantErr: "invalid -max-conns-per-ip 0 (in FILE): want a positive cap, or -1 for none"},
		{name: "no cap per ip", args: []string{"-max-conns-per-ip", "-1"}},
		{name: "zero accept-rate", args: []string{"-accept-rate", "0"},
			wantErr: "invalid -accept-rate 0: want a positive rate, or -1 for no cap"},
		{name: "zero max-msg-rate", args: []string{"-max-msg-rate", "0"},
			wantErr: "invalid -max-msg-rate 0: want a positive rate, or -1 for no cap"},
		{name: "zero max-subs", args: []string{"-max-subs", "0"}, wantErr: "invalid -max-subs 0: want a positive count"},
		{name: "negative max-subs", args: []string{"-max-subs", "-1"}, wantErr: "invalid -max-subs -1: want a positive count"},
		{name: "zero max-channel-len", args: []string{"-max-channel-len", "0"},
			wantErr: "invalid -max-channel-len 0: want a positive length in bytes"},
		{name: "zero handshake-timeout", args: []string{"-handshake-timeout", "0"},
			wantErr: "invalid -handshake-timeout 0s: want a positive duration"},
		{name: "zero pong-timeout", args: []string{"-pong-timeout", "0s"}, wantErr: "invalid -pong-timeout 0s: want a positive duration"},
		{name: "negative close-timeout", args: []string{"-close-timeout", "-1s"},
			wantErr: "invalid -close-timeout -1s: want a positive duration"},
		{name: "zero sweep-interval", args: []string{"-sweep-interval", "0"},
			wantErr: "invalid -sweep-interval 0s: want a positive duration"},
		{name: "zero ping-interval", args: []string{"-ping-interval", "0"},
			wantErr: "invalid -ping-interval 0s: want a positive duration, or negative for never"},
		{name: "no pings", args: []string{"-ping-interval", "-1s"}},
		{name: "zero log-warn-interval", args: []string{"-log-warn-interval", "0"},
			wantErr: "invalid -log-warn-interval 0s: want a positive duration"},
		{name: "negative shutdown-timeout", args: []string{"-shutdown-timeout", "-1s"},
			wantErr: "invalid -shutdown-timeout -1s: want a positive duration, or 0 to close at once"},
		{name: "zero shutdown-timeout", args: []string{"-shutdown-timeout", "0"}},
		{name: "addr without port", args: []string{"-addr", "foo"}, wantErr: `invalid -addr "foo": want host:port`},
		{name: "admin port out of range", env: map[string]string{"WSGATE_ADMIN": "127.0.0.1:99999"},
			wantErr: `invalid -admin "127.0.0.1:99999" (WSGATE_ADMIN): want host:port, or off`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, path := tt.args, ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
				args = append([]string{"-config", path}, args...)
			}
			_, err := parseFlags(args, envOf(tt.env))
			want := strings.ReplaceAll(tt.wantErr, "FILE", path)
			switch {
			case want == "" && err != nil:
				t.Fatalf("got error %q, want none", err)
			case want != "" && (err == nil || err.Error() != want):
				t.Fatalf("got error %v, want %q", err, want)
			}
		})
	}
}

// TestEmptyEnv: a WSGATE_* variable that is set counts, even empty.
func TestEmptyEnv(t *testing.T) {
	file := writeConfig(t, "origins: \"https://a.example\"\nmax-conns: 50\n")
	tests := []struct {
		name    string
		env     map[string]string
		origins []string
		src     source
		wantErr string
	}{
		{name: "unset: the file's", env: nil, origins: []string{"https://a.example"}, src: fromFile},
		{name: "empty: clears the file's", env: map[string]string{"WSGATE_ORIGINS": ""}, origins: nil, src: fromEnv},
		{name: "empty number", env: map[string]string{"WSGATE_MAX_CONNS": ""},
			wantErr: `invalid value "" for WSGATE_MAX_CONNS: parse error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags([]string{"-config", file}, envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(o.ws.AllowedOrigins) != fmt.Sprint(tt.origins) || o.sources["origins"] != tt.src {
				t.Errorf("got origins %q from %s, want %q from %s", o.ws.AllowedOrigins, o.sources["origins"], tt.origins, tt.src)
			}
		})
	}
	// An empty WSGATE_CONFIG names no file.
	if o, err := parseFlags(nil, envOf(map[string]string{"WSGATE_CONFIG": ""})); err != nil || o.configFile != "" {
		t.Errorf("empty WSGATE_CONFIG: got file %q, error %v; want no file, no error", o.configFile, err)
	}
}

// TestCheckConfig: checkConfig refuses, in one line, what the server or the
// supervisor would refuse only while starting.
func TestCheckConfig(t *testing.T) {
	per := wsconn.DefaultMaxConns()
	tests := []struct {
		name       string
		args       []string
		wantErr    string // the whole message
		wantPrefix string // or its start, for messages of other packages
	}{
		{name: "defaults"},
		{name: "two workers", args: []string{"-workers", "2", "-max-conns", strconv.Itoa(2 * per)}},
		{name: "good NATS URLs", args: []string{"-nats", "nats://a:4222,tls://user:pw@b.example:4443"}},
		{name: "NATS URL without scheme", args: []string{"-nats", "foo"},
			wantErr: `invalid -nats URL "foo": want nats://host:port or tls://host:port`},
		{name: "NATS URL without port", args: []string{"-nats", "nats://a:1,nats://b"},
			wantErr: `invalid -nats URL "nats://b": want nats://host:port or tls://host:port`},
		{name: "NATS URL of another scheme", args: []string{"-nats", "http://a:1"},
			wantErr: `invalid -nats URL "http://a:1": want nats://host:port or tls://host:port`},
		{name: "missing certificate", args: []string{"-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"},
			wantErr: "failed to load TLS certificate /nonexistent/c.pem and key /nonexistent/k.pem: open /nonexistent/c.pem: no such file or directory"},
		{name: "short JWT secret", args: []string{"-jwt-secret", "short"}, wantPrefix: "auth: "},
		{name: "missing JWT key file", args: []string{"-jwt-public-key", "/nonexistent/jwt.pem"}, wantPrefix: "auth: "},
		{name: "queue below a message", args: []string{"-max-queue", "100"}, wantPrefix: "wsconn: invalid config: max queue bytes 100"},
		{name: "max-conns past the descriptor limit", args: []string{"-max-conns", strconv.Itoa(per + 100)},
			wantPrefix: "wsconn: invalid config: max conns"},
		{name: "workers too few for max-conns", args: []string{"-workers", "2", "-max-conns", strconv.Itoa(2*per + 1)},
			wantErr: fmt.Sprintf("-max-conns %d: 2 workers hold at most %d (%d each: the descriptor limit - 128); raise -workers, or use auto",
				2*per+1, 2*per, per)},
		{name: "auto past 4096 workers", args: []string{"-workers", "auto", "-max-conns", strconv.Itoa(4096 * per)},
			wantErr: fmt.Sprintf("-workers auto: -max-conns %d needs %d workers of %d connections, more than 4096",
				4096*per, autoWorkers(4096*per), per)},
		{name: "worker admin ports past 65535", args: []string{"-workers", "3", "-admin", "127.0.0.1:65534"},
			wantErr: "-admin port 65534: 3 workers need ports up to 65537, past 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, envOf(nil))
			if err != nil {
				t.Fatal(err)
			}
			err = checkConfig(o)
			switch {
			case tt.wantErr == "" && tt.wantPrefix == "":
				if err != nil {
					t.Fatalf("got error %q, want none", err)
				}
			case err == nil:
				t.Fatalf("got no error, want %q", tt.wantErr+tt.wantPrefix)
			case strings.Contains(err.Error(), "\n"):
				t.Fatalf("got a message of several lines: %q", err)
			case tt.wantErr != "" && err.Error() != tt.wantErr:
				t.Fatalf("got error %q, want %q", err, tt.wantErr)
			case !strings.HasPrefix(err.Error(), tt.wantPrefix):
				t.Fatalf("got error %q, want one starting %q", err, tt.wantPrefix)
			}
		})
	}
}

// TestBadConfigExits2: the binary, with -print-config, as a single server
// and as a supervisor, refuses a bad setting with one line on stderr and
// exit status 2, at once: nothing starts (no log line, no worker).
func TestBadConfigExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the wsgate binary")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // the line on stderr
	}{
		{"print-config, frame over message", []string{"-print-config", "-max-frame", "2M", "-max-message", "1M"},
			"wsgate: invalid -max-frame 2M: want at most -max-message (1M)"},
		{"print-config, bad NATS URL", []string{"-print-config", "-nats", "foo"},
			`wsgate: invalid -nats URL "foo": want nats://host:port or tls://host:port`},
		{"print-config, missing certificate", []string{"-print-config", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"},
			"wsgate: failed to load TLS certificate /nonexistent/c.pem and key /nonexistent/k.pem: open /nonexistent/c.pem: no such file or directory"},
		{"server, negative pool", []string{"-pool", "-3"},
			"wsgate: invalid -pool -3: want a positive size, or 0 for max(16, 8*GOMAXPROCS)"},
		{"server, zero cap", []string{"-max-conns-per-ip", "0"}, "wsgate: invalid -max-conns-per-ip 0: want a positive cap, or -1 for none"},
		{"supervisor, negative pool", []string{"-workers", "2", "-pool", "-3"},
			"wsgate: invalid -pool -3: want a positive size, or 0 for max(16, 8*GOMAXPROCS)"},
		{"supervisor, bad NATS URL", []string{"-workers", "2", "-nats", "nats://a"},
			`wsgate: invalid -nats URL "nats://a": want nats://host:port or tls://host:port`},
		{"supervisor, negative shutdown timeout", []string{"-workers", "2", "-shutdown-timeout", "-1s"},
			"wsgate: invalid -shutdown-timeout -1s: want a positive duration, or 0 to close at once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"-addr", "127.0.0.1:0", "-admin", "off"}, tt.args...)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("got exit status %d (%v), want 2", code, err)
			}
			if got := stderr.String(); got != tt.want+"\n" {
				t.Errorf("stderr: got %q, want the one line %q", got, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
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
