package wsconn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// closeCase is a close frame a client sends first, and the close code the
// server answers with: the same code for a valid frame (1005 meaning an
// empty close frame), 1002 or 1007 for an invalid one. The table also
// seeds FuzzReadFrame.
type closeCase struct {
	name    string
	payload []byte
	want    StatusCode
	bad     bool // the frame is invalid: want is the server's complaint
}

var closeCases = func() []closeCase {
	cases := []closeCase{
		{"empty payload", nil, StatusNoStatusRcvd, false},
		{"1-byte payload", []byte{0x03}, StatusProtocolError, true},
		{"reason of 123 bytes", closePayload(4000, strings.Repeat("r", 123)), 4000, false},
		{"reason with multi-byte characters", closePayload(1000, "bye \u20ac\U0001f600"), 1000, false},
		{"invalid UTF-8 reason", closePayload(1000, "bad \xff"), StatusInvalidFramePayloadData, true},
		{"reason ending inside a character", closePayload(1000, "\u20ac"[:2]), StatusInvalidFramePayloadData, true},
		{"invalid code with invalid reason", closePayload(999, "\xff"), StatusProtocolError, true},
	}
	for _, code := range []StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, closeCase{fmt.Sprintf("valid code %d", code), closePayload(code, ""), code, false})
	}
	for _, code := range []StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535} {
		cases = append(cases, closeCase{fmt.Sprintf("invalid code %d", code), closePayload(code, "x"), StatusProtocolError, true})
	}
	return cases
}()

// TestClientClose sends each closeCase: the server answers with the
// expected code and an empty reason, closes the connection, and reports
// the peer's code and reason (or, after a protocol error, its own) to
// OnClose, after OnError if the frame was invalid.
func TestClientClose(t *testing.T) {
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			srv := startServer(t, Config{Routes: map[string]Handler{"/rec": rec}})
			c := dialWS(t, srv, "/rec")
			rec.next(t, "open")
			c.send(closeFrameOf(tc.payload))
			reason := c.expectClose(tc.want, ioTimeout)
			c.expectEOF()
			_ = c.conn.Close()

			valid := !tc.bad
			if valid {
				if reason != "" {
					t.Errorf("got reason %q in the echo, want none", reason)
				}
			} else {
				e := rec.next(t, "error")
				ce, ok := AsCloseError(e.err)
				if !ok || ce.Code != tc.want {
					t.Errorf("OnError: got %v, want a *CloseError with code %d", e.err, tc.want)
				}
			}
			e := rec.next(t, "close")
			wantReason := ""
			if valid && len(tc.payload) > 2 {
				wantReason = string(tc.payload[2:])
			}
			if e.code != tc.want || valid && e.reason != wantReason {
				t.Errorf("OnClose: got (%d, %q), want (%d, %q)", e.code, e.reason, tc.want, wantReason)
			}
			eventually(t, ioTimeout, "connection released", func() bool { return srv.Conns() == 0 })
		})
	}
}

// TestDataAfterCloseIgnored sends a message right behind a close frame: it
// is not delivered (RFC 6455 section 5.5.1).
func TestDataAfterCloseIgnored(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, Config{Routes: map[string]Handler{"/rec": rec}})
	c := dialWS(t, srv, "/rec")
	rec.next(t, "open")
	c.write(encodeAll([]cframe{closeWith(1000, "done"), textFrame("ignored"), pingFrame("ignored")}))
	c.expectClose(1000, ioTimeout)
	c.expectEOF()
	if e := rec.next(t, "close"); e.code != 1000 || e.reason != "done" {
		t.Errorf("OnClose: got (%d, %q), want (1000, \"done\")", e.code, e.reason)
	}
	rec.none(t)
}

// TestServerClose: a handler closes the connection; the client sees the
// code and reason, answers, and the server closes the socket and reports
// the code to OnClose without an error.
func TestServerClose(t *testing.T) {
	tests := []struct {
		name       string
		code       StatusCode
		reason     string
		wantCode   StatusCode
		wantReason string
	}{
		{"4000 bye", 4000, "bye", 4000, "bye"},
		{"normal, no reason", 1000, "", 1000, ""},
		{"code that may not be sent becomes 1000", 1005, "x", 1000, "x"},
		{"long reason is cut at a character", 4001, strings.Repeat("\u00e9", 100), 4001, strings.Repeat("\u00e9", 61)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			rec.onMessage = func(c Conn, _ MessageType, _ []byte) {
				if err := c.Close(tt.code, tt.reason); err != nil {
					t.Errorf("Close: %v", err)
				}
				if err := c.Close(tt.code, tt.reason); !errors.Is(err, ErrClosed) {
					t.Errorf("second Close: got %v, want ErrClosed", err)
				}
				if err := c.Send(Text, []byte("late")); !errors.Is(err, ErrClosed) {
					t.Errorf("Send after Close: got %v, want ErrClosed", err)
				}
			}
			srv := startServer(t, Config{Routes: map[string]Handler{"/rec": rec}})
			c := dialWS(t, srv, "/rec")
			c.send(textFrame("close please"))
			if reason := c.expectClose(tt.wantCode, ioTimeout); reason != tt.wantReason {
				t.Errorf("got reason %q, want %q", reason, tt.wantReason)
			}
			c.send(closeWith(tt.wantCode, ""))
			c.expectEOF()
			rec.next(t, "open")
			rec.next(t, "message")
			if e := rec.next(t, "close"); e.code != tt.wantCode {
				t.Errorf("OnClose: got %d, want %d", e.code, tt.wantCode)
			}
			rec.none(t)
			eventually(t, ioTimeout, "connection released", func() bool { return srv.Conns() == 0 })
		})
	}
}

