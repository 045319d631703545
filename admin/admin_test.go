package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

func TestNewValidates(t *testing.T) {
	ch, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wsconn.New(wsconn.Config{Addr: "127.0.0.1:0", Routes: map[string]wsconn.Handler{"/ws": ch}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" for success
	}{
		{name: "minimal", cfg: Config{WS: ws, Channels: ch}},
		{name: "with key", cfg: Config{WS: ws, Channels: ch, APIKey: testKey}},
		{name: "no WS", cfg: Config{Channels: ch}, wantErr: "WS is required"},
		{name: "no Channels", cfg: Config{WS: ws}, wantErr: "Channels is required"},
		{name: "short key", cfg: Config{WS: ws, Channels: ch, APIKey: "short"}, wantErr: "APIKey is 5 bytes"},
		{name: "bad addr", cfg: Config{WS: ws, Channels: ch, Addr: "8081"}, wantErr: "not host:port"},
		{name: "negative warn interval", cfg: Config{WS: ws, Channels: ch, WarnInterval: -time.Second}, wantErr: "WarnInterval is -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if s.cfg.Addr != DefaultAddr || s.cfg.WarnInterval != 10*time.Second {
					t.Errorf("got Addr %q, WarnInterval %v; want the defaults %q, 10s", s.cfg.Addr, s.cfg.WarnInterval, DefaultAddr)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want ErrInvalidConfig saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestStartAndShutdown(t *testing.T) {
	e := newEnv(t, Config{}, false)
	if e.adm.Addr() != nil {
		t.Fatal("Addr before Start is not nil")
	}
	if err := e.adm.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := e.adm.Start(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Shutdown: got %v, want ErrServerClosed", err)
	}

	e = newEnv(t, Config{}, false)
	base := e.startAdmin(t)
	if err := e.adm.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: got %v, want ErrStarted", err)
	}
	if status, _ := get(t, httpClient(t), base+"/healthz"); status != http.StatusOK {
		t.Errorf("healthz: got %d, want 200", status)
	}

	busy := newEnv(t, Config{Addr: e.adm.Addr().String()}, false)
	var opErr *net.OpError
	if err := busy.adm.Start(); !errors.As(err, &opErr) || !strings.Contains(err.Error(), "admin: failed to listen") {
		t.Errorf("Start on a port in use: got %v, want a listen error", err)
	}

	if err := e.adm.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := e.adm.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the listener still answers after Shutdown")
	}
}

func TestChannelsAndStats(t *testing.T) {
	e := newEnv(t, Config{}, true)
	e.startWS(t)
	base := e.startAdmin(t)
	client := httpClient(t)
	subscriber(t, e, "news")
	subscriber(t, e, "news")
	subscriber(t, e, "user:alice")

	t.Run("channels", func(t *testing.T) {
		status, body := get(t, client, base+"/api/channels")
		want := `{"channels":{"news":2,"user:alice":1}}` + "\n"
		if status != http.StatusOK || body != want {
			t.Fatalf("got %d %s, want 200 %s", status, body, want)
		}
	})

	t.Run("stats", func(t *testing.T) {
		status, body := get(t, client, base+"/api/stats")
		if status != http.StatusOK {
			t.Fatalf("got %d %s, want 200", status, body)
		}
		var got snapshot
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("stats %s: %v", body, err)
		}
		if got.WS.Conns != 3 || got.WS.Handshakes[http.StatusSwitchingProtocols] != 3 {
			t.Errorf("got ws conns %d, handshakes %v; want 3 and 3 upgraded", got.WS.Conns, got.WS.Handshakes)
		}
		if got.Poller == nil || got.Poller.Workers == 0 {
			t.Errorf("got poller %+v, want the pool's stats", got.Poller)
		}
		if got.Channels.Channels != 2 || got.Channels.Subscriptions != 3 {
			t.Errorf("got %d channels and %d subscriptions, want 2 and 3", got.Channels.Channels, got.Channels.Subscriptions)
		}
		if got.Broker == nil || !got.Broker.Connected {
			t.Errorf("got broker %+v, want connected", got.Broker)
		}
		if n := len(got.Channels.RejectedByCode); n != len(handler.ErrorCodes()) {
			t.Errorf("got %d codes in channels.RejectedByCode, want every one: %s", n, body)
		}
		if !strings.Contains(body, `"admin":{"Unauthorized":0}`) {
			t.Errorf("stats %s: want \"admin\":{\"Unauthorized\":0}", body)
		}
	})
}

func TestHealthAndReady(t *testing.T) {
	outer := t // the WebSocket server lives as long as the whole test
	e := newEnv(t, Config{}, true)
	check := func(t *testing.T, path string, wantStatus int, wantBody string) {
		t.Helper()
		rec := e.serve(httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != wantStatus || !strings.Contains(rec.Body.String(), wantBody) {
			t.Errorf("%s: got %d %q, want %d with %q", path, rec.Code, rec.Body, wantStatus, wantBody)
		}
	}
	steps := []struct {
		name       string
		do         func(t *testing.T)
		wantStatus int
		wantBody   string
	}{
		{name: "WebSocket not started", do: func(*testing.T) {}, wantStatus: http.StatusServiceUnavailable, wantBody: "WebSocket listener not started"},
		{name: "serving", do: func(*testing.T) { e.startWS(outer) }, wantStatus: http.StatusOK, wantBody: "ready"},
		{name: "broker down", do: func(*testing.T) { e.broker.connected.Store(false) }, wantStatus: http.StatusServiceUnavailable, wantBody: "broker not connected"},
		{name: "broker back", do: func(*testing.T) { e.broker.connected.Store(true) }, wantStatus: http.StatusOK, wantBody: "ready"},
		{name: "history store not ready", do: func(*testing.T) { e.broker.storeDown.Store(true) }, wantStatus: http.StatusServiceUnavailable,
			wantBody: "history store (NATS JetStream) not ready"},
		{name: "history store ready", do: func(*testing.T) { e.broker.storeDown.Store(false) }, wantStatus: http.StatusOK, wantBody: "ready"},
		{name: "draining", do: func(*testing.T) { e.adm.Drain() }, wantStatus: http.StatusServiceUnavailable, wantBody: "shutting down"},
	}
	for _, st := range steps { // in order: each step builds on the last
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			check(t, "/readyz", st.wantStatus, st.wantBody)
			check(t, "/healthz", http.StatusOK, "ok")
		})
	}

	t.Run("without a broker", func(t *testing.T) {
		e := newEnv(t, Config{}, false)
		e.startWS(t)
		rec := e.serve(httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("got %d %q, want 200", rec.Code, rec.Body)
		}
	})
}

