package gateway

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// options is everything the flags set.
type options struct {
	ws              wsconn.Config
	channels        handler.ChannelsConfig
	history         historyFlags                            // -history-*: every channel's options
	prefixRules     []prefixRule                            // the config file's channels: section
	historyStore    string                                  // -history-store: memory or file
	historyDir      string                                  // -history-dir: the embedded NATS's JetStream directory
	tlsCert, tlsKey string                                  // wss with both
	jwt             *auth.Config                            // nil: no authentication
	refresh         func(c wsconn.Conn, token string) error // the /ws refresh op, with jwt
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
	fileLines       map[string]int    // the config file's line of each setting it has
	printConfig     bool              // -print-config: print effective and exit
	effective       string            // with printConfig: the settings, as a config file
	role            workerRole        // what a supervisor told this process (Load's env)
	args, env       []string          // what Load read: a supervisor's workers get them
}

// ErrInvalidConfig is wrapped by every error that is a configuration problem:
// a bad flag, environment variable or config file, a check before start
// that failed (Load), or a setting refused while starting (Run). The
// error's text is the problem alone, one line; wsgate prints it after
// "wsgate: " and exits 2.
var ErrInvalidConfig = errors.New("gateway: invalid configuration")

// ErrHelp is what Load returns for -h or -help, after it printed the
// usage to standard error; wsgate exits 0.
var ErrHelp = flag.ErrHelp

// configError is a configuration problem: its text is err's, and it is
// ErrInvalidConfig as well as err.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ErrInvalidConfig} }

// badConfig wraps err, if not nil, as a configuration problem.
func badConfig(err error) error {
	if err == nil || errors.Is(err, ErrInvalidConfig) {
		return err
	}
	return configError{err}
}

// Config is a whole wsgate's settings, as Load read and checked them. Get
// one from Load: the zero value is not usable.
type Config struct {
	opts options

	// Stdout receives -print-config's output. Default (nil): os.Stdout.
	Stdout io.Writer
	// Stderr receives the log. Default (nil): os.Stderr.
	Stderr io.Writer
	// OnReady, if set, is called once Run serves: in a single server or a
	// worker with the addresses its WebSocket and admin listeners took
	// (admin nil without one: -admin off), which tells the ports of
	// -addr 127.0.0.1:0; in a supervisor once every worker is ready, with
	// nil addresses (the workers listen).
	OnReady func(ws, admin net.Addr)
}

// PrintOnly reports whether the configuration is -print-config's: Run
// then writes the effective settings to Stdout and returns nil, starting
// nothing.
func (c Config) PrintOnly() bool { return c.opts.printConfig }

// Load reads the settings from args (the command line without the program
// name), the WSGATE_* variables of env ("KEY=value" entries, as from
// os.Environ) and the -config file (or WSGATE_CONFIG), each from the
// highest source that has it, and makes every check that can be made
// before anything starts: what the server, the admin listener and the
// supervisor would refuse, the TLS and JWT files they name, the worker
// arithmetic. It opens no socket.
//
// A configuration problem is one line wrapping ErrInvalidConfig; -h or -help
// print the usage to standard error and return ErrHelp.
func Load(args, env []string) (Config, error) {
	lookup := lookupIn(env)
	opts, err := parseFlags(args, lookup)
	if errors.Is(err, flag.ErrHelp) {
		return Config{}, ErrHelp
	}
	opts.role, opts.args, opts.env = workerFromEnv(lookup), slices.Clone(args), slices.Clone(env)
	if err == nil {
		err = checkConfig(opts)
	}
	if err != nil {
		return Config{}, badConfig(err)
	}
	return Config{opts: opts}, nil
}

