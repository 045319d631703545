package handler

import (
	"bytes"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/wsconn"
)

func TestMain(m *testing.M) {
	// ants, which package wsconn imports (through poller), starts a
	// default pool in its init; only goroutines started by the tests count.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// lastConnID numbers fake connections, which must have distinct IDs.
var lastConnID atomic.Uint64

// sentMsg is one message given to fakeConn.Send.
type sentMsg struct {
	typ  wsconn.MessageType
	data string
}

// fakeConn is a Conn that records what is sent to it. It is safe for
// concurrent use, as Conn requires.
type fakeConn struct {
	id    uint64
	query string // Query's answer
	// discard makes it count sends without recording them (benchmarks).
	discard bool
	// failWith, when set, is returned by SendPrepared instead of queueing.
	failWith atomic.Pointer[error]

	sends    atomic.Int64 // successful Send calls
	prepares atomic.Int64 // successful SendPrepared calls
	attempts atomic.Int64 // all SendPrepared calls

	mu        sync.Mutex
	value     any
	principal any
	expires   time.Time
	sent      []sentMsg                 // guarded by mu
	prepared  []*wsconn.PreparedMessage // guarded by mu
	all       []string                  // guarded by mu: every text sent either way, in order
}

// newFakeConn returns a fakeConn with a fresh ID.
func newFakeConn() *fakeConn {
	return &fakeConn{id: lastConnID.Add(1)}
}

// fail makes later SendPrepared calls return err (nil: succeed again).
func (c *fakeConn) fail(err error) {
	if err == nil {
		c.failWith.Store(nil)
		return
	}
	c.failWith.Store(&err)
}

func (c *fakeConn) ID() uint64                 { return c.id }
func (c *fakeConn) RemoteAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }
func (c *fakeConn) Path() string               { return "/ws" }
func (c *fakeConn) Query() string              { return c.query }
func (c *fakeConn) Subprotocol() string        { return "" }

func (c *fakeConn) Send(t wsconn.MessageType, p []byte) error {
	if t != wsconn.Text && t != wsconn.Binary {
		return wsconn.ErrInvalidMessage
	}
	c.sends.Add(1)
	if c.discard {
		return nil
	}
	c.mu.Lock()
	c.sent = append(c.sent, sentMsg{typ: t, data: string(p)})
	c.all = append(c.all, string(p))
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) SendPrepared(m *wsconn.PreparedMessage) error {
	c.attempts.Add(1)
	if errp := c.failWith.Load(); errp != nil {
		return *errp
	}
	if m == nil || m.Frame() == nil {
		return wsconn.ErrInvalidMessage
	}
	c.prepares.Add(1)
	if c.discard {
		return nil
	}
	c.mu.Lock()
	c.prepared = append(c.prepared, m)
	if r := bytes.NewReader(m.Frame()); true {
		if _, err := ws.ReadHeader(r); err == nil {
			p, _ := io.ReadAll(r)
			c.all = append(c.all, string(p))
		}
	}
	c.mu.Unlock()
	return nil
}

// log returns and forgets every text message sent, Send and SendPrepared
// alike, in the order sent.
func (c *fakeConn) log() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.all
	c.all = nil
	return out
}

func (c *fakeConn) Close(wsconn.StatusCode, string) error { return nil }

func (c *fakeConn) Principal() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.principal
}

func (c *fakeConn) SetPrincipal(p any, expires time.Time) {
	c.mu.Lock()
	c.principal, c.expires = p, expires
	c.mu.Unlock()
}

func (c *fakeConn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}

func (c *fakeConn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// replies returns and forgets the text of the messages sent with Send.
func (c *fakeConn) replies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.sent {
		out = append(out, m.data)
	}
	c.sent = nil
	return out
}

// pushes returns and forgets the messages sent with SendPrepared.
func (c *fakeConn) pushes() []*wsconn.PreparedMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.prepared
	c.prepared = nil
	return out
}

// payload decodes the frame of m and returns its payload as a string.
func payload(t testing.TB, m *wsconn.PreparedMessage) string {
	t.Helper()
	r := bytes.NewReader(m.Frame())
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf("failed to read prepared frame header: %v", err)
	}
	if h.OpCode != ws.OpText || !h.Fin || h.Masked || h.Length != int64(r.Len()) {
		t.Fatalf("got frame header %+v with %d payload bytes, want unmasked final text frame", h, r.Len())
	}
	p, _ := io.ReadAll(r)
	return string(p)
}

// send delivers each text message to h as from c.
func send(h wsconn.Handler, c wsconn.Conn, msgs ...string) {
	for _, m := range msgs {
		h.OnMessage(c, wsconn.Text, []byte(m))
	}
}
