package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

func TestSplit(t *testing.T) {
	tests := []struct {
		n, perProc, want int
		shares           []int
	}{
		{n: 10, perProc: 100, want: 0, shares: []int{10}},
		{n: 10, perProc: 100, want: 2, shares: []int{5, 5}},
		{n: 11, perProc: 100, want: 2, shares: []int{6, 5}},
		{n: 250, perProc: 100, want: 0, shares: []int{84, 83, 83}},
		{n: 1_000_000, perProc: 19_800, want: 0, shares: nil}, // checked by sum below
		{n: 3, perProc: 1, want: 0, shares: []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.n)+"/"+strconv.Itoa(tt.perProc), func(t *testing.T) {
			got := split(tt.n, tt.perProc, tt.want)
			sum := 0
			for _, s := range got {
				sum += s
				if s > tt.perProc {
					t.Errorf("share %d is over the per-process limit %d", s, tt.perProc)
				}
			}
			if sum != tt.n {
				t.Errorf("shares sum to %d, want %d", sum, tt.n)
			}
			if tt.shares != nil && !equalInts(got, tt.shares) {
				t.Errorf("got shares %v, want %v", got, tt.shares)
			}
		})
	}
	if got := len(split(1_000_000, 19_800, 0)); got != 51 {
		t.Errorf("1M connections at 19,800 per process: got %d processes, want 51", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPercentiles(t *testing.T) {
	h := newHist()
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	p := h.percentiles()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", p.P50, 500}, {"p90", p.P90, 900}, {"p99", p.P99, 990}, {"p99.9", p.P999, 999}, {"max", p.Max, 1000}} {
		if c.got < c.want*0.99 || c.got > c.want*1.01 {
			t.Errorf("%s = %.2f ms, want %.0f ms (±1%%)", c.name, c.got, c.want)
		}
	}
	if p.Count != 1000 {
		t.Errorf("count = %d, want 1000", p.Count)
	}
}

func TestMerge(t *testing.T) {
	a, b := newHist(), newHist()
	for i := 0; i < 100; i++ {
		a.record(time.Millisecond)
		b.record(10 * time.Millisecond)
	}
	parts := []*Result{
		{Mode: "broadcast", Target: 10, Open: 10, PeakOpen: 10, RampSeconds: 1, Failures: map[string]int{"refused": 1},
			LatencyHist: a.encode(), HandshakeHist: a.encode(),
			Broadcast: &BroadcastFigures{Subscribers: 10, Messages: 5, Expected: 50, Received: 50}},
		{Mode: "broadcast", Target: 20, Open: 19, PeakOpen: 20, RampSeconds: 2, Failures: map[string]int{"refused": 2, "timeout": 1},
			LatencyHist: b.encode(), HandshakeHist: b.encode(),
			Broadcast: &BroadcastFigures{Subscribers: 19, Messages: 5, Expected: 95, Received: 94, Missing: 1, Incomplete: 2}},
	}
	m, err := merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Target != 30 || m.Open != 29 || m.PeakOpen != 30 || m.Processes != 2 {
		t.Errorf("got target %d open %d peak %d procs %d, want 30 29 30 2", m.Target, m.Open, m.PeakOpen, m.Processes)
	}
	if m.Failures["refused"] != 3 || m.Failures["timeout"] != 1 {
		t.Errorf("failures %v, want refused 3 timeout 1", m.Failures)
	}
	if m.RampSeconds != 2 || m.ConnectRate != 15 {
		t.Errorf("ramp %v s at %v/s, want 2 s at 15/s", m.RampSeconds, m.ConnectRate)
	}
	bc := m.Broadcast
	if bc.Expected != 145 || bc.Received != 144 || bc.Missing != 1 || bc.Incomplete != 2 || bc.Subscribers != 29 {
		t.Errorf("broadcast %+v", bc)
	}
	if bc.Latency.Count != 200 || bc.Latency.P50 < 0.99 || bc.Latency.P50 > 1.01 || bc.Latency.Max < 9.9 {
		t.Errorf("merged latency %+v, want 200 values, p50 1 ms, max 10 ms", bc.Latency)
	}
	if _, err := merge([]*Result{{LatencyHist: "not base64!"}}); err == nil {
		t.Error("merge accepted a corrupt histogram")
	}
}

func TestParseSources(t *testing.T) {
	ips, err := parseSources("127.0.0.2-127.0.0.5")
	if err != nil || len(ips) != 4 || ips[3].String() != "127.0.0.5" {
		t.Fatalf("got %v, %v; want 4 addresses ending at 127.0.0.5", ips, err)
	}
	for _, bad := range []string{"127.0.0.9-127.0.0.2", "x-y", "127.0.0.1,nope", "::1-::2"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("parseSources(%q) succeeded, want an error", bad)
		}
	}
}

// TestBenchAgainstServer runs the real bench binary as two processes
// against a wsgate server in this process: 2,000 connections for echo and
// for broadcast; the JSON must have the expected figures and no loss.
// startServer starts a wsconn server for cfg on 127.0.0.1:0, shut down
// when the test ends.
func startServer(t *testing.T, cfg wsconn.Config) *wsconn.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := wsconn.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

func TestBenchAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns bench processes")
	}
	bin := filepath.Join(t.TempDir(), "bench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	channels, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, wsconn.Config{Compression: true,
		Routes: map[string]wsconn.Handler{"/ws": channels, "/echo": handler.Echo{}}})
	addr, pid := srv.Addr().String(), strconv.Itoa(os.Getpid())
	run := func(args ...string) *Result {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bench %v: %v", args, err)
		}
		var r Result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("bench output is not a Result: %v\n%s", err, out)
		}
		return &r
	}
	echo := run("echo", "-url", "ws://"+addr+"/echo", "-n", "2000", "-rate", "4000", "-procs", "2",
		"-duration", "2s", "-pid", pid, "-src", "127.0.0.2-127.0.0.3")
	if echo.Processes != 2 || echo.Open != 2000 || len(echo.Failures) != 0 {
		t.Errorf("echo: %d processes, %d open, failures %v; want 2, 2000, none", echo.Processes, echo.Open, echo.Failures)
	}
	if echo.Echo == nil || echo.Echo.Messages < 2000 || echo.Echo.RTT.Count == 0 || echo.Echo.RTT.P99 <= 0 {
		t.Errorf("echo figures %+v: want messages and RTT percentiles", echo.Echo)
	}
	if len(echo.Timeline) == 0 || echo.Server.AfterRamp.RSSKiB == 0 {
		t.Errorf("echo: no server timeline or memory figures: %+v", echo.Server)
	}
	bc := run("broadcast", "-url", "ws://"+addr+"/ws", "-n", "2000", "-rate", "4000", "-procs", "2",
		"-messages", "20", "-pub-rate", "20", "-pid", pid)
	b := bc.Broadcast
	if b == nil {
		t.Fatal("broadcast: no broadcast figures")
	}
	if b.Subscribers != 2000 || b.Expected != 40000 || b.Received != 40000 ||
		b.Missing != 0 || b.Duplicates != 0 || b.OutOfOrder != 0 || b.Incomplete != 0 {
		t.Errorf("broadcast figures %+v: want 2,000 subscribers each getting all 20 messages once, in order", b)
	}
	if b.Latency.Count != 40000 {
		t.Errorf("broadcast latency count %d, want 40000", b.Latency.Count)
	}
	idle := run("idle", "-url", "ws://"+addr+"/ws", "-n", "200", "-rate", "4000", "-hold", "100ms", "-deflate", "-pid", pid)
	if idle.Open != 200 || len(idle.Failures) != 0 {
		t.Errorf("idle -deflate: %d open, failures %v; want 200 compressing connections", idle.Open, idle.Failures)
	}
}

// TestBenchDeflateDeclined: -deflate counts a connection only if the
// server accepted permessage-deflate.
func TestBenchDeflateDeclined(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns bench processes")
	}
	srv := startServer(t, wsconn.Config{Routes: map[string]wsconn.Handler{"/echo": handler.Echo{}}})
	cmd := exec.Command("go", "run", ".", "idle", "-url", "ws://"+srv.Addr().String()+"/echo", "-n", "20",
		"-hold", "100ms", "-deflate", "-pid", strconv.Itoa(os.Getpid()))
	out, _ := cmd.Output() // the run fails: nothing opened
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench output is not a Result: %v\n%s", err, out)
	}
	if r.Open != 0 || r.Failures["deflate_declined"] != 20 {
		t.Errorf("open %d, failures %v; want 0 and 20 deflate_declined", r.Open, r.Failures)
	}
}

// closer closes every connection with 4000 once n are open.
type closer struct {
	wsconn.Base
	n     int
	mu    sync.Mutex
	conns []wsconn.Conn
}

func (h *closer) OnOpen(c wsconn.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns = append(h.conns, c); len(h.conns) == h.n {
		for _, c := range h.conns {
			_ = c.Close(4000, "go away")
		}
	}
}

// TestBenchCountsEnds: connections the server ends during a run are
// counted by how they ended, with the server's close status.
func TestBenchCountsEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns bench processes")
	}
	srv := startServer(t, wsconn.Config{Routes: map[string]wsconn.Handler{"/close": &closer{n: 50}}})
	cmd := exec.Command("go", "run", ".", "idle", "-url", "ws://"+srv.Addr().String()+"/close", "-n", "50",
		"-rate", "10000", "-hold", "3s", "-pid", strconv.Itoa(os.Getpid()))
	out, _ := cmd.Output()
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench output is not a Result: %v\n%s", err, out)
	}
	// Not PeakOpen: the server closes all 50 once it has opened the 50th,
	// and a client may read its close frame before the 50th client has
	// read its 101. A close frame read is an open connection counted.
	if r.Ends["server_close_4000"] != 50 || len(r.Ends) != 1 || len(r.Failures) != 0 {
		t.Errorf("ends %v, failures %v; want 50 server_close_4000 and no failure", r.Ends, r.Failures)
	}
}

// TestSourceShare: no two workers may get the same source address and
// port, and every worker gets some.
func TestSourceShare(t *testing.T) {
	ips := func(n int) []net.IP {
		var out []net.IP
		for i := 0; i < n; i++ {
			out = append(out, net.IPv4(127, 0, 1, byte(i+1)).To4())
		}
		return out
	}
	for _, c := range []struct{ sources, workers int }{{60, 51}, {4, 2}, {2, 5}, {3, 7}, {1, 4}} {
		used := map[string]bool{}
		for i := 0; i < c.workers; i++ {
			srcs, lo, hi := sourceShare(ips(c.sources), i, c.workers, 1000, 1099)
			if len(srcs) == 0 || hi < lo {
				t.Fatalf("%d sources, %d workers: worker %d got %v ports %d-%d", c.sources, c.workers, i, srcs, lo, hi)
			}
			for _, s := range srcs {
				for p := lo; p <= hi; p++ {
					key := s + ":" + strconv.Itoa(p)
					if used[key] {
						t.Fatalf("%d sources, %d workers: %s given twice", c.sources, c.workers, key)
					}
					used[key] = true
				}
			}
		}
	}
}
