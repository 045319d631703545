// Command baseline is a WebSocket server written the common way, for the
// bench tool to measure side by side with wsgate. It is a baseline for
// benchmarks, not for production: it has no configuration beyond -addr,
// no metrics and no per-address limits.
//
//	go -C bench run ./baseline -addr :8090   (bench/ is a module of its own)
//
// It serves the same endpoints and protocol as wsgate, so the same bench
// scenarios run against both: /echo returns each message as it came, /ws
// is the channels protocol of handler/protocol.go (see hub.go).
//
// "The common way" is gorilla/websocket on net/http with two goroutines per
// connection: the HTTP handler's goroutine reads, and a writer goroutine
// drains a buffered channel of outbound messages and sends pings. A publish
// is framed once (websocket.PreparedMessage) and handed to each
// subscriber's channel; a subscriber whose channel is full is closed with
// 1008 "slow consumer". The Upgrader keeps gorilla's defaults, so each
// connection reuses net/http's 4 KiB read and write buffers.
//
// On SIGTERM or SIGINT it stops accepting (http.Server.Shutdown), then
// closes every connection with 1001 after what is queued for it.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Timing and limits. Ping and pong follow gorilla's chat example; the
// message limit is wsgate's default -max-message.
const (
	writeWait         = 10 * time.Second // one write, control frames included
	pongWait          = 60 * time.Second // silence after which a connection is dead
	pingPeriod        = 30 * time.Second // must be shorter than pongWait
	closeWait         = 5 * time.Second  // for the peer's answer to our close frame
	handshakeTimeout  = 5 * time.Second  // to read the upgrade request
	shutdownTimeout   = 10 * time.Second
	maxMessageSize    = 1 << 20
	sendQueueMessages = 256 // outbound messages a connection may have queued
)

func main() {
	addr := flag.String("addr", ":8090", "listen address")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Printf("baseline: unexpected arguments %q", flag.Args())
		os.Exit(2)
	}
	if err := run(*addr); err != nil {
		log.Printf("baseline: %v", err)
		os.Exit(1)
	}
}

// run serves on addr until SIGTERM or SIGINT, then shuts down.
func run(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := newServer()
	hs := &http.Server{Handler: s.routes(), ReadHeaderTimeout: handshakeTimeout}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Printf("baseline listening on %s (/echo, /ws)", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process

	log.Printf("baseline shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Shutdown closes the listener; it neither waits for nor closes
	// hijacked (WebSocket) connections, which closeAll does.
	err = errors.Join(hs.Shutdown(sctx), s.closeAll(sctx))
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// server holds every open connection, for shutdown, and the /ws hub.
type server struct {
	hub      *hub
	upgrader websocket.Upgrader

	mu      sync.Mutex
	clients map[*client]struct{} // guarded by mu
	closing bool                 // guarded by mu; set once by closeAll
	wg      sync.WaitGroup       // one per registered client, done when both its goroutines are
}

func newServer() *server {
	return &server{
		hub: newHub(),
		// Any Origin, as wsgate allows by default.
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		clients:  make(map[*client]struct{}),
	}
}

// routes answers /echo and /ws; any other path is 404.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", s.serveEcho)
	mux.HandleFunc("/ws", s.serveChannels)
	return mux
}

func (s *server) serveEcho(w http.ResponseWriter, r *http.Request) {
	c := s.accept(w, r)
	if c == nil {
		return
	}
	defer s.finish(c)
	// ReadMessage returns a new slice per message, so it can be queued.
	c.readLoop(func(typ int, msg []byte) { c.trySend(outbound{typ: typ, data: msg}) })
}

func (s *server) serveChannels(w http.ResponseWriter, r *http.Request) {
	c := s.accept(w, r)
	if c == nil {
		return
	}
	defer s.finish(c)
	sess := &channelsSession{hub: s.hub, c: c, subs: make(map[string]struct{})}
	defer sess.leave()
	c.readLoop(sess.handle)
}

// accept upgrades the request, registers the connection and starts its
// writer. It returns nil if the upgrade failed (gorilla has answered the
// request) or the server is shutting down.
func (s *server) accept(w http.ResponseWriter, r *http.Request) *client {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil
	}
	c := newClient(conn)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
		_ = conn.Close()
		return nil
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1) // under mu, before closing is set: never concurrent with Wait at zero
	s.mu.Unlock()
	go c.writeLoop()
	return c
}

