package wsconn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Broadcast helpers of the attack tests: subscribers that read, or do not.

// broadcast is the never-reader attack: readers that keep up and one
// subscriber that never reads.
type broadcast struct {
	readers   []*bcReader
	nonReader net.Conn
	nrReader  *bufio.Reader
	once      sync.Once
}

// bcReader is a subscriber that reads every push and checks its sequence
// number.
type bcReader struct {
	c   net.Conn
	br  *bufio.Reader
	got atomic.Int64
	err error
}

func newBroadcast(t *testing.T, addr string, n int) *broadcast {
	b := &broadcast{}
	// The non-reader's receive buffer is small, so that the server's
	// queue for it fills soon.
	small := &net.Dialer{Timeout: goodTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	var err error
	if b.nonReader, b.nrReader, err = attackDialer(small, addr, "/ws"); err != nil {
		t.Fatalf("non-reader: %v", err)
	}
	subscribe(t, b.nonReader, b.nrReader)
	for range n {
		c, br, err := attackDial(addr, "/ws")
		if err != nil {
			b.closeAll()
			t.Fatalf("reader: %v", err)
		}
		r := &bcReader{c: c, br: bufio.NewReaderSize(br, broadcastBuf)}
		b.readers = append(b.readers, r)
		subscribe(t, c, r.br)
	}
	return b
}

// closeAll closes every subscriber and lets go of the readers' buffers.
func (b *broadcast) closeAll() {
	b.once.Do(func() {
		b.nonReader.Close()
		b.nrReader = nil
		for _, r := range b.readers {
			r.c.Close()
			r.br = nil
		}
	})
}

// subscribe subscribes c to "news" and reads the ack.
func subscribe(t *testing.T, c net.Conn, br *bufio.Reader) { subscribeTo(t, c, br, "news") }

// subscribeTo subscribes c to channel and reads the ack.
func subscribeTo(t *testing.T, c net.Conn, br *bufio.Reader, channel string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(goodTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(invFrame(ws.OpText, true, []byte(`{"op":"subscribe","channel":"`+channel+`","id":1}`))); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if f := invReadFrame(t, br); !bytes.Contains(f.Payload, []byte(`"ack"`)) {
		t.Fatalf("subscribe: got %q, want an ack", f.Payload)
	}
}

// read reads pushes until the last one, checking that each carries the
// next sequence number.
func (r *bcReader) read() {
	for {
		_ = r.c.SetReadDeadline(time.Now().Add(goodTimeout))
		h, err := ws.ReadHeader(r.br)
		if err != nil {
			r.err = err
			return
		}
		head, err := r.br.Peek(len(pushPrefix) + 8)
		if err != nil || h.OpCode != ws.OpText || !bytes.HasPrefix(head, []byte(pushPrefix)) {
			r.err = fmt.Errorf("got a %v frame starting %q (%v), want a push", h.OpCode, head, err)
			return
		}
		seq, _ := strconv.Atoi(string(head[len(pushPrefix):]))
		if _, err := r.br.Discard(int(h.Length)); err != nil {
			r.err = err
			return
		}
		if seq == endSeq {
			return
		}
		if want := r.got.Load(); int64(seq) != want {
			r.err = fmt.Errorf("got message %d, want %d", seq, want)
			return
		}
		r.got.Add(1)
	}
}

// run publishes until the non-reader has been cut as a slow consumer and
// at least broadcastMin messages went out, pacing the publisher on the
// slowest reader, then checks that every reader got every message and that
// the non-reader got the 1008 close frame.
func (b *broadcast) run(t *testing.T, channels channelsHandler, srv *Server, slow0 uint64) {
	var wg sync.WaitGroup
	for _, r := range b.readers {
		wg.Add(1)
		go func() { defer wg.Done(); r.read() }()
	}
	data := []byte(`"` + strings.Repeat("x", broadcastSize-2) + `"`)
	publish := func(seq int) {
		copy(data[1:], fmt.Sprintf("%08d", seq))
		if _, err := channels.Publish("news", data); err != nil {
			t.Errorf("publish %d: %v", seq, err)
		}
	}
	var nr nonReaderEnd
	drained := make(chan struct{})
	sent, cutAt := 0, -1
	start := time.Now()
	for ; sent < broadcastMax && (cutAt < 0 || sent < max(broadcastMin, cutAt+100)); sent++ {
		if cutAt < 0 && srv.stats.slowConsumers.Load() > slow0 {
			cutAt = sent
			go func() { defer close(drained); nr = drainNonReader(b.nonReader, b.nrReader) }()
		}
		if !poll(goodTimeout, func() bool { return b.slowest() >= int64(sent-broadcastLag) }) {
			t.Errorf("readers stopped at %d messages of %d", b.slowest(), sent)
			break
		}
		publish(sent)
	}
	publish(endSeq)
	wg.Wait()
	took := time.Since(start)
	for i, r := range b.readers {
		if got := r.got.Load(); got != int64(sent) || r.err != nil {
			t.Errorf("reader %d got %d messages of %d, then %v", i, got, sent, r.err)
		}
	}
	if cutAt < 0 {
		t.Fatalf("the non-reader was not cut after %d messages (%d MiB)", sent, sent*broadcastSize>>20)
	}
	<-drained
	b.nonReader.Close() // the server reads EOF and ends the closing handshake
	t.Logf("broadcast: %d messages of %d KiB to %d readers in %v; the non-reader was cut after %d, had %d in its socket, then close %d %q (%v)",
		sent, broadcastSize>>10, len(b.readers), took.Round(time.Millisecond), cutAt, nr.pushes, nr.code, nr.reason, nr.err)
	if nr.code != StatusPolicyViolation || nr.reason != "slow consumer" {
		t.Errorf("the non-reader got close %d %q, want 1008 \"slow consumer\"", nr.code, nr.reason)
	}
}

func (b *broadcast) slowest() int64 {
	n := int64(1 << 62)
	for _, r := range b.readers {
		n = min(n, r.got.Load())
	}
	return n
}

// nonReaderEnd is what the non-reader finds once it reads after all.
type nonReaderEnd struct {
	pushes int
	code   StatusCode
	reason string
	err    error
}

// drainNonReader reads the non-reader's socket up to the close frame.
func drainNonReader(c net.Conn, br *bufio.Reader) (e nonReaderEnd) {
	_ = c.SetReadDeadline(time.Now().Add(goodTimeout))
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			e.err = err
			return e
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			e.err = err
			return e
		}
		switch {
		case h.OpCode == ws.OpText:
			e.pushes++
		case h.OpCode == ws.OpClose && len(p) >= 2:
			e.code, e.reason = StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
			return e
		default:
			e.err = fmt.Errorf("got a %v frame, want pushes then close", h.OpCode)
			return e
		}
	}
}
