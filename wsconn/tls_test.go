package wsconn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

// testCert makes a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsgate test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func startTLSServer(t testing.TB, cfg Config) (*Server, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return startServer(t, cfg), pool
}

func wssDial(t testing.TB, srv *Server, pool *x509.CertPool) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, _, err := websocket.Dial(ctx, "wss://"+srv.Addr().String()+"/echo", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	c.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func TestTLSEcho(t *testing.T) {
	srv, pool := startTLSServer(t, Config{})
	c := wssDial(t, srv, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []int{0, 1, 125, 126, 16 << 10, 16<<10 + 1, 65536, 1 << 20} {
		for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			msg := bytes.Repeat([]byte{'w'}, n)
			if err := c.Write(ctx, typ, msg); err != nil {
				t.Fatalf("%d bytes: write: %v", n, err)
			}
			gotTyp, got, err := c.Read(ctx)
			if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
				t.Fatalf("%d bytes %v: got %d bytes %v, %v", n, typ, len(got), gotTyp, err)
			}
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	eventually(t, 5*time.Second, "connection closed", func() bool { return srv.Conns() == 0 })
}

// stallConn forwards writes until armed; then it forwards only the first
// half of the next write and swallows the rest: the peer sees half a TLS
// record, and nothing more.
type stallConn struct {
	net.Conn
	mu      sync.Mutex
	armed   bool
	stalled bool
}

func (s *stallConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stalled:
		return len(p), nil
	case s.armed:
		s.stalled = true
		_, err := s.Conn.Write(p[:len(p)/2])
		return len(p), err
	}
	return s.Conn.Write(p)
}

// rawTLSClient upgrades over TLS by hand, so the test controls the bytes.
func rawTLSClient(t *testing.T, srv *Server, pool *x509.CertPool) (*tls.Conn, *stallConn) {
	t.Helper()
	tcp, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := &stallConn{Conn: tcp}
	c := tls.Client(sc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("read 101: %v", err)
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		t.Fatalf("got %q", head)
	}
	_ = c.SetDeadline(time.Time{})
	return c, sc
}

// TestTLSPartialRecordHoldsNoWorker: clients that send half a TLS record
// and stall, twice as many as workers, do not keep a well-behaved wss
// client from its echo.
func TestTLSPartialRecordHoldsNoWorker(t *testing.T) {
	const workers = 2
	srv, pool := startTLSServer(t, Config{Workers: workers})
	for i := 0; i < 2*workers; i++ {
		c, sc := rawTLSClient(t, srv, pool)
		sc.mu.Lock()
		sc.armed = true
		sc.mu.Unlock()
		if _, err := c.Write(invFrame(ws.OpText, true, bytes.Repeat([]byte("x"), 2000))); err != nil {
			t.Fatal(err)
		}
	}
	// And clients that stall in the middle of the TLS handshake itself.
	for i := 0; i < 2*workers; i++ {
		tcp, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer tcp.Close()
		_, _ = tcp.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // the start of a ClientHello
	}
	good := wssDial(t, srv, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := good.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, got, err := good.Read(ctx)
	if err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	t.Logf("echo with %d stalled TLS clients took %v", 4*workers, time.Since(start))
}

// TestTLSHandshakeGoroutinesAreTransient: a goroutine exists only while a
// TLS handshake is in progress; established wss connections have none,
// and a stalled handshake is given up at HandshakeTimeout.
func TestTLSHandshakeGoroutinesAreTransient(t *testing.T) {
	srv, pool := startTLSServer(t, Config{HandshakeTimeout: 2 * time.Second, SweepInterval: 20 * time.Millisecond})
	wssDial(t, srv, pool).CloseNow() // warm up
	eventually(t, 5*time.Second, "warm-up closed", func() bool { return srv.Conns() == 0 })
	g0 := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		rawTLSClient(t, srv, pool)
	}
	eventually(t, 5*time.Second, "handshake goroutines gone", func() bool { return srv.tlsHandshakes.Load() == 0 })
	if grown := runtime.NumGoroutine() - g0; grown > 10 {
		t.Errorf("goroutines grew by %d for 50 open wss connections", grown)
	}
	tcp, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	_, _ = tcp.Write([]byte{0x16, 0x03, 0x01}) // a handshake that never ends
	eventually(t, 5*time.Second, "stalled handshake started", func() bool { return srv.tlsHandshakes.Load() == 1 })
	_ = tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(tcp); err != nil {
		t.Fatalf("stalled handshake: %v, want the server to close it", err)
	}
	eventually(t, 5*time.Second, "its goroutine gone", func() bool { return srv.tlsHandshakes.Load() == 0 })
}

// clientHello returns the first flight of a TLS client: one whole
// ClientHello record, as a real client sends it.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}).Handshake() }()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// TestTLSHandshakeLimitSparesAnswered: at the cap, a new handshake ends
// the oldest one still in its ClientHello, not an older one the server
// has answered (a well-behaved client on its second flight).
func TestTLSHandshakeLimitSparesAnswered(t *testing.T) {
	srv, pool := startTLSServer(t, Config{MaxTLSHandshakes: 2})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// The oldest: a whole ClientHello, answered by the server, then
	// nothing (it would send its Finished next).
	answered := dial()
	if _, err := answered.Write(clientHello(t)); err != nil {
		t.Fatal(err)
	}
	_ = answered.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(answered, make([]byte, 5)); err != nil {
		t.Fatalf("no ServerHello: %v", err)
	}
	// Younger: a ClientHello that stops after its record header.
	stalled := dial()
	_, _ = stalled.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00})
	eventually(t, 5*time.Second, "both handshakes running", func() bool { return srv.tlsHandshakes.Load() == 2 })

	wssDial(t, srv, pool).CloseNow() // gets in, ending the stalled one
	_ = stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(stalled); err != nil {
		t.Fatalf("stalled handshake: %v, want it closed", err)
	}
	if got := srv.Stats().TLSHandshakeLimit; got != 1 {
		t.Fatalf("TLSHandshakeLimit = %d, want 1", got)
	}
	// The answered one is still there, waiting for its client.
	_ = answered.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := io.ReadAll(answered); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("answered handshake: read %v, want it left open (a deadline)", err)
	}
	if n := srv.tlsHandshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes running, want the answered one", n)
	}
}

