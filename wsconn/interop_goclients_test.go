package wsconn

// Adapters that drive the interop scenarios with Go client libraries
// (github.com/coder/websocket, github.com/gorilla/websocket).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	gorillaws "github.com/gorilla/websocket"
)

// interopGoConn is what the scenarios shared by the Go clients need of a client
// library; interopCoderConn and interopGorillaConn adapt the two.
type interopGoConn interface {
	write(ctx context.Context, t MessageType, p []byte) error
	read(ctx context.Context) (MessageType, []byte, error)
	// closeWith sends a close frame and checks that the server answers
	// with the same code.
	closeWith(ctx context.Context, code int, reason string) error
	// expectClose reads the server's close frame and checks its code.
	expectClose(ctx context.Context, code int) error
	abort() // close the socket at once
}

type interopGoDialer func(ctx context.Context, url string) (interopGoConn, error)

// interopGoScenarios builds the scenarios of the Go client name from its dialer
// and its own fragmented and ping scenarios (where the libraries differ).
func interopGoScenarios(name string, dial interopGoDialer, fragmented, ping interopRun) map[string]interopRun {
	// onEcho runs f on a connection to /echo.
	onEcho := func(f func(ctx context.Context, c interopGoConn) error) interopRun {
		return func(ctx context.Context, _ *testing.T, e *interopEnv) error {
			c, err := dial(ctx, e.base+"/echo")
			if err != nil {
				return err
			}
			defer c.abort()
			return f(ctx, c)
		}
	}
	closeWith := func(code int, reason string) interopRun {
		return onEcho(func(ctx context.Context, c interopGoConn) error { return c.closeWith(ctx, code, reason) })
	}
	return map[string]interopRun{
		"echo": onEcho(func(ctx context.Context, c interopGoConn) error {
			for _, n := range interopEchoSizes {
				for _, m := range []struct {
					t MessageType
					p []byte
				}{{Text, interopText(n)}, {Binary, interopBinary(n)}} {
					if err := c.write(ctx, m.t, m.p); err != nil {
						return err
					}
					t, p, err := c.read(ctx)
					if err != nil {
						return err
					}
					if err := interopCheckEcho(fmt.Sprintf("echo %v %d", m.t, n), t, m.t, p, m.p); err != nil {
						return err
					}
				}
			}
			return c.closeWith(ctx, 1000, "")
		}),
		"fragmented": fragmented,
		"ping":       ping,
		"close-1000": closeWith(1000, ""),
		"close-4001": closeWith(4001, interopCloseReason),
		"invalid-utf8": onEcho(func(ctx context.Context, c interopGoConn) error {
			if err := c.write(ctx, Text, interopInvalidUTF8); err != nil { // neither library checks
				return err
			}
			return c.expectClose(ctx, 1007)
		}),
		"too-big": onEcho(func(ctx context.Context, c interopGoConn) error {
			if err := c.write(ctx, Binary, make([]byte, interopMaxMessage+1)); err != nil {
				return err
			}
			return c.expectClose(ctx, 1009)
		}),
		"channels": func(ctx context.Context, _ *testing.T, e *interopEnv) error {
			return interopChannels(ctx, e, dial, "interop."+name)
		},
	}
}