// lookupIn is os.LookupEnv over env, "KEY=value" entries; the last entry
// of a key wins, as in exec.
func lookupIn(env []string) func(string) (string, bool) {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// Run serves cfg until ctx is done, then drains and returns nil: a single
// server, a worker of a supervisor, or with -workers the supervisor of
// worker processes. The "shutting down" log line names ctx's cause: the
// signal's name when signal.NotifyContext ended it. A setting refused
// while starting is an error wrapping ErrInvalidConfig; any other error that
// stops Run is logged ("wsgate stopped") and returned.
func Run(ctx context.Context, cfg Config) error {
	opts := cfg.opts
	if opts.printConfig {
		_, err := fmt.Fprint(cmp.Or[io.Writer](cfg.Stdout, os.Stdout), opts.effective)
		return err
	}
	log, err := newLogger(cmp.Or[io.Writer](cfg.Stderr, os.Stderr), opts.logLevel, opts.logFormat)
	if err != nil {
		return badConfig(err)
	}
	if opts.role.isWorker {
		log = log.With("worker", opts.role.id)
	}
	if opts.jwt != nil {
		v, err := auth.New(*opts.jwt)
		if err != nil {
			return badConfig(err)
		}
		opts.ws.Authorize, opts.refresh = v.Authorize, v.RefreshHook
		opts.ws.CloseRefused = refusalInBand
		log.Info("JWT authentication on", "algorithms", v.Algorithms(), "issuer", opts.jwt.Issuer, "audience", opts.jwt.Audience)
	}
	if opts.workers != 1 && !opts.role.isWorker {
		err = runSupervisor(ctx, opts, log, cfg.OnReady)
	} else {
		err = runServer(ctx, opts, log, cfg.OnReady)
	}
	var workerErr *workerConfigError
	if errors.As(err, &workerErr) {
		return badConfig(err)
	}
	if err != nil && !errors.Is(err, ErrInvalidConfig) {
		log.Error("wsgate stopped", "err", err)
	}
	return err
}

// stopReason names what ended ctx, for the log: the signal's name
// ("terminated") when signal.NotifyContext ended it, else the cause.
func stopReason(ctx context.Context) string {
	return strings.TrimSuffix(context.Cause(ctx).Error(), " signal received")
}

// baseConfig is the wsconn.Config this process serves with, before
// runServer adds routes, pages, hooks and TLS: opts.ws, and in a worker
// what the supervisor passed (workerRole.serverConfig).
func baseConfig(opts options) wsconn.Config {
	cfg := opts.ws
	opts.role.serverConfig(&cfg)
	return cfg
}

// runServer serves in this process (alone, or as one worker) until ctx is
// done.
func runServer(ctx context.Context, opts options, log *slog.Logger, onReady func(ws, admin net.Addr)) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // SIGHUP's default action ends the process, TLS or not
	defer signal.Stop(hup)
	channels, err := handler.NewChannels(opts.channels)
	if err != nil {
		return badConfig(err)
	}
	channels.SetRefresh(opts.refresh)
	cfg := baseConfig(opts)
	cfg.Routes = map[string]wsconn.Handler{"/ws": channels, "/echo": handler.Echo{}}
	cfg.Pages = demoPages() // the chat demo at GET /
	cfg.Logger = log
	lat := admin.NewLatency() // two clock reads per handshake and per publish, none per message
	cfg.ObserveHandshake = lat.ObserveHandshake
	channels.SetFanoutObserver(lat.ObserveFanout)
	var certs *certReloader
	if opts.tlsCert != "" {
		if certs, err = newCertReloader(opts.tlsCert, opts.tlsKey); err != nil {
			return badConfig(err)
		}
		cfg.TLS = certs.config()
	}
	stopReload, reloadDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(reloadDone); reloadOnHangup(hup, stopReload, certs, log) }()
	defer func() { close(stopReload); <-reloadDone }()
	srv, err := wsconn.New(cfg)
	if err != nil {
		return badConfig(err)
	}
	var brk admin.Broker // nil without NATS: /readyz does not wait for one
	natsURLs := opts.nats
	if len(natsURLs) == 0 && opts.historyStore == "file" {
		// One process with file storage: JetStream in an embedded NATS
		// of its own keeps the histories across restarts.
		emb, err := broker.StartEmbeddedConfig(broker.EmbeddedConfig{Host: "127.0.0.1", StoreDir: opts.historyDir})
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		natsURLs = []string{emb.URL()}
		log.Info("embedded NATS started for the history store", "dir", opts.historyDir)
	}
	if len(natsURLs) > 0 {
		b, err := broker.NewNATS(brokerConfig(opts, natsURLs, channels, log), channels.DeliverRemote)
		if err != nil {
			return badConfig(err)
		}
		defer b.Close()
		channels.SetBroker(b)
		brk = b
	}
	adm, err := startAdmin(opts, log, admin.Config{WS: srv, Channels: channels, Broker: brk, Latency: lat})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		if adm != nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.shutdownTimeout)
			defer cancel()
			_ = adm.Shutdown(ctx)
		}
		return err
	}
	log.Info("wsgate listening", "addr", srv.Addr().String(), "tls", certs != nil, "routes", "/ws /echo",
		"max_conns", srv.Config().MaxConns, "pool", srv.Poller().Stats().Workers, "nats", opts.nats)
	notReady := opts.role.ready()
	if notReady != nil { // nobody would stop a worker the supervisor does not count
		notReady = fmt.Errorf("failed to report ready to the supervisor: %w", notReady)
	} else {
		if onReady != nil {
			var admAddr net.Addr
			if adm != nil {
				admAddr = adm.Addr()
			}
			onReady(srv.Addr(), admAddr)
		}
		<-ctx.Done()
		log.Info("shutting down", "signal", stopReason(ctx), "conns", srv.Conns(), "timeout", opts.shutdownTimeout)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.shutdownTimeout)
	defer cancel()
	if adm != nil {
		adm.Drain() // /readyz: 503 while connections drain; the rest serves until the end
		defer adm.Shutdown(ctx)
	}
	if err := srv.Shutdown(ctx); err != nil || notReady != nil {
		return cmp.Or(notReady, err)
	}
	st := srv.Stats()
	log.Info("shutdown complete", "websockets_closed", st.Handshakes[http.StatusSwitchingProtocols],
		"http_answered", httpAnswered(st), "tcp_closed", st.Closed)
	return nil
}

