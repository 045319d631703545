package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// Whole wsgates run in the test's own process, through Load and Run.

// syncBuffer is a log that a server writes while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// line returns the first JSON log line whose msg is msg, decoded, or nil.
func (b *syncBuffer) line(msg string) map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

// inProcess is a wsgate run by Load and Run in this process.
type inProcess struct {
	addr, admin string // host:port of the WebSocket and admin listeners
	log         *syncBuffer
	stop        func() error // cancels Run's context and returns what Run returned
}

// startInProcess loads args (after -addr and -admin on free loopback
// ports, below the ephemeral range, and a JSON log) with an empty
// environment, runs it until the test ends or stop, and waits until it
// serves (Config.OnReady).
func startInProcess(t *testing.T, args ...string) *inProcess {
	t.Helper()
	ports := freePortRun(t, 2)
	for _, l := range ports {
		_ = l.Close()
	}
	g := &inProcess{addr: ports[0].Addr().String(), admin: ports[1].Addr().String(), log: &syncBuffer{}}
	cfg, err := Load(append([]string{"-addr", g.addr, "-admin", g.admin, "-log-format", "json"}, args...), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stderr = g.log
	ready := make(chan [2]net.Addr, 1)
	cfg.OnReady = func(ws, admin net.Addr) { ready <- [2]net.Addr{ws, admin} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	g.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return fmt.Errorf("Run did not return within 15s of the cancel")
		}
	})
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned before it was ready: %v", err)
	case addrs := <-ready:
		if addrs[0].String() != g.addr || addrs[1].String() != g.admin {
			t.Fatalf("OnReady got %v, want %s and %s", addrs, g.addr, g.admin)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}
	return g
}

// count reads a number field of a JSON log line.
func count(line map[string]any, key string) string {
	if v, ok := line[key].(float64); ok {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprintf("%v (missing)", line[key])
}

// TestShutdownLineCounts: the "shutdown complete" line counts the
// WebSocket connections closed apart from the plain HTTP answers (the
// demo page, a 404), and every TCP connection besides.
func TestShutdownLineCounts(t *testing.T) {
	tests := []struct {
		name                      string
		pages, websockets, errors int
	}{
		{"nothing", 0, 0, 0},
		{"pages only", 3, 0, 0},
		{"websockets only", 0, 2, 0},
		{"all kinds", 2, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startInProcess(t, "-log-level", "info")
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			get := func(path string, want int) {
				resp, err := client.Get("http://" + g.addr + path)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, want)
				}
			}
			for range tt.pages {
				get("/", http.StatusOK)
			}
			for range tt.errors {
				get("/nope", http.StatusNotFound)
			}
			for range tt.websockets {
				c := dial(t, g.addr, "/echo")
				c.send(t, "hi")
				if m := c.next(5 * time.Second); m != "hi" {
					t.Fatalf("echo: got %q", m)
				}
				_ = c.c.Close(websocket.StatusNormalClosure, "")
			}
			if err := g.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			line := g.log.line("shutdown complete")
			for key, want := range map[string]int{
				"websockets_closed": tt.websockets,
				"http_answered":     tt.pages + tt.errors,
				"tcp_closed":        tt.pages + tt.errors + tt.websockets,
			} {
				if got := count(line, key); got != strconv.Itoa(want) {
					t.Errorf("%s: got %s, want %d (line %v)", key, got, want, line)
				}
			}
			if _, ok := line["closed"]; ok {
				t.Errorf("the line still has closed=, which counted both: %v", line)
			}
		})
	}
}

// TestWholeGatewayInProcess: a complete wsgate through Load and Run in
// this process: a /ws subscriber gets what a backend publishes through
// the admin API with the API key, /echo echoes, the admin listener
// answers /healthz and /metrics; cancelling Run's context drains it, Run
// returns nil, and no goroutine is left behind.
func TestWholeGatewayInProcess(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // runs last: after every other cleanup
	const key = "in-process-api-key-0123"
	g := startInProcess(t, "-api-key", key)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	do := func(method, path, body string, auth bool) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+g.admin+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	sub := dial(t, g.addr, "/ws")
	subscribe(t, sub, "news")
	if code, body := do(http.MethodPost, "/api/publish", `{"channel":"news","data":"hello"}`, false); code != http.StatusUnauthorized {
		t.Errorf("publish without the key: %d %s, want 401", code, body)
	}
	publish := func(data string) (offset uint64, epoch string) {
		t.Helper()
		code, body := do(http.MethodPost, "/api/publish", `{"channel":"news","data":`+data+`}`, true)
		var a struct {
			Delivered *int
			Offset    uint64
			Epoch     string
		}
		if err := json.Unmarshal([]byte(body), &a); code != http.StatusOK || err != nil || a.Delivered == nil ||
			a.Offset == 0 || a.Epoch == "" {
			t.Fatalf("publish: %d %s, want 200 with delivered, offset and epoch (history is on by default)", code, body)
		}
		return a.Offset, a.Epoch
	}
	offset, epoch := publish(`"hello"`)
	if got, want := sub.next(5*time.Second), fmt.Sprintf(`{"channel":"news","offset":%d,"data":"hello"}`, offset); got != want {
		t.Fatalf("subscriber got %q, want %q", got, want)
	}
	// A client that drops and comes back recovers what it missed.
	_ = sub.c.Close(websocket.StatusNormalClosure, "")
	publish(`"missed 1"`)
	last, _ := publish(`"missed 2"`)
	sub = dial(t, g.addr, "/ws")
	sub.send(t, fmt.Sprintf(`{"op":"subscribe","channel":"news","id":1,"recover":{"offset":%d,"epoch":"%s"}}`, offset, epoch))
	for _, want := range []string{
		fmt.Sprintf(`{"op":"ack","id":1,"offset":%d,"epoch":"%s","recovered":true}`, last, epoch),
		fmt.Sprintf(`{"channel":"news","offset":%d,"data":"missed 1"}`, offset+1),
		fmt.Sprintf(`{"channel":"news","offset":%d,"data":"missed 2"}`, offset+2),
	} {
		if got := sub.next(5 * time.Second); got != want {
			t.Fatalf("recovering: got %q, want %q", got, want)
		}
	}

	if code, body := do(http.MethodGet, "/api/presence?channel=news", "", true); code != http.StatusOK ||
		!strings.HasPrefix(body, `{"presence":[{"client":"`) || !strings.HasSuffix(body, `"}],"clients":1,"users":0}`) {
		t.Errorf("presence: %d %s, want the one subscriber", code, body)
	}

	echo := dial(t, g.addr, "/echo")
	echo.send(t, "ping me back")
	if got := echo.next(5 * time.Second); got != "ping me back" {
		t.Fatalf("/echo: got %q", got)
	}

	if code, body := do(http.MethodGet, "/healthz", "", false); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, metrics := do(http.MethodGet, "/metrics", "", false)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, series := range []string{"wsgate_handshake_seconds_count", "wsgate_broadcast_recipients_count"} {
		if v := sample(metrics, series); v < 1 {
			t.Errorf("/metrics: %s = %v, want at least 1", series, v)
		}
	}

	_ = sub.c.Close(websocket.StatusNormalClosure, "")
	_ = echo.c.Close(websocket.StatusNormalClosure, "")
	client.CloseIdleConnections()
	if err := g.stop(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if line := g.log.line("shutting down"); line == nil || line["signal"] != "context canceled" {
		t.Errorf("shutting down line: %v, want signal=context canceled", line)
	}
}
