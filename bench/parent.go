package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The parent process splits the connections over worker processes (each
// under the descriptor limit), watches the server, and merges the workers'
// results into one report.

// fdHeadroom is how many descriptors a worker keeps for itself.
const fdHeadroom = 200

// split divides n connections over processes that can each hold perProc,
// using at least want processes. It returns each process's share.
func split(n, perProc, want int) []int {
	procs := max(want, (n+perProc-1)/perProc, 1)
	shares := make([]int, procs)
	for i := range shares {
		shares[i] = n / procs
		if i < n%procs {
			shares[i]++
		}
	}
	return shares
}

// perProcessLimit is how many connections one bench process may hold.
func perProcessLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 1000
	}
	return max(1, int(rl.Cur)-fdHeadroom)
}

// child is one running worker process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	open   int64
	deliv  int64
	ready  bool
	result *Result
	err    string
	done   chan struct{}
}

func (c *child) say(line string) { _, _ = io.WriteString(c.stdin, line+"\n") }

func (c *child) snapshot() (open, deliv int64, ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.deliv, c.ready || c.result != nil || c.err != ""
}

// startChild runs this executable as a worker with its share of the run.
func startChild(ctx context.Context, wo workerOptions) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(wo)
	cmd := exec.CommandContext(ctx, exe, "worker")
	cmd.Env = append(os.Environ(), "BENCH_WORKER="+string(js))
	if os.Getenv("GOMAXPROCS") == "" && wo.Procs > runtime.NumCPU() {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1") // many workers share the CPUs
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the parent
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start worker %d: %w", wo.Index, err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go c.read(stdout)
	return c, nil
}

func (c *child) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m msg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		c.mu.Lock()
		switch {
		case m.Result != nil:
			c.result = m.Result
		case m.Err != "":
			c.err = m.Err
		case m.Ready:
			c.ready = true
		default:
			c.open, c.deliv = m.Open, m.Delivered
		}
		c.mu.Unlock()
	}
	_ = c.cmd.Wait()
}

// run is one whole measurement, from the parent's side.
type run struct {
	o        options
	children []*child
	start    time.Time
	mu       sync.Mutex
	timeline []Sample
	phase    string
	peakRSS  int64
	peakThr  int
}

func runParent(o options) (*Result, error) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	before, err := sumProcs(o.pids)
	if err != nil {
		return nil, err
	}
	slab0, _ := kernelMemory()
	r := &run{o: o, start: time.Now(), phase: "ramp"}
	defer r.stopChildren()
	if err := r.spawn(ctx); err != nil {
		return nil, err
	}
	stopSampler := r.sample()
	defer stopSampler()
	bar := newProgress(o.n, "connecting")
	if !r.wait(ctx, bar, func(open int64, allReady bool) bool { return allReady }) {
		return nil, r.failure(ctx)
	}
	bar.finish()
	time.Sleep(2 * time.Second) // let the server settle (pools, GC) before reading it
	if o.mode != "idle" && o.hold > 0 {
		r.setPhase("hold")
		progressf("holding %d connections for %v before the %s run", r.open(), o.hold, o.mode)
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	afterRamp, err := sumProcs(o.pids)
	if err != nil {
		return nil, err
	}
	slab1, tcp1 := kernelMemory()
	r.setPhase("run")
	runStart := time.Now()
	for _, c := range r.children {
		c.say("go")
	}
	if o.mode == "idle" {
		progressf("holding %d connections for %v", r.open(), o.hold)
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		for _, c := range r.children {
			c.say("stop")
		}
	}
	bar = newProgress(0, o.mode)
	if !r.wait(ctx, bar, func(int64, bool) bool { return r.allDone() }) {
		return nil, r.failure(ctx)
	}
	runDur := time.Since(runStart)
	end, err := sumProcs(o.pids)
	if err != nil {
		return nil, err
	}
	bar.finish()
	res, err := r.report(before, afterRamp, end, runDur)
	if err == nil {
		res.Server.SlabBeforeKiB, res.Server.SlabAfterKiB, res.Server.TCPBufAfterKiB = slab0, slab1, tcp1
		if res.PeakOpen > 0 {
			res.Server.KernelKiBPerConn = float64(slab1-slab0) / float64(res.PeakOpen)
		}
	}
	return res, err
}

// spawn starts the worker processes with their shares.
func (r *run) spawn(ctx context.Context) error {
	o := r.o
	shares := split(o.n, perProcessLimit(), o.procs)
	for i, n := range shares {
		wo := workerOptions{
			Mode: o.mode, Index: i, URLs: o.urlStrings, N: n,
			Rate: max(1, o.rate/len(shares)), Timeout: o.timeout, Pool: o.pool,
			Size: o.size, Duration: o.duration, Messages: o.messages, PubRate: o.pubRate,
			Channel: o.channel, Drain: o.drain, Publisher: i == 0, Procs: len(shares),
			Deflate: o.deflate,
		}
		lo, hi := localPortRange()
		wo.Sources, wo.PortLo, wo.PortHi = sourceShare(o.sources, i, len(shares), lo, hi)
		c, err := startChild(ctx, wo)
		if err != nil {
			return err
		}
		r.children = append(r.children, c)
	}
	progressf("%d connections over %d bench process(es), %d per process at most", o.n, len(shares), perProcessLimit())
	return nil
}

