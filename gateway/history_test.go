package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ackPosition decodes the offset and epoch of an ack, failing the test
// on anything else.
func ackPosition(t *testing.T, m string) (uint64, string) {
	t.Helper()
	var a struct {
		Op     string
		Offset uint64
		Epoch  string
	}
	if err := json.Unmarshal([]byte(m), &a); err != nil || a.Op != "ack" || a.Epoch == "" {
		t.Fatalf("got %q, want an ack with a position", m)
	}
	return a.Offset, a.Epoch
}

// TestWorkersHistory: with -workers the histories are in the embedded
// NATS's JetStream: a publication acked on one worker reaches a
// subscriber on the other with the same offset, and a client that drops
// comes back on either worker and recovers what it missed, in order.
func TestWorkersHistory(t *testing.T) {
	addr, _ := startGate(t, "-workers", "2")
	cs := onWorkers(t, addr, "/ws", "0", "1")
	subscribe(t, cs["1"], "room")
	cs["0"].send(t, `{"op":"publish","channel":"room","data":"hello","id":1}`)
	offset, epoch := ackPosition(t, cs["0"].next(10*time.Second))
	if got, want := cs["1"].next(10*time.Second), fmt.Sprintf(`{"channel":"room","offset":%d,"data":"hello"}`, offset); got != want {
		t.Fatalf("on the other worker: got %q, want %q", got, want)
	}

	_ = cs["1"].c.CloseNow()
	var last uint64
	for i := range 20 {
		cs["0"].send(t, fmt.Sprintf(`{"op":"publish","channel":"room","data":%d,"id":%d}`, i, i+2))
		last, _ = ackPosition(t, cs["0"].next(10*time.Second))
	}
	for _, w := range []string{"0", "1"} {
		back := dialWorker(t, addr, w)
		back.send(t, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":"r","recover":{"offset":%d,"epoch":"%s"}}`, offset, epoch))
		if got, want := back.next(10*time.Second), fmt.Sprintf(`{"op":"ack","id":"r","offset":%d,"epoch":"%s","recovered":true}`, last, epoch); got != want {
			t.Fatalf("worker %s: recovering: got %q, want %q", w, got, want)
		}
		var prev uint64 = offset
		for i := range 20 {
			m := back.next(10 * time.Second)
			var p struct{ Offset uint64 }
			if err := json.Unmarshal([]byte(m), &p); err != nil || p.Offset <= prev || !strings.HasSuffix(m, fmt.Sprintf(`"data":%d}`, i)) {
				t.Fatalf("worker %s: replay %d: got %q after offset %d", w, i, m, prev)
			}
			prev = p.Offset
		}
		_ = back.c.CloseNow()
	}
}

// dialWorker dials until a connection lands on worker w.
func dialWorker(t *testing.T, addr, w string) *client {
	t.Helper()
	for range 200 {
		c := dial(t, addr, "/ws")
		if c.worker == w {
			return c
		}
		_ = c.c.CloseNow()
	}
	t.Fatalf("no connection landed on worker %q in 200 tries", w)
	return nil
}

// TestFileHistorySurvivesKill: one process with -history-store file keeps
// its histories in JetStream files: killed (SIGKILL) and started again on
// the same directory, it recovers a client from before, with the same
// epoch, including the publication acked just before the kill.
func TestFileHistorySurvivesKill(t *testing.T) {
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd, _ := startGateAt(t, addr, "-history-store", "file", "-history-dir", dir)
	pub := dial(t, addr, "/ws")
	subscribe(t, pub, "room")
	pub.send(t, `{"op":"publish","channel":"room","data":"first","id":1}`)
	var offset uint64
	var epoch string
	for offset == 0 { // the ack and the push, in either order
		if m := pub.next(10 * time.Second); strings.HasPrefix(m, `{"op":"ack"`) {
			offset, epoch = ackPosition(t, m)
		} else if m == "" {
			t.Fatal("no ack for the publish")
		}
	}
	pub.send(t, `{"op":"publish","channel":"room","data":"acked before the kill","id":2}`)
	var last uint64
	for last == 0 {
		if m := pub.next(10 * time.Second); strings.HasPrefix(m, `{"op":"ack","id":2`) {
			last, _ = ackPosition(t, m)
		} else if m == "" {
			t.Fatal("no ack for the second publish")
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()

	startGateAt(t, addr, "-history-store", "file", "-history-dir", dir)
	back := dial(t, addr, "/ws")
	back.send(t, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":"r","recover":{"offset":%d,"epoch":"%s"}}`, offset, epoch))
	if got, want := back.next(15*time.Second), fmt.Sprintf(`{"op":"ack","id":"r","offset":%d,"epoch":"%s","recovered":true}`, last, epoch); got != want {
		t.Fatalf("after the restart: got %q, want %q", got, want)
	}
	if got, want := back.next(10*time.Second), fmt.Sprintf(`{"channel":"room","offset":%d,"data":"acked before the kill"}`, last); got != want {
		t.Fatalf("replay: got %q, want %q", got, want)
	}
}
