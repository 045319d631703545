package wsconn

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/wsgate/wsgate/poller"
)

// Default limits. Each Config field's comment names its default.
const (
	DefaultAddr             = ":8080"
	DefaultMaxHandshakeSize = 8 << 10
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxMessageSize   = 1 << 20
	DefaultMaxQueueBytes    = 4 << 20
	DefaultPingInterval     = 30 * time.Second
	DefaultPongTimeout      = 10 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultSweepInterval    = time.Second
	DefaultReadBufferSize   = 16 << 10
	DefaultWarnInterval     = 10 * time.Second
	DefaultMessageTimeout   = 30 * time.Second
	DefaultMaxPartialBytes  = 256 << 20
	// RunBudget is how long one connection's input may keep a worker
	// before the rest is put aside and the connection goes to the back of
	// the run queue (checked between messages, after at least one).
	RunBudget = time.Millisecond
	// CloseDrainLimit is how many bytes a connection may still send once
	// the server has decided to close it (its close frame is sent, or its
	// handshake answered with an error): room for what was in flight and
	// for the peer's close frame. Past it the descriptor is closed at once.
	CloseDrainLimit = 1 << 20
	// DescriptorHeadroom is how many descriptors the default MaxConns
	// leaves for the process itself (listener, epoll, logs, admin HTTP,
	// broker) and for connections being answered 503.
	DescriptorHeadroom = 128
	// rejectSlack is how many connections may be held at once only to be
	// refused (503 past MaxConns, 429 past MaxConnsPerIP), and
	// refusalsPerAddress how many of them one address may have. A
	// connection to be refused past either is closed as soon as it is
	// accepted: the listener never pauses, so refusals cost the others
	// nothing (issue 10).
	rejectSlack        = 64
	refusalsPerAddress = 8
	maxFrameHeader     = 14
	// maxTimer bounds every timeout and interval: connection times are
	// 32-bit milliseconds (see heartbeat.go).
	maxTimer = 24 * time.Hour
)

