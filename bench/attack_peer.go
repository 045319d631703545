package main

// Attack mode (attack.go): the attackers' connections: dial, upgrade, read frames, how each ended.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// A peer is one upgraded client connection on a blocking socket. Its
// reader (if started) answers the server's pings and records how the
// server ended the connection.
type peer struct {
	conn   net.Conn
	br     *bufio.Reader
	wmu    sync.Mutex // serialises writes: the scenario's and the pongs
	dialed time.Time  // when the dial began
	opened time.Time  // when the 101 arrived
	t0     time.Time  // when the attack on it began: ends are timed from it

	quitting atomic.Bool   // the bench closes it: a read error is ours
	endOnce  sync.Once     // end is set once, at the first sign
	endCh    chan struct{} // closed when end is set
	end      peerEnd
	done     chan struct{} // closed when the reader returns
	data     atomic.Int64  // data frames read
	scratch  []byte        // payloads the reader keeps; the reader's own
}

// peerEnd is how the server ended a connection.
type peerEnd struct {
	How    string  `json:"how"` // close (a close frame), eof, reset, or an error
	Code   int     `json:"code,omitempty"`
	Reason string  `json:"reason,omitempty"`
	AfterS float64 `json:"after_s"` // since the attack on it began
}

func (e peerEnd) String() string {
	if e.How == "close" {
		return fmt.Sprintf("close %d %q", e.Code, e.Reason)
	}
	return e.How
}

// ended records the end once.
func (p *peer) ended(e peerEnd) {
	p.endOnce.Do(func() {
		e.AfterS = time.Since(p.t0).Seconds()
		p.end = e
		close(p.endCh)
	})
}

// endOf returns how the connection ended, or nil while it is open.
func (p *peer) endOf() *peerEnd {
	select {
	case <-p.endCh:
		e := p.end
		return &e
	default:
		return nil
	}
}

func (p *peer) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.conn.Write(b)
	return err
}

// close closes the socket as the bench's own doing.
func (p *peer) close() {
	p.quitting.Store(true)
	p.conn.Close()
}

// statusError is an upgrade answered with another status than 101.
type statusError int

func (e statusError) Error() string { return "status " + strconv.Itoa(int(e)) }

// failClass names a dial or upgrade failure for the figures.
func failClass(err error) string {
	var se statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "status_" + strconv.Itoa(int(se))
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return classify(err)
}

