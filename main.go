// Command wsgate is a WebSocket gateway for push and instant messaging:
// echo at /echo, publish/subscribe channels at /ws, one epoll reactor and a
// bounded worker pool for every connection.
//
// With -workers N it runs as a supervisor of N worker processes sharing the
// port (SO_REUSEPORT), joined by NATS: an embedded NATS server unless -nats
// names an external cluster. A single process with -nats joins other nodes.
//
// With -jwt-secret, -jwt-secret-file or -jwt-public-key it admits only
// connections that present a valid JSON Web Token, and /ws checks the
// token's channel permissions (package auth).
//
// An admin listener (package admin, -admin, 127.0.0.1:8081 by default)
// serves POST /api/publish (with -api-key), /api/channels, /api/stats,
// /healthz, /readyz, Prometheus /metrics, and with -pprof net/http/pprof.
// Under a supervisor, worker i serves it on the -admin port + 1 + i, and
// the supervisor serves none.
//
// Every flag has an environment variable and a key in the YAML file named
// by -config: -max-conns is WSGATE_MAX_CONNS and max-conns. The command
// line wins over the environment, the environment over the file, the file
// over the default; -print-config shows the result.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"wsgate/admin"
	"wsgate/auth"
	"wsgate/broker"
	"wsgate/handler"
	"wsgate/prefork"
	"wsgate/wsconn"
)

// options is everything the flags set.
type options struct {
	ws              wsconn.Config
	channels        handler.ChannelsConfig
	tlsCert, tlsKey string                                   // wss with both
	jwt             *auth.Config                             // nil: no authentication
	refresh         func(c handler.Conn, token string) error // the /ws refresh op, with jwt
	origins         string
	workers         int // 0: auto
	nats            []string
	admin           string // admin listener address; "": none
	apiKey          string // bearer key of /api/publish; "": publishing disabled
	pprof           bool
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	configFile      string            // -config or WSGATE_CONFIG; "": none
	sources         map[string]source // where each flag's value came from
	printConfig     bool              // -print-config: print effective and exit
	effective       string            // with printConfig: the settings, as a config file
}

// envWorkerMaxConns carries a worker's share of -max-conns from the
// supervisor.
const envWorkerMaxConns = "WSGATE_WORKER_MAX_CONNS"

func main() {
	opts, err := parseFlags(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err == nil {
		err = checkConfig(opts)
	}
	if err != nil {
		fail(err)
	}
	if opts.printConfig {
		fmt.Print(opts.effective)
		os.Exit(0)
	}
	log, err := newLogger(os.Stderr, opts.logLevel, opts.logFormat)
	if err != nil {
		fail(err)
	}
	id, isWorker := prefork.WorkerID()
	if isWorker {
		log = log.With("worker", id)
	}
	if opts.jwt != nil {
		v, err := auth.New(*opts.jwt)
		if err != nil {
			fail(err)
		}
		opts.ws.Authorize, opts.refresh = v.Authorize, v.RefreshHook
		log.Info("JWT authentication on", "algorithms", v.Algorithms(), "issuer", opts.jwt.Issuer, "audience", opts.jwt.Audience)
	}
	if opts.workers != 1 && !isWorker {
		err = runSupervisor(opts, log)
	} else {
		err = runServer(opts, log, id, isWorker)
	}
	var workerErr *workerConfigError
	if errors.As(err, &workerErr) {
		fail(err)
	}
	if err != nil {
		log.Error("wsgate stopped", "err", err)
		os.Exit(1)
	}
}

// fail reports a configuration error in one line and exits with status 2.
func fail(err error) {
	fmt.Fprintf(os.Stderr, "wsgate: %v\n", err)
	os.Exit(2)
}

// checkConfig makes, before anything starts, the checks of the settings
// that parseFlags cannot make and that the server or the supervisor would
// otherwise make only while starting: what handler, auth and wsconn
// refuse, the NATS URLs, the TLS certificate and key, and under -workers
// the worker arithmetic. It reads the files the settings name (TLS, JWT
// keys) and opens no socket. Run as a worker, it checks the worker's
// settings, the supervisor's share of -max-conns included.
func checkConfig(opts options) error {
	if _, err := handler.NewChannels(opts.channels); err != nil {
		return err
	}
	if opts.jwt != nil {
		if _, err := auth.New(*opts.jwt); err != nil {
			return err
		}
	}
	if opts.tlsCert != "" {
		if _, err := newCertReloader(opts.tlsCert, opts.tlsKey); err != nil {
			return err
		}
	}
	for _, u := range opts.nats {
		if !isNATSURL(u) {
			return fmt.Errorf("invalid -nats URL %q%s: want nats://host:port or tls://host:port", u, opts.where("nats"))
		}
	}
	id, isWorker := prefork.WorkerID()
	cfg := baseConfig(opts, id, isWorker)
	if opts.workers != 1 && !isWorker {
		plan, err := planWorkers(opts)
		if err != nil {
			return err
		}
		cfg.MaxConns = plan.maxConns // each worker's config, as the worker will check it
	}
	cfg.Routes = map[string]handler.Handler{"/echo": handler.Echo{}} // any: Validate wants one
	return cfg.Validate()
}

// isNATSURL reports whether u is a URL the NATS client connects to:
// nats:// or tls://, then host:port (user:password@ allowed).
func isNATSURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "nats" && p.Scheme != "tls" || p.Hostname() == "" {
		return false
	}
	port, err := strconv.Atoi(p.Port())
	return err == nil && port > 0 && port <= 65535
}

