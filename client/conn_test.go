package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"
)

// IgnoreCurrent: the poller the external tests import starts ants's pool goroutines at init.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }

// events records a Conn's events, in order.
type events struct {
	mu   sync.Mutex
	list []string
	msgs []string
	last CloseEvent
	errs []error
}

func (e *events) options(o Options) Options {
	o.OnOpen = func(*Conn) { e.add("open") }
	o.OnMessage = func(_ *Conn, _ MessageType, p []byte) {
		e.mu.Lock()
		e.msgs = append(e.msgs, string(p))
		e.mu.Unlock()
	}
	o.OnClose = func(_ *Conn, ce CloseEvent) {
		e.mu.Lock()
		e.last = ce
		e.mu.Unlock()
		e.add("close")
	}
	o.OnError = func(_ *Conn, err error) {
		e.mu.Lock()
		e.errs = append(e.errs, err)
		e.mu.Unlock()
	}
	o.OnReconnecting = func(*Conn, ReconnectEvent) { e.add("reconnecting") }
	return o
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
}

func (e *events) count(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, x := range e.list {
		if x == s {
			n++
		}
	}
	return n
}

func (e *events) closeEvent() CloseEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeServer accepts on 127.0.0.1:0 and runs serve on each connection,
// until the test ends.
func fakeServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, nc := range open {
			_ = nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				serve(nc)
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/"
}

// upgrade answers the handshake, and returns false if it failed.
func upgrade(nc net.Conn) bool {
	_, err := ws.Upgrade(nc)
	return err == nil
}

// echo is a well-behaved server: echoes data, answers pings and closes.
func echo(nc net.Conn) {
	if !upgrade(nc) {
		return
	}
	for {
		msg, op, err := wsutil.ReadClientData(nc)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(nc, op, msg); err != nil {
			return
		}
	}
}

func TestDialSendClose(t *testing.T) {
	url := fakeServer(t, echo)
	var ev events
	c, err := Dial(context.Background(), url, ev.options(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Connected() {
		t.Fatal("not connected after Dial")
	}
	if err := c.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendBinary([]byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the echoes", func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.msgs) == 2 })
	if err := c.Close(1000, "bye"); err != nil {
		t.Fatal(err)
	}
	if e := ev.closeEvent(); e.Code != 1000 || !e.ByServer || !e.Final {
		t.Fatalf("close event %+v, want 1000 from the server, final", e)
	}
	if err := c.Send([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
}

// TestMisbehavingServers: each way a server can fail a client ends in
// the documented event within its timeout.
func TestMisbehavingServers(t *testing.T) {
	tests := []struct {
		name     string
		serve    func(net.Conn)
		opts     Options
		dialErr  bool
		wantCode int
		wantErr  error
		final    bool
	}{
		{name: "never answers the handshake", serve: func(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) },
			opts: Options{HandshakeTimeout: 200 * time.Millisecond}, dialErr: true},
		{name: "refuses with 401", serve: func(nc net.Conn) {
			_, _ = bufio.NewReader(nc).ReadString('\n')
			_, _ = nc.Write([]byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"))
		}, dialErr: true},
		{name: "never pongs", serve: func(nc net.Conn) {
			if upgrade(nc) {
				_, _ = io.Copy(io.Discard, nc) // reads, never answers
			}
		}, opts: Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}, wantCode: 1006, wantErr: ErrPongTimeout, final: true},
		{name: "stalls mid-frame", serve: func(nc net.Conn) {
			if upgrade(nc) {
				_, _ = nc.Write([]byte{0x81, 10, 'h', 'a'}) // 10 bytes announced, 2 sent
				_, _ = io.Copy(io.Discard, nc)
			}
		}, opts: Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}, wantCode: 1006, wantErr: ErrPongTimeout, final: true},
		{name: "closes without a close frame", serve: func(nc net.Conn) { upgrade(nc) }, wantCode: 1006, final: true},
		{name: "closes with 1008", serve: func(nc net.Conn) {
			if upgrade(nc) {
				_ = wsutil.WriteServerMessage(nc, ws.OpClose, ws.NewCloseFrameBody(1008, "token expired"))
				_, _, _ = wsutil.ReadClientData(nc)
			}
		}, opts: Options{Reconnect: &Backoff{Min: time.Millisecond}}, wantCode: 1008, final: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeServer(t, tt.serve)
			var ev events
			start := time.Now()
			c, err := Dial(context.Background(), url, ev.options(tt.opts))
			if tt.dialErr {
				if err == nil {
					_ = c.Close(1000, "")
					t.Fatal("Dial succeeded")
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("Dial took %v", time.Since(start))
				}
				var he *HandshakeError
				if strings.Contains(tt.name, "401") && (!errors.As(err, &he) || he.Status != http.StatusUnauthorized || !Final(he.Status)) {
					t.Fatalf("got %v, want a final HandshakeError 401", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the close event", func() bool { return ev.count("close") == 1 })
			e := ev.closeEvent()
			if e.Code != tt.wantCode || e.Final != tt.final || tt.wantErr != nil && !errors.Is(e.Err, tt.wantErr) {
				t.Fatalf("close event %+v, want code %d, final %v, error %v", e, tt.wantCode, tt.final, tt.wantErr)
			}
			if ev.count("reconnecting") != 0 {
				t.Fatal("reconnected after a final close")
			}
			_ = c.Close(1000, "")
		})
	}
}

// TestReconnect: a Conn with Reconnect comes back after the server drops
// it, announcing each attempt; sends made while down are queued with
// QueueWhileDown and written on the next connection; after MaxAttempts
// failures in a row it gives up with a final close.
func TestReconnect(t *testing.T) {
	var mu sync.Mutex
	drops := 1 // the first connection is dropped at once
	url := fakeServer(t, func(nc net.Conn) {
		mu.Lock()
		drop := drops > 0
		drops--
		mu.Unlock()
		if drop {
			upgrade(nc)
			return
		}
		echo(nc)
	})
	var ev events
	c := Connect(url, ev.options(Options{Reconnect: &Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond}, QueueWhileDown: true}))
	waitFor(t, "the second open", func() bool { return ev.count("open") == 2 })
	if ev.count("reconnecting") < 1 || ev.count("close") != 1 {
		t.Fatalf("events %v", ev.list)
	}
	if err := c.Send([]byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the echo", func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.msgs) == 1 })
	_ = c.Close(1000, "")

	// Nobody listens: MaxAttempts failures, then a final close.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	var ev2 events
	c2 := Connect("ws://"+addr+"/", ev2.options(Options{Reconnect: &Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3}}))
	waitFor(t, "giving up", func() bool { return ev2.count("close") == 1 })
	if e := ev2.closeEvent(); !e.Final || ev2.count("reconnecting") != 2 {
		t.Fatalf("got %+v after %d reconnect announcements, want final after 2", e, ev2.count("reconnecting"))
	}
	_ = c2.Close(1000, "")
}
