package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/poller"
)

// A client connection held without a goroutine: a raw non-blocking socket
// on the bench process's own wsgate poller, driven by readiness events
// through connect, handshake and frames. Idle, it holds no buffer.

const (
	phConnecting uint8 = iota
	phHandshake
	phOpen
	phClosed
)

// fleet owns every client connection of this process.
type fleet struct {
	p       *poller.Poller
	timeout time.Duration // connect + handshake

	// onOpen, if set, is called on a pool worker when a connection is
	// upgraded; onMessage for every text or binary message, with a payload
	// valid only during the call.
	onOpen    func(c *client)
	onMessage func(c *client, payload []byte)

	mu       sync.Mutex // guards clients, fails, tlsConns
	clients  []*client
	tlsConns []net.Conn // wss connections (dialTLS)
	tlsSem   chan struct{}
	fails    map[string]int
	hsLat    *hist // handshake latencies, connect start to 101

	open         atomic.Int64
	peakOpen     atomic.Int64
	portsSkipped atomic.Int64 // local ports found taken and skipped
	dialed       atomic.Int64
	pings        atomic.Int64 // server pings answered (or queued to be)
	endedEarly   atomic.Int64 // open connections that ended before the bench closed them
	// ends counts the open connections that ended before the bench closed
	// them, by how (endClass); logged is how many were logged one by one.
	ends   map[string]int
	logged int
}

// endsLogged is how many unexpected ends each bench process logs one by
// one (to stderr, with the local address, to find them in the server's
// log); the rest are only counted.
const endsLogged = 50

func newFleet(workers int, timeout time.Duration) (*fleet, error) {
	p, err := poller.New(poller.Config{Workers: workers})
	if err != nil {
		return nil, err
	}
	return &fleet{p: p, timeout: timeout, fails: map[string]int{}, ends: map[string]int{}, hsLat: newHist(),
		tlsSem: make(chan struct{}, 64)}, nil
}

// client is one connection. Owned by the worker serving its Desc.
type client struct {
	poller.Desc
	f       *fleet
	t       *target
	phase   atomic.Uint32
	started int64  // unix ns of the connect
	buf     []byte // partial handshake response or frame; nil when idle
	id      int32  // index in the fleet, for the modes' bookkeeping
	expired atomic.Bool
	// Broadcast bookkeeping, owned by the worker serving the client.
	lastSeq  int64
	received int64
	dups     int64
	ooo      int64
	inRound  atomic.Bool // open when the broadcast began: its deliveries count
	// closeCode is the status of the server's close frame, 0 before one.
	closeCode uint16
	wmu       sync.Mutex // serialises writes with abort, guards pend
	// pend is what the socket did not take of the frames sent (a pong
	// behind a full send buffer): written when it is writable again,
	// never dropped.
	pend []byte
}

// dial starts a non-blocking connect to t from src (nil: any address).
// With a cursor, it binds the port *cursor, moving the cursor on: a port
// some other socket holds (EADDRINUSE, or a connection to t from it still
// in TIME_WAIT: EADDRNOTAVAIL) is skipped, counted, and the next one tried,
// up to lastPort.
func (f *fleet) dial(t *target, src net.IP, cursor *int, lastPort int, id int32) {
	f.dialed.Add(1)
	var fd int
	for {
		port := 0
		if cursor != nil {
			if *cursor > lastPort {
				f.fail("no_source_port")
				return
			}
			port = *cursor
			*cursor++
		}
		var err error
		fd, err = connectFrom(t, src, port)
		if err == nil {
			break
		}
		if port != 0 && (errors.Is(err, unix.EADDRINUSE) || errors.Is(err, unix.EADDRNOTAVAIL)) {
			f.portsSkipped.Add(1)
			continue
		}
		f.fail(classify(err))
		return
	}
	c := &client{f: f, t: t, started: time.Now().UnixNano(), id: id}
	f.mu.Lock()
	f.clients = append(f.clients, c)
	f.mu.Unlock()
	// Edge-triggered, as wsgate's own connections: no epoll_ctl per read
	// (the one-shot re-arm was the bench's largest kernel item in a
	// million-connection broadcast).
	if err := f.p.AddEdge(&c.Desc, fd, c); err != nil {
		unix.Close(fd)
		c.phase.Store(uint32(phClosed))
		f.fail("register")
		return
	}
	_ = c.Rearm(true) // writable = connected (or failed)
}

