package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gorilla "github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// wsgate is a real wsgate /ws endpoint in this process.
type wsgate struct {
	srv *wsconn.Server
	ch  *handler.Channels
	url string
}

// startWsgate serves /ws on addr ("127.0.0.1:0": a free port) with the
// default channel rules (history and presence on), until the test ends.
func startWsgate(t testing.TB, addr string) *wsgate {
	t.Helper()
	ch, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wsconn.New(wsconn.Config{Addr: addr, Routes: map[string]wsconn.Handler{"/ws": ch}, MaxConnsPerIP: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	g := &wsgate{srv: srv, ch: ch, url: "ws://" + srv.Addr().String() + "/ws"}
	t.Cleanup(g.stop)
	return g
}

func (g *wsgate) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.srv.Shutdown(ctx)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// inbox collects a subscription's publications.
type inbox struct {
	mu   sync.Mutex
	pubs []client.Publication
}

func (b *inbox) add(p client.Publication) { b.mu.Lock(); b.pubs = append(b.pubs, p); b.mu.Unlock() }
func (b *inbox) len() int                 { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pubs) }
func (b *inbox) all() []client.Publication {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]client.Publication(nil), b.pubs...)
}

// TestClientAgainstWsgate: subscribe, publish with an ack and its
// position, history and presence; a dropped connection comes back by
// itself and recovers every publication made meanwhile, once and in
// order; a server that lost its history (restarted) makes the
// subscription report it could not recover.
func TestClientAgainstWsgate(t *testing.T) {
	g := startWsgate(t, "127.0.0.1:0")
	opened := make(chan struct{}, 10)
	c := client.NewClient(g.url, client.ClientOptions{Options: client.Options{
		Reconnect: &client.Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond},
		OnOpen:    func(*client.Conn) { opened <- struct{}{} },
	}})
	defer c.Close()
	<-opened
	var box inbox
	var mu sync.Mutex
	var unrecovered []string
	var joins []client.Presence
	c.Subscribe("room", box.add, client.SubscribeOptions{
		OnUnrecovered: func(r string) { mu.Lock(); unrecovered = append(unrecovered, r); mu.Unlock() },
		OnJoin:        func(p client.Presence) { mu.Lock(); joins = append(joins, p); mu.Unlock() },
	})
	eventually(t, "subscribed", func() bool { return g.ch.Subscribers("room") == 1 })
	ctx := context.Background()
	p, err := c.Publish(ctx, "room", map[string]string{"text": "hi"})
	if err != nil || p.Offset != 1 || p.Epoch == "" {
		t.Fatalf("publish: %+v %v", p, err)
	}
	eventually(t, "the push", func() bool { return box.len() == 1 })
	if got := box.all()[0]; got.Offset != 1 || string(got.Data) != `{"text":"hi"}` {
		t.Fatalf("push: %+v", got)
	}
	if _, err := c.Publish(ctx, "bad channel", 1); err == nil {
		t.Fatal("publish to a bad channel: want the server's error")
	}
	pos, pubs, err := c.History(ctx, "room", 10)
	if err != nil || pos.Offset != 1 || len(pubs) != 1 {
		t.Fatalf("history: %+v %v %v", pos, pubs, err)
	}
	pres, err := c.Presence(ctx, "room")
	if err != nil || len(pres) != 1 {
		t.Fatalf("presence: %v %v", pres, err)
	}

	// Drop the connection; 20 publications while it is down; it comes
	// back by itself and recovers them.
	c.Conn().Reconnect()
	for i := range 20 {
		if _, err := g.ch.Publish("room", json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-opened
	eventually(t, "the recovery", func() bool { return box.len() == 21 })
	for i, pub := range box.all()[1:] {
		if pub.Offset != uint64(i+2) || string(pub.Data) != strconv.Itoa(i) {
			t.Fatalf("recovered %d: %+v", i, pub)
		}
	}
	mu.Lock()
	if len(unrecovered) != 0 || len(joins) < 1 {
		t.Fatalf("unrecovered %v, joins %v", unrecovered, joins)
	}
	mu.Unlock()

	// The server restarts on the same address: its history is gone.
	addr := g.srv.Addr().String()
	g.stop()
	g2 := startWsgate(t, addr)
	<-opened
	eventually(t, "OnUnrecovered", func() bool { mu.Lock(); defer mu.Unlock(); return len(unrecovered) == 1 })
	if _, err := g2.ch.Publish("room", json.RawMessage(`"new"`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "live after the restart", func() bool { return box.len() == 22 })
	if got := box.all()[21]; got.Offset != 1 || string(got.Data) != `"new"` {
		t.Fatalf("after the restart: %+v", got)
	}
}

// TestThousandClientsReconnect measures the time from a server coming
// back to 1,000 clients being resubscribed and recovered (a figure, not a
// bound: logged), and checks that each got every publication once.
func TestThousandClientsReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	g := startWsgate(t, "127.0.0.1:0")
	const n = 1000
	var opened sync.WaitGroup
	opened.Add(n)
	boxes := make([]*inbox, n)
	clients := make([]*client.Client, n)
	once := make([]sync.Once, n)
	for i := range clients {
		boxes[i] = &inbox{}
		clients[i] = client.NewClient(g.url, client.ClientOptions{Options: client.Options{
			Reconnect: &client.Backoff{Min: 10 * time.Millisecond, Max: 500 * time.Millisecond},
			OnOpen:    func(*client.Conn) { once[i].Do(opened.Done) },
		}})
		clients[i].Subscribe("storm", boxes[i].add, client.SubscribeOptions{})
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	opened.Wait()
	eventually(t, "all subscribed", func() bool { return g.ch.Subscribers("storm") == n })
	if _, err := g.ch.Publish("storm", json.RawMessage(`0`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first push", func() bool {
		for _, b := range boxes {
			if b.len() != 1 {
				return false
			}
		}
		return true
	})
	// Every client drops (the server closes them all), 10 publications
	// are made at once, and they come back.
	for _, c := range clients {
		c.Conn().Reconnect()
	}
	for i := 1; i <= 10; i++ {
		if _, err := g.ch.Publish("storm", json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	eventually(t, "every client recovered", func() bool {
		for _, b := range boxes {
			if b.len() != 11 {
				return false
			}
		}
		return true
	})
	t.Logf("1,000 clients resubscribed and recovered 10 publications each in %v", time.Since(start))
	for i, b := range boxes {
		for k, p := range b.all() {
			if p.Offset != uint64(k+1) {
				t.Fatalf("client %d: publication %d has offset %d", i, k, p.Offset)
			}
		}
	}
}

// TestTokenRefresh: with tokens that expire in two seconds, the Client
// refreshes before each expiry on the open connection, so the server
// never closes it: one connection for three expiries' worth of time.
func TestTokenRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for token expiries")
	}
	secret := []byte("a test secret of at least thirty-two bytes")
	v, err := auth.New(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ch.SetRefresh(v.RefreshHook)
	srv, err := wsconn.New(wsconn.Config{Addr: "127.0.0.1:0", Routes: map[string]wsconn.Handler{"/ws": ch}, Authorize: v.Authorize})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	var mu sync.Mutex
	issued, opens, closes := 0, 0, 0
	token := func(context.Context) (string, time.Time, error) {
		exp := time.Now().Add(2 * time.Second)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "alice", "exp": exp.Unix(), "subscribe": []string{"room"},
		}).SignedString(secret)
		mu.Lock()
		issued++
		mu.Unlock()
		return tok, time.Unix(exp.Unix(), 0), err // exp has whole seconds
	}
	c := client.NewClient("ws://"+srv.Addr().String()+"/ws", client.ClientOptions{
		Token: token, RefreshBefore: 700 * time.Millisecond,
		Options: client.Options{
			Reconnect: &client.Backoff{Min: 10 * time.Millisecond},
			OnOpen:    func(*client.Conn) { mu.Lock(); opens++; mu.Unlock() },
			OnClose:   func(*client.Conn, client.CloseEvent) { mu.Lock(); closes++; mu.Unlock() },
		}})
	defer c.Close()
	c.Subscribe("room", func(client.Publication) {}, client.SubscribeOptions{})
	eventually(t, "subscribed", func() bool { return ch.Subscribers("room") == 1 })
	eventually(t, "three tokens", func() bool { mu.Lock(); defer mu.Unlock(); return issued >= 4 })
	mu.Lock()
	defer mu.Unlock()
	if opens != 1 || closes != 0 || ch.Subscribers("room") != 1 {
		t.Fatalf("after %d tokens: %d opens, %d closes: want one connection throughout", issued, opens, closes)
	}
}

// TestAgainstGorillaServer: the connection layer with a server no one
// here wrote: gorilla/websocket's, echoing, answering pings, closing.
func TestAgainstGorillaServer(t *testing.T) {
	up := gorilla.Upgrader{}
	var pings atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPingHandler(func(data string) error {
			pings.Add(1)
			return c.WriteControl(gorilla.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(p) == "close please" {
				_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(4001, "as asked"))
				continue
			}
			if err := c.WriteMessage(typ, p); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	got := make(chan string, 10)
	closed := make(chan client.CloseEvent, 1)
	c, err := client.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), client.Options{
		PingInterval: 20 * time.Millisecond, PongTimeout: time.Second, // gorilla answers pings by default
		Reconnect: &client.Backoff{Min: time.Millisecond},
		OnMessage: func(_ *client.Conn, _ client.MessageType, p []byte) { got <- string(p) },
		OnClose:   func(_ *client.Conn, e client.CloseEvent) { closed <- e },
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Send([]byte("hello"))
	if m := <-got; m != "hello" {
		t.Fatalf("echo: %q", m)
	}
	eventually(t, "three pings answered", func() bool { return pings.Load() >= 3 }) // the heartbeat must not drop it
	_ = c.Send([]byte("still here"))
	if m := <-got; m != "still here" {
		t.Fatalf("after pings: %q", m)
	}
	_ = c.Send([]byte("close please"))
	if e := <-closed; e.Code != 4001 || e.Reason != "as asked" || !e.ByServer || !e.Final {
		t.Fatalf("close: %+v, want 4001 from the server, final (4000-4999: don't come back)", e)
	}
	_ = c.Close(1000, "")
}

// TestCompression: with Options.Compression the client negotiates
// permessage-deflate with a wsgate that offers it, and messages go both
// ways compressed; against one that does not, it works uncompressed.
func TestCompression(t *testing.T) {
	for _, serverOn := range []bool{true, false} {
		t.Run(fmt.Sprint("server compression ", serverOn), func(t *testing.T) {
			srv, err := wsconn.New(wsconn.Config{Addr: "127.0.0.1:0", Compression: serverOn,
				Routes: map[string]wsconn.Handler{"/echo": handler.Echo{}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = srv.Shutdown(context.Background()) }()
			got := make(chan string, 1)
			c, err := client.Dial(context.Background(), "ws://"+srv.Addr().String()+"/echo", client.Options{Compression: true,
				OnMessage: func(_ *client.Conn, _ client.MessageType, p []byte) { got <- string(p) },
				OnClose:   func(_ *client.Conn, e client.CloseEvent) { got <- fmt.Sprintf("closed: %+v", e) }})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(1000, "")
			if c.Compressed() != serverOn {
				t.Fatalf("Compressed() = %v, want %v", c.Compressed(), serverOn)
			}
			msg := strings.Repeat("a compressible line of chat text. ", 300)
			for range 3 { // no context takeover: each message on its own
				_ = c.Send([]byte(msg))
				if m := <-got; m != msg {
					t.Fatalf("echo of %d bytes: got %d: %.200s", len(msg), len(m), m)
				}
			}
		})
	}
}