// TestPeerCloseReachesOnClose: OnClose receives the code and reason the
// peer sent, not the echo.
func TestPeerCloseReachesOnClose(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, Config{Routes: map[string]Handler{"/rec": rec}})
	c := dialWS(t, srv, "/rec")
	c.send(closeWith(3001, "see you \u00e9"))
	c.expectClose(3001, ioTimeout)
	c.expectEOF()
	rec.next(t, "open")
	if e := rec.next(t, "close"); e.code != 3001 || e.reason != "see you \u00e9" {
		t.Errorf("OnClose: got (%d, %q), want (3001, %q)", e.code, e.reason, "see you \u00e9")
	}
	rec.none(t)
}

// TestProtocolErrorReportsErrorThenClose: a protocol violation is
// reported to OnError as a *CloseError with the code sent and the cause,
// then OnClose follows, once each.
func TestProtocolErrorReportsErrorThenClose(t *testing.T) {
	tests := []struct {
		name  string
		frame cframe
		code  StatusCode
		cause error
	}{
		{"unmasked", cframe{op: ws.OpText, unmasked: true, payload: []byte("x")}, StatusProtocolError, ws.ErrProtocolMaskRequired},
		{"reserved opcode", cframe{op: 0x3}, StatusProtocolError, ws.ErrProtocolOpCodeReserved},
		{"invalid UTF-8", textFrame("\xff"), StatusInvalidFramePayloadData, ErrInvalidUTF8},
		{"too big", binFrame(pattern(200)), StatusMessageTooBig, ErrMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			srv := startServer(t, Config{MaxMessageSize: 128, Routes: map[string]Handler{"/rec": rec}})
			c := dialWS(t, srv, "/rec")
			c.send(tt.frame)
			c.expectClose(tt.code, ioTimeout)
			c.expectEOF()
			_ = c.conn.Close()
			rec.next(t, "open")
			e := rec.next(t, "error")
			if !errors.Is(e.err, tt.cause) {
				t.Errorf("OnError: got %v, want one wrapping %v", e.err, tt.cause)
			}
			if isProto := tt.code == StatusProtocolError; errors.Is(e.err, ErrProtocol) != isProto {
				t.Errorf("OnError: errors.Is(%v, ErrProtocol) = %v, want %v", e.err, !isProto, isProto)
			}
			if ce, ok := AsCloseError(e.err); !ok || ce.Code != tt.code {
				t.Errorf("OnError: got %v, want a *CloseError with code %d", e.err, tt.code)
			}
			if e := rec.next(t, "close"); e.code != tt.code {
				t.Errorf("OnClose: got %d, want %d", e.code, tt.code)
			}
			rec.none(t)
		})
	}
}

// TestCloseTimeout: a client that reads the server's close frame but never
// answers it is disconnected after CloseTimeout, and OnError says so.
func TestCloseTimeout(t *testing.T) {
	const closeTimeout = 150 * time.Millisecond
	rec := newRecorder()
	rec.onMessage = func(c Conn, _ MessageType, _ []byte) { _ = c.Close(4001, "go away") }
	srv := startServer(t, Config{
		CloseTimeout:  closeTimeout,
		SweepInterval: 10 * time.Millisecond,
		Routes:        map[string]Handler{"/rec": rec},
	})
	c := dialWS(t, srv, "/rec")
	c.send(textFrame("close me"))
	c.expectClose(4001, ioTimeout)
	start := time.Now()
	c.expectEOF() // the server's FIN follows its close frame at once
	rec.next(t, "open")
	rec.next(t, "message")
	e := rec.next(t, "error")
	if elapsed := time.Since(start); elapsed < closeTimeout/2 {
		t.Errorf("closed after %v, want about CloseTimeout (%v)", elapsed, closeTimeout)
	}
	if !errors.Is(e.err, ErrCloseTimeout) {
		t.Errorf("OnError: got %v, want ErrCloseTimeout", e.err)
	}
	if e := rec.next(t, "close"); e.code != 4001 || e.reason != "go away" {
		t.Errorf("OnClose: got (%d, %q), want (4001, \"go away\")", e.code, e.reason)
	}
	eventually(t, ioTimeout, "connection released", func() bool { return srv.Conns() == 0 })
}

