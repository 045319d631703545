package wsconn

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// principalRecorder records the principal each connection opened with.
type principalRecorder struct {
	echoHandler
	mu   sync.Mutex
	seen []any
}

func (h *principalRecorder) OnOpen(c Conn) {
	h.mu.Lock()
	h.seen = append(h.seen, c.Principal())
	h.mu.Unlock()
}

func TestAuthorize(t *testing.T) {
	rec := &principalRecorder{}
	srv := startServer(t, Config{
		Routes:        map[string]Handler{"/echo": rec},
		SweepInterval: 10 * time.Millisecond,
		Authorize: func(r *UpgradeRequest) (any, time.Time, error) {
			switch r.Header.Get("Authorization") {
			case "Bearer good":
				return "alice", time.Time{}, nil
			case "Bearer brief":
				return "bob", time.Now().Add(150 * time.Millisecond), nil
			case "":
				if r.Query == "token=good" {
					return "carol", time.Time{}, nil
				}
				return nil, time.Time{}, &HTTPError{Status: http.StatusUnauthorized, Message: "token required",
					Header: http.Header{"Www-Authenticate": {`Bearer realm="wsgate"`}}}
			}
			return nil, time.Time{}, errors.New("bad token")
		},
	})
	dial := func(path, token string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
		if token != "" {
			opts.HTTPHeader.Set("Authorization", "Bearer "+token)
		}
		return websocket.Dial(ctx, wsURL(srv, path), opts)
	}
	t.Run("missing token is 401 with a challenge", func(t *testing.T) {
		_, resp, err := dial("/echo", "")
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized ||
			resp.Header.Get("Www-Authenticate") == "" {
			t.Fatalf("got %v, %+v; want 401 with WWW-Authenticate", err, resp)
		}
	})
	t.Run("a plain error is 403", func(t *testing.T) {
		_, resp, err := dial("/echo", "forged")
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("got %v, %+v; want 403", err, resp)
		}
	})
	for _, tc := range []struct{ path, token, want string }{
		{"/echo", "good", "alice"}, {"/echo?token=good", "", "carol"},
	} {
		t.Run("principal "+tc.want, func(t *testing.T) {
			c, _, err := dial(tc.path, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			eventually(t, 2*time.Second, "OnOpen", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.seen) > 0 && rec.seen[len(rec.seen)-1] == tc.want
			})
		})
	}
	t.Run("expiry closes with 1008", func(t *testing.T) {
		c, _, err := dial("/echo", "brief")
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, err = c.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("got %v, want close 1008 at expiry", err)
		}
		if got := srv.Stats().AuthExpired; got != 1 {
			t.Fatalf("AuthExpired = %d, want 1", got)
		}
	})
}

// countingHandler counts the connections its handler saw open and close.
type countingHandler struct {
	echoHandler
	opened, closed atomic.Int64
}

func (h *countingHandler) OnOpen(Conn)                      { h.opened.Add(1) }
func (h *countingHandler) OnClose(Conn, StatusCode, string) { h.closed.Add(1) }

func TestCloseRefused(t *testing.T) {
	h := &countingHandler{}
	srv := startServer(t, Config{
		Routes:        map[string]Handler{"/ws": h},
		SweepInterval: 10 * time.Millisecond,
		CloseTimeout:  200 * time.Millisecond,
		Authorize: func(r *UpgradeRequest) (any, time.Time, error) {
			switch r.Header.Get("Authorization") {
			case "Bearer good":
				return "alice", time.Time{}, nil
			case "Bearer forged":
				return nil, time.Time{}, errors.New("bad signature")
			}
			return nil, time.Time{}, &HTTPError{Status: http.StatusUnauthorized, Message: "invalid token: token is expired"}
		},
		CloseRefused: func(r *UpgradeRequest) bool { return strings.Contains(r.Query, "refusal=close") },
	})
	tests := []struct {
		name, target, auth string
		status             int        // of the handshake
		code               StatusCode // of the close frame after a 101
		reason             string
		answer             bool // the client answers the close frame
	}{
		{"HTTP refusal when not asked", "/ws", "", http.StatusUnauthorized, 0, "", false},
		{"401 in band", "/ws?refusal=close", "", http.StatusSwitchingProtocols, 4401, "invalid token: token is expired", true},
		{"a plain error is 4403", "/ws?x=1&refusal=close", "Authorization: Bearer forged", http.StatusSwitchingProtocols, 4403, "not authorized", true},
		{"silent client ends at CloseTimeout", "/ws?refusal=close", "", http.StatusSwitchingProtocols, 4401, "invalid token: token is expired", false},
		{"an allowed client opens", "/ws?refusal=close", "Authorization: Bearer good", http.StatusSwitchingProtocols, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Stats().Handshakes[http.StatusUnauthorized] + srv.Stats().Handshakes[http.StatusForbidden]
			c := dialRaw(t, srv)
			var extra []string
			if tt.auth != "" {
				extra = append(extra, tt.auth)
			}
			c.write([]byte(upgradeRequest(tt.target, newKey(), extra...)))
			if resp := c.readResponse(); resp.StatusCode != tt.status {
				t.Fatalf("handshake status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.code == 0 {
				return
			}
			// Whatever the client sends meanwhile is ignored: no handler
			// runs for a refused connection.
			c.send(textFrame("hello"))
			if got := c.expectClose(tt.code, ioTimeout); got != tt.reason {
				t.Fatalf("close reason %q, want %q", got, tt.reason)
			}
			if tt.answer {
				c.send(closeWith(tt.code, ""))
			}
			c.expectEOF()
			if after := srv.Stats().Handshakes[http.StatusUnauthorized] + srv.Stats().Handshakes[http.StatusForbidden]; after != before+1 {
				t.Fatalf("refusals counted %d -> %d, want one more", before, after)
			}
		})
	}
	if !poll(ioTimeout, func() bool { return srv.Conns() == 0 && h.opened.Load() == h.closed.Load() }) {
		t.Fatalf("conns %d, opened %d, closed %d", srv.Conns(), h.opened.Load(), h.closed.Load())
	}
	if h.opened.Load() != 1 {
		t.Fatalf("handler saw %d connections open, want only the allowed one", h.opened.Load())
	}
}
