package broker

import (
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// recConn is a wsconn.Conn that records pushes.
type recConn struct {
	id   uint64
	acks bool // record Send too (acks, errors, replays), in order with the pushes
	// full, if set, is closed once fullAt messages are recorded.
	full   chan struct{}
	fullAt int
	mu     sync.Mutex
	got    []string
	value  any
}

func (c *recConn) ID() uint64                 { return c.id }
func (c *recConn) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }
func (c *recConn) Path() string               { return "/ws" }
func (c *recConn) Query() string              { return "" }
func (c *recConn) Subprotocol() string        { return "" }
func (c *recConn) Send(_ wsconn.MessageType, p []byte) error {
	if c.acks {
		c.mu.Lock()
		c.got = append(c.got, string(p))
		c.checkFull()
		c.mu.Unlock()
	}
	return nil
}
func (c *recConn) SendPrepared(m *wsconn.PreparedMessage) error {
	f := m.Frame()
	c.mu.Lock()
	n := 2 // header of a small frame
	if f[1]&0x7f == 126 {
		n = 4
	}
	c.got = append(c.got, string(f[n:]))
	c.checkFull()
	c.mu.Unlock()
	return nil
}
func (c *recConn) Close(wsconn.StatusCode, string) error { return nil }
func (c *recConn) Principal() any                        { return nil }
func (c *recConn) SetPrincipal(any, time.Time)           {}
func (c *recConn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}
func (c *recConn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// checkFull closes full when fullAt messages are in. c.mu is held.
func (c *recConn) checkFull() {
	if c.full != nil && len(c.got) == c.fullAt {
		close(c.full)
	}
}

func (c *recConn) pushes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// node is one wsgate process's hub joined to NATS.
type node struct {
	ch *handler.Channels
	b  *NATS
}

func newNode(t *testing.T, natsURL string) *node {
	t.Helper()
	ch, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNATS(Config{URLs: []string{natsURL}, ReconnectWait: 50 * time.Millisecond}, ch.DeliverRemote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ch.SetBroker(b)
	eventually(t, 5*time.Second, "connected to NATS", b.Connected)
	return &node{ch: ch, b: b}
}

func (n *node) subscribe(c *recConn, channel string) {
	n.ch.OnMessage(c, wsconn.Text, []byte(`{"op":"subscribe","channel":"`+channel+`"}`))
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startNATS(t testing.TB, port int) *Embedded {
	t.Helper()
	e, err := StartEmbedded("127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPublishReachesOtherProcessOnce: a publish on one node reaches a
// subscriber on another exactly once, and the publishing node's own
// subscriber exactly once too (no echo back through NATS).
func TestPublishReachesOtherProcessOnce(t *testing.T) {
	e := startNATS(t, 0)
	defer e.Shutdown()
	a, b := newNode(t, e.URL()), newNode(t, e.URL())
	subA, subB := &recConn{id: 1}, &recConn{id: 2}
	a.subscribe(subA, "room:1")
	b.subscribe(subB, "room:1")
	eventually(t, 2*time.Second, "b subscribed on NATS", func() bool { return b.b.Stats().Subjects == 1 })
	if err := b.b.nc.Flush(); err != nil { // the SUB has reached the server
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if n, err := a.ch.Publish("room:1", []byte(strconv.Itoa(i))); err != nil || n != 1 {
			t.Fatalf("Publish = %d, %v; want 1 local delivery", n, err)
		}
	}
	want := []string{`{"channel":"room:1","data":1}`, `{"channel":"room:1","data":2}`, `{"channel":"room:1","data":3}`}
	eventually(t, 5*time.Second, "b got 3 pushes", func() bool { return len(subB.pushes()) == 3 })
	time.Sleep(50 * time.Millisecond) // a duplicate would arrive by now
	for name, got := range map[string][]string{"other node": subB.pushes(), "own node": subA.pushes()} {
		if len(got) != 3 {
			t.Fatalf("%s: got %d pushes %q, want each of 3 exactly once", name, len(got), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: push %d = %s, want %s (in order)", name, i, got[i], want[i])
			}
		}
	}
}

// TestInterestFollowsLocalSubscribers: a node subscribes to a channel's
// subject only while it has a local subscriber on it.
func TestInterestFollowsLocalSubscribers(t *testing.T) {
	e := startNATS(t, 0)
	defer e.Shutdown()
	n := newNode(t, e.URL())
	c := &recConn{id: 1}
	n.subscribe(c, "a")
	n.subscribe(c, "b")
	if got := n.b.Stats().Subjects; got != 2 {
		t.Fatalf("subjects = %d, want 2", got)
	}
	n.ch.OnMessage(c, wsconn.Text, []byte(`{"op":"unsubscribe","channel":"a"}`))
	if got := n.b.Stats().Subjects; got != 1 {
		t.Fatalf("after unsubscribe: subjects = %d, want 1", got)
	}
	n.ch.OnClose(c, wsconn.StatusNormalClosure, "")
	if got := n.b.Stats().Subjects; got != 0 {
		t.Fatalf("after close: subjects = %d, want 0", got)
	}
}

// TestBrokerDownAndBack: with NATS stopped, local delivery goes on and the
// failed cross-process publishes are counted; once NATS is back on the same
// address, delivery across nodes resumes by itself.
func TestBrokerDownAndBack(t *testing.T) {
	e := startNATS(t, 0)
	u, _ := url.Parse(e.URL())
	port, _ := strconv.Atoi(u.Port())
	a, b := newNode(t, e.URL()), newNode(t, e.URL())
	subA, subB := &recConn{id: 1}, &recConn{id: 2}
	a.subscribe(subA, "x")
	b.subscribe(subB, "x")
	_ = b.b.nc.Flush()

	e.Shutdown()
	eventually(t, 5*time.Second, "a sees NATS down", func() bool { return !a.b.Connected() })
	if n, err := a.ch.Publish("x", []byte(`"while down"`)); err != nil || n != 1 {
		t.Fatalf("Publish while down = %d, %v; want local delivery", n, err)
	}
	if got := len(subA.pushes()); got != 1 {
		t.Fatalf("local subscriber got %d pushes while NATS was down, want 1", got)
	}
	if st := a.ch.Stats(); st.BrokerFailures != 1 {
		t.Fatalf("broker failures = %d, want 1", st.BrokerFailures)
	}

	e2 := startNATS(t, port)
	defer e2.Shutdown()
	eventually(t, 10*time.Second, "both reconnected", func() bool { return a.b.Connected() && b.b.Connected() })
	// The re-subscription travels with the reconnect; publish until it
	// lands (each attempt is a separate message, b must see at least one).
	eventually(t, 10*time.Second, "cross-node delivery resumed", func() bool {
		_, _ = a.ch.Publish("x", []byte(`"after"`))
		time.Sleep(20 * time.Millisecond)
		for _, p := range subB.pushes() {
			if p == `{"channel":"x","data":"after"}` {
				return true
			}
		}
		return false
	})
	for _, p := range subB.pushes() {
		if p == `{"channel":"x","data":"while down"}` {
			t.Fatal("a publish refused while NATS was down arrived later: it must not be held back and replayed")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{URLs: []string{"localhost:4222"}},
		{URLs: []string{"nats://x"}, Dispatchers: -1},
		{URLs: []string{"nats://x"}, SubjectPrefix: "a.*."},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", c)
		}
	}
}

func TestSubjectRoundTrip(t *testing.T) {
	b := &NATS{cfg: Config{}.withDefaults()}
	for _, ch := range []string{"a", "user:42", "a..b", ".", "x/y-z_@"} {
		s := b.subject(ch)
		got, ok := b.channelOf(s)
		if !ok || got != ch {
			t.Errorf("channel %q -> subject %q -> %q, %v", ch, s, got, ok)
		}
	}
}
