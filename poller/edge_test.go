//go:build linux

package poller

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// edgeHandler serves an edge-triggered Desc with a behaviour chosen by
// each test, recording the events and the bytes it read.
type edgeHandler struct {
	d     *Desc
	mu    sync.Mutex
	evs   []Event
	read  []byte
	serve func(h *edgeHandler, ev Event)
}

func (h *edgeHandler) HandleEvents(ev Event) {
	h.mu.Lock()
	h.evs = append(h.evs, ev)
	h.mu.Unlock()
	h.serve(h, ev)
}

// readUpTo reads at most n bytes (n < 0: until the socket would block) and
// reports whether the socket still had some.
func (h *edgeHandler) readUpTo(n int) (more bool) {
	buf := make([]byte, 64)
	for got := 0; n < 0 || got < n; {
		m := len(buf)
		if n >= 0 {
			m = min(m, n-got)
		}
		k, err := h.d.Read(buf[:m])
		if err != nil || k == 0 {
			return false
		}
		h.mu.Lock()
		h.read = append(h.read, buf[:k]...)
		h.mu.Unlock()
		got += k
	}
	return true
}

func (h *edgeHandler) snapshot() ([]Event, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.evs...), string(h.read)
}

func addEdge(t *testing.T, p *Poller, serve func(*edgeHandler, Event)) (*edgeHandler, int) {
	t.Helper()
	a, b := socketPair(t)
	t.Cleanup(func() { _ = unix.Close(b) })
	h := &edgeHandler{d: &Desc{}, serve: serve}
	if err := p.AddEdge(h.d, a, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.d.Close() })
	return h, b
}

func TestEdgeTriggered(t *testing.T) {
	p := newPoller(t, Config{Workers: 2})

	t.Run("each arrival is an event with no re-arm", func(t *testing.T) {
		h, peer := addEdge(t, p, func(h *edgeHandler, ev Event) { h.readUpTo(-1) })
		for i, msg := range []string{"a", "b", "c"} {
			if _, err := unix.Write(peer, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			want := "abc"[:i+1]
			eventually(t, 5*time.Second, "read "+want, func() bool { _, got := h.snapshot(); return got == want })
		}
	})

	t.Run("ReadAgain runs the handler again for input already waiting", func(t *testing.T) {
		h, peer := addEdge(t, p, func(h *edgeHandler, ev Event) {
			if h.readUpTo(1) { // one byte a run, like a run out of budget
				h.d.ReadAgain()
			}
		})
		if _, err := unix.Write(peer, []byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "all ten bytes, with no further input", func() bool {
			_, got := h.snapshot()
			return got == "0123456789"
		})
		evs, _ := h.snapshot()
		for _, ev := range evs[1:] {
			if ev&(EventRead|EventReadAll) != EventRead|EventReadAll {
				t.Fatalf("a run after ReadAgain got %b, want EventRead|EventReadAll", ev)
			}
		}
	})

	t.Run("a hang-up behind data says read it all", func(t *testing.T) {
		h, peer := addEdge(t, p, func(h *edgeHandler, ev Event) {})
		if _, err := unix.Write(peer, []byte("last words")); err != nil {
			t.Fatal(err)
		}
		_ = unix.Shutdown(peer, unix.SHUT_WR)
		eventually(t, 5*time.Second, "EventReadAll", func() bool {
			evs, _ := h.snapshot()
			var all Event
			for _, ev := range evs {
				all |= ev
			}
			return all&(EventRead|EventReadAll) == EventRead|EventReadAll
		})
	})

	t.Run("Rearm(true) adds writability once the socket has room", func(t *testing.T) {
		h, peer := addEdge(t, p, func(h *edgeHandler, ev Event) {})
		chunk := make([]byte, 64<<10)
		for {
			if _, err := h.d.Write(chunk); err != nil {
				if !IsWouldBlock(err) {
					t.Fatal(err)
				}
				break
			}
		}
		if err := h.d.Rearm(true); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		eventually(t, 5*time.Second, "EventWrite after the peer read", func() bool {
			_, _ = unix.Read(peer, buf)
			evs, _ := h.snapshot()
			for _, ev := range evs {
				if ev&EventWrite != 0 {
					return true
				}
			}
			return false
		})
		if err := h.d.Rearm(false); err != nil {
			t.Fatalf("Rearm(false) on an edge-triggered Desc: %v", err)
		}
	})
}
