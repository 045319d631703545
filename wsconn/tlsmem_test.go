package wsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
)

// feedConn is the server's side of a test TLS session: during the
// handshake it reads the pipe; afterwards only what the test feeds, and
// "would block" when that is used up, as rawConn does.
type feedConn struct {
	net.Conn
	manual bool
	buf    bytes.Buffer
}

func (f *feedConn) Read(p []byte) (int, error) {
	if !f.manual {
		return f.Conn.Read(p)
	}
	if f.buf.Len() == 0 {
		return 0, errWouldBlock
	}
	return f.buf.Read(p)
}

// captureConn is the client's side: once capturing, its writes (whole TLS
// records) are kept for the test to feed, not sent.
type captureConn struct {
	net.Conn
	mu      sync.Mutex
	capture bool
	out     bytes.Buffer
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capture {
		return c.out.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *captureConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := bytes.Clone(c.out.Bytes())
	c.out.Reset()
	return b
}

// TestTLSInputReleased: once crypto/tls has handed over everything it
// read, releaseTLSInput leaves it no input buffer (not even the 16 KiB
// one a big message grew); with half a record pending it keeps it, and
// the record completes. It fails if a Go release moved the fields, so
// that an idle wss connection's memory does not silently grow back.
func TestTLSInputReleased(t *testing.T) {
	if !tlsInput.ok {
		t.Fatal("crypto/tls.Conn no longer has rawInput, input and hand of the expected types: update tlsmem.go")
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cert, pool := testCert(t)
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			sc := &feedConn{Conn: a}
			server := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
			cc := &captureConn{Conn: b}
			client := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			errc := make(chan error, 1)
			go func() { errc <- client.Handshake() }()
			if err := server.Handshake(); err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			sc.manual, cc.capture = true, true

			caps := func() (int, int) {
				rawInput, _, hand, _ := tlsBuffers(server)
				return rawInput.Cap(), hand.Cap()
			}
			released := func(when string) {
				t.Helper()
				releaseTLSInput(server)
				if r, h := caps(); r != 0 || h != 0 {
					t.Fatalf("%s: after release, rawInput cap %d, hand cap %d; want 0", when, r, h)
				}
			}
			// readAll reads what crypto/tls can give until it would block.
			readAll := func() []byte {
				t.Helper()
				var got []byte
				p := make([]byte, 4096)
				for {
					n, err := server.Read(p)
					got = append(got, p[:n]...)
					if errors.Is(err, errWouldBlock) {
						return got
					}
					if err != nil {
						t.Fatalf("read: %v", err)
					}
				}
			}
			if r, h := caps(); r+h == 0 {
				t.Fatal("nothing to release after the handshake: the test measures nothing")
			}
			released("after the handshake")

			big := bytes.Repeat([]byte("w"), 64<<10)
			if _, err := client.Write(big); err != nil {
				t.Fatal(err)
			}
			sc.buf.Write(cc.take())
			if got := readAll(); !bytes.Equal(got, big) {
				t.Fatalf("64 KiB message: read %d bytes back", len(got))
			}
			if r, _ := caps(); r < 16<<10 {
				t.Fatalf("rawInput cap %d after 16 KiB records; want at least 16 KiB", r)
			}
			released("after a 64 KiB message")

			if _, err := client.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			rec := cc.take()
			sc.buf.Write(rec[:len(rec)/2])
			if got := readAll(); len(got) != 0 {
				t.Fatalf("half a record gave %q", got)
			}
			releaseTLSInput(server)
			if r, _ := caps(); r == 0 {
				t.Fatal("released rawInput while it held half a record")
			}
			sc.buf.Write(rec[len(rec)/2:])
			if got := readAll(); string(got) != "hello" {
				t.Fatalf("the record's second half gave %q, want hello", got)
			}
			released("after the record completed")
		})
	}
}
