package wsconn

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

func TestMaxConnsPerIP(t *testing.T) {
	srv := startServer(t, Config{MaxConnsPerIP: 2})
	a := invDial(t, srv, "/echo")
	defer a.Close()
	b := invDial(t, srv, "/echo")
	defer b.Close()
	third := dialRaw(t, srv)
	third.write([]byte(upgradeRequest("/echo", newKey())))
	resp := third.readResponse()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" {
		t.Fatalf("third connection from one address: got %d with Retry-After %q, want 429 with 10",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	third.expectEOF() // the server's end is shut after the answer
	_ = third.conn.Close()
	eventually(t, 5*time.Second, "the refused connection released", func() bool { return srv.Stats().Closed == 1 })
	a.Close()
	eventually(t, 5*time.Second, "a slot freed", func() bool { return srv.Conns() == 1 })
	invDial(t, srv, "/echo").Close()
	if got := srv.Stats().Handshakes[http.StatusTooManyRequests]; got != 1 {
		t.Fatalf("429 answers = %d, want 1", got)
	}
}

// TestPerAddressExcessCostsOthersNothing is issue 10's finding 2: one
// address at its cap, then more sockets from it that send half a request
// and stop. They used to be held until their request completed or the
// handshake timed out, and at 64 of them the listener paused for every
// address (clients elsewhere waited 5 s to connect). Now the first
// refusalsPerAddress of them are answered 429 at once, without their
// request, and the rest are closed as soon as they are accepted; a client
// from another address is served meanwhile.
func TestPerAddressExcessCostsOthersNothing(t *testing.T) {
	const capped, stalled = 5, rejectSlack + 6
	srv := startServer(t, Config{MaxConnsPerIP: capped, HandshakeTimeout: time.Minute, CloseTimeout: time.Minute})
	from := func(ip string) *net.Dialer {
		return &net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	}
	for range capped {
		c, _, err := attackDialer(from("127.0.0.2"), srv.Addr().String(), "/echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	answered, dropped := 0, 0
	for i := range stalled {
		c, err := from("127.0.0.2").Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		switch {
		case err == nil && resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "10":
			answered++
		case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)):
			dropped++
		default:
			t.Fatalf("stalled connection %d over the cap: got %v, %v; want 429 with Retry-After 10 at once, or a close", i, resp, err)
		}
	}
	if answered != refusalsPerAddress || dropped != stalled-refusalsPerAddress {
		t.Errorf("got %d answered 429 and %d closed at accept, want %d and %d", answered, dropped,
			refusalsPerAddress, stalled-refusalsPerAddress)
	}
	if got := srv.Stats().RejectDropped; got != uint64(dropped) {
		t.Errorf("RejectDropped = %d, want %d", got, dropped)
	}
	// Another address is served while all of that is held open.
	c, _, err := attackDialer(from("127.0.0.3"), srv.Addr().String(), "/echo")
	if err != nil {
		t.Fatalf("a client from another address: %v", err)
	}
	c.Close()
}

// TestAcceptRate: a burst past AcceptRate is closed at accept, cheaply,
// and the server keeps serving once the rate allows.
func TestAcceptRate(t *testing.T) {
	srv := startServer(t, Config{AcceptRate: 5})
	var refused int
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
		buf := make([]byte, 12)
		if n, _ := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101") {
			refused++
		}
		c.Close()
	}
	if refused < 10 || srv.Stats().AcceptRefused < 10 {
		t.Fatalf("refused %d (server counted %d) of 20 instant connections at 5/s, want most of them",
			refused, srv.Stats().AcceptRefused)
	}
	eventually(t, 5*time.Second, "accepting again", func() bool {
		c, _, err := websocket.Dial(context.Background(), wsURL(srv, "/echo"), nil)
		if err == nil {
			c.CloseNow()
		}
		return err == nil
	})
}

// TestMessageRate: a client sending faster than MaxMessageRate is closed
// with 1008; one within it is not.
func TestMessageRate(t *testing.T) {
	srv := startServer(t, Config{MaxMessageRate: 20, SweepInterval: 10 * time.Millisecond})
	c := invDial(t, srv, "/echo")
	defer c.Close()
	frame := invFrame(ws.OpBinary, true, []byte("x"))
	for i := 0; i < 100; i++ { // the burst is 2 x 20
		if _, err := c.Write(frame); err != nil {
			break // the server may have closed already
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f := invReadFrame(t, c)
		if f.Header.OpCode == ws.OpClose {
			if code := StatusCode(uint16(f.Payload[0])<<8 | uint16(f.Payload[1])); code != StatusPolicyViolation {
				t.Fatalf("got close %d, want 1008", code)
			}
			break
		}
	}
	if got := srv.Stats().RateLimited; got != 1 {
		t.Fatalf("RateLimited = %d, want 1", got)
	}

	// A client within the rate (10 a second for 1.5 s, after a burst of
	// 20: under 2 x 20 and 20 a second) is never closed.
	ok := invDial(t, srv, "/echo")
	defer ok.Close()
	_ = ok.SetReadDeadline(time.Now().Add(10 * time.Second))
	send := func() {
		if _, err := ok.Write(frame); err != nil {
			t.Fatalf("within the rate: write: %v", err)
		}
		if f := invReadFrame(t, ok); f.Header.OpCode != ws.OpBinary {
			t.Fatalf("within the rate: got %v, want the echo", f.Header.OpCode)
		}
	}
	for range 20 {
		send()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range 15 {
		<-tick.C
		send()
	}
	if got := srv.Stats().RateLimited; got != 1 {
		t.Fatalf("RateLimited = %d after a client within the rate, want still 1", got)
	}
}

func TestByteRateAllowsOneLargestMessage(t *testing.T) {
	srv := startServer(t, Config{MaxByteRate: 1024, MaxMessageSize: 64 << 10})
	c := invDial(t, srv, "/echo")
	defer c.Close()
	big := make([]byte, 64<<10) // far past 2 x 1024 bytes, but the largest message allowed
	if _, err := c.Write(invFrame(ws.OpBinary, true, big)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f := invReadFrame(t, c); f.Header.OpCode != ws.OpBinary || len(f.Payload) != len(big) {
		t.Fatalf("got %v with %d bytes, want the echo", f.Header.OpCode, len(f.Payload))
	}
	if _, err := c.Write(invFrame(ws.OpBinary, true, big)); err != nil {
		t.Fatal(err)
	}
	f := invReadFrame(t, c)
	if f.Header.OpCode != ws.OpClose || len(f.Payload) < 2 ||
		StatusCode(uint16(f.Payload[0])<<8|uint16(f.Payload[1])) != StatusPolicyViolation {
		t.Fatalf("second 64 KiB within the second: got %v %q, want close 1008", f.Header.OpCode, f.Payload)
	}
	if got := srv.Stats().RateLimited; got != 1 {
		t.Fatalf("RateLimited = %d, want 1", got)
	}
}
