package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// jsNode is one wsgate process whose channels keep their history in
// JetStream.
type jsNode struct {
	ch *handler.Channels
	b  *NATS
}

// newJSNode joins a node to the NATS server at url: every channel keeps
// size publications, "live." channels none.
func newJSNode(t testing.TB, url string, size int) *jsNode {
	t.Helper()
	ch, err := handler.NewChannels(handler.ChannelsConfig{Rules: []handler.ChannelRule{
		{ChannelOptions: handler.ChannelOptions{HistorySize: size, HistoryTTL: time.Hour, Presence: true, JoinLeave: true}},
		{Prefix: "live."},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNATS(Config{URLs: []string{url}, ReconnectWait: 50 * time.Millisecond, RequestTimeout: 2 * time.Second,
		Histories:     []HistoryRule{{Size: size, TTL: time.Hour}, {Prefix: "live."}},
		DeliverStored: ch.DeliverStored, LocalPresence: ch.LocalPresence}, ch.DeliverRemote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ch.SetBroker(b)
	eventually(t, 10*time.Second, "the history stream", func() bool { return b.Epoch("x") != "" })
	return &jsNode{ch: ch, b: b}
}

// send serves one request of c.
func (n *jsNode) send(c *recConn, req string) { n.ch.OnMessage(c, wsconn.Text, []byte(req)) }

// waitLog waits until c got n messages, and returns them and forgets them.
func waitLog(t *testing.T, c *recConn, n int) []string {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d messages", n), func() bool { return len(c.pushes()) >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	if len(got) != n {
		t.Fatalf("got %d messages, want %d: %q", len(got), n, got)
	}
	return got
}

// TestJetStreamStore: the broker's store methods on a real JetStream:
// offsets shared by all channels, fetch after an offset with bounds,
// the last position, and the republished copies with their predecessor.
func TestJetStreamStore(t *testing.T) {
	e := startNATS(t, 0)
	defer e.Shutdown()
	n := newJSNode(t, e.URL(), 3)
	ctx := context.Background()
	if n.b.Stored("live.x") || !n.b.Stored("room") {
		t.Fatal("Stored: want live.* off, the rest on")
	}
	if _, err := n.b.PublishStored(ctx, "live.x", []byte("1")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publishing to a channel without history: got %v", err)
	}
	var offs []uint64
	for i := range 5 {
		p, err := n.b.PublishStored(ctx, "room", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.b.PublishStored(ctx, "other", []byte("0")); err != nil {
			t.Fatal(err)
		}
		if p.Epoch != n.b.Epoch("room") || len(offs) > 0 && p.Offset != offs[len(offs)-1]+2 {
			t.Fatalf("publication %d: got %+v after %v", i, p, offs)
		}
		offs = append(offs, p.Offset)
	}
	msgs, epoch, more, err := n.b.Fetch(ctx, "room", 0, 10, 1<<20)
	if err != nil || epoch != n.b.Epoch("room") || more || len(msgs) != 3 || msgs[0].Offset != offs[2] || string(msgs[2].Data) != "4" {
		t.Fatalf("fetch all: %+v %q %v %v; want the last 3 (size 3)", msgs, epoch, more, err)
	}
	msgs, _, more, err = n.b.Fetch(ctx, "room", offs[2], 1, 1<<20)
	if err != nil || !more || len(msgs) != 1 || msgs[0].Offset != offs[3] {
		t.Fatalf("fetch one after the third: %+v %v %v", msgs, more, err)
	}
	if msgs, _, more, err = n.b.Fetch(ctx, "room", offs[4], 10, 1<<20); err != nil || more || len(msgs) != 0 {
		t.Fatalf("fetch after the last: %+v %v %v", msgs, more, err)
	}
	if msgs, _, _, err = n.b.Fetch(ctx, "nothing", 0, 10, 1<<20); err != nil || len(msgs) != 0 {
		t.Fatalf("fetch of an empty channel: %+v %v", msgs, err)
	}
	if p, err := n.b.Last(ctx, "room"); err != nil || p.Offset != offs[4] {
		t.Fatalf("last: %+v %v", p, err)
	}
	if p, err := n.b.Last(ctx, "nothing"); err != nil || p.Offset != 0 || p.Epoch == "" {
		t.Fatalf("last of an empty channel: %+v %v", p, err)
	}

	// Republished copies, in order, each with its predecessor.
	type got struct{ gen, offset, prev uint64 }
	var mu sync.Mutex
	var seen []got
	n.b.cfg.DeliverStored = func(channel string, gen, offset, prev uint64, epoch string, data []byte) {
		mu.Lock()
		seen = append(seen, got{gen, offset, prev})
		mu.Unlock()
	}
	gen, err := n.b.Acquire(ctx, "room")
	if err != nil || gen == 0 || n.b.Generation("room") != gen {
		t.Fatalf("acquire: %d %v", gen, err)
	}
	var last = offs[4]
	var want []got
	for i := range 3 {
		p, err := n.b.PublishStored(ctx, "room", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got{gen, p.Offset, last})
		last = p.Offset
	}
	eventually(t, 5*time.Second, "three copies", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 3 })
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("copies: got %v, want %v", seen, want)
	}
	n.b.Release("room")
	if n.b.Generation("room") != 0 {
		t.Error("released, still subscribed")
	}
}

// TestJetStreamAcrossNodes: a publication acked on one node reaches the
// subscribers of every node with the same offset, and a client that
// comes back on another node recovers what it missed, in order, then
// gets the live ones: nothing lost, nothing doubled.
func TestJetStreamAcrossNodes(t *testing.T) {
	e := startNATS(t, 0)
	defer e.Shutdown()
	a, b := newJSNode(t, e.URL(), 1000), newJSNode(t, e.URL(), 1000)
	subA := &recConn{id: 1, acks: true}
	a.send(subA, `{"op":"subscribe","channel":"room","id":1}`)
	if got := waitLog(t, subA, 1)[0]; !strings.HasPrefix(got, `{"op":"ack","id":1,"offset":0,"epoch":"`) {
		t.Fatalf("subscribe: %s", got)
	}
	pub := &recConn{id: 2, acks: true}
	b.send(pub, `{"op":"publish","channel":"room","id":7,"data":"hi"}`)
	ack := waitLog(t, pub, 1)[0]
	var p struct {
		Offset uint64
		Epoch  string
	}
	if err := json.Unmarshal([]byte(ack), &p); err != nil || p.Offset == 0 || !strings.HasPrefix(ack, `{"op":"ack","id":7,"offset":`) {
		t.Fatalf("publish ack: %s", ack)
	}
	if got, want := waitLog(t, subA, 1)[0], fmt.Sprintf(`{"channel":"room","offset":%d,"data":"hi"}`, p.Offset); got != want {
		t.Fatalf("on the other node: got %s, want %s", got, want)
	}

	// The client drops; 50 publications on b; it comes back on b.
	a.ch.OnClose(subA, 1006, "")
	var last uint64
	for i := range 50 {
		r, err := b.ch.PublishWithPosition("room", json.RawMessage(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Position.Offset
	}
	back := &recConn{id: 3, acks: true}
	b.send(back, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":2,"recover":{"offset":%d,"epoch":"%s"}}`, p.Offset, p.Epoch))
	got := waitLog(t, back, 51)
	if want := fmt.Sprintf(`{"op":"ack","id":2,"offset":%d,"epoch":"%s","recovered":true}`, last, p.Epoch); got[0] != want {
		t.Fatalf("recovering ack: got %s, want %s", got[0], want)
	}
	for i, m := range got[1:] {
		if !strings.HasSuffix(m, fmt.Sprintf(`"data":%d}`, i)) {
			t.Fatalf("replay %d: %s", i, m)
		}
	}
	live, err := a.ch.PublishWithPosition("room", json.RawMessage(`"live"`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := waitLog(t, back, 1)[0], fmt.Sprintf(`{"channel":"room","offset":%d,"data":"live"}`, live.Position.Offset); got != want {
		t.Fatalf("live after the recovery: got %s, want %s", got, want)
	}
	// History through either node.
	pos, pushes, err := a.ch.History("room", nil, 3)
	if err != nil || pos.Offset != live.Position.Offset || len(pushes) != 3 {
		t.Fatalf("history on a: %+v %d %v", pos, len(pushes), err)
	}
	b.ch.OnClose(back, 1000, "")
}

// TestJetStreamDown: with NATS gone nothing is acked: the publish op and
// the API answer unavailable, and the subscribe of a stored channel too.
func TestJetStreamDown(t *testing.T) {
	e := startNATS(t, 0)
	n := newJSNode(t, e.URL(), 10)
	e.Shutdown()
	eventually(t, 5*time.Second, "disconnected", func() bool { return !n.b.Connected() })
	c := &recConn{id: 1, acks: true}
	n.send(c, `{"op":"publish","channel":"room","id":1,"data":1}`)
	if got := waitLog(t, c, 1)[0]; !strings.HasPrefix(got, `{"op":"error","id":1,"code":"unavailable"`) {
		t.Fatalf("publish with NATS down: %s", got)
	}
	if _, err := n.ch.PublishWithPosition("room", json.RawMessage("1")); !errors.Is(err, handler.ErrUnavailable) {
		t.Fatalf("PublishWithPosition with NATS down: %v", err)
	}
	n.send(c, `{"op":"subscribe","channel":"room","id":2}`)
	if got := waitLog(t, c, 1)[0]; !strings.HasPrefix(got, `{"op":"error","id":2,"code":"unavailable"`) {
		t.Fatalf("subscribe with NATS down: %s", got)
	}
	if n.ch.Subscribers("room") != 0 {
		t.Fatal("subscribed with NATS down")
	}
}

// TestPresenceAcrossNodes: presence on one node lists the subscribers of
// every node, a node that is gone drops out of the answer at once, and a
// join on one node reaches a listener on another.
func TestPresenceAcrossNodes(t *testing.T) {
	e := startNATS(t, 0)
	defer e.Shutdown()
	a, b := newJSNode(t, e.URL(), 10), newJSNode(t, e.URL(), 10)
	onA := &recConn{id: 1, acks: true}
	a.send(onA, `{"op":"subscribe","channel":"room","id":1,"join_leave":true}`)
	waitLog(t, onA, 2) // the ack and its own join
	onB := &recConn{id: 2, acks: true}
	b.send(onB, `{"op":"subscribe","channel":"room","id":1}`)
	waitLog(t, onB, 1)
	if got := waitLog(t, onA, 1)[0]; !strings.HasPrefix(got, `{"channel":"room","join":{"client":"`) || !strings.HasSuffix(got, `-2"}}`) {
		t.Fatalf("the join on b, seen on a: %s", got)
	}
	a.send(onA, `{"op":"presence_stats","channel":"room","id":2}`)
	if got := waitLog(t, onA, 1)[0]; got != `{"op":"ack","id":2,"clients":2,"users":0}` {
		t.Fatalf("presence_stats on a: %s", got)
	}
	a.send(onA, `{"op":"presence","channel":"room","id":3}`)
	if got := waitLog(t, onA, 1)[0]; strings.Count(got, `"client"`) != 2 {
		t.Fatalf("presence on a: %s, want both nodes' clients", got)
	}
	_ = b.b.Close() // node b is gone
	a.send(onA, `{"op":"presence_stats","channel":"room","id":4}`)
	if got := waitLog(t, onA, 1)[0]; got != `{"op":"ack","id":4,"clients":1,"users":0}` {
		t.Fatalf("presence_stats with b gone: %s", got)
	}
	a.ch.OnClose(onA, 1000, "")
	b.ch.OnClose(onB, 1000, "")
}