// wait polls the children until done says so, a child fails, or ctx ends.
func (r *run) wait(ctx context.Context, bar *progress, done func(open int64, allReady bool) bool) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		allReady, failed := true, false
		for _, c := range r.children {
			_, _, ready := c.snapshot()
			allReady = allReady && ready
			select {
			case <-c.done:
				c.mu.Lock()
				failed = failed || (c.result == nil)
				c.mu.Unlock()
			default:
			}
		}
		open := r.open()
		bar.set(open, r.delivered())
		if done(open, allReady) {
			return true
		}
		if failed {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func (r *run) failure(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	var msgs []string
	for i, c := range r.children {
		c.mu.Lock()
		if c.err != "" {
			msgs = append(msgs, fmt.Sprintf("worker %d: %s", i, c.err))
		} else if c.result == nil {
			select {
			case <-c.done:
				msgs = append(msgs, fmt.Sprintf("worker %d exited: %v", i, c.cmd.ProcessState))
			default:
			}
		}
		c.mu.Unlock()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (r *run) allDone() bool {
	for _, c := range r.children {
		c.mu.Lock()
		ok := c.result != nil
		c.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (r *run) open() (n int64) {
	for _, c := range r.children {
		o, _, _ := c.snapshot()
		n += o
	}
	return n
}

func (r *run) delivered() (n int64) {
	for _, c := range r.children {
		_, d, _ := c.snapshot()
		n += d
	}
	return n
}

func (r *run) stopChildren() {
	for _, c := range r.children {
		_ = c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

func (r *run) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

// sample records the timeline every second until the returned func is
// called.
func (r *run) sample() func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		prevT := time.Now()
		prev, _ := sumProcs(r.o.pids)
		r.mu.Lock()
		r.timeline = append(r.timeline, Sample{Phase: r.phase, RSSKiB: prev.RSSKiB})
		r.mu.Unlock()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				s, err := sumProcs(r.o.pids)
				if err != nil {
					continue
				}
				cpu := 100 * (s.CPUSecs - prev.CPUSecs) / now.Sub(prevT).Seconds()
				prev, prevT = s, now
				r.mu.Lock()
				r.timeline = append(r.timeline, Sample{T: now.Sub(r.start).Seconds(), Phase: r.phase,
					Open: int(r.open()), RSSKiB: s.RSSKiB, CPUPct: cpu, Delivered: r.delivered()})
				r.peakRSS = max(r.peakRSS, s.RSSKiB)
				r.peakThr = max(r.peakThr, s.Threads)
				r.mu.Unlock()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// report merges the workers' results and adds the server figures.
func (r *run) report(before, afterRamp, end procSample, runDur time.Duration) (*Result, error) {
	var parts []*Result
	for _, c := range r.children {
		parts = append(parts, c.result)
	}
	res, err := merge(parts)
	if err != nil {
		return nil, err
	}
	res.Label = r.o.label
	res.Date = time.Now().UTC().Format(time.RFC3339)
	res.Command = "bench " + strings.Join(os.Args[1:], " ")
	r.mu.Lock()
	res.Timeline = r.timeline
	res.Server = ServerFigures{Pids: r.o.pids, Before: before, AfterRamp: afterRamp, End: end,
		PeakRSSKiB: r.peakRSS, PeakThreads: r.peakThr,
		RunCPUSecs: end.CPUSecs - afterRamp.CPUSecs, RunSeconds: runDur.Seconds()}
	r.mu.Unlock()
	if res.PeakOpen > 0 {
		res.Server.KiBPerConn = float64(afterRamp.RSSKiB-before.RSSKiB) / float64(res.PeakOpen)
	}
	if r.o.mode == "idle" && runDur > 0 {
		res.Server.IdleCPUPct = 100 * res.Server.RunCPUSecs / runDur.Seconds()
	}
	if res.Echo != nil && res.Echo.Messages > 0 {
		res.Echo.ServerCPUusPerMsg = 1e6 * res.Server.RunCPUSecs / float64(res.Echo.Messages)
	}
	return res, nil
}

// writeOutputs saves the JSON and the charts under dir.
func writeOutputs(res *Result, dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	name := res.Mode
	if res.Label != "" {
		name = res.Label + "-" + res.Mode
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return renderCharts([]*Result{res}, dir, name)
}

// sourceShare gives worker i of n its source addresses and the local ports
// it may bind on them, so that no two workers ever pick the same address
// and port: with at least n addresses each worker gets its own; with fewer,
// workers sharing an address split its port range.
func sourceShare(sources []net.IP, i, n int, lo, hi int) (srcs []string, portLo, portHi int) {
	if len(sources) == 0 {
		return nil, 0, 0
	}
	if len(sources) >= n {
		for j := i; j < len(sources); j += n {
			srcs = append(srcs, sources[j].String())
		}
		return srcs, lo, hi
	}
	// Fewer addresses than workers: worker i shares address i%len with
	// the workers of the same remainder; it is number i/len among them.
	k := (n - i%len(sources) + len(sources) - 1) / len(sources)
	span := (hi - lo + 1) / k
	first := lo + (i/len(sources))*span
	return []string{sources[i%len(sources)].String()}, first, first + span - 1
}

// localPortRange reads net.ipv4.ip_local_port_range: the ports the bench
// binds, as the kernel would choose them.
func localPortRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768, 60999
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768, 60999
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo > hi {
		return 32768, 60999
	}
	return lo, hi
}