// baseConfig is the wsconn.Config this process serves with, before
// runServer adds routes, pages, hooks and TLS: opts.ws, and in worker id
// the shared port and the share of -max-conns the supervisor passed.
func baseConfig(opts options, id int, isWorker bool) wsconn.Config {
	cfg := opts.ws
	if isWorker {
		cfg.ReusePort = true
		cfg.ResponseHeader = http.Header{"X-Wsgate-Worker": {strconv.Itoa(id)}}
		if n, err := strconv.Atoi(os.Getenv(envWorkerMaxConns)); err == nil {
			cfg.MaxConns = n
		}
	}
	return cfg
}

// runServer serves in this process (alone, or as one worker) until
// SIGTERM or SIGINT.
func runServer(opts options, log *slog.Logger, id int, isWorker bool) error {
	sig := notifySignals() // before Start: a SIGTERM right after must shut down cleanly
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // SIGHUP's default action ends the process, TLS or not
	channels, err := handler.NewChannels(opts.channels)
	if err != nil {
		fail(err)
	}
	channels.SetRefresh(opts.refresh)
	cfg := baseConfig(opts, id, isWorker)
	cfg.Routes = map[string]handler.Handler{"/ws": channels, "/echo": handler.Echo{}}
	cfg.Pages = demoPages() // the chat demo at GET /
	cfg.Logger = log
	lat := admin.NewLatency() // two clock reads per handshake and per publish, none per message
	cfg.ObserveHandshake = lat.ObserveHandshake
	channels.SetFanoutObserver(lat.ObserveFanout)
	var certs *certReloader
	if opts.tlsCert != "" {
		if certs, err = newCertReloader(opts.tlsCert, opts.tlsKey); err != nil {
			fail(err)
		}
		cfg.TLS = certs.config()
	}
	go reloadOnHangup(hup, certs, log)
	srv, err := wsconn.New(cfg)
	if err != nil {
		fail(err)
	}
	var brk admin.Broker // nil without NATS: /readyz does not wait for one
	if len(opts.nats) > 0 {
		b, err := broker.NewNATS(broker.Config{URLs: opts.nats, OnStateChange: brokerLogger(log)}, channels.DeliverRemote)
		if err != nil {
			fail(err)
		}
		defer b.Close()
		channels.SetBroker(b)
		brk = b
	}
	adm, err := startAdmin(opts, log, isWorker, admin.Config{WS: srv, Channels: channels, Broker: brk, Latency: lat})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("wsgate listening", "addr", srv.Addr().String(), "tls", certs != nil, "routes", "/ws /echo",
		"max_conns", srv.Config().MaxConns, "pool", srv.Poller().Stats().Workers, "nats", opts.nats)
	if err := prefork.Ready(); err != nil {
		return fmt.Errorf("failed to report ready to the supervisor: %w", err)
	}
	s := <-sig
	log.Info("shutting down", "signal", s.String(), "conns", srv.Conns(), "timeout", opts.shutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if adm != nil {
		adm.Drain() // /readyz: 503 while connections drain; the rest serves until the end
		defer adm.Shutdown(ctx)
	}
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	log.Info("shutdown complete", "closed", srv.Stats().Closed)
	return nil
}

// envWorkerAdmin carries a worker's admin address ("off": none) from the
// supervisor; it wins over -admin, which the workers inherit.
const envWorkerAdmin = "WSGATE_WORKER_ADMIN"

// startAdmin starts the admin listener on -admin (for a worker, on the
// address the supervisor chose) over what cfg names, or returns nil if
// there is none.
func startAdmin(opts options, log *slog.Logger, isWorker bool, cfg admin.Config) (*admin.Server, error) {
	cfg.Addr, cfg.APIKey, cfg.Pprof, cfg.Logger = opts.admin, opts.apiKey, opts.pprof, log
	cfg.WarnInterval = opts.ws.WarnInterval // -log-warn-interval, as for the WebSocket side
	if v, ok := os.LookupEnv(envWorkerAdmin); ok && isWorker {
		cfg.Addr = v
	}
	if cfg.Addr == "" || cfg.Addr == "off" {
		return nil, nil
	}
	adm, err := admin.New(cfg)
	if err != nil {
		fail(err)
	}
	if err := adm.Start(); err != nil {
		return nil, err
	}
	log.Info("admin listening", "addr", adm.Addr().String(), "publish", cfg.APIKey != "", "pprof", cfg.Pprof)
	return adm, nil
}

// workerAdminAddrs returns the admin address of each of n workers: worker
// i on addr's port + 1 + i, so that none takes the address a single
// process would use; every worker on a free port if addr's port is 0;
// "off" for all if addr is "".
func workerAdminAddrs(addr string, n int) ([]string, error) {
	addrs := make([]string, n)
	if addr == "" {
		for i := range addrs {
			addrs[i] = "off"
		}
		return addrs, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("invalid -admin %q: %w", addr, err)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return nil, fmt.Errorf("invalid -admin %q: %w", addr, err)
	}
	if port > 0 && port+n > 65535 {
		return nil, fmt.Errorf("-admin port %d: %d workers need ports up to %d, past 65535", port, n, port+n)
	}
	for i := range addrs {
		if port > 0 {
			p = strconv.Itoa(port + 1 + i)
		}
		addrs[i] = net.JoinHostPort(host, p)
	}
	return addrs, nil
}

// reloadOnHangup reloads the certificate on every SIGHUP from hup, for
// the life of the process; without one (certs nil) it only logs.
func reloadOnHangup(hup <-chan os.Signal, certs *certReloader, log *slog.Logger) {
	for range hup {
		if certs == nil {
			log.Info("SIGHUP: nothing to reload (no -tls-cert)")
			continue
		}
		if err := certs.reload(); err != nil {
			log.Error("certificate reload failed; keeping the old one", "err", err)
			continue
		}
		log.Info("certificate reloaded", "cert", certs.certFile)
	}
}

// brokerLogger logs each change of the NATS connection once.
func brokerLogger(log *slog.Logger) func(bool, error) {
	return func(up bool, err error) {
		if up {
			log.Info("NATS connected: cross-process delivery on")
		} else {
			log.Warn("NATS unreachable: delivering locally only, cross-process publishes are counted as failed", "err", err)
		}
	}
}

// runSupervisor runs the workers and, without -nats, the embedded NATS
// server that joins them.
func runSupervisor(opts options, log *slog.Logger) error {
	plan, err := planWorkers(opts) // checkConfig ran it: no error
	if err != nil {
		return err
	}
	n, admins := plan.workers, plan.admins
	nats := opts.nats
	if len(nats) == 0 {
		emb, err := broker.StartEmbedded("127.0.0.1", 0)
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		nats = []string{emb.URL()}
		log.Info("embedded NATS started", "url", emb.URL())
	}
	env := []string{"WSGATE_NATS=" + strings.Join(nats, ",")}
	if os.Getenv("GOMAXPROCS") == "" {
		// Workers share the CPUs: more Ps than a worker's share only adds
		// scheduler spinning across dozens of processes.
		env = append(env, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/n)))
	}
	if plan.maxConns > 0 {
		env = append(env, envWorkerMaxConns+"="+strconv.Itoa(plan.maxConns))
	}
	sig := notifySignals()
	sup, err := startWorkers(prefork.Config{
		Workers: n,
		Args:    os.Args[1:],
		Env:     func(i int) []string { return append(slices.Clip(env), envWorkerAdmin+"="+admins[i]) },
		OnEvent: func(e prefork.Event) { logWorkerEvent(log, e) },
	})
	if err != nil {
		return err
	}
	log.Info("supervisor running", "workers", n, "pids", sup.Pids(), "nats", nats)
	if opts.admin != "" {
		log.Info("admin listeners on the workers, none on the supervisor", "worker_0", admins[0], "last", admins[n-1])
	}
	go forwardHangup(sup)
	s := <-sig
	log.Info("stopping workers", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout+5*time.Second)
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
			return workerPlan{}, fmt.Errorf("-workers auto: -max-conns %d needs %d workers of %d connections, more than %d",
				total, n, per, maxWorkers)
		}
	} else if total > n*per {
		return workerPlan{}, fmt.Errorf("-max-conns %d: %d workers hold at most %d (%d each: the descriptor limit - %d); "+
			"raise -workers, or use auto", total, n, n*per, per, wsconn.DescriptorHeadroom)
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

// forwardHangup passes SIGHUP (certificate reload) on to every worker.
func forwardHangup(sup *prefork.Supervisor) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for range hup {
		for _, pid := range sup.Pids() {
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGHUP)
			}
		}
	}
}

// spreadSlack is the headroom each worker gets over an even share of the
// connections: the kernel spreads SO_REUSEPORT connections by a hash, not
// evenly.
const spreadSlack = 1.10

// autoWorkers is enough workers for maxConns connections under the
// descriptor limit, with spreadSlack, or one per CPU without a target.
func autoWorkers(maxConns int) int {
	per := wsconn.DefaultMaxConns()
	if maxConns <= 0 {
		return max(1, runtime.NumCPU())
	}
	return int(math.Ceil(float64(maxConns) * spreadSlack / float64(per)))
}

// workerShare is one worker's connection cap: an even share of the total
// plus spreadSlack, within the descriptor limit.
func workerShare(total, workers int) int {
	return min(wsconn.DefaultMaxConns(), int(math.Ceil(float64(total)/float64(workers)*spreadSlack)))
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

func notifySignals() <-chan os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	return sig
}
