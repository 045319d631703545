package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// MessageType is the kind of a data message.
type MessageType int

// Message types: the frame opcodes.
const (
	Text   MessageType = MessageType(ws.OpText)
	Binary MessageType = MessageType(ws.OpBinary)
)

// Errors of the connection layer.
var (
	// ErrNotConnected is returned by a send while there is no connection
	// and Options.QueueWhileDown is off (or its queue is full).
	ErrNotConnected = errors.New("client: not connected")
	// ErrClosed is returned once Close was called.
	ErrClosed = errors.New("client: closed")
	// ErrQueueFull is returned by a send when WriteQueue messages wait.
	ErrQueueFull = errors.New("client: write queue full")
	// ErrPongTimeout is the error of a connection dropped by the
	// connection-lost timer: no answer to a ping within PongTimeout.
	ErrPongTimeout = errors.New("client: connection lost: no pong within the pong timeout")
	// ErrMessageTooLarge is the error of a connection dropped for a
	// message over MaxMessageSize (closed with 1009).
	ErrMessageTooLarge = errors.New("client: message over MaxMessageSize")
	// ErrPingTooLong is returned by Ping for a payload over 125 bytes,
	// the most a control frame carries.
	ErrPingTooLong = errors.New("client: ping payload over 125 bytes")
)

// Options configure a Conn. The zero value works: no reconnect, the
// defaults below.
type Options struct {
	// Header is sent with the handshake (a token: Authorization).
	Header http.Header
	// HeaderFunc, if set, gives the header of each attempt instead (a
	// fresh token for every reconnect); its error fails the attempt.
	HeaderFunc func(ctx context.Context) (http.Header, error)
	// Subprotocols are offered in Sec-WebSocket-Protocol.
	Subprotocols []string
	// TLSConfig is used for wss:// (custom roots, client certificates).
	TLSConfig *tls.Config
	// ConnectTimeout bounds the TCP (and TLS) connect. Default 10s.
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds the HTTP upgrade. Default 10s.
	HandshakeTimeout time.Duration
	// Compression offers permessage-deflate (RFC 7692) without context
	// takeover; Conn.Compressed says whether the server took it.
	Compression bool
	// MaxMessageSize is the largest message read (decompressed); a larger one closes
	// the connection with 1009. Default 16 MiB.
	MaxMessageSize int64
	// PingInterval: a ping is sent after this long without reading
	// anything; negative: never. Default 25s.
	PingInterval time.Duration
	// PongTimeout: the connection is dropped (ErrPongTimeout) when
	// nothing is read this long after a ping. Default 10s.
	PongTimeout time.Duration
	// CloseTimeout bounds Close's wait for the server's close frame.
	// Default 5s.
	CloseTimeout time.Duration
	// WriteQueue bounds the messages waiting to be written. Default 256.
	WriteQueue int
	// QueueWhileDown keeps sends made while disconnected (up to
	// WriteQueue) and writes them, in order, on the next connection;
	// off, such a send fails at once with ErrNotConnected.
	QueueWhileDown bool
	// Reconnect, if set, reconnects after every loss of the connection
	// but Close and a final close (Final).
	Reconnect *Backoff

	// Events, each called on the Conn's goroutine, one at a time, in
	// order: they must not block for long.
	OnOpen         func(c *Conn)
	OnMessage      func(c *Conn, t MessageType, data []byte) // data is the caller's
	OnClose        func(c *Conn, e CloseEvent)
	OnError        func(c *Conn, err error)
	OnReconnecting func(c *Conn, e ReconnectEvent)
}

// Backoff is the reconnect policy: exponential with full jitter, the
// n-th wait drawn uniformly from [0, min(Max, Min·2^n)].
type Backoff struct {
	Min, Max    time.Duration // defaults 500ms and 30s
	MaxAttempts int           // attempts in a row before giving up; 0: forever
}

// CloseEvent says how a connection ended.
type CloseEvent struct {
	Code     int    // the close code: the server's, or 1006 when the connection was lost without one
	Reason   string // the server's reason, or the error's
	ByServer bool   // the server sent a close frame (or refused the handshake)
	Err      error  // what ended it when the server did not close it
	// Final: no reconnect follows (Close was called, no Reconnect, the
	// attempts ran out, or the server said not to come back: Final).
	Final bool
}

// ReconnectEvent announces a reconnect attempt.
type ReconnectEvent struct {
	Attempt int           // 1 for the first after a loss
	Delay   time.Duration // the wait before it
	Err     error         // why the last connection or attempt ended
}

