package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/prefork"
	"github.com/wsgate/wsgate/wsconn"
)

// The supervisor side of -workers: how many workers, starting them
// (package prefork) under the contract of worker.go, passing SIGHUP on,
// and logging what happens to them.

// runSupervisor runs the workers and, without -nats, the embedded NATS
// server that joins them, until ctx is done.
func runSupervisor(ctx context.Context, opts options, log *slog.Logger, onReady func(ws, admin net.Addr)) error {
	plan, err := planWorkers(opts) // checkConfig ran it: no error
	if err != nil {
		return err
	}
	n, admins := plan.workers, plan.admins
	nats := opts.nats
	if len(nats) == 0 {
		dir := "" // memory storage: a temporary directory
		if opts.historyStore == "file" {
			dir = opts.historyDir
		}
		emb, err := broker.StartEmbeddedConfig(broker.EmbeddedConfig{Host: "127.0.0.1", StoreDir: dir})
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		nats = []string{emb.URL()}
		log.Info("embedded NATS started", "url", emb.URL())
	}
	sup, err := startWorkers(prefork.Config{
		Workers: n,
		Args:    opts.args,
		Environ: append([]string{}, opts.env...), // Load's, even if empty
		Env:     workerEnv(opts.env, plan, nats),
		OnEvent: func(e prefork.Event) { logWorkerEvent(log, e) },
	})
	if err != nil {
		return err
	}
	log.Info("supervisor running", "workers", n, "pids", sup.Pids(), "nats", nats)
	if opts.admin != "" {
		log.Info("admin listeners on the workers, none on the supervisor", "worker_0", admins[0], "last", admins[n-1])
	}
	if onReady != nil {
		onReady(nil, nil)
	}
	stopHangup, hangupDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(hangupDone); forwardHangup(sup, stopHangup) }()
	defer func() { close(stopHangup); <-hangupDone }()
	<-ctx.Done()
	log.Info("stopping workers", "signal", stopReason(ctx))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.shutdownTimeout+5*time.Second)
	defer cancel()
	return sup.Shutdown(ctx)
}

// A workerPlan is the supervisor's arithmetic.
type workerPlan struct {
	workers  int      // -workers, or what auto comes to
	admins   []string // each worker's admin address (workerAdminAddrs)
	maxConns int      // each worker's share of -max-conns; 0: its default
}

// planWorkers works out the workers of opts, or why they cannot hold
// -max-conns.
func planWorkers(opts options) (workerPlan, error) {
	n, total, per := opts.workers, opts.ws.MaxConns, wsconn.DefaultMaxConns()
	if n == 0 {
		n = autoWorkers(total)
		if n > maxWorkers {
			return workerPlan{}, fmt.Errorf("-workers auto%s: -max-conns %d%s needs %d workers of %d connections, more than %d",
				opts.origin("workers"), total, opts.origin("max-conns"), n, per, maxWorkers)
		}
	} else if total > n*per {
		return workerPlan{}, fmt.Errorf("-max-conns %d%s: %d workers hold at most %d (%d each: the descriptor limit - %d); "+
			"raise -workers, or use auto", total, opts.origin("max-conns"), n, n*per, per, wsconn.DescriptorHeadroom)
	}
	admins, err := workerAdminAddrs(opts.admin, n)
	if err != nil {
		return workerPlan{}, err
	}
	p := workerPlan{workers: n, admins: admins}
	if total > 0 {
		p.maxConns = workerShare(total, n)
	}
	return p, nil
}

// A workerConfigError is a worker that exited with status 2, a
// configuration error, before it was ever ready: restarting it would fail
// the same way. Its own message is on stderr, before.
type workerConfigError struct{ worker int }

func (e *workerConfigError) Error() string {
	return fmt.Sprintf("worker %d exited with status 2 (a configuration error) before it was ready", e.worker)
}

// startWorkers is prefork.Start, but when a worker exited with status 2
// before it was ready, the error is a *workerConfigError naming it.
// (prefork's error names the status only in its text; cfg.OnEvent sees it.)
func startWorkers(cfg prefork.Config) (*prefork.Supervisor, error) {
	var mu sync.Mutex // guards ready, bad: OnEvent runs on each worker's goroutine
	ready, bad := map[int]bool{}, -1
	onEvent := cfg.OnEvent
	cfg.OnEvent = func(e prefork.Event) {
		var exit *exec.ExitError
		mu.Lock()
		switch {
		case e.Kind == "ready":
			ready[e.Worker] = true
		case e.Kind == "exited" && !ready[e.Worker] && bad < 0 && errors.As(e.Err, &exit) && exit.ExitCode() == 2:
			bad = e.Worker
		}
		mu.Unlock()
		if onEvent != nil {
			onEvent(e)
		}
	}
	sup, err := prefork.Start(cfg)
	mu.Lock()
	defer mu.Unlock()
	if err != nil && bad >= 0 {
		return nil, &workerConfigError{bad}
	}
	return sup, err
}

// forwardHangup passes SIGHUP (certificate reload) on to every worker
// until stop is closed.
func forwardHangup(sup *prefork.Supervisor, stop <-chan struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-stop:
			return
		case <-hup:
		}
		for _, pid := range sup.Pids() {
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGHUP)
			}
		}
	}
}

func logWorkerEvent(log *slog.Logger, e prefork.Event) {
	switch {
	case e.Kind == "exited" && e.Stopping:
		log.Info("worker stopped", "worker", e.Worker, "pid", e.Pid, "status", e.Err)
	case e.Kind == "exited":
		log.Warn("worker exited", "worker", e.Worker, "pid", e.Pid, "err", e.Err)
	case e.Kind == "restarting":
		log.Warn("restarting worker", "worker", e.Worker, "after", e.Wait)
	default:
		log.Debug("worker "+e.Kind, "worker", e.Worker, "pid", e.Pid)
	}
}
