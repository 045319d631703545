package prefork

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the worker: with PREFORK_TEST_ROLE set it
// behaves as the role says instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("PREFORK_TEST_ROLE") {
	case "":
		goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
	case "serve": // ready, then serve until SIGTERM
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		if err := Ready(); err != nil {
			os.Exit(5)
		}
		<-sig
		os.Exit(0)
	case "fail": // a bad configuration: exit before ready
		os.Exit(3)
	case "stubborn": // ready, and ignore SIGTERM
		signal.Ignore(syscall.SIGTERM)
		_ = Ready()
		time.Sleep(time.Minute)
	}
}

type events struct {
	mu sync.Mutex
	ev []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) count(kind string, worker int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if ev.Kind == kind && ev.Worker == worker {
			n++
		}
	}
	return n
}

func config(role string, workers int, ev *events) Config {
	return Config{
		Workers:      workers,
		Args:         []string{"-test.run=^$"},
		Env:          func(int) []string { return []string{"PREFORK_TEST_ROLE=" + role} },
		StartTimeout: 5 * time.Second,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   50 * time.Millisecond,
		OnEvent:      ev.add,
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shutdown(t *testing.T, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestStartAndShutdown(t *testing.T) {
	ev := &events{}
	s, err := Start(config("serve", 3, ev))
	if err != nil {
		t.Fatal(err)
	}
	pids := s.Pids()
	if len(pids) != 3 || pids[0] == pids[1] || pids[1] == pids[2] || pids[0] == 0 {
		t.Fatalf("got pids %v, want 3 distinct", pids)
	}
	shutdown(t, s)
	for i := 0; i < 3; i++ {
		if ev.count("exited", i) != 1 || ev.count("restarting", i) != 0 {
			t.Errorf("worker %d: want one exit and no restart after Shutdown", i)
		}
	}
}

func TestWorkerThatCannotStart(t *testing.T) {
	_, err := Start(config("fail", 2, &events{}))
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start = %v, want an error naming the worker and its exit status 3", err)
	}
}

func TestKilledWorkerIsRestarted(t *testing.T) {
	ev := &events{}
	s, err := Start(config("serve", 2, ev))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, s)
	before := s.Pids()
	if err := syscall.Kill(before[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "worker 1 restarted and ready", func() bool {
		p := s.Pids()
		return p[1] != 0 && p[1] != before[1] && ev.count("ready", 1) == 2
	})
	if after := s.Pids(); after[0] != before[0] {
		t.Errorf("worker 0 changed from pid %d to %d; only the killed worker may restart", before[0], after[0])
	}
	if ev.count("restarting", 1) != 1 {
		t.Errorf("want one restart of worker 1")
	}
}

func TestShutdownKillsStubbornWorkers(t *testing.T) {
	s, err := Start(config("stubborn", 1, &events{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Shutdown = %v, want a report of a killed worker", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Workers: 0}, {Workers: 5000}, {Workers: 1, MinBackoff: time.Second, MaxBackoff: time.Millisecond}} {
		if err := c.withDefaults().validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", c)
		}
	}
}
