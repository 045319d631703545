package main

import (
	"bytes"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// target is one server endpoint.
type target struct {
	url  string
	tls  bool // wss://: idle mode only, see dialTLS
	sa   *unix.SockaddrInet4
	path string
	req  []byte // the upgrade request, built once

	deflate bool // offer permessage-deflate and require it in the answer
}

// deflateOffer is what -deflate offers: what a browser offers.
const deflateOffer = "permessage-deflate; client_max_window_bits"

// withDeflate makes t offer permessage-deflate (idle mode only: the bench
// does not inflate messages) and require the server to accept it.
func (t *target) withDeflate() {
	t.deflate = true
	t.req = append(bytes.TrimSuffix(t.req, []byte("\r\n")), "Sec-WebSocket-Extensions: "+deflateOffer+"\r\n\r\n"...)
}

func parseTarget(raw string) (*target, error) {
	rest, ok := bytes.CutPrefix([]byte(raw), []byte("ws://"))
	secure := false
	if !ok {
		if rest, ok = bytes.CutPrefix([]byte(raw), []byte("wss://")); !ok {
			return nil, fmt.Errorf("target %q: want ws://host:port/path or wss://…", raw)
		}
		secure = true
	}
	hostport, path, _ := bytes.Cut(rest, []byte("/"))
	addr, err := net.ResolveTCPAddr("tcp4", string(hostport))
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	t := &target{url: raw, sa: sa, path: "/" + string(path), tls: secure}
	t.req = []byte("GET " + t.path + " HTTP/1.1\r\nHost: " + string(hostport) +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: d3NnYXRlLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	return t, nil
}
