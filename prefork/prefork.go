// Package prefork runs a server as several worker processes of the same
// executable, the way production gateways scale past one process: each
// worker has its own reactor and listens on the same port (SO_REUSEPORT),
// and the kernel spreads connections over them. The supervisor starts the
// workers, restarts any that dies (with backoff), and stops them all on
// Shutdown. It knows processes, not WebSocket.
//
// A worker tells the supervisor it is serving by writing one line to the
// descriptor named in its WSGATE_READY_FD environment variable (see Ready).
package prefork

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Environment variables set for each worker.
const (
	// EnvWorkerID holds the worker's number, 0 to Workers-1.
	EnvWorkerID = "WSGATE_WORKER_ID"
	// EnvReadyFD names the descriptor the worker writes "ready" to.
	EnvReadyFD = "WSGATE_READY_FD"
)

// ErrInvalidConfig wraps the reasons a Config is invalid; Start returns it.
var ErrInvalidConfig = errors.New("prefork: invalid config")

// Config configures a Supervisor.
type Config struct {
	// Workers is how many worker processes to run. Required, at least 1.
	Workers int
	// Path is the executable. Default: this process's own executable.
	Path string
	// Args are the workers' command-line arguments (without the program
	// name).
	Args []string
	// Environ is the workers' environment, before EnvWorkerID, EnvReadyFD
	// and Env. Default (nil): this process's (os.Environ).
	Environ []string
	// Env returns extra environment variables for worker i, on top of
	// Environ, EnvWorkerID and EnvReadyFD. Optional.
	Env func(i int) []string
	// StartTimeout is how long a worker may take to report ready. Default: 15s.
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause before restarting a worker
	// that died; it doubles for each death in a row. Defaults: 100ms, 10s.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is the uptime after which a worker's backoff resets.
	// Default: 30s.
	StableAfter time.Duration
	// OnEvent, if set, is told what happens to the workers (for logging).
	OnEvent func(Event)
}

func (c Config) withDefaults() Config {
	if c.Path == "" {
		if exe, err := os.Executable(); err == nil {
			c.Path = exe
		}
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 15 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.StableAfter == 0 {
		c.StableAfter = 30 * time.Second
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Workers < 1 || c.Workers > 4096:
		return fmt.Errorf("%w: workers %d outside 1..4096", ErrInvalidConfig, c.Workers)
	case c.Path == "":
		return fmt.Errorf("%w: no executable", ErrInvalidConfig)
	case c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff || c.StartTimeout < 0:
		return fmt.Errorf("%w: bad backoff or timeout", ErrInvalidConfig)
	}
	return nil
}

// Event is something that happened to a worker.
type Event struct {
	Worker int
	Pid    int
	Kind   string        // "started", "ready", "exited", "restarting"
	Err    error         // why it exited, for "exited"
	Wait   time.Duration // the backoff, for "restarting"
	// Stopping is set on events during Shutdown, when exits are expected.
	Stopping bool
}

// Supervisor runs the workers.
type Supervisor struct {
	cfg      Config
	mu       sync.Mutex // guards pids, stopping
	pids     []int
	stopping bool
	stop     chan struct{} // closed by Shutdown
	wg       sync.WaitGroup
}

// Start starts every worker and waits until each reports ready. If one
// cannot start (it exits, or does not report ready within StartTimeout),
// Start stops the others and returns an error that says which and why.
func Start(cfg Config) (*Supervisor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, pids: make([]int, cfg.Workers), stop: make(chan struct{})}
	errs := make(chan error, cfg.Workers)
	for i := 0; i < cfg.Workers; i++ {
		s.wg.Add(1)
		go s.keep(i, errs)
	}
	for i := 0; i < cfg.Workers; i++ {
		if err := <-errs; err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
			return nil, err
		}
	}
	return s, nil
}

// Pids returns the current process id of each worker (0 while one is
// being restarted).
func (s *Supervisor) Pids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.pids...)
}

