// Package gateway assembles the wsgate product: flags, environment and
// config file, the checks before start, the WebSocket server with its
// routes and demo page, the admin API, NATS, TLS, and the supervisor of
// -workers. Command wsgate (the module's root) is a thin main over it.
package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/prefork"
	"github.com/wsgate/wsgate/wsconn"
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

// Main is the wsgate command: it reads os.Args and the environment, serves,
// and exits.
func Main() {
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

// spreadSlack is the headroom each worker gets over an even share of the
// connections: the kernel spreads SO_REUSEPORT connections by a hash, not
// evenly.
const spreadSlack = 1.10

func notifySignals() <-chan os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	return sig
}