func (f *fleet) fail(class string) {
	f.mu.Lock()
	f.fails[class]++
	f.mu.Unlock()
}

// connectFrom opens a non-blocking socket, binds it to src:port (port 0:
// the kernel picks it at connect) and starts connecting to t.
func connectFrom(t *target, src net.IP, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if src != nil {
		if port == 0 {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		} else {
			// A connection of a previous run from this port may be in
			// TIME_WAIT: binding is fine, connect tells if the pair is not.
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], src.To4())
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := unix.Connect(fd, t.sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// failures returns a copy of the failure counts and their total.
func (f *fleet) failures() (map[string]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, n := make(map[string]int, len(f.fails)), 0
	for k, v := range f.fails {
		m[k] = v
		n += v
	}
	return m, n
}

// endCounts returns a copy of the counts of unexpected ends.
func (f *fleet) endCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.ends))
	for k, v := range f.ends {
		m[k] = v
	}
	return m
}

// everyClient calls fn for every client, open or not.
func (f *fleet) everyClient(fn func(*client)) {
	f.mu.Lock()
	clients := f.clients
	f.mu.Unlock()
	for _, c := range clients {
		fn(c)
	}
}

// each calls fn for every client that is open.
func (f *fleet) each(fn func(*client)) {
	f.mu.Lock()
	clients := f.clients
	f.mu.Unlock()
	for _, c := range clients {
		if uint8(c.phase.Load()) == phOpen {
			fn(c)
		}
	}
}

// classify names a connection failure for the report.
func classify(err error) string {
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		return "refused"
	case errors.Is(err, unix.ETIMEDOUT):
		return "timeout"
	case errors.Is(err, unix.ECONNRESET), errors.Is(err, unix.EPIPE):
		return "reset"
	case errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.EADDRINUSE):
		return "no_source_port"
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		return "out_of_descriptors"
	}
	return "error:" + err.Error()
}

// HandleEvents drives the connection. It implements poller.Handler.
func (c *client) HandleEvents(ev poller.Event) {
	ph := uint8(c.phase.Load())
	switch {
	case ev&poller.EventClosed != 0:
		c.abort("")
		return
	case c.expired.Load() && ph == phConnecting:
		c.abort("connect_timeout")
		return
	case c.expired.Load() && ph == phHandshake:
		c.abort("handshake_timeout")
		return
	}
	switch ph {
	case phConnecting:
		c.connected()
	case phHandshake:
		if c.readHandshake() && uint8(c.phase.Load()) != phClosed {
			c.ReadAgain() // the buffer filled: more may wait, and no new edge comes for it
		}
	case phOpen:
		if err := c.flush(); err != nil {
			c.ended(err)
			return
		}
		c.readFrames(ev&poller.EventReadAll != 0)
	case phClosed:
		return
	}
	if uint8(c.phase.Load()) != phClosed {
		c.wmu.Lock()
		write := len(c.pend) > 0
		c.wmu.Unlock()
		_ = c.Rearm(write)
	}
}

func (c *client) connected() {
	soErr, err := unix.GetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soErr != 0 {
		err = unix.Errno(soErr)
	}
	if err == nil {
		_, err = c.Write(c.t.req)
	}
	if err != nil {
		c.abort(classify(err))
		return
	}
	c.phase.Store(uint32(phHandshake))
}

