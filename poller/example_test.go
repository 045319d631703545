//go:build linux

package poller_test

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/wsgate/wsgate/poller"
)

// echoConn is an owner of one accepted connection: it embeds the Desc that
// the poller registers, and writes back what it reads.
type echoConn struct {
	poller.Desc
	closed chan<- struct{}
}

// HandleEvents runs on a pool worker when the socket is ready. Events are
// hints: it reads until the socket has nothing more (ErrWouldBlock), then
// re-arms the one-shot registration to hear of the next bytes.
func (c *echoConn) HandleEvents(ev poller.Event) {
	buf := make([]byte, 512)
	for ev&poller.EventClosed == 0 {
		n, err := c.Read(buf)
		if poller.IsWouldBlock(err) {
			_ = c.Rearm(false)
			return
		}
		if err != nil || n == 0 { // an error, or the peer's FIN
			break
		}
		// A few bytes into an empty socket buffer: Write takes them all.
		if _, err := c.Write(buf[:n]); err != nil {
			break
		}
	}
	_ = c.Close()
	close(c.closed)
}

// The reactor and pool serve a listener on a free port; each accepted
// descriptor goes to the poller with its owner, here an echo.
func Example() {
	p, err := poller.New(poller.Config{Workers: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = p.Close(time.Second) }()

	closed := make(chan struct{})
	ln, err := p.Listen(poller.ListenConfig{
		Addr: "127.0.0.1:0",
		OnAccept: func(fd int, _ netip.AddrPort) {
			c := &echoConn{closed: closed}
			if err := p.Add(&c.Desc, fd, c); err != nil {
				poller.CloseFd(fd)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = ln.Close() }()

	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	if _, err := client.Write([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	reply := make([]byte, len("hello"))
	if _, err := io.ReadFull(client, reply); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("echoed %q\n", reply)

	// The client's FIN: the server reads EOF and closes its end.
	if err := client.(*net.TCPConn).CloseWrite(); err != nil {
		log.Fatal(err)
	}
	rest, err := io.ReadAll(client)
	<-closed
	fmt.Printf("server closed: %d more bytes, err %v\n", len(rest), err)
	fmt.Println("accepted:", ln.Stats().Accepted)
	// Output:
	// echoed "hello"
	// server closed: 0 more bytes, err <nil>
	// accepted: 1
}
