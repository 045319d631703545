package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wsclient "github.com/wsgate/wsgate/client"
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
// publishWhenStored sends msg, a publish, on c and returns the answer,
// sending it again while the answer is that the history store is not
// reachable yet: a process takes clients before its JetStream stream is
// ready (its /readyz says not ready until then), and the protocol tells
// the client to retry; nothing was published meanwhile.
func publishWhenStored(t *testing.T, c *client, msg string) string {
	t.Helper()
	var reply string
	eventually(t, 10*time.Second, "history store reachable", func() bool {
		c.send(t, msg)
		reply = c.next(10 * time.Second)
		return !strings.Contains(reply, `"code":"unavailable"`)
	})
	return reply
}

func TestWorkersHistory(t *testing.T) {
	addr, _ := startGate(t, "-workers", "2")
	cs := onWorkers(t, addr, "/ws", "0", "1")
	subscribe(t, cs["1"], "room")
	offset, epoch := ackPosition(t, publishWhenStored(t, cs["0"], `{"op":"publish","channel":"room","data":"hello","id":1}`))
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

// buildNATSServer builds the nats-server of go.mod once: the external
// NATS of the multi-node tests, a process of its own as in production.
var buildNATSServer = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "wsgate-nats")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	return bin, nil
})

// startNATSServer runs nats-server with JetStream on a free port and
// returns its URL; it is stopped when the test ends.
func startNATSServer(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a nats-server process")
	}
	bin, err := buildNATSServer()
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", port, "-sd", t.TempDir()) // its log (stderr) is dropped
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	eventually(t, 10*time.Second, "nats-server listening", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "nats://127.0.0.1:" + port
}

