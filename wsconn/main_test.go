package wsconn

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// reactor, the pool and the sweeper must all stop with their server.
func TestMain(m *testing.M) {
	// ants starts a default pool in its init; only goroutines started by
	// the tests count.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// startServer starts a Server on 127.0.0.1:0 with cfg (Routes defaults to
// an echo handler at /echo) and shuts it down when the test ends, failing
// the test if the server recovered a panic of its own.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Routes == nil {
		cfg.Routes = map[string]Handler{"/echo": echoHandler{}}
	}
	if cfg.Logger == nil {
		// Every record formatted, none kept: the logging paths run in
		// every test (the first warning of each kind per server, every
		// debug record; a record built under a lock it takes again
		// would hang here), at no cost in output.
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if n := srv.Stats().InternalErrors; n != 0 {
			t.Errorf("server recovered %d internal panics", n)
		}
	})
	return srv
}

// wsURL is the ws:// URL of path on srv.
func wsURL(srv *Server, path string) string {
	return "ws://" + srv.Addr().String() + path
}

// eventually polls cond every few milliseconds until it holds or timeout
// passes, and fails the test with msg if it never does.
func eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