// dial connects to the server from local (nil: the kernel's choice) with
// SO_RCVBUF rcvbuf (0: the kernel's), upgrades the connection on path, and
// registers it to be closed at the end of the run.
func (a *attack) dial(path string, local net.IP, rcvbuf int) (*peer, error) {
	d := net.Dialer{Timeout: a.o.timeout}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	if rcvbuf > 0 {
		// Before connect, so that the window offered in the SYN is small.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	start := time.Now()
	conn, err := d.Dial("tcp4", a.o.addr)
	if err != nil {
		return nil, err
	}
	p := &peer{conn: conn, br: bufio.NewReaderSize(conn, 4<<10), dialed: start,
		endCh: make(chan struct{}), done: make(chan struct{})}
	_ = conn.SetDeadline(start.Add(a.o.timeout))
	if err := upgrade(conn, p.br, a.upgradeRequest(path)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	p.opened = time.Now()
	p.t0 = p.opened
	a.mu.Lock()
	a.peers = append(a.peers, p)
	a.mu.Unlock()
	return p, nil
}

// upgradeRequest is the upgrade request for path: GET, Host, Upgrade,
// Connection, Sec-WebSocket-Key and -Version, as parseTarget builds it.
func (a *attack) upgradeRequest(path string) []byte {
	t, err := parseTarget("ws://" + a.o.addr + path)
	if err != nil {
		panic(err) // -addr was checked
	}
	return t.req
}

// upgrade sends req and reads the answer's head from br, leaving what
// follows it (the server's first frames) in br.
func upgrade(conn net.Conn, br *bufio.Reader, req []byte) error {
	if _, err := conn.Write(req); err != nil {
		return err
	}
	status, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	code := 0
	if len(status) >= 12 && bytes.HasPrefix(status, []byte("HTTP/1.1 ")) {
		code, _ = strconv.Atoi(string(status[9:12]))
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	if code != 101 {
		return statusError(code)
	}
	return nil
}

// next reads frames until a data frame and returns its opcode and, with
// keep, its payload (valid until the next call; over 64 KiB: discarded,
// nil). On the way it answers pings, and on a close frame records the end
// and answers it. An error ends the connection's reading.
func (p *peer) next(keep bool) (ws.OpCode, []byte, error) {
	for {
		h, err := ws.ReadHeader(p.br)
		if err != nil {
			return 0, nil, err
		}
		if h.OpCode.IsControl() {
			if h.Length > 125 {
				return 0, nil, errors.New("control frame over 125 bytes")
			}
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(p.br, payload); err != nil {
				return 0, nil, err
			}
			switch h.OpCode {
			case ws.OpPing:
				_ = p.write(clientFrame(0xA, payload))
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(payload)
				if len(payload) < 2 {
					code = 1005
				}
				p.ended(peerEnd{How: "close", Code: int(code), Reason: reason})
				_ = p.write(clientFrame(0x8, payload[:min(len(payload), 2)]))
			}
			continue
		}
		if !keep || h.Length > 64<<10 {
			if _, err := p.br.Discard(int(h.Length)); err != nil {
				return 0, nil, err
			}
			return h.OpCode, nil, nil
		}
		if cap(p.scratch) < int(h.Length) {
			p.scratch = make([]byte, h.Length, max(h.Length, 256))
		}
		payload := p.scratch[:h.Length]
		if _, err := io.ReadFull(p.br, payload); err != nil {
			return 0, nil, err
		}
		return h.OpCode, payload, nil
	}
}

// readErrEnd records a read error as the end, unless the bench closed the
// connection itself.
func (p *peer) readErrEnd(err error) {
	if p.quitting.Load() || errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		p.ended(peerEnd{How: "eof"})
	case errors.Is(err, unix.ECONNRESET):
		p.ended(peerEnd{How: "reset"})
	default:
		p.ended(peerEnd{How: "error: " + err.Error()})
	}
}

// read starts p's reader: it reads until the connection ends, counting
// data frames and passing them to onData (if not nil, with the payload).
func (a *attack) read(p *peer, onData func(p *peer, op ws.OpCode, payload []byte)) {
	a.readers.Add(1)
	go func() {
		defer a.readers.Done()
		defer close(p.done)
		for {
			op, payload, err := p.next(onData != nil)
			if err != nil {
				p.readErrEnd(err)
				return
			}
			p.data.Add(1)
			if onData != nil {
				onData(p, op, payload)
			}
		}
	}()
}

// dialMany opens n connections at the -rate, each dial in its own
// goroutine, and waits until each has opened or failed: the open ones,
// and the failures by class.
func (a *attack) dialMany(n int, path string, rcvbuf int) ([]*peer, map[string]int) {
	var (
		mu    sync.Mutex
		peers = make([]*peer, 0, n)
		fails = map[string]int{}
		wg    sync.WaitGroup
	)
	interval := time.Second / time.Duration(a.o.rate)
	next := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := a.dial(path, nil, rcvbuf)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails[failClass(err)]++
				return
			}
			peers = append(peers, p)
		}()
		next = next.Add(interval)
		time.Sleep(time.Until(next))
	}
	wg.Wait()
	return peers, fails
}

// endCounts counts the ends of peers by how ("open" for those that did
// not end) and lists the times of those that did.
func endCounts(peers []*peer) (map[string]int, []float64) {
	counts := map[string]int{}
	var after []float64
	for _, p := range peers {
		e := p.endOf()
		if e == nil {
			counts["open"]++
			continue
		}
		counts[e.String()]++
		after = append(after, e.AfterS)
	}
	return counts, after
}

// spread is the smallest, median and largest of some times, in seconds.
type spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func spreadOf(v []float64) *spread {
	if len(v) == 0 {
		return nil
	}
	sort.Float64s(v)
	return &spread{Min: v[0], Median: v[len(v)/2], Max: v[len(v)-1]}
}

// waitEnded waits until every peer has ended or the deadline passed.
func waitEnded(peers []*peer, deadline time.Time) {
	for _, p := range peers {
		select {
		case <-p.endCh:
		case <-time.After(time.Until(deadline)):
			return
		}
	}
}

// Scenario peraddr.
