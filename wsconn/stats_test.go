package wsconn

import (
	"fmt"
	"sync"
	"testing"
)

// TestStatsExactUnderConcurrency: clients on many connections (so many
// counter stripes) echo at once, each pipelining its messages so that
// several arrive in one read; once they close, the counts add up exactly:
// messages and payload bytes in and out, nothing left queued, every close.
func TestStatsExactUnderConcurrency(t *testing.T) {
	srv := startServer(t, Config{MaxMessageRate: -1, MaxByteRate: -1})
	const conns, msgs = 70, 50 // more connections than stripes
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	clients := make([]*rawClient, conns)
	for i := range clients {
		clients[i] = dialWS(t, srv, "/echo")
	}
	var payload int
	for i := range msgs {
		payload += len(fmt.Sprintf("m%d", i))
	}
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var frames []cframe
			for i := range msgs {
				frames = append(frames, textFrame(fmt.Sprintf("m%d", i)))
			}
			if _, err := c.conn.Write(encodeAll(frames)); err != nil { // one write: many messages per read
				errs <- err
				return
			}
			for i := range msgs {
				f, err := c.readFrame(ioTimeout)
				if err != nil || string(f.payload) != fmt.Sprintf("m%d", i) {
					errs <- fmt.Errorf("echo %d: got %v, %v", i, f, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A worker counts a connection's messages and bytes once per read and
	// after each write, so the client can hold every echo before they are
	// counted. The counts are final when the connection is gone: close
	// every one, then read them.
	for _, c := range clients {
		c.send(closeWith(StatusNormalClosure, ""))
		c.expectClose(StatusNormalClosure, ioTimeout)
	}
	eventually(t, ioTimeout, "all closed", func() bool { return srv.Conns() == 0 })
	st := srv.Stats()
	if st.MessagesIn != conns*msgs || st.MessagesOut != conns*msgs {
		t.Errorf("messages in %d, out %d; want %d each", st.MessagesIn, st.MessagesOut, conns*msgs)
	}
	// Bytes on the wire: client frames carry a 6-byte header (2 + mask),
	// server frames 2 bytes, plus the handshakes and the close frames
	// (under 1 KiB each way).
	if lo := uint64(conns * (payload + 6*msgs)); st.BytesIn < lo || st.BytesIn > lo+conns*1024 {
		t.Errorf("bytes in %d, want %d plus the handshakes", st.BytesIn, lo)
	}
	if lo := uint64(conns * (payload + 2*msgs)); st.BytesOut < lo || st.BytesOut > lo+conns*1024 {
		t.Errorf("bytes out %d, want %d plus the handshakes", st.BytesOut, lo)
	}
	if st.QueuedBytes != 0 || st.UnsentBytes != 0 {
		t.Errorf("queued bytes %d, unsent %d after every echo was read, want 0 and 0", st.QueuedBytes, st.UnsentBytes)
	}
	if got := st.Closes[1000]; got != conns {
		t.Errorf("closes with 1000: %d, want %d", got, conns)
	}
}