func TestReadEndpointsMethods(t *testing.T) {
	e := newEnv(t, Config{}, false)
	for _, path := range []string{"/api/channels", "/api/stats", "/healthz", "/readyz", "/metrics"} {
		for _, method := range []string{http.MethodPost, http.MethodDelete} {
			t.Run(method+path, func(t *testing.T) {
				rec := e.serve(httptest.NewRequest(method, path, nil))
				if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
					t.Errorf("got %d, Allow %q; want 405, GET, HEAD", rec.Code, rec.Header().Get("Allow"))
				}
			})
		}
		t.Run("HEAD"+path, func(t *testing.T) {
			rec := e.serve(httptest.NewRequest(http.MethodHead, path, nil))
			if rec.Code == http.StatusMethodNotAllowed {
				t.Errorf("HEAD %s: got 405", path)
			}
		})
	}
}

func TestPprof(t *testing.T) {
	tests := []struct {
		name  string
		pprof bool
		path  string
		want  int
	}{
		{name: "off", pprof: false, path: "/debug/pprof/", want: http.StatusNotFound},
		{name: "index", pprof: true, path: "/debug/pprof/", want: http.StatusOK},
		{name: "heap", pprof: true, path: "/debug/pprof/heap?debug=1", want: http.StatusOK},
		{name: "no cmdline", pprof: true, path: "/debug/pprof/cmdline", want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{Pprof: tt.pprof}, false)
			rec := e.serve(httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.want {
				t.Errorf("got %d, want %d", rec.Code, tt.want)
			}
		})
	}
}
