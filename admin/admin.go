package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/poller"
	"github.com/wsgate/wsgate/wsconn"
)

// Timeouts of the admin listener. There is no write timeout: a CPU profile
// (/debug/pprof/profile) writes after its 30 s by default.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Server is the admin HTTP listener. Create it with New, start it with
// Start, stop it with Shutdown. All methods are safe for concurrent use.
type Server struct {
	cfg     Config
	keyHash [sha256.Size]byte // of cfg.APIKey; compared with the request's in constant time
	http    *http.Server

	mu      sync.Mutex   // guards ln, started, closed
	ln      net.Listener // nil before Start
	started bool
	closed  bool
	served  chan struct{} // closed when the Serve goroutine has returned

	draining atomic.Bool // /readyz answers 503 once set

	// Requests refused for their API key, from any request goroutine.
	unauthorized   atomic.Uint64 // all of them
	keyWarn        *rate.Limiter // one warning per cfg.WarnInterval
	keyWarnSkipped atomic.Uint64 // not logged since the last warning
}

// Stats is a snapshot of the Server's own counters.
type Stats struct {
	// Unauthorized counts POST /api/publish, GET /api/history and GET /api/presence requests
	// refused with 401: no API key, or a wrong one.
	Unauthorized uint64
}

// New checks cfg and prepares a Server; it does not listen yet.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		keyHash: sha256.Sum256([]byte(cfg.APIKey)),
		served:  make(chan struct{}),
		keyWarn: rate.NewLimiter(rate.Every(cfg.WarnInterval), 1),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(s.snapshot),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if cfg.Latency != nil {
		reg.MustRegister(cfg.Latency.collectors()...)
	}
	s.http = &http.Server{
		Handler:           s.routes(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// routes is the server's handler: every endpoint of the package comment.
func (s *Server) routes(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/publish", s.handlePublish)
	mux.HandleFunc("/api/history", s.handleHistory)
	mux.HandleFunc("/api/presence", s.handlePresence)
	mux.HandleFunc("/api/channels", s.handleChannels)
	mux.HandleFunc("/api/stats", s.handleStats)
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.HandleFunc("/readyz", s.handleReady)
	mux.Handle("/metrics", getOnly(metrics))
	if s.cfg.Pprof {
		// Not pprof.Cmdline: the command line can carry -api-key or
		// -jwt-secret. Index answers "unknown profile" for it.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Start listens on Config.Addr and serves in the background; it returns
// once the listener is bound, so Addr is valid.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrServerClosed
	case s.started:
		return ErrStarted
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: failed to listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln, s.started = ln, true
	go func() {
		defer close(s.served)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("admin listener failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// Addr returns the bound listen address, or nil before Start.
func (s *Server) Addr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	addr, _ := s.ln.Addr().(*net.TCPAddr)
	return addr
}

// Drain makes /readyz answer 503 "shutting down" from now on, so that load
// balancers stop sending new clients while the WebSocket server drains;
// everything else keeps serving until Shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown drains (see Drain), stops listening, and waits for requests in
// progress until ctx is done; then it closes the connections left and
// returns ctx's error. Calling it again, or before Start, returns nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	s.mu.Lock()
	wasClosed, started := s.closed, s.started
	s.closed = true
	s.mu.Unlock()
	if wasClosed || !started {
		return nil
	}
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
		err = fmt.Errorf("admin: failed to finish requests before the shutdown deadline: %w", err)
	}
	<-s.served
	return err
}

// snapshot is everything the stats endpoint and the metrics report, read
// once per request.
type snapshot struct {
	WS       wsconn.Stats          `json:"ws"`
	Poller   *poller.Stats         `json:"poller,omitempty"` // nil before WS starts
	Channels handler.ChannelsStats `json:"channels"`
	Broker   *broker.Stats         `json:"broker,omitempty"` // nil without a broker
	Admin    Stats                 `json:"admin"`
}

// snapshot reads every counter the Server reports.
func (s *Server) snapshot() snapshot {
	snap := snapshot{WS: s.cfg.WS.Stats(), Channels: s.cfg.Channels.Stats(), Admin: s.Stats()}
	if p := s.cfg.WS.Poller(); p != nil {
		ps := p.Stats()
		snap.Poller = &ps
	}
	if s.cfg.Broker != nil {
		bs := s.cfg.Broker.Stats()
		snap.Broker = &bs
	}
	return snap
}

// Stats returns the Server's own counters.
func (s *Server) Stats() Stats {
	return Stats{Unauthorized: s.unauthorized.Load()}
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, s.snapshot())
}

func (s *Server) handleChannels(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Channels map[string]int `json:"channels"`
	}{s.cfg.Channels.Channels()})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if allowGet(w, r) {
		writeText(w, http.StatusOK, "ok")
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	if why := s.notReady(); why != "" {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+why)
		return
	}
	writeText(w, http.StatusOK, "ready")
}

// notReady returns why the process should get no new clients, or "".
func (s *Server) notReady() string {
	switch {
	case s.draining.Load():
		return "shutting down"
	case s.cfg.WS.Addr() == nil:
		return "WebSocket listener not started"
	case s.cfg.Broker != nil && !s.cfg.Broker.Connected():
		return "broker not connected: publishes would not reach other processes"
	case s.cfg.Broker != nil && !s.cfg.Broker.Stats().StoreReady:
		return "history store (NATS JetStream) not ready: publishes to channels with history would fail"
	}
	return ""
}

// getOnly wraps h to answer 405 to methods other than GET and HEAD.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowGet(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// allowGet reports whether r is a GET or HEAD; otherwise it answers 405.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "use GET")
	return false
}

// writeJSON answers status with v as JSON, on one line. Nothing is
// escaped for HTML: the answers are for programs and curl.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // only for types that cannot be encoded: a bug here
		http.Error(w, "admin: failed to encode the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body.Bytes())
}

// writeText answers status with one line of plain text.
func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}
