package wsconn

import (
	"context"
	"errors"
	"net/http"
	"sync"
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