// heartbeatConfig pings after 100ms of silence and gives up 200ms later.
func heartbeatConfig(h Handler) Config {
	return Config{
		PingInterval:  100 * time.Millisecond,
		PongTimeout:   200 * time.Millisecond,
		SweepInterval: 20 * time.Millisecond,
		Routes:        map[string]Handler{"/rec": h},
	}
}

// TestHeartbeatAnswered: a silent client is pinged; while it answers every
// ping it stays connected.
func TestHeartbeatAnswered(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, heartbeatConfig(rec))
	c := dialWS(t, srv, "/rec")
	start := time.Now()
	for i := range 4 {
		f, err := c.readFrame(2 * time.Second)
		if err != nil {
			t.Fatalf("waiting for ping %d: %v", i+1, err)
		}
		if f.op != ws.OpPing {
			t.Fatalf("got %v, want a ping", f)
		}
		c.send(pongFrame(string(f.payload)))
	}
	// Four rounds of ping interval (100ms) outlast the pong timeout
	// (200ms) several times over.
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("4 pings within %v, want one per ping interval", elapsed)
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("got %d connections, want 1", n)
	}
	if st := srv.Stats(); st.Pings < 4 || st.HeartbeatTimeouts != 0 {
		t.Errorf("got %d pings and %d heartbeat timeouts, want 4+ and 0", st.Pings, st.HeartbeatTimeouts)
	}
	rec.next(t, "open")
	rec.none(t)
	c.closeHandshake()
}

// TestHeartbeatTimeout: a client that never answers the ping is cut off
// without a close frame; OnError wraps ErrHeartbeatTimeout and OnClose
// reports 1006.
func TestHeartbeatTimeout(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, heartbeatConfig(rec))
	c := dialWS(t, srv, "/rec")
	f, err := c.readFrame(2 * time.Second)
	if err != nil || f.op != ws.OpPing {
		t.Fatalf("got %v, %v, want a ping", f, err)
	}
	c.expectEOF()
	rec.next(t, "open")
	e := rec.next(t, "error")
	if !errors.Is(e.err, ErrHeartbeatTimeout) {
		t.Errorf("OnError: got %v, want ErrHeartbeatTimeout", e.err)
	}
	if e := rec.next(t, "close"); e.code != StatusAbnormalClosure {
		t.Errorf("OnClose: got %d, want 1006", e.code)
	}
	if st := srv.Stats(); st.HeartbeatTimeouts != 1 {
		t.Errorf("got %d heartbeat timeouts, want 1", st.HeartbeatTimeouts)
	}
}

// TestHeartbeatAnyInputCounts: data from the client answers for a pong.
func TestHeartbeatAnyInputCounts(t *testing.T) {
	rec := newRecorder()
	srv := startServer(t, heartbeatConfig(rec))
	c := dialWS(t, srv, "/rec")
	f, err := c.readFrame(2 * time.Second)
	if err != nil || f.op != ws.OpPing {
		t.Fatalf("got %v, %v, want a ping", f, err)
	}
	c.send(textFrame("still here"))
	c.expectFrame(textEcho("still here"))
	f, err = c.readFrame(2 * time.Second) // the next heartbeat, not a timeout
	if err != nil || f.op != ws.OpPing {
		t.Fatalf("got %v, %v, want a second ping", f, err)
	}
	c.closeHandshake()
	if st := srv.Stats(); st.HeartbeatTimeouts != 0 {
		t.Errorf("got %d heartbeat timeouts, want 0", st.HeartbeatTimeouts)
	}
}

// TestHandshakeTimeout: a client that sends half a request line and
// stalls is disconnected after HandshakeTimeout, without an answer.
func TestHandshakeTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	srv := startServer(t, Config{HandshakeTimeout: timeout, SweepInterval: 10 * time.Millisecond})
	c := dialRaw(t, srv)
	start := time.Now()
	c.write([]byte("GET /ec"))
	c.expectEOF()
	if elapsed := time.Since(start); elapsed < timeout/2 {
		t.Errorf("closed after %v, want about HandshakeTimeout (%v)", elapsed, timeout)
	}
	eventually(t, ioTimeout, "handshake timeout counted", func() bool {
		st := srv.Stats()
		return st.HandshakeTimeouts == 1 && st.Conns == 0
	})
}
