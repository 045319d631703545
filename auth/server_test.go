package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// startGate serves /ws with Channels behind v on 127.0.0.1:0, as the
// wsgate binary wires them, and stops when the test ends.
func startGate(t *testing.T, v *Verifier) (*wsconn.Server, *handler.Channels) {
	t.Helper()
	channels, err := handler.NewChannels(handler.ChannelsConfig{Rules: []handler.ChannelRule{}}) // no history: exact replies
	if err != nil {
		t.Fatal(err)
	}
	channels.SetRefresh(v.RefreshHook)
	srv, err := wsconn.New(wsconn.Config{
		Addr:          "127.0.0.1:0",
		Routes:        map[string]wsconn.Handler{"/ws": channels},
		Authorize:     v.Authorize,
		SweepInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, channels
}

// dialGate opens /ws with the token in the Authorization header, or in
// query if it is not empty.
func dialGate(t *testing.T, srv *wsconn.Server, token, query string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if token != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	}
	url := "ws://" + srv.Addr().String() + "/ws"
	if query != "" {
		url += "?" + query
	}
	c, resp, err := websocket.Dial(ctx, url, opts)
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// next returns the next message on c, or the read error.
func next(c *websocket.Conn, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, p, err := c.Read(ctx)
	return string(p), err
}

// exchange sends req on c and checks the next messages are want.
func exchange(t *testing.T, c *websocket.Conn, req string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		t.Fatalf("failed to send %s: %v", req, err)
	}
	for _, w := range want {
		got, err := next(c, 5*time.Second)
		if err != nil || got != w {
			t.Fatalf("after %s: got %q, %v; want %s", req, got, err, w)
		}
	}
}

// errorReply is the /ws error reply with id and code.
func errorReply(id, code string) string {
	return string(wsproto.AppendError(nil, json.RawMessage(id), code))
}

func TestGateHandshake(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, Config{Secret: k.secret})
	srv, _ := startGate(t, v)
	expired := sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	tests := []struct {
		name, token, query string
		status             int // 0: upgraded
		challenge          string
	}{
		{name: "no token", status: 401, challenge: `Bearer realm="wsgate"`},
		{name: "expired", token: expired, status: 401, challenge: `Bearer realm="wsgate", error="invalid_token", error_description="token expired"`},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), status: 401,
			challenge: `Bearer realm="wsgate", error="invalid_token", error_description="bad signature or algorithm not accepted"`},
		{name: "both ways", token: sign(t, jwt.SigningMethodHS256, k.secret, claims(nil)), query: "token=x", status: 400,
			challenge: `Bearer realm="wsgate", error="invalid_request", error_description="token both in the Authorization header and in the query"`},
		{name: "header", token: sign(t, jwt.SigningMethodHS256, k.secret, claims(nil))},
		{name: "query", query: "token=" + sign(t, jwt.SigningMethodHS256, k.secret, claims(nil))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := dialGate(t, srv, tt.token, tt.query)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("got %v, want an open connection", err)
				}
				exchange(t, c, `{"op":"subscribe","channel":"user:alice","id":1}`, `{"op":"ack","id":1}`)
				return
			}
			if err == nil || resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("got %v, %v; want status %d", err, resp, tt.status)
			}
			if got := resp.Header.Get("Www-Authenticate"); got != tt.challenge {
				t.Errorf("got challenge %s, want %s", got, tt.challenge)
			}
		})
	}
}

// TestGateChannels checks permissions end to end: patterns, the personal
// channel, and a backend push to it.
func TestGateChannels(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, Config{Secret: k.secret})
	srv, channels := startGate(t, v)
	c, _, err := dialGate(t, srv, "", "token="+sign(t, jwt.SigningMethodHS256, k.secret,
		claims(map[string]any{"subscribe": []string{"news.*"}, "publish": []string{"news.eu"}})))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		req  string
		want []string
	}{
		{`{"op":"subscribe","channel":"news.eu","id":1}`, []string{`{"op":"ack","id":1}`}},
		{`{"op":"subscribe","channel":"secret","id":2}`, []string{errorReply("2", "forbidden")}},
		{`{"op":"subscribe","channel":"user:alice","id":3}`, []string{`{"op":"ack","id":3}`}},
		{`{"op":"subscribe","channel":"user:bob","id":4}`, []string{errorReply("4", "forbidden")}},
		{`{"op":"publish","channel":"news.eu","data":"hi","id":5}`, []string{`{"channel":"news.eu","data":"hi"}`, `{"op":"ack","id":5,"delivered":1}`}},
		{`{"op":"publish","channel":"news.us","data":"hi","id":6}`, []string{errorReply("6", "forbidden")}},
		{`{"op":"publish","channel":"user:alice","data":"me","id":7}`, []string{errorReply("7", "forbidden")}},
	}
	for _, s := range steps {
		exchange(t, c, s.req, s.want...)
	}
	if n, err := channels.Publish("user:alice", json.RawMessage(`{"from":"backend"}`)); n != 1 || err != nil {
		t.Fatalf("got %d, %v publishing to user:alice; want 1, nil", n, err)
	}
	if got, err := next(c, 5*time.Second); got != `{"channel":"user:alice","data":{"from":"backend"}}` || err != nil {
		t.Fatalf("got %q, %v; want the backend's push", got, err)
	}
}

// TestGateExpiryAndRefresh opens two connections whose tokens expire in
// about two seconds: the one that refreshes stays, the other is closed with
// 1008.
func TestGateExpiryAndRefresh(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, Config{Secret: k.secret, Leeway: -1})
	srv, _ := startGate(t, v)
	brief := sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"exp": time.Now().Add(2 * time.Second).Unix()}))
	long := sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"subscribe": []string{"news"}}))
	bob := sign(t, jwt.SigningMethodHS256, k.secret, claims(map[string]any{"sub": "bob"}))
	stays, _, err := dialGate(t, srv, brief, "")
	if err != nil {
		t.Fatal(err)
	}
	expires, _, err := dialGate(t, srv, brief, "")
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, stays, `{"op":"subscribe","channel":"news","id":1}`, errorReply("1", "forbidden"))
	exchange(t, stays, `{"op":"refresh","token":"garbage","id":2}`, errorReply("2", "invalid_token"))
	exchange(t, stays, `{"op":"refresh","token":"`+bob+`","id":3}`, errorReply("3", "invalid_token"))
	exchange(t, stays, `{"op":"refresh","token":"`+long+`","id":4}`, `{"op":"ack","id":4}`)
	exchange(t, stays, `{"op":"subscribe","channel":"news","id":5}`, `{"op":"ack","id":5}`)

	if _, err := next(expires, 5*time.Second); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("got %v, want close 1008 at expiry", err)
	}
	if got := srv.Stats().AuthExpired; got != 1 {
		t.Errorf("got AuthExpired %d, want 1", got)
	}
	exchange(t, stays, `{"op":"subscribe","channel":"user:alice","id":6}`, `{"op":"ack","id":6}`)
}