// TestNodesOnExternalNATS: two nodes on an external nats-server with
// JetStream. A client on node 1 sees a publication made on node 2 with
// the same offset; node 1 is killed (SIGKILL) and node 2 goes on
// publishing, acking each one; the client comes back on node 2 and
// recovers every acked publication once, in order, then the live ones.
// Presence on node 2 lists node 1's subscriber until the kill, and not
// after it.
func TestNodesOnExternalNATS(t *testing.T) {
	url := startNATSServer(t)
	addr1 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	addr2 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	node1, _ := startGateAt(t, addr1, "-nats", url)
	startGateAt(t, addr2, "-nats", url)
	sub, pub := dial(t, addr1, "/ws"), dial(t, addr2, "/ws")
	subscribe(t, sub, "room")
	offset, epoch := ackPosition(t, publishWhenStored(t, pub, `{"op":"publish","channel":"room","data":"first","id":0}`))
	if got, want := sub.next(10*time.Second), fmt.Sprintf(`{"channel":"room","offset":%d,"data":"first"}`, offset); got != want {
		t.Fatalf("node 1 got %q, want %q", got, want)
	}
	pub.send(t, `{"op":"presence_stats","channel":"room","id":"p1"}`)
	if got := pub.next(10 * time.Second); got != `{"op":"ack","id":"p1","clients":1,"users":0}` {
		t.Fatalf("presence on node 2 of node 1's subscriber: %q", got)
	}
	if err := node1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = node1.Process.Wait()
	// Gone with its process: node 1 answers no more.
	pub.send(t, `{"op":"presence_stats","channel":"room","id":"p2"}`)
	if got := pub.next(10 * time.Second); got != `{"op":"ack","id":"p2","clients":0,"users":0}` {
		t.Fatalf("presence after node 1 was killed: %q", got)
	}
	var acked []uint64
	for i := range 30 {
		pub.send(t, fmt.Sprintf(`{"op":"publish","channel":"room","data":%d,"id":%d}`, i, i+1))
		o, _ := ackPosition(t, pub.next(10*time.Second))
		acked = append(acked, o)
	}
	back := dial(t, addr2, "/ws")
	back.send(t, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":"r","recover":{"offset":%d,"epoch":"%s"}}`, offset, epoch))
	if got, want := back.next(10*time.Second), fmt.Sprintf(`{"op":"ack","id":"r","offset":%d,"epoch":"%s","recovered":true}`, acked[29], epoch); got != want {
		t.Fatalf("recovering on node 2: got %q, want %q", got, want)
	}
	for i, o := range acked {
		if got, want := back.next(10*time.Second), fmt.Sprintf(`{"channel":"room","offset":%d,"data":%d}`, o, i); got != want {
			t.Fatalf("replay %d: got %q, want %q", i, got, want)
		}
	}
	pub.send(t, `{"op":"publish","channel":"room","data":"live","id":99}`)
	for {
		m := back.next(10 * time.Second)
		if m == "" {
			t.Fatal("no live publication after the recovery")
		}
		if strings.Contains(m, `"data":"live"`) {
			break
		}
		t.Fatalf("after the replay: got %q, want the live publication", m)
	}
}

// TestClientThroughKill: the Go client on node 1 of two (external
// nats-server); node 1 is SIGKILLed while a publisher keeps publishing
// through node 2, and started again; the client reconnects by itself and
// ends with every acknowledged publication once and in order.
func TestClientThroughKill(t *testing.T) {
	url := startNATSServer(t)
	addr1 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	addr2 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	node1, _ := startGateAt(t, addr1, "-nats", url)
	startGateAt(t, addr2, "-nats", url)
	var mu sync.Mutex
	var got []uint64
	var unrecovered []string
	c := wsclient.NewClient("ws://"+addr1+"/ws", wsclient.ClientOptions{Options: wsclient.Options{
		Reconnect: &wsclient.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}}})
	defer c.Close()
	c.Subscribe("room", func(p wsclient.Publication) { mu.Lock(); got = append(got, p.Offset); mu.Unlock() },
		wsclient.SubscribeOptions{OnUnrecovered: func(r string) { mu.Lock(); unrecovered = append(unrecovered, r); mu.Unlock() }})
	pub := wsclient.NewClient("ws://"+addr2+"/ws", wsclient.ClientOptions{})
	defer pub.Close()
	ctx := context.Background()
	var acked []uint64
	eventually(t, 10*time.Second, "the publisher connected", pub.Conn().Connected)
	publish := func(i int) {
		t.Helper()
		p, err := pub.Publish(ctx, "room", i)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		acked = append(acked, p.Offset)
	}
	publish(0)
	eventually(t, 10*time.Second, "the first publication", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	if err := node1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = node1.Process.Wait()
	for i := 1; i <= 30; i++ {
		publish(i)
	}
	startGateAt(t, addr1, "-nats", url)
	for i := 31; i <= 40; i++ {
		publish(i)
	}
	eventually(t, 20*time.Second, "every acknowledged publication", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(acked)
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(acked) || len(unrecovered) != 0 {
		t.Fatalf("got offsets %v (unrecovered %v), want the acknowledged %v, once and in order", got, unrecovered, acked)
	}
}

// TestJSClientInNode runs the JavaScript client's tests (web/wsgate.test.mjs,
// Node's test runner, the ws package) against the real binary.
func TestJSClientInNode(t *testing.T) {
	wsModule, err := filepath.Abs(filepath.Join("..", "wsconn", "testdata", "interop", "node", "node_modules", "ws", "wrapper.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(wsModule); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Node's ws is not installed: run scripts/deps.sh")
		}
		t.Skip("Node's ws is not installed: run scripts/deps.sh")
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startGateAt(t, addr)
	const secret = "a test secret of at least thirty-two bytes"
	authAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startGateAt(t, authAddr, "-jwt-secret", secret) // tokens checked: closes with 1008 at their expiry
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "wsgate.test.mjs")
	cmd.Dir = "web"
	cmd.Env = append(os.Environ(), "WSGATE_URL=ws://"+addr+"/ws", "WS_MODULE="+wsModule,
		"WSGATE_AUTH_URL=ws://"+authAddr+"/ws", "WSGATE_JWT_SECRET="+secret)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("the JavaScript client's tests failed: %v", err)
	}
}