// readHandshake reads once, and reports whether the read filled its
// buffer.
func (c *client) readHandshake() (full bool) {
	var tmp [1024]byte
	n, err := c.Read(tmp[:])
	switch {
	case poller.IsWouldBlock(err):
		return false
	case err != nil:
		c.abort("handshake_" + classify(err))
		return false
	}
	full = n == len(tmp)
	c.buf = append(c.buf, tmp[:n]...)
	end := bytes.Index(c.buf, []byte("\r\n\r\n"))
	if end < 0 {
		if len(c.buf) > 8192 {
			c.abort("bad_response")
		}
		return full
	}
	status := 0
	if len(c.buf) >= 12 {
		status, _ = strconv.Atoi(string(c.buf[9:12]))
	}
	if status != 101 {
		c.abort("status_" + strconv.Itoa(status))
		return full
	}
	if c.t.deflate && !bytes.Contains(bytes.ToLower(c.buf[:end]), []byte("\r\nsec-websocket-extensions: permessage-deflate")) {
		c.abort("deflate_declined") // -deflate measures compressing connections only
		return full
	}
	rest := c.buf[end+4:]
	c.buf = nil
	c.phase.Store(uint32(phOpen))
	for n, p := c.f.open.Add(1), c.f.peakOpen.Load(); n > p && !c.f.peakOpen.CompareAndSwap(p, n); {
		p = c.f.peakOpen.Load()
	}
	c.f.hsLat.record(time.Duration(time.Now().UnixNano() - c.started))
	if c.f.onOpen != nil {
		c.f.onOpen(c)
	}
	if len(rest) > 0 {
		c.frames(append([]byte(nil), rest...))
	}
	return full
}

// readBufs are the read buffers of the pool workers: a buffer on the
// stack would escape (Read is an interface call) and cost a zeroed 16 KiB
// allocation per readable event, which made the garbage collector most of
// a broadcast run's CPU.
var readBufs = sync.Pool{New: func() any { return new([16 << 10]byte) }}

// readFrames reads what the socket has and handles complete frames. A
// short read means the socket is empty for now (new input brings a new
// edge), except after a hang-up (all): then it reads on to the EOF.
func (c *client) readFrames(all bool) {
	buf := readBufs.Get().(*[16 << 10]byte)
	defer readBufs.Put(buf)
	tmp := buf[:]
	for {
		n, err := c.Read(tmp)
		if poller.IsWouldBlock(err) {
			return
		}
		if err != nil {
			c.ended(err)
			return
		}
		p := tmp[:n]
		if len(c.buf) > 0 {
			p = append(c.buf, p...)
		}
		c.buf = nil
		c.frames(p)
		if uint8(c.phase.Load()) == phClosed || n < len(tmp) && !all {
			return
		}
	}
}

// frames handles the complete server frames in p and keeps the rest.
func (c *client) frames(p []byte) {
	for len(p) >= 2 {
		hl, plen := 2, int(p[1]&0x7f)
		switch plen {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if len(p) < hl {
			break
		}
		switch plen {
		case 126:
			plen = int(binary.BigEndian.Uint16(p[2:]))
		case 127:
			plen = int(binary.BigEndian.Uint64(p[2:]))
		}
		if len(p) < hl+plen {
			break
		}
		c.frame(p[0]&0x0f, p[hl:hl+plen])
		p = p[hl+plen:]
	}
	if len(p) > 0 && uint8(c.phase.Load()) != phClosed {
		c.buf = append([]byte(nil), p...)
	}
}

func (c *client) frame(op byte, payload []byte) {
	switch op {
	case 0x9: // ping: answer at once
		c.f.pings.Add(1)
		_ = c.send(0xA, payload)
	case 0x8: // close: answer and let the server close TCP
		c.closeCode = 1005
		if len(payload) >= 2 {
			c.closeCode = binary.BigEndian.Uint16(payload)
		}
		_ = c.send(0x8, payload[:min(len(payload), 2)])
	case 0x1, 0x2:
		if c.f.onMessage != nil {
			c.f.onMessage(c, payload)
		}
	}
}

// send writes one masked frame. What the socket does not take is kept in
// pend and written when it is writable: a pong is late, never lost (a
// lost one gets a healthy connection dropped by the server's heartbeat).
func (c *client) send(op byte, payload []byte) error {
	frame := clientFrame(op, payload)
	c.wmu.Lock()
	if uint8(c.phase.Load()) == phClosed {
		c.wmu.Unlock()
		return errClosed
	}
	if len(c.pend) > 0 {
		c.pend = append(c.pend, frame...)
		c.wmu.Unlock()
		return nil
	}
	w, err := c.Write(frame)
	if poller.IsWouldBlock(err) {
		w, err = 0, nil
	}
	queued := err == nil && w < len(frame)
	if queued {
		c.pend = append([]byte(nil), frame[w:]...)
	}
	c.wmu.Unlock()
	if queued {
		c.Wake() // the owner re-arms for writability
	}
	return err
}

// flush writes what send kept in pend. Only the owner calls it.
func (c *client) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pend) == 0 || uint8(c.phase.Load()) == phClosed {
		return nil
	}
	w, err := c.Write(c.pend)
	if poller.IsWouldBlock(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c.pend = c.pend[w:]
	if len(c.pend) == 0 {
		c.pend = nil
	}
	return nil
}