// HandshakeError is the error of a handshake the server refused with an
// HTTP status.
type HandshakeError struct{ Status int }

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("client: handshake refused: HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// Final reports whether a close code or handshake status means the
// server does not want the client back as it is: retrying cannot help
// (policy violation 1008, unsupported data 1003, an application's
// 4000-4999; HTTP 400-428 and 430-499 but 408: a bad request, a bad or
// missing token, a forbidden origin).
func Final(code int) bool {
	switch {
	case code == 1008 || code == 1003 || code >= 4000 && code <= 4999:
		return true
	case code >= 400 && code < 500:
		return code != 408 && code != 429
	}
	return false
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.HandshakeTimeout, 10*time.Second)
	def(&o.PingInterval, 25*time.Second)
	def(&o.PongTimeout, 10*time.Second)
	def(&o.CloseTimeout, 5*time.Second)
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = 16 << 20
	}
	if o.WriteQueue == 0 {
		o.WriteQueue = 256
	}
	if o.Reconnect != nil {
		b := *o.Reconnect
		def(&b.Min, 500*time.Millisecond)
		def(&b.Max, 30*time.Second)
		o.Reconnect = &b
	}
	return o
}

// frame is one queued write.
type frame struct {
	op  ws.OpCode
	buf []byte // headroom bytes, then the payload (the sender's copy)
}

// Conn is a WebSocket client connection that, with Options.Reconnect,
// comes back by itself: Java-WebSocket's WebSocketClient, the Go way.
// Its methods are safe for concurrent use.
type Conn struct {
	url  string
	opts Options

	mu      sync.Mutex
	pending []frame       // writes waiting: this connection's, or the next one's
	writing bool          // a sender is writing pending out (flush)
	conn    net.Conn      // nil while disconnected
	wake    chan struct{} // Reconnect: skip the wait
	closing bool          // Close was called
	done    chan struct{} // closed when the Conn's goroutine ends
	closed  chan struct{} // closed by Close

	writeMu sync.Mutex // one writer of frames at a time: the writer goroutine, pongs, Close

	compressed atomic.Bool // this connection negotiated permessage-deflate

	connected atomic.Bool
	lastRead  atomic.Int64          // unix nanoseconds
	cause     atomic.Pointer[error] // why the writer dropped the connection
}

// Dial connects to url and returns once the connection is open, or with
// the first attempt's error (ctx bounds it); with Options.Reconnect the
// Conn then comes back by itself after every loss.
func Dial(ctx context.Context, url string, opts Options) (*Conn, error) {
	c := newConn(url, opts)
	nc, br, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conn = nc // open when Dial returns: sends go to it
	c.mu.Unlock()
	c.connected.Store(true)
	go c.run(nc, br)
	return c, nil
}

// Connect starts connecting to url in the background and returns at
// once; OnOpen says when the connection is open, OnClose and
// OnReconnecting what happens next (Java-WebSocket's connect; Dial is its
// connectBlocking).
func Connect(url string, opts Options) *Conn {
	c := newConn(url, opts)
	go c.run(nil, nil)
	return c
}

func newConn(url string, opts Options) *Conn {
	o := opts.withDefaults()
	return &Conn{url: url, opts: o, wake: make(chan struct{}, 1),
		done: make(chan struct{}), closed: make(chan struct{})}
}

// dial makes one connection attempt.
func (c *Conn) dial(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	header := c.opts.Header
	if c.opts.HeaderFunc != nil {
		h, err := c.opts.HeaderFunc(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("client: no header for the handshake: %w", err)
		}
		header = h
	}
	var exts []httphead.Option
	if c.opts.Compression {
		exts = []httphead.Option{deflateOffer.Option()}
	}
	d := ws.Dialer{
		Extensions: exts,
		Header:     ws.HandshakeHeaderHTTP(header),
		Protocols:  c.opts.Subprotocols,
		TLSConfig:  c.opts.TLSConfig,
		Timeout:    c.opts.HandshakeTimeout,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{Timeout: c.opts.ConnectTimeout}
			return nd.DialContext(ctx, network, addr)
		},
	}
	nc, br, hs, err := d.Dial(ctx, c.url)
	var se ws.StatusError
	if errors.As(err, &se) {
		return nil, nil, &HandshakeError{Status: int(se)}
	}
	if err != nil {
		return nil, nil, err
	}
	deflate := false
	for _, opt := range hs.Extensions {
		var p wsflate.Parameters
		if string(opt.Name) == wsflate.ExtensionName && p.Parse(opt) == nil {
			deflate = true
		}
	}
	c.compressed.Store(deflate)
	return nc, br, nil
}

// deflateOffer is the permessage-deflate the client offers: no context
// takeover either way, so that a connection keeps no compression state
// between messages.
var deflateOffer = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// Compressed reports whether the current (or last) connection negotiated
// permessage-deflate.
func (c *Conn) Compressed() bool { return c.compressed.Load() }

// Connected reports whether the connection is open now.
func (c *Conn) Connected() bool { return c.connected.Load() }

// Send queues a text message.
func (c *Conn) Send(p []byte) error { return c.enqueue(ws.OpText, p) }

// SendBinary queues a binary message.
func (c *Conn) SendBinary(p []byte) error { return c.enqueue(ws.OpBinary, p) }

