package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// TestMain fails the package if a test leaves a goroutine behind: the admin
// listener, the WebSocket server and the clients must all stop.
func TestMain(m *testing.M) {
	// ants starts a default pool in its init; only goroutines started by
	// the tests count.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// testKey is the API key of the test servers.
const testKey = "test-key-0123456789abcdef"

// fakeBroker is a handler.Broker and a Broker that records publishes and
// reports the connection state the test sets.
type fakeBroker struct {
	connected atomic.Bool
	storeDown atomic.Bool // Stats: the history store is not ready
	failed    atomic.Uint64
	mu        sync.Mutex
	published []string // channels, in order
}

func (b *fakeBroker) Interest(string, bool) {}

func (b *fakeBroker) Publish(channel string, _ []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = append(b.published, channel)
	return nil
}

func (b *fakeBroker) Connected() bool { return b.connected.Load() }

func (b *fakeBroker) Stats() broker.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return broker.Stats{Connected: b.connected.Load(), Published: uint64(len(b.published)), PublishFailed: b.failed.Load(),
		StoreReady: !b.storeDown.Load()}
}

func (b *fakeBroker) channels() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.published...)
}

// env is a WebSocket server with a Channels hub at /ws and an admin
// Server over them.
type env struct {
	ws     *wsconn.Server
	ch     *handler.Channels
	broker *fakeBroker // nil unless asked for
	adm    *Server
}

// newEnv builds an env from cfg (WS and Channels are filled in). With
// withBroker, a connected fakeBroker is set on both the hub and cfg. Nothing
// is started.
func newEnv(t testing.TB, cfg Config, withBroker bool) *env {
	t.Helper()
	// No history: most tests compare answers and pushes byte for byte.
	return newEnvWith(t, handler.ChannelsConfig{Rules: []handler.ChannelRule{}}, cfg, withBroker)
}

// newEnvWith is newEnv with the hub configured by chCfg.
func newEnvWith(t testing.TB, chCfg handler.ChannelsConfig, cfg Config, withBroker bool) *env {
	t.Helper()
	ch, err := handler.NewChannels(chCfg)
	if err != nil {
		t.Fatalf("NewChannels: %v", err)
	}
	ws, err := wsconn.New(wsconn.Config{Addr: "127.0.0.1:0", Routes: map[string]wsconn.Handler{"/ws": ch}})
	if err != nil {
		t.Fatalf("wsconn.New: %v", err)
	}
	e := &env{ws: ws, ch: ch}
	if withBroker {
		e.broker = &fakeBroker{}
		e.broker.connected.Store(true)
		ch.SetBroker(e.broker)
		cfg.Broker = e.broker
	}
	cfg.WS, cfg.Channels = ws, ch
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if e.adm, err = New(cfg); err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// startWS starts the WebSocket server and shuts it down when the test ends.
func (e *env) startWS(t testing.TB) {
	t.Helper()
	if err := e.ws.Start(); err != nil {
		t.Fatalf("wsconn Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.ws.Shutdown(ctx)
	})
}

// startAdmin starts the admin listener, shuts it down when the test ends,
// and returns its base URL.
func (e *env) startAdmin(t testing.TB) string {
	t.Helper()
	if err := e.adm.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.adm.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return "http://" + e.adm.Addr().String()
}

// serve runs one request through the admin handler, without a listener.
func (e *env) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.adm.http.Handler.ServeHTTP(rec, req)
	return rec
}

// publishRequest is a POST to /api/publish with a JSON content type and,
// if key is not empty, the bearer key.
func newPublishRequest(key, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/api/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

// httpClient is a client whose idle connections are closed when the test
// ends, so that no keep-alive goroutine outlives it.
func httpClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// do sends req with c and returns the status and the body.
func do(t testing.TB, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", req.URL, err)
	}
	return resp.StatusCode, string(body)
}

// get fetches url and returns the status and the body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

// subscriber connects a coder/websocket client to the env's /ws and
// subscribes it to channel; it is closed when the test ends.
func subscriber(t testing.TB, e *env, channel string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := dial(t, e)
	sub, _ := json.Marshal(map[string]any{"op": "subscribe", "channel": channel, "id": 1})
	if err := c.Write(ctx, websocket.MessageText, sub); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if got := read(t, c); got != `{"op":"ack","id":1}` {
		t.Fatalf("subscribe answer: got %s, want an ack", got)
	}
	return c
}

// request sends msg on c and checks that the answer contains want.
func request(t testing.TB, c *websocket.Conn, msg, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
	if got := read(t, c); !strings.Contains(got, want) {
		t.Fatalf("answer to %s: got %s, want one with %s", msg, got, want)
	}
}

// read returns the next message on c, failing the test after 5 s.
func read(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(msg)
}

// eventually polls cond until it holds or 5 s pass, then fails with msg.
func eventually(t testing.TB, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