// Config configures a Server. The zero value of every field except Routes
// gives the documented default.
type Config struct {
	// Addr is the TCP address to listen on. Default: ":8080".
	Addr string
	// ReusePort sets SO_REUSEPORT on the listener, so that several worker
	// processes can share the port. Default: false.
	ReusePort bool
	// Routes maps a request path (exact match, without query) to the
	// handler of the connections opened on it. Other paths get 404.
	// Required: at least one route.
	Routes map[string]Handler
	// Poller is the reactor to use. Default (nil): the Server creates one
	// with Workers pool workers and closes it on Shutdown.
	Poller *poller.Poller
	// Workers is the pool size when Poller is nil. Default (zero): the
	// poller's default, max(16, 8*GOMAXPROCS).
	Workers int
	// MaxConns caps open connections (handshaking, open and closing). A
	// connection past it is answered 503 at once, as MaxConnsPerIP's are.
	// Default (zero), and at most: the descriptor limit minus
	// DescriptorHeadroom (DefaultMaxConns).
	MaxConns int
	// MaxHandshakeSize caps the bytes of the upgrade request, request line
	// and headers together; past it the answer is 431. Default: 8 KiB.
	MaxHandshakeSize int
	// HandshakeTimeout is how long a connection may take to send a complete
	// upgrade request before it is closed. Default: 5s.
	HandshakeTimeout time.Duration
	// MaxMessageSize caps a data message, all its fragments together, in
	// bytes; past it the connection is closed with 1009 before the message
	// is buffered. Default: 1 MiB.
	MaxMessageSize int64
	// MaxFrameSize caps one frame's payload. Default (zero): MaxMessageSize.
	MaxFrameSize int64
	// MessageTimeout is how long a message may take from its first byte
	// to its last, all its fragments and any control frames between them
	// included; past it the connection is closed with 1008 "message not
	// completed in time", whatever the client keeps sending meanwhile. A
	// frame header split across reads counts too. Default: 30s.
	MessageTimeout time.Duration
	// MaxPartialBytes caps the memory all connections together hold in
	// messages not yet complete (and in input put aside by RunBudget). A
	// message growing past it closes its connection with 1013 "try again
	// later". A message buffer grows with the bytes that arrive, not with
	// the length a header announces. Negative: no cap. Default: 256 MiB.
	MaxPartialBytes int64
	// MaxQueueBytes caps the bytes queued for one connection that the
	// socket has not taken yet; past it the connection is closed with 1008
	// "slow consumer". It must hold one largest message. Default: 4 MiB.
	MaxQueueBytes int
	// PingInterval is how long a connection may stay silent before the
	// server pings it. Negative disables heartbeats. Default: 30s.
	PingInterval time.Duration
	// PongTimeout is how long after a heartbeat ping the peer has to send
	// anything (a pong, normally) before the connection is closed as lost.
	// It counts from when the ping is written to the socket, not from when
	// it is queued behind earlier output, and a wait in which the peer took
	// queued bytes starts again. While the peer's TCP stack has
	// acknowledged everything sent, the ping included, the wait is extended
	// by another PongTimeout, as many times as fit in PingInterval.
	// Default: 10s.
	PongTimeout time.Duration
	// CloseTimeout is how long the server waits for the peer to answer its
	// close frame and close the TCP connection. Default: 5s.
	CloseTimeout time.Duration
	// SweepInterval is the tick of the one timer goroutine that checks
	// handshake, heartbeat and close deadlines; every deadline is late by
	// at most one tick. Default: 1s.
	SweepInterval time.Duration
	// ReadBufferSize is the size of the pooled buffer a worker reads into;
	// no connection keeps it. Default: 16 KiB.
	ReadBufferSize int
	// AllowedOrigins, if not empty, lists the Origin header values that may
	// connect ("https://example.com", compared case-insensitively; "*"
	// allows any). A request with another Origin gets 403. Requests without
	// Origin (non-browser clients) are allowed. Default: allow all.
	AllowedOrigins []string
	// ResponseHeader holds extra header fields for every handshake
	// response, such as the worker's identity. Default: none.
	ResponseHeader http.Header
	// TLS, if set, makes the listener wss://: every connection starts with
	// a TLS handshake (crypto/tls; set MinVersion, certificates,
	// GetCertificate for reloads). Default: nil, plain ws://.
	TLS *tls.Config
	// MaxTLSHandshakes caps TLS handshakes in progress at once, each of
	// which has a goroutine while it lasts (see tls.go); at the cap, a new
	// handshake ends the oldest one whose ClientHello is still incomplete,
	// or the oldest of all if none is (a stalled client ages out; a
	// well-behaved one, whose ClientHello comes whole, finishes). Default:
	// 1024.
	MaxTLSHandshakes int
	// ObserveHandshake, if set, is called on the connection's worker with
	// the time from accept to the 101 answer (TLS included) of every
	// successful upgrade, in milliseconds of resolution: for a latency
	// histogram. It must be quick. Default: nil.
	ObserveHandshake func(time.Duration)
	// Logger receives the server's records (see log.go): at debug level
	// each refused or timed-out handshake and each closed connection; at
	// warn level, at most one record per kind per WarnInterval, the errors
	// that clients can repeat (connection cap reached, address capped,
	// accept rate exceeded, TLS handshakes failing, slow consumers,
	// rate-limit closes, handler panics, accept failing). Nothing is
	// logged per message. Default (nil): nothing is logged.
	Logger *slog.Logger
	// WarnInterval is the least time between two warnings of one kind;
	// those in between are counted and reported with the next one.
	// Default: 10s.
	WarnInterval time.Duration
	// Pages are plain HTTP pages served on the WebSocket port: a GET for one
	// of these paths that is not an upgrade request is answered 200 with
	// the page, and the connection is closed (no keep-alive). For a demo
	// page or a health check behind a proxy, not for a web site.
	// Default: none.
	Pages map[string]Page
	// Compression offers permessage-deflate (RFC 7692) to clients that ask
	// for it, with no context takeover: messages of MinDeflateSize bytes or
	// more are sent compressed, a broadcast is compressed once for all such
	// recipients (once more, Huffman-only, for those that asked for a
	// server window below 32 KiB), and incoming compressed messages are
	// inflated up to MaxMessageSize (1009 past it). Default: false.
	Compression bool
	// MaxConnsPerIP caps the connections one source address may hold; past
	// it the connection is answered 429 with Retry-After at once, without
	// waiting for its request (on wss, once it is read). At most 8 such
	// refusals per address and 64 in all are in progress at once; a
	// connection past that is closed at accept (Stats.RejectDropped).
	// Negative: no cap. Default: 10000 (room for a large NAT).
	MaxConnsPerIP int
	// AcceptRate caps new connections per second, with a burst of as many;
	// the excess is closed as soon as it is accepted, before any work or
	// memory is spent on it, so that a reconnect storm cannot starve the
	// workers. Negative: no cap. Default: 10000.
	AcceptRate int
	// MaxMessageRate caps the frames a connection may send per second:
	// data, continuation and control frames alike (a message in n
	// fragments counts n), with a burst of twice as many; past it the
	// connection is closed with 1008 "rate limit exceeded". Negative: no
	// cap. Default: 1000.
	MaxMessageRate int
	// MaxByteRate caps the payload bytes a connection may send per second,
	// with a burst of twice as many (at least one largest message); past it
	// the connection is closed with 1008. Negative: no cap. Default: 4 MiB.
	MaxByteRate int
	// Authorize, if set, decides each upgrade request once it has been
	// parsed: it returns the principal to keep with the connection
	// (Conn.Principal) and when that authorization expires (zero:
	// never), or an error to reject the handshake. An *HTTPError chooses
	// the status and headers (401 with WWW-Authenticate, say); any other
	// error answers 403. At expiry an open connection is closed with 1008
	// "authorization expired" unless the application renews it
	// (Conn.SetPrincipal). r is only valid during the call.
	// Default: every request is allowed, with a nil principal.
	Authorize func(r *UpgradeRequest) (principal any, expires time.Time, err error)
	// CloseRefused, if set, is asked about each request Authorize refuses;
	// if it returns true, the refusal is told in band rather than as an
	// HTTP error: the handshake completes (101) and the server closes the
	// connection at once with the refusal's status plus 4000 (4401, 4403,
	// 4400) and its message as the reason, without the handler ever
	// seeing the connection. A browser cannot read the HTTP status of a
	// failed WebSocket handshake, only this. The refusal is counted and
	// logged like an HTTP one. r is only valid during the call. Default:
	// every refusal is an HTTP response.
	CloseRefused func(r *UpgradeRequest) bool
	// SelectProtocol, if set, is called with each subprotocol the client
	// offers in Sec-WebSocket-Protocol, in order; the first for which it
	// returns true is chosen. The argument is only valid during the call.
	// Default: no subprotocol is chosen.
	SelectProtocol func(protocol string) bool
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.MaxHandshakeSize == 0 {
		c.MaxHandshakeSize = DefaultMaxHandshakeSize
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = c.MaxMessageSize
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = max(DefaultMaxQueueBytes, int(c.MaxMessageSize)+maxFrameHeader)
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.MaxTLSHandshakes == 0 {
		c.MaxTLSHandshakes = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.WarnInterval == 0 {
		c.WarnInterval = DefaultWarnInterval
	}
	if c.MessageTimeout == 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.MaxPartialBytes == 0 {
		c.MaxPartialBytes = DefaultMaxPartialBytes
	}
	c.MaxConnsPerIP = orDefault(c.MaxConnsPerIP, 10000)
	c.AcceptRate = orDefault(c.AcceptRate, 10000)
	c.MaxMessageRate = orDefault(c.MaxMessageRate, 1000)
	c.MaxByteRate = orDefault(c.MaxByteRate, 4<<20)
	return c
}

// Validate reports what New would refuse in c (after its defaults), with
// one line wrapping ErrInvalidConfig: for a caller that checks its settings
// before it does anything else.
func (c Config) Validate() error {
	return c.withDefaults().validate()
}

// validate checks a Config after withDefaults.
func (c Config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, a...)...)
	}
	limit := poller.DescriptorLimit()
	switch {
	case len(c.Routes) == 0:
		return bad("no routes")
	case c.MaxConns < 0:
		return bad("max conns %d is negative", c.MaxConns)
	case c.MaxConns > DefaultMaxConns():
		return bad("max conns %d leaves no room under the descriptor limit %d (at most %d)",
			c.MaxConns, limit, DefaultMaxConns())
	case c.MaxHandshakeSize < 256 || c.MaxHandshakeSize > 1<<20:
		return bad("max handshake size %d is outside 256..1048576", c.MaxHandshakeSize)
	case c.MaxMessageSize < 125 || c.MaxMessageSize > 1<<30:
		return bad("max message size %d is outside 125..1073741824", c.MaxMessageSize)
	case c.MaxFrameSize < 125 || c.MaxFrameSize > c.MaxMessageSize:
		return bad("max frame size %d is outside 125..max message size", c.MaxFrameSize)
	case int64(c.MaxQueueBytes) < c.MaxMessageSize+maxFrameHeader:
		return bad("max queue bytes %d cannot hold one largest message (%d)", c.MaxQueueBytes, c.MaxMessageSize+maxFrameHeader)
	case c.HandshakeTimeout < 0 || c.PongTimeout < 0 || c.CloseTimeout < 0 || c.SweepInterval < 0 || c.MessageTimeout < 0:
		return bad("negative timeout")
	case c.MaxPartialBytes > 0 && c.MaxPartialBytes < minMessageBuffer:
		return bad("max partial bytes %d is below %d", c.MaxPartialBytes, minMessageBuffer)
	case c.SweepInterval < time.Millisecond:
		return bad("sweep interval %v is below 1ms", c.SweepInterval)
	case max(c.HandshakeTimeout, c.PingInterval, c.PongTimeout, c.CloseTimeout, c.SweepInterval, c.MessageTimeout) > maxTimer:
		return bad("timeouts and intervals must be at most %v", maxTimer)
	case c.WarnInterval < 0:
		return bad("warn interval %v is negative", c.WarnInterval)
	case c.MaxTLSHandshakes < 0:
		return bad("max tls handshakes %d is negative", c.MaxTLSHandshakes)
	case c.Poller == nil && (c.Workers < 0 || c.Workers > 1<<20):
		return bad("pool size %d is outside 0..1048576", c.Workers)
	case c.ReadBufferSize < 512 || c.ReadBufferSize > 4<<20:
		return bad("read buffer size %d is outside 512..4194304", c.ReadBufferSize)
	}
	for path, h := range c.Routes {
		if !strings.HasPrefix(path, "/") || h == nil {
			return bad("route %q must start with / and have a handler", path)
		}
	}
	return nil
}

// DefaultMaxConns is MaxConns's default and its largest valid value: the
// descriptor limit minus DescriptorHeadroom.
func DefaultMaxConns() int { return max(1, poller.DescriptorLimit()-DescriptorHeadroom) }

// UpgradeRequest is what Config.Authorize sees of an upgrade request.
type UpgradeRequest struct {
	Path   string      // request path, without the query
	Query  string      // raw query string, without '?'
	Header http.Header // the request's header fields, canonical keys
	Remote netip.AddrPort
}

// HTTPError rejects a handshake from Config.Authorize with Status (4xx or
// 5xx), Message as the body, and extra Header fields.
type HTTPError struct {
	Status  int
	Message string
	Header  http.Header
}

// Error returns the message.
func (e *HTTPError) Error() string { return fmt.Sprintf("wsconn: %d %s", e.Status, e.Message) }

// orDefault returns def for zero and keeps any other value (negative means
// "off" for the limits that use it).
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Page is a plain HTTP response served by Config.Pages.
type Page struct {
	ContentType string // "text/html; charset=utf-8", say
	Body        []byte
}