// TestTLSHandshakeLimit: at MaxTLSHandshakes a new handshake ends the
// oldest stalled one, and a well-behaved client still gets in.
func TestTLSHandshakeLimit(t *testing.T) {
	srv, pool := startTLSServer(t, Config{MaxTLSHandshakes: 1})
	first, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, _ = first.Write([]byte{0x16, 0x03, 0x01})
	eventually(t, 5*time.Second, "first handshake running", func() bool { return srv.tlsHandshakes.Load() == 1 })
	wssDial(t, srv, pool).CloseNow() // gets in, ending the stalled one
	_ = first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(first); err != nil {
		t.Fatalf("stalled handshake: %v, want it closed", err)
	}
	if got := srv.Stats().TLSHandshakeLimit; got != 1 {
		t.Fatalf("TLSHandshakeLimit = %d, want 1", got)
	}
}

// TestNoteInput: a handshake counts as answered once its first record (the
// ClientHello) is whole, however the bytes are cut.
func TestNoteInput(t *testing.T) {
	hello := append([]byte{0x16, 0x03, 0x01, 0x01, 0x02}, make([]byte, 0x0102)...) // a 258-byte record
	tests := []struct {
		name   string
		chunks [][]byte
		want   bool
	}{
		{"whole in one read", [][]byte{hello}, true},
		{"header cut", [][]byte{hello[:3], hello[3:]}, true},
		{"byte by byte", bytewise(hello, len(hello)), true},
		{"one byte short", [][]byte{hello[:len(hello)-1]}, false},
		{"header only", [][]byte{hello[:5]}, false},
		{"first bytes of a header", [][]byte{hello[:2]}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hs tlsHandshake
			for _, c := range tt.chunks {
				hs.noteInput(c)
			}
			if got := hs.answered.Load(); got != tt.want {
				t.Fatalf("answered = %v, want %v", got, tt.want)
			}
		})
	}
}

// openConn returns the server's side of srv's only connection once it is
// open.
func openConn(t *testing.T, srv *Server) *conn {
	t.Helper()
	var c *conn
	eventually(t, 5*time.Second, "the connection open", func() bool {
		c = nil
		srv.table.each(func(x *conn) {
			if x.phaseNow() == phaseOpen {
				c = x
			}
		})
		return c != nil
	})
	return c
}

// TestTLSSessionWhileClosing: the owner looks up the TLS session (on every
// event, without Conn.mu) while another goroutine starts the close, which
// records the closing state in Conn.extra under Conn.mu, creating it if
// the connection had none. The two goroutines share no lock, so under
// -race any unlocked access to a word the close writes is reported,
// whatever the timing. A wss connection has had its extra since accept;
// a ws one has none until the close, and tlsSession used to read its nil
// extra there: the ws case was the race.
func TestTLSSessionWhileClosing(t *testing.T) {
	for _, wss := range []bool{true, false} {
		name := map[bool]string{true: "wss", false: "ws"}[wss]
		t.Run(name, func(t *testing.T) {
			var srv *Server
			if wss {
				var pool *x509.CertPool
				srv, pool = startTLSServer(t, Config{})
				wssDial(t, srv, pool)
			} else {
				srv = startServer(t, Config{})
				c := invDial(t, srv, "/echo")
				t.Cleanup(func() { c.Close() })
			}
			c := openConn(t, srv)
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { // the owner
				defer wg.Done()
				<-start
				for range 1000 {
					if st := c.tlsSession(); (st != nil) != wss {
						t.Errorf("tlsSession() = %v on a %s connection", st, name)
						return
					}
				}
			}()
			go func() { // a handler on another connection's worker
				defer wg.Done()
				<-start
				if err := c.Close(1000, "bye"); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			close(start)
			wg.Wait()
			eventually(t, 5*time.Second, "the connection closing", func() bool { return c.phaseNow() >= phaseClosing })
		})
	}
}
