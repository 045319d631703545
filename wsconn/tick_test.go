package wsconn

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// ticker is a TickHandler that counts its ticks.
type ticker struct {
	Base
	ticks atomic.Int64
}

func (t *ticker) OnTick(time.Time) { t.ticks.Add(1) }

// funcHandler is a Handler of a type Go cannot compare.
type funcHandler func()

func (funcHandler) OnOpen(Conn)                         {}
func (funcHandler) OnMessage(Conn, MessageType, []byte) {}
func (funcHandler) OnClose(Conn, StatusCode, string)    {}
func (funcHandler) OnError(Conn, error)                 {}
func (funcHandler) OnTick(time.Time)                    {}

// TestTickHandler: a TickHandler gets the sweeper's ticks, once per tick
// however many routes it serves; handlers that are not TickHandlers and
// handlers Go cannot compare are taken without a panic.
func TestTickHandler(t *testing.T) {
	shared, other := &ticker{}, &ticker{}
	cfg := Config{
		SweepInterval: 5 * time.Millisecond,
		Routes: map[string]Handler{"/a": shared, "/b": shared, "/c": other, "/echo": echoHandler{},
			"/f": funcHandler(func() {})},
	}
	srv := startServer(t, cfg)
	if got := len(srv.tickers); got != 3 {
		t.Fatalf("got %d tick handlers, want 3 (shared once, other, the func)", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for other.ticks.Load() < 3 || shared.ticks.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d and %d ticks, want 3 each", shared.ticks.Load(), other.ticks.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// The sweeper calls every handler once per tick, in one pass that a
	// shutdown does not cut: once it has stopped, the counts are equal.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if shared.ticks.Load() != other.ticks.Load() {
		t.Errorf("shared handler ticked %d times, the other %d: want once per tick each", shared.ticks.Load(), other.ticks.Load())
	}
}