func (s *Supervisor) event(e Event) {
	e.Stopping = s.isStopping()
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

func (s *Supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// keep runs worker i for as long as the supervisor runs: start, wait,
// restart after a backoff. The first start's outcome goes to first.
func (s *Supervisor) keep(i int, first chan<- error) {
	defer s.wg.Done()
	backoff := time.Duration(0)
	for attempt := 0; ; attempt++ {
		started := time.Now()
		err := s.runOnce(i, first, attempt == 0)
		if attempt == 0 && err != nil && errors.Is(err, errNotReady) {
			return // Start reports it and shuts everything down
		}
		if s.isStopping() {
			return
		}
		if time.Since(started) > s.cfg.StableAfter {
			backoff = 0
		}
		backoff = min(max(2*backoff, s.cfg.MinBackoff), s.cfg.MaxBackoff)
		s.event(Event{Worker: i, Kind: "restarting", Wait: backoff})
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
	}
}

var errNotReady = errors.New("did not become ready")

// runOnce starts worker i and waits for it to exit. On the first attempt
// it reports readiness (or the failure) to first.
func (s *Supervisor) runOnce(i int, first chan<- error, initial bool) error {
	cmd, ready, err := s.spawn(i)
	report := func(err error) {
		if initial {
			first <- err
		}
	}
	if err != nil {
		report(fmt.Errorf("prefork: worker %d failed to start: %w: %w", i, err, errNotReady))
		return errNotReady
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-ready:
		s.event(Event{Worker: i, Pid: cmd.Process.Pid, Kind: "ready"})
		report(nil)
	case err := <-exited:
		s.setPid(i, 0)
		s.event(Event{Worker: i, Pid: cmd.Process.Pid, Kind: "exited", Err: exitErr(err)})
		report(fmt.Errorf("prefork: worker %d exited before it was ready (%v): %w", i, exitErr(err), errNotReady))
		return errNotReady
	case <-time.After(s.cfg.StartTimeout):
		_ = cmd.Process.Kill()
		<-exited
		s.setPid(i, 0)
		report(fmt.Errorf("prefork: worker %d not ready within %v: %w", i, s.cfg.StartTimeout, errNotReady))
		return errNotReady
	}
	err = <-exited
	s.setPid(i, 0)
	s.event(Event{Worker: i, Pid: cmd.Process.Pid, Kind: "exited", Err: exitErr(err)})
	return err
}

func exitErr(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func (s *Supervisor) setPid(i, pid int) {
	s.mu.Lock()
	s.pids[i] = pid
	s.mu.Unlock()
}

// spawn starts worker i with a pipe for its ready line.
func (s *Supervisor) spawn(i int) (*exec.Cmd, <-chan struct{}, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(s.cfg.Path, s.cfg.Args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w} // descriptor 3 in the worker
	base := s.cfg.Environ
	if base == nil {
		base = os.Environ()
	}
	cmd.Env = append(slices.Clip(base), EnvWorkerID+"="+strconv.Itoa(i), EnvReadyFD+"=3")
	if s.cfg.Env != nil {
		cmd.Env = append(cmd.Env, s.cfg.Env(i)...)
	}
	// A worker must not outlive the supervisor.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		r.Close()
		w.Close()
		return nil, nil, errors.New("shutting down")
	}
	err = cmd.Start()
	if err == nil {
		s.pids[i] = cmd.Process.Pid
	}
	s.mu.Unlock()
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	s.event(Event{Worker: i, Pid: cmd.Process.Pid, Kind: "started"})
	ready := make(chan struct{})
	go func() {
		defer r.Close()
		buf := make([]byte, 16)
		if n, _ := r.Read(buf); n > 0 {
			close(ready)
		}
	}()
	return cmd, ready, nil
}

// Shutdown sends SIGTERM to every worker and waits for them to exit; when
// ctx ends first, the rest get SIGKILL. Workers are not restarted after
// Shutdown began.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.stop)
	}
	pids := append([]int(nil), s.pids...)
	s.mu.Unlock()
	for _, pid := range pids {
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		killed := 0
		for _, pid := range s.Pids() {
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed++
			}
		}
		<-done
		return fmt.Errorf("prefork: %d workers did not stop in time and were killed", killed)
	}
}

// Ready tells the supervisor, if there is one, that this worker serves. A
// process not started by a Supervisor does nothing.
func Ready() error { return ReadyFD(os.Getenv(EnvReadyFD)) }

// ReadyFD is Ready for a worker whose EnvReadyFD value is fd, read from an
// environment other than the process's own (an embedder's): it writes the
// ready line to descriptor fd, or does nothing if fd is not a number.
func ReadyFD(fd string) error {
	n, err := strconv.Atoi(fd)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(n), "ready")
	defer f.Close()
	_, err = f.WriteString("ready\n")
	return err
}

// WorkerID returns this process's worker number and true if a Supervisor
// started it.
func WorkerID() (int, bool) {
	id, err := strconv.Atoi(os.Getenv(EnvWorkerID))
	return id, err == nil
}