// finish runs after c's read loop: it waits for the writer, which closes
// the socket, and unregisters c.
func (s *server) finish(c *client) {
	<-c.writeDone
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll closes every connection with 1001 and waits until all are
// gone. When ctx ends first it cuts the remaining sockets, waits for their
// goroutines, and returns ctx's error.
func (s *server) closeAll(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.clients {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.clients {
		_ = c.conn.Close() // the read loop fails and the client winds down
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// outbound is one queued message: a prepared push, or typ and data.
type outbound struct {
	prepared *websocket.PreparedMessage
	typ      int
	data     []byte
}

// client is one connection. Its read loop runs on the HTTP handler's
// goroutine and is the only reader; writeLoop is the only writer and the
// only one to close conn (closeAll may cut it too: Close is safe anywhere).
type client struct {
	conn *websocket.Conn
	send chan outbound // to writeLoop; never closed, senders never block

	closeOnce sync.Once
	quit      chan struct{} // closed by closeWith
	closeCode int           // set before quit is closed
	closeText string

	readDone  chan struct{} // closed when readLoop returns
	writeDone chan struct{} // closed when writeLoop returns
}

func newClient(conn *websocket.Conn) *client {
	return &client{
		conn:      conn,
		send:      make(chan outbound, sendQueueMessages),
		quit:      make(chan struct{}),
		readDone:  make(chan struct{}),
		writeDone: make(chan struct{}),
	}
}

// trySend queues m without blocking and reports whether it was queued. A
// full queue closes the connection with 1008 "slow consumer".
func (c *client) trySend(m outbound) bool {
	select {
	case <-c.quit:
		return false
	default:
	}
	select {
	case c.send <- m:
		return true
	default:
		c.closeWith(websocket.ClosePolicyViolation, "slow consumer")
		return false
	}
}

// closeWith asks the writer to start the closing handshake with code; the
// first call wins. Safe from any goroutine, including under the hub lock.
func (c *client) closeWith(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.quit)
	})
}

// readLoop reads messages until the connection fails or closes and hands
// each to handle. gorilla answers pings and the peer's close frame itself,
// and sends 1009 past the read limit and 1002 on a protocol error.
func (c *client) readLoop(handle func(typ int, msg []byte)) {
	defer close(c.readDone)
	c.conn.SetReadLimit(maxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		typ, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		handle(typ, msg)
	}
}

// writeLoop writes queued messages and pings until the reader is done, a
// write fails, or closeWith is called; then it closes the socket.
func (c *client) writeLoop() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		_ = c.conn.Close()
		close(c.writeDone)
	}()
	for {
		select {
		case m := <-c.send:
			if c.write(m) != nil {
				return
			}
		case <-ticker.C:
			if c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) != nil {
				return
			}
		case <-c.readDone: // the peer closed (gorilla has answered) or the socket failed
			return
		case <-c.quit:
			c.closeHandshake()
			return
		}
	}
}

// closeHandshake sends our close frame and waits, up to closeWait, for the
// reader to see the peer's answer. Going away, it first sends what is
// queued; a slow consumer's queue is dropped.
func (c *client) closeHandshake() {
	if c.closeCode == websocket.CloseGoingAway {
		c.drain()
	}
	msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
	if c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait)) != nil {
		return
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.readDone:
	case <-t.C:
	}
}

// drain writes what is queued now, stopping at the first error.
func (c *client) drain() {
	for {
		select {
		case m := <-c.send:
			if c.write(m) != nil {
				return
			}
		default:
			return
		}
	}
}

func (c *client) write(m outbound) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	if m.prepared != nil {
		return c.conn.WritePreparedMessage(m.prepared)
	}
	return c.conn.WriteMessage(m.typ, m.data)
}