// Ping queues a ping with payload p, at most 125 bytes.
func (c *Conn) Ping(p []byte) error {
	if len(p) > 125 {
		return ErrPingTooLong
	}
	return c.enqueue(ws.OpPing, p)
}

func (c *Conn) enqueue(op ws.OpCode, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closing:
		return ErrClosed
	case c.conn == nil && !c.opts.QueueWhileDown:
		return ErrNotConnected
	}
	if len(c.pending) >= c.opts.WriteQueue {
		return ErrQueueFull
	}
	buf := make([]byte, headroom+len(p)) // the header is written in front of the copy
	copy(buf[headroom:], p)
	c.pending = append(c.pending, frame{op, buf})
	if c.conn == nil || c.writing {
		return nil // the next connection, or the sender writing now, writes it
	}
	c.writing = true
	nc := c.conn
	c.mu.Unlock()
	c.flush(nc)
	c.mu.Lock()
	return nil
}

// Reconnect drops the connection, if any, and connects again now (with
// Options.Reconnect; without, it only drops it).
func (c *Conn) Reconnect() {
	c.mu.Lock()
	nc := c.conn
	c.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close performs the close handshake with code and reason, waits for the
// server's close frame up to CloseTimeout, ends the connection and every
// reconnect, and returns once the Conn's goroutine has ended (after the
// final OnClose).
func (c *Conn) Close(code int, reason string) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closing = true
	close(c.closed)
	nc := c.conn
	c.mu.Unlock()
	if nc != nil {
		body := ws.NewCloseFrameBody(ws.StatusCode(code), reason)
		_ = nc.SetWriteDeadline(time.Now().Add(c.opts.CloseTimeout))
		c.writeMu.Lock()
		err := wsutil.WriteClientMessage(nc, ws.OpClose, body)
		c.writeMu.Unlock()
		if err != nil {
			_ = nc.Close()
		}
		_ = nc.SetReadDeadline(time.Now().Add(c.opts.CloseTimeout)) // the reader ends on the answer or at this
	}
	<-c.done
	return nil
}

// run is the Conn's goroutine: connect, serve, and reconnect, until Close
// or a final end.
func (c *Conn) run(nc net.Conn, br *bufio.Reader) {
	defer close(c.done)
	attempt := 0
	var lastErr error
	for {
		if nc == nil {
			if attempt > 0 || lastErr != nil {
				if !c.waitReconnect(attempt, lastErr) {
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.ConnectTimeout+c.opts.HandshakeTimeout)
			go func() { // Close cancels a dial in progress
				select {
				case <-c.closed:
				case <-ctx.Done():
				}
				cancel()
			}()
			var err error
			nc, br, err = c.dial(ctx)
			cancel()
			if err != nil {
				attempt++
				lastErr = err
				c.event(func() {
					if c.opts.OnError != nil {
						c.opts.OnError(c, err)
					}
				})
				var he *HandshakeError
				if c.isClosing() || c.opts.Reconnect == nil || errors.As(err, &he) && Final(he.Status) ||
					c.opts.Reconnect.MaxAttempts > 0 && attempt >= c.opts.Reconnect.MaxAttempts {
					e := CloseEvent{Code: 1006, Reason: err.Error(), Err: err, Final: true}
					if errors.As(err, &he) {
						e.Code, e.ByServer = he.Status, true
					}
					c.event(func() {
						if c.opts.OnClose != nil {
							c.opts.OnClose(c, e)
						}
					})
					return
				}
				continue
			}
		}
		attempt = 0
		e := c.serve(nc, br)
		nc, br = nil, nil
		lastErr = e.Err
		if lastErr == nil {
			lastErr = fmt.Errorf("client: closed by the server: %d %s", e.Code, e.Reason)
		}
		e.Final = c.isClosing() || c.opts.Reconnect == nil || e.ByServer && Final(e.Code)
		c.event(func() {
			if c.opts.OnClose != nil {
				c.opts.OnClose(c, e)
			}
		})
		if e.Final {
			return
		}
		attempt = 1
	}
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// event runs an event callback. It exists so that every callback is
// called from one place.
func (c *Conn) event(f func()) { f() }

// waitReconnect waits the backoff before attempt, announcing it; false:
// Close was called meanwhile.
func (c *Conn) waitReconnect(attempt int, err error) bool {
	b := c.opts.Reconnect
	ceil := b.Min << min(attempt, 30)
	if ceil <= 0 || ceil > b.Max {
		ceil = b.Max
	}
	delay := time.Duration(rand.Int64N(int64(ceil) + 1))
	c.event(func() {
		if c.opts.OnReconnecting != nil {
			c.opts.OnReconnecting(c, ReconnectEvent{Attempt: max(attempt, 1), Delay: delay, Err: err})
		}
	})
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.wake:
		return true
	case <-c.closed:
		return false
	}
}