// interopChannels is the channels scenario for the Go clients: A
// subscribes, B publishes, A gets the push with the data's exact bytes.
func interopChannels(ctx context.Context, e *interopEnv, dial interopGoDialer, channel string) error {
	a, err := dial(ctx, e.base+"/ws")
	if err != nil {
		return err
	}
	defer a.abort()
	b, err := dial(ctx, e.base+"/ws")
	if err != nil {
		return err
	}
	defer b.abort()
	send := func(c interopGoConn, msg string) error { return c.write(ctx, Text, []byte(msg)) }
	expect := func(c interopGoConn, what, want string) error {
		t, p, err := c.read(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if t != Text || string(p) != want {
			return fmt.Errorf("%s: got %v %s, want text %s", what, t, p, want)
		}
		return nil
	}
	if err := send(a, `{"op":"subscribe","channel":"`+channel+`","id":"sub-1"}`); err != nil {
		return err
	}
	if err := expect(a, "subscribe ack", `{"op":"ack","id":"sub-1"}`); err != nil {
		return err
	}
	if err := send(b, `{"op":"publish","channel":"`+channel+`","data":`+interopPublishData+`,"id":42}`); err != nil {
		return err
	}
	if err := expect(b, "publish ack", `{"op":"ack","id":42,"delivered":1}`); err != nil {
		return err
	}
	if err := expect(a, "push", `{"channel":"`+channel+`","data":`+interopPublishData+`}`); err != nil {
		return err
	}
	if err := a.closeWith(ctx, 1000, ""); err != nil {
		return fmt.Errorf("closing the subscriber: %w", err)
	}
	if err := b.closeWith(ctx, 1000, ""); err != nil {
		return fmt.Errorf("closing the publisher: %w", err)
	}
	return nil
}

// interopCoderConn adapts github.com/coder/websocket to interopGoConn.
type interopCoderConn struct{ c *coderws.Conn }

func interopDialCoder(ctx context.Context, url string) (interopGoConn, error) {
	return interopDialCoderWith(ctx, url, nil)
}

func interopDialCoderWith(ctx context.Context, url string, opts *coderws.DialOptions) (interopGoConn, error) {
	c, _, err := coderws.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(4 * interopMaxMessage) // its default, 32 KiB, is below the echo sizes
	return interopCoderConn{c}, nil
}

func (c interopCoderConn) write(ctx context.Context, t MessageType, p []byte) error {
	typ := coderws.MessageText
	if t == Binary {
		typ = coderws.MessageBinary
	}
	return c.c.Write(ctx, typ, p)
}

func (c interopCoderConn) read(ctx context.Context) (MessageType, []byte, error) {
	typ, p, err := c.c.Read(ctx)
	if typ == coderws.MessageBinary {
		return Binary, p, err
	}
	return Text, p, err
}

// closeWith relies on coder's Close, which fails unless the server
// answers with the same code.
func (c interopCoderConn) closeWith(_ context.Context, code int, reason string) error {
	if err := c.c.Close(coderws.StatusCode(code), reason); err != nil {
		return fmt.Errorf("closing with %d: %w", code, err)
	}
	return nil
}

func (c interopCoderConn) expectClose(ctx context.Context, code int) error {
	typ, p, err := c.c.Read(ctx)
	switch got := coderws.CloseStatus(err); {
	case err == nil:
		return fmt.Errorf("got a %v message of %d bytes, want close %d", typ, len(p), code)
	case got != coderws.StatusCode(code):
		return fmt.Errorf("got %v (close status %d), want close %d", err, got, code)
	}
	return nil
}

func (c interopCoderConn) abort() { _ = c.c.CloseNow() }

// interopCoderPongs records the payloads of the pongs a coder connection gets.
type interopCoderPongs struct {
	mu sync.Mutex
	p  [][]byte
}

func (pg *interopCoderPongs) dial(ctx context.Context, url string) (interopCoderConn, error) {
	c, err := interopDialCoderWith(ctx, url, &coderws.DialOptions{OnPongReceived: func(_ context.Context, p []byte) {
		pg.mu.Lock()
		pg.p = append(pg.p, bytes.Clone(p))
		pg.mu.Unlock()
	}})
	if err != nil {
		return interopCoderConn{}, err
	}
	return c.(interopCoderConn), nil
}

func (pg *interopCoderPongs) got() [][]byte {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return slices.Clone(pg.p)
}

// interopCoderFragmented sends a text message in three frames (each Write of
// coder's Writer is one frame), the first ending inside "é", with a ping
// after it, then a binary message in three frames.
func interopCoderFragmented(ctx context.Context, _ *testing.T, e *interopEnv) error {
	var pongs interopCoderPongs
	c, err := pongs.dial(ctx, e.base+"/echo")
	if err != nil {
		return err
	}
	defer c.abort()
	// A reader runs alongside: coder's Ping needs one to see the pong.
	type result struct {
		t   MessageType
		p   []byte
		err error
	}
	results := make(chan result, 4)
	go func() {
		for {
			t, p, err := c.read(ctx)
			results <- result{t, p, err}
			if err != nil {
				return
			}
		}
	}()
	full := []byte(interopFragText)
	w, err := c.c.Writer(ctx, coderws.MessageText)
	if err != nil {
		return err
	}
	if _, err := w.Write(full[:12]); err != nil {
		return err
	}
	pingErr := make(chan error, 1)
	go func() { pingErr <- c.c.Ping(ctx) }()
	// The ping is out, between the fragments, once the server has seen it.
	if err := interopWaitFor(ctx, "the server to see the ping", func() bool { return e.echo.pingCount() == 1 }); err != nil {
		return err
	}
	for _, p := range [][]byte{full[12:24], full[24:]} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := <-pingErr; err != nil {
		return err
	}
	if got := pongs.got(); len(got) != 1 || string(got[0]) != "1" {
		return fmt.Errorf("got pongs %q, want one with %q", got, "1")
	}
	r := <-results
	if r.err != nil {
		return r.err
	}
	if err := interopCheckEcho("fragmented text", r.t, Text, r.p, full); err != nil {
		return err
	}
	parts := interopBinaryParts()
	if w, err = c.c.Writer(ctx, coderws.MessageBinary); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if r = <-results; r.err != nil {
		return r.err
	}
	if err := interopCheckEcho("fragmented binary", r.t, Binary, r.p, bytes.Join(parts, nil)); err != nil {
		return err
	}
	err = c.closeWith(ctx, 1000, "")
	<-results // the reader's error: it has returned
	return err
}

// interopCoderPing pings three times; coder chooses the payloads ("1", "2", "3")
// and its Ping returns once the pong with the same payload came.
func interopCoderPing(ctx context.Context, _ *testing.T, e *interopEnv) error {
	var pongs interopCoderPongs
	c, err := pongs.dial(ctx, e.base+"/echo")
	if err != nil {
		return err
	}
	defer c.abort()
	ctx = c.c.CloseRead(ctx) // reads control frames for Ping and Close
	for range 3 {
		if err := c.c.Ping(ctx); err != nil {
			return err
		}
	}
	if got, want := pongs.got(), [][]byte{[]byte("1"), []byte("2"), []byte("3")}; !slices.EqualFunc(got, want, bytes.Equal) {
		return fmt.Errorf("got pongs %q, want %q", got, want)
	}
	return c.closeWith(ctx, 1000, "")
}

// interopGorillaConn adapts github.com/gorilla/websocket to interopGoConn. Deadlines
// come from the dial context; gorilla's calls take none.
type interopGorillaConn struct{ c *gorillaws.Conn }

func interopDialGorilla(ctx context.Context, url string) (interopGoConn, error) {
	return interopDialGorillaWith(ctx, url, 0)
}

// interopDialGorillaWith dials with frames of at most writeBuf payload bytes:
// gorilla cuts a message into frames of its write buffer's size (0 means
// its default, 4 KiB).
func interopDialGorillaWith(ctx context.Context, url string, writeBuf int) (interopGorillaConn, error) {
	d := gorillaws.Dialer{WriteBufferSize: writeBuf}
	c, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return interopGorillaConn{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
		_ = c.SetWriteDeadline(dl)
	}
	return interopGorillaConn{c}, nil
}

func (c interopGorillaConn) write(_ context.Context, t MessageType, p []byte) error {
	typ := gorillaws.TextMessage
	if t == Binary {
		typ = gorillaws.BinaryMessage
	}
	return c.c.WriteMessage(typ, p)
}

func (c interopGorillaConn) read(context.Context) (MessageType, []byte, error) {
	typ, p, err := c.c.ReadMessage()
	if typ == gorillaws.BinaryMessage {
		return Binary, p, err
	}
	return Text, p, err
}

func (c interopGorillaConn) closeWith(ctx context.Context, code int, reason string) error {
	if err := c.c.WriteMessage(gorillaws.CloseMessage, gorillaws.FormatCloseMessage(code, reason)); err != nil {
		return err
	}
	return c.expectClose(ctx, code)
}

// expectClose reads the server's close frame; gorilla answers it itself.
func (c interopGorillaConn) expectClose(_ context.Context, code int) error {
	typ, p, err := c.c.ReadMessage()
	var ce *gorillaws.CloseError
	switch {
	case err == nil:
		return fmt.Errorf("got a message of type %d and %d bytes, want close %d", typ, len(p), code)
	case !errors.As(err, &ce) || ce.Code != code:
		return fmt.Errorf("got %v, want close %d", err, code)
	}
	return nil
}

func (c interopGorillaConn) abort() { _ = c.c.Close() }

// interopGorillaFragmented sends the text message in 12-byte frames, the first
// ending inside "é". A frame goes out when the next Write needs the
// buffer, so a ping written after 13 bytes lands between the first two
// frames. The binary message follows in 17500 frames of 12 bytes.
func interopGorillaFragmented(ctx context.Context, _ *testing.T, e *interopEnv) error {
	c, err := interopDialGorillaWith(ctx, e.base+"/echo", 12)
	if err != nil {
		return err
	}
	defer c.abort()
	var pongs [][]byte
	c.c.SetPongHandler(func(p string) error { pongs = append(pongs, []byte(p)); return nil })
	full := []byte(interopFragText)
	w, err := c.c.NextWriter(gorillaws.TextMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write(full[:13]); err != nil {
		return err
	}
	if err := c.c.WriteControl(gorillaws.PingMessage, []byte("mid-fragment"), time.Time{}); err != nil {
		return err
	}
	if _, err := w.Write(full[13:]); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	t, p, err := c.read(ctx) // runs the pong handler first
	if err != nil {
		return err
	}
	if err := interopCheckEcho("fragmented text", t, Text, p, full); err != nil {
		return err
	}
	if len(pongs) != 1 || string(pongs[0]) != "mid-fragment" {
		return fmt.Errorf("got pongs %q before the echo, want one with %q", pongs, "mid-fragment")
	}
	want := bytes.Join(interopBinaryParts(), nil)
	if err := c.write(ctx, Binary, want); err != nil {
		return err
	}
	if t, p, err = c.read(ctx); err != nil {
		return err
	}
	if err := interopCheckEcho("fragmented binary", t, Binary, p, want); err != nil {
		return err
	}
	return c.closeWith(ctx, 1000, "")
}

// interopGorillaPing sends pings with interopPingPayloads and checks the pongs.
func interopGorillaPing(ctx context.Context, _ *testing.T, e *interopEnv) error {
	c, err := interopDialGorillaWith(ctx, e.base+"/echo", 0)
	if err != nil {
		return err
	}
	defer c.abort()
	var pongs [][]byte
	c.c.SetPongHandler(func(p string) error { pongs = append(pongs, []byte(p)); return nil })
	for _, p := range interopPingPayloads {
		if err := c.c.WriteControl(gorillaws.PingMessage, p, time.Time{}); err != nil {
			return err
		}
	}
	// The server answers the pings before it reads the close frame, so the
	// pongs are handled by the time its close frame arrives.
	if err := c.closeWith(ctx, 1000, ""); err != nil {
		return err
	}
	if !slices.EqualFunc(pongs, interopPingPayloads, bytes.Equal) {
		return fmt.Errorf("got pongs %q, want %q", pongs, interopPingPayloads)
	}
	return nil
}
