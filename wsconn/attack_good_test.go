package wsconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

// The good client of the attack tests: it keeps an echo loop and dials
// new connections while an attack runs, and says what it saw.

// echoConn is one connection of the good client.
type echoConn interface {
	echo(p []byte) error
	close()
}

// goodStats is what the good client measured.
type goodStats struct {
	trips     int           // echo round trips on its long-lived connection
	worstTrip time.Duration // the slowest of them
	dials     int           // new connections: dial, handshake, one echo
	worstDial time.Duration
	refused   int       // new connections refused (only counted when tolerated)
	lastDial  time.Time // when the latest new connection succeeded
	errs      []string  // failures, first few
}

func (s *goodStats) String() string {
	return fmt.Sprintf("good client: %d round trips, worst %v; %d new connections, worst %v, %d refused",
		s.trips, s.worstTrip.Round(time.Millisecond), s.dials, s.worstDial.Round(time.Millisecond), s.refused)
}

// goodClient does echo round trips on one open connection, and opens a new
// connection every so often, for as long as an attack lasts.
type goodClient struct {
	open          func() (echoConn, error)
	tolerateDials bool // a refused new connection is counted, not an error
	stop, done    chan struct{}
	mu            sync.Mutex
	st            goodStats
}

// startGoodClient starts the client's goroutine; stopGood ends it.
func startGoodClient(t testing.TB, open func() (echoConn, error), tolerateDials bool) *goodClient {
	t.Helper()
	g := &goodClient{open: open, tolerateDials: tolerateDials, stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := open()
	if err != nil {
		t.Fatalf("good client: first connection: %v", err)
	}
	go g.run(conn)
	return g
}

func (g *goodClient) fail(format string, a ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.st.errs) < 5 {
		g.st.errs = append(g.st.errs, fmt.Sprintf(format, a...))
	}
}

// run does the round trips; a goroutine of its own opens the new
// connections, so that a slow dial (within goodBound) does not leave the
// long-lived connection silent, its pings unanswered, long enough for the
// heartbeat to close it.
func (g *goodClient) run(conn echoConn) {
	defer close(g.done)
	dialsDone := make(chan struct{})
	go g.dials(dialsDone)
	defer func() { <-dialsDone }()
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	tick := time.NewTicker(goodTick)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		if conn == nil { // the last round trip failed: reconnect
			var err error
			if conn, err = g.open(); err != nil {
				g.fail("reconnect: %v", err)
				continue
			}
		}
		start := time.Now()
		if err := conn.echo(fmt.Appendf(nil, "good %d", i)); err != nil {
			g.fail("round trip %d: %v", i, err)
			conn.close()
			conn = nil
			continue
		}
		g.record(&g.st.trips, &g.st.worstTrip, time.Since(start))
	}
}

// dials opens a new connection every goodDialEvery ticks until stopped.
func (g *goodClient) dials(done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(goodDialEvery * goodTick)
	defer tick.Stop()
	for i := 0; ; i++ {
		g.dialOnce(i)
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
	}
}

// dialOnce opens a new connection, does one round trip and closes it.
func (g *goodClient) dialOnce(i int) {
	start := time.Now()
	c, err := g.open()
	if err == nil {
		err = c.echo(fmt.Appendf(nil, "new %d", i))
		c.close()
	}
	switch {
	case err == nil:
		g.record(&g.st.dials, &g.st.worstDial, time.Since(start))
		g.mu.Lock()
		g.st.lastDial = time.Now()
		g.mu.Unlock()
	case g.tolerateDials:
		g.mu.Lock()
		g.st.refused++
		g.mu.Unlock()
	default:
		g.fail("new connection %d: %v", i, err)
	}
}

func (g *goodClient) record(n *int, worst *time.Duration, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*n++
	*worst = max(*worst, d)
}

// stats returns a snapshot of what the client measured so far.
func (g *goodClient) stats() goodStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.st
	st.errs = append([]string(nil), st.errs...)
	return st
}

// stopGood ends the client, logs its figures and checks that every answer
// came within goodBound.
func (g *goodClient) stopGood(t testing.TB) {
	t.Helper()
	close(g.stop)
	<-g.done
	st := g.stats()
	t.Log(st.String())
	for _, e := range st.errs {
		t.Errorf("good client: %s", e)
	}
	switch {
	case st.trips == 0:
		t.Errorf("good client made no round trip")
	case st.worstTrip > goodBound:
		t.Errorf("good client's worst round trip took %v, want under %v", st.worstTrip, goodBound)
	}
	if st.worstDial > goodBound {
		t.Errorf("good client's worst new connection took %v, want under %v", st.worstDial, goodBound)
	}
}

// rawEcho is a good client's ws:// connection on a bare socket.
type rawEcho struct {
	c  net.Conn
	br *bufio.Reader
}

// wsEchoOpener opens good-client connections to path at addr.
func wsEchoOpener(addr, path string) func() (echoConn, error) {
	return func() (echoConn, error) {
		c, br, err := attackDial(addr, path)
		if err != nil {
			return nil, err
		}
		return &rawEcho{c: c, br: br}, nil
	}
}

// echo sends p as a text message and reads until its echo, answering pings
// on the way.
func (e *rawEcho) echo(p []byte) error {
	_ = e.c.SetDeadline(time.Now().Add(goodTimeout))
	if _, err := e.c.Write(invFrame(ws.OpText, true, p)); err != nil {
		return err
	}
	for {
		h, err := ws.ReadHeader(e.br)
		if err != nil {
			return err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(e.br, payload); err != nil {
			return err
		}
		switch h.OpCode {
		case ws.OpText:
			if !bytes.Equal(payload, p) {
				return fmt.Errorf("got echo %q, want %q", payload, p)
			}
			return nil
		case ws.OpPing:
			if _, err := e.c.Write(invFrame(ws.OpPong, true, payload)); err != nil {
				return err
			}
		case ws.OpPong:
		default:
			return fmt.Errorf("got a %v frame %q, want the echo", h.OpCode, payload)
		}
	}
}

func (e *rawEcho) close() { _ = e.c.Close() }

// coderEcho is a good client's wss:// connection (coder/websocket).
type coderEcho struct{ c *websocket.Conn }

// wssEchoOpener opens good-client wss:// connections to /echo on srv.
func wssEchoOpener(srv *Server, pool *x509.CertPool) func() (echoConn, error) {
	return func() (echoConn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), goodTimeout)
		defer cancel()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer tr.CloseIdleConnections()
		c, _, err := websocket.Dial(ctx, "wss://"+srv.Addr().String()+"/echo",
			&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
		if err != nil {
			return nil, err
		}
		return coderEcho{c}, nil
	}
}

func (e coderEcho) echo(p []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), goodTimeout)
	defer cancel()
	if err := e.c.Write(ctx, websocket.MessageText, p); err != nil {
		return err
	}
	_, got, err := e.c.Read(ctx)
	if err == nil && !bytes.Equal(got, p) {
		err = fmt.Errorf("got echo %q, want %q", got, p)
	}
	return err
}

func (e coderEcho) close() { _ = e.c.CloseNow() }