// ended handles the end of an open connection that the bench did not
// close: counted by how it ended (endClass), and the first few logged.
func (c *client) ended(err error) {
	class := endClass(c.closeCode, err)
	local := "?"
	if sa, e := unix.Getsockname(c.Fd()); e == nil {
		if a, ok := sa.(*unix.SockaddrInet4); ok {
			local = net.IP(a.Addr[:]).String() + ":" + strconv.Itoa(a.Port)
		}
	}
	c.abort("")
	f := c.f
	f.endedEarly.Add(1)
	f.mu.Lock()
	f.ends[class]++
	log := f.logged < endsLogged
	if log {
		f.logged++
	}
	f.mu.Unlock()
	if log {
		fmt.Fprintf(os.Stderr, "bench: connection %d from %s ended: %s (%v)\n", c.id, local, class, err)
	}
}

// endClass names how an open connection ended: after the server's close
// frame (with its status), or without one, by a reset or an EOF (the
// server dropped it, as it does a connection lost to its heartbeat).
func endClass(code uint16, err error) string {
	switch {
	case code != 0:
		return "server_close_" + strconv.Itoa(int(code))
	case errors.Is(err, unix.ECONNRESET):
		return "reset_without_close"
	case errors.Is(err, io.EOF):
		return "eof_without_close"
	}
	return "error:" + err.Error()
}

// clientFrame compiles a final, masked client frame. The mask is all zero
// bytes, which leaves the payload as it is: legal, and free.
func clientFrame(op byte, payload []byte) []byte {
	var hdr [14]byte
	hdr[0] = 0x80 | op
	n := 2
	switch l := len(payload); {
	case l < 126:
		hdr[1] = 0x80 | byte(l)
	case l <= 0xffff:
		hdr[1] = 0x80 | 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = 0x80 | 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	n += 4 // zero mask
	return append(hdr[:n:n], payload...)
}

// abort closes the connection, counting a failure if class is not empty.
func (c *client) abort(class string) {
	c.wmu.Lock()
	was := uint8(c.phase.Swap(uint32(phClosed)))
	if was != phClosed {
		_ = c.Desc.Close()
	}
	c.wmu.Unlock()
	if was == phOpen {
		c.f.open.Add(-1)
	}
	c.buf = nil
	if class != "" && was != phOpen && was != phClosed {
		c.f.fail(class)
	}
}

// expire fails connections stuck in connect or handshake past the timeout.
func (f *fleet) expire() {
	now := time.Now().UnixNano()
	f.mu.Lock()
	clients := f.clients
	f.mu.Unlock()
	for _, c := range clients {
		ph := uint8(c.phase.Load())
		if (ph == phConnecting || ph == phHandshake) && now-c.started > int64(f.timeout) {
			// Only the owner may close the socket: wake it.
			c.expired.Store(true)
			c.Wake()
		}
	}
}

// closeAll closes the poller, whose EventClosed makes every connection's
// owner close it, and the wss connections.
func (f *fleet) closeAll() {
	_ = f.p.Close(5 * time.Second)
	f.mu.Lock()
	for _, c := range f.tlsConns {
		c.Close()
	}
	f.tlsConns = nil
	f.mu.Unlock()
}