// brokerConfig is the NATS broker's configuration: the channel rules'
// histories go to JetStream streams.
func brokerConfig(opts options, urls []string, channels *handler.Channels, log *slog.Logger) broker.Config {
	cfg := broker.Config{URLs: urls, OnStateChange: brokerLogger(log), Storage: opts.historyStore,
		DeliverStored: channels.DeliverStored, LocalPresence: channels.LocalPresence,
		OnStreamError: func(err error) { log.Error("history store (JetStream) unavailable; retrying", "err", err) }}
	for _, r := range opts.channels.Rules {
		cfg.Histories = append(cfg.Histories, broker.HistoryRule{Prefix: r.Prefix, Size: r.HistorySize,
			TTL: cmp.Or(r.HistoryTTL, handler.DefaultHistoryTTL)})
	}
	return cfg
}

// httpAnswered counts the connections answered in plain HTTP, not
// upgraded: the pages (Config.Pages) and the refused handshakes.
func httpAnswered(st wsconn.Stats) uint64 {
	n := st.PagesServed
	for status, count := range st.Handshakes {
		if status != http.StatusSwitchingProtocols {
			n += count
		}
	}
	return n
}

// startAdmin starts the admin listener on -admin (for a worker, on the
// address the supervisor chose) over what cfg names, or returns nil if
// there is none.
func startAdmin(opts options, log *slog.Logger, cfg admin.Config) (*admin.Server, error) {
	cfg.Addr, cfg.APIKey, cfg.Pprof, cfg.Logger = opts.role.adminAddr(opts.admin), opts.apiKey, opts.pprof, log
	cfg.WarnInterval = opts.ws.WarnInterval // -log-warn-interval, as for the WebSocket side
	if cfg.Addr == "" || cfg.Addr == "off" {
		return nil, nil
	}
	adm, err := admin.New(cfg)
	if err != nil {
		return nil, badConfig(err)
	}
	if err := adm.Start(); err != nil {
		return nil, err
	}
	log.Info("admin listening", "addr", adm.Addr().String(), "publish", cfg.APIKey != "", "pprof", cfg.Pprof)
	return adm, nil
}

// reloadOnHangup reloads the certificate on every SIGHUP from hup until
// stop is closed; without one (certs nil) it only logs.
func reloadOnHangup(hup <-chan os.Signal, stop <-chan struct{}, certs *certReloader, log *slog.Logger) {
	for {
		select {
		case <-stop:
			return
		case <-hup:
		}
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

// refusalInBand is wsconn.Config.CloseRefused for /ws: a client that adds
// refusal=close to its URL (wsgate.js does) learns why its handshake was
// refused from a close frame (4401, 4403, 4400 with the reason) rather than
// an HTTP status, which a browser cannot read.
func refusalInBand(r *wsconn.UpgradeRequest) bool {
	q, err := url.ParseQuery(r.Query)
	return err == nil && q.Get("refusal") == "close"
}
