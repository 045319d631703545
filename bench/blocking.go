package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Connections the ordinary way, a net.Conn and a goroutine each: the
// broadcast publisher's, and wss targets' (crypto/tls). The fleet's own
// connections are in client.go.

// dialBlocking opens an ordinary blocking connection to t and upgrades
// it: for the one publisher, which needs no reactor.
func dialBlocking(t *target) (net.Conn, error) {
	addr := &net.TCPAddr{IP: net.IP(t.sa.Addr[:]), Port: t.sa.Port}
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	if t.tls {
		conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := upgradeBlocking(conn, t); err != nil {
		conn.Close()
		return nil, fmt.Errorf("publisher handshake: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// upgradeBlocking sends the upgrade request on conn and reads the answer
// byte by byte, so that nothing after it is consumed.
func upgradeBlocking(conn net.Conn, t *target) error {
	if _, err := conn.Write(t.req); err != nil {
		return err
	}
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := conn.Read(one); err != nil {
			return err
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("got %q", bytes.SplitN(head, []byte("\r\n"), 2)[0])
	}
	if t.deflate && !bytes.Contains(bytes.ToLower(head), []byte("\r\nsec-websocket-extensions: permessage-deflate")) {
		return errors.New("permessage-deflate declined")
	}
	return nil
}

var errClosed = errors.New("bench: connection closed")

// dialTLS opens a wss connection the ordinary way (a net.Conn, crypto/tls,
// a goroutine during the dial, at most 64 at once) and holds it without
// reading: enough to measure a server's memory per idle wss connection,
// which is what wss targets are for (idle mode; the server's heartbeats
// must be off or slower than the hold, as nothing answers them). The
// client side's memory is not the point here.
func (f *fleet) dialTLS(t *target, src net.IP) {
	f.dialed.Add(1)
	f.tlsSem <- struct{}{}
	go func() {
		defer func() { <-f.tlsSem }()
		start := time.Now()
		d := net.Dialer{Timeout: f.timeout}
		if src != nil {
			// The kernel picks the port at connect: a wss run is small
			// (idle memory), and the net package's dialer would refuse a
			// port whose last connection to this server is in TIME_WAIT.
			d.LocalAddr = &net.TCPAddr{IP: src}
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
				})
			}
		}
		raw, err := d.Dial("tcp4", (&net.TCPAddr{IP: net.IP(t.sa.Addr[:]), Port: t.sa.Port}).String())
		if err != nil {
			f.fail(classify(err))
			return
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) // a load test of one's own server
		_ = c.SetDeadline(time.Now().Add(f.timeout))
		if err := upgradeBlocking(c, t); err != nil {
			c.Close()
			f.fail("handshake_" + classify(err))
			return
		}
		_ = c.SetDeadline(time.Time{})
		f.hsLat.record(time.Since(start))
		f.mu.Lock()
		f.tlsConns = append(f.tlsConns, c)
		f.mu.Unlock()
		for n, p := f.open.Add(1), f.peakOpen.Load(); n > p && !f.peakOpen.CompareAndSwap(p, n); {
			p = f.peakOpen.Load()
		}
	}()
}

// waitTLSDials waits until no wss dial is in flight.
func (f *fleet) waitTLSDials() {
	for i := 0; i < cap(f.tlsSem); i++ {
		f.tlsSem <- struct{}{}
	}
	for i := 0; i < cap(f.tlsSem); i++ {
		<-f.tlsSem
	}
}
