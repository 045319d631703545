package wsconn

import (
	"net/http"
	"sync/atomic"
)

// counters are the Server's statistics. They are atomics bumped where
// things happen; Stats copies them. The ones bumped per message or per
// write live in stripes (hot), each connection counting in the stripe of
// its id: workers serving different connections rarely share a cache line
// (one shared line cost a parallel broadcast 6x, see bench_test.go), and
// a stripe's line moves between cores no more often than the lines of
// the connections themselves.
type counters struct {
	hot                [hotStripes]hotCounters
	accepted           atomic.Uint64
	closed             atomic.Uint64
	registerErrors     atomic.Uint64
	handshakes         [hsBuckets]atomic.Uint64
	handshakeTimeouts  atomic.Uint64
	slowConsumers      atomic.Uint64
	droppedBytes       atomic.Uint64 // queued bytes dropped by slow-consumer closes
	unsentBytes        atomic.Uint64 // queued bytes lost when a connection closed
	tooBig             atomic.Uint64
	pings              atomic.Uint64
	heartbeatTimeouts  atomic.Uint64
	pongsLate          atomic.Uint64
	pongWaitsRestarted atomic.Uint64
	pongGraces         atomic.Uint64
	panics             atomic.Uint64
	authExpired        atomic.Uint64
	acceptRefused      atomic.Uint64
	rateLimited        atomic.Uint64
	tlsHandshakeErrors atomic.Uint64
	tlsHandshakeLimit  atomic.Uint64
	internalErrors     atomic.Uint64
	forcedCloses       atomic.Uint64
	pagesServed        atomic.Uint64
	messageTimeouts    atomic.Uint64
	inputBudget        atomic.Uint64
	yields             atomic.Uint64
	rejectDropped      atomic.Uint64
	closes             [len(closeCodes) + 1]atomic.Uint64
}

// hotStripes is the number of stripes of the per-message counters.
const hotStripes = 64

// hotCounters are one stripe of the per-message counters, alone on its
// cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
type hotCounters struct {
	msgsIn   atomic.Uint64
	msgsOut  atomic.Uint64
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	queued   atomic.Int64 // bytes queued now
	_        [128 - 5*8]byte
}

// hot is the stripe c counts in.
func (c *conn) hot() *hotCounters { return &c.srv.stats.hot[c.id%hotStripes] }

// Handshake outcomes counted separately, by HTTP status.
var hsStatuses = [...]int{
	http.StatusSwitchingProtocols, http.StatusBadRequest, http.StatusForbidden,
	http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUpgradeRequired,
	http.StatusRequestHeaderFieldsTooLarge, http.StatusTooManyRequests, http.StatusServiceUnavailable,
	http.StatusUnauthorized,
}

const hsBuckets = len(hsStatuses) + 1 // last: any other status

// Close codes counted separately; others go to the last slot.
var closeCodes = [...]StatusCode{1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1013}

func (c *counters) countHandshake(status int) {
	for i, s := range hsStatuses {
		if s == status {
			c.handshakes[i].Add(1)
			return
		}
	}
	c.handshakes[hsBuckets-1].Add(1)
}

func (c *counters) countClose(code StatusCode) {
	for i, cc := range closeCodes {
		if cc == code {
			c.closes[i].Add(1)
			return
		}
	}
	c.closes[len(closeCodes)].Add(1)
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	Conns              int            // open now (handshaking, open, closing)
	Accepted           uint64         // connections accepted
	Closed             uint64         // connections whose descriptor was closed
	Handshakes         map[int]uint64 // handshake answers by HTTP status (0: other)
	HandshakeTimeouts  uint64         // handshakes not complete within HandshakeTimeout
	MessagesIn         uint64         // data messages received
	MessagesOut        uint64         // data messages sent or queued
	BytesIn            uint64         // bytes read from sockets
	BytesOut           uint64         // bytes written to sockets
	QueuedBytes        int64          // bytes waiting in outbound queues now
	SlowConsumers      uint64         // connections closed with 1008 "slow consumer"
	DroppedBytes       uint64         // queued bytes dropped by those closes
	UnsentBytes        uint64         // queued bytes lost when connections closed
	TooBig             uint64         // connections closed with 1009
	Pings              uint64         // heartbeat pings sent
	HeartbeatTimeouts  uint64         // connections lost for want of a pong
	LatePongs          uint64         // pongs found in the socket at the pong deadline, before their readiness event: a busy server
	PongWaitsRestarted uint64         // pong waits restarted: the ping was still queued behind output the peer was taking
	PongGraces         uint64         // pong waits extended: the peer's TCP stack had acknowledged the ping, its application had not answered
	Panics             uint64         // handler panics recovered (close 1011)
	AuthExpired        uint64         // connections closed when their authorization expired (1008)
	AcceptRefused      uint64         // connections closed at accept, past AcceptRate
	RateLimited        uint64         // connections closed past MaxMessageRate or MaxByteRate (1008)
	TLSHandshakeErrors uint64         // wss handshakes that failed (bad client hello, timeout, ...)
	TLSHandshakeLimit  uint64         // TLS handshakes ended, oldest first, to stay within MaxTLSHandshakes
	InternalErrors     uint64         // panics inside wsgate itself (close 1011): bugs
	ForcedCloses       uint64         // connections cut at the shutdown deadline
	PagesServed        uint64         // plain HTTP pages answered (Config.Pages); not in Handshakes
	MessageTimeouts    uint64         // connections closed with 1008: a message not complete within MessageTimeout
	InputBudgetCloses  uint64         // connections closed with 1013: unfinished messages at MaxPartialBytes
	PartialBytes       int64          // memory held now by unfinished messages and input put aside
	Yields             uint64         // runs that put input aside to let other connections have a worker
	RejectDropped      uint64         // connections to be refused (503, 429) closed at accept instead: too many refusals in progress
	Closes             map[int]uint64 // OnClose codes (0: other codes)
}

// CountedCloseCodes returns the close codes Stats.Closes counts apart, and
// 0, the slot of all others: a metrics exporter can show every one from
// the start, zeros included.
func CountedCloseCodes() []int {
	codes := make([]int, 0, len(closeCodes)+1)
	for _, c := range closeCodes {
		codes = append(codes, int(c))
	}
	return append(codes, 0)
}

// CountedHandshakeStatuses returns the HTTP statuses Stats.Handshakes
// counts apart, and 0, the slot of all others.
func CountedHandshakeStatuses() []int {
	return append(append(make([]int, 0, hsBuckets), hsStatuses[:]...), 0)
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Conns:              int(s.conns.Load()),
		Accepted:           c.accepted.Load(),
		Closed:             c.closed.Load(),
		Handshakes:         make(map[int]uint64, hsBuckets),
		HandshakeTimeouts:  c.handshakeTimeouts.Load(),
		SlowConsumers:      c.slowConsumers.Load(),
		DroppedBytes:       c.droppedBytes.Load(),
		UnsentBytes:        c.unsentBytes.Load(),
		TooBig:             c.tooBig.Load(),
		Pings:              c.pings.Load(),
		HeartbeatTimeouts:  c.heartbeatTimeouts.Load(),
		LatePongs:          c.pongsLate.Load(),
		PongWaitsRestarted: c.pongWaitsRestarted.Load(),
		PongGraces:         c.pongGraces.Load(),
		Panics:             c.panics.Load(),
		AuthExpired:        c.authExpired.Load(),
		AcceptRefused:      c.acceptRefused.Load(),
		RateLimited:        c.rateLimited.Load(),
		TLSHandshakeErrors: c.tlsHandshakeErrors.Load(),
		TLSHandshakeLimit:  c.tlsHandshakeLimit.Load(),
		InternalErrors:     c.internalErrors.Load(),
		ForcedCloses:       c.forcedCloses.Load(),
		PagesServed:        c.pagesServed.Load(),
		MessageTimeouts:    c.messageTimeouts.Load(),
		InputBudgetCloses:  c.inputBudget.Load(),
		PartialBytes:       s.partial.Load(),
		Yields:             c.yields.Load(),
		RejectDropped:      c.rejectDropped.Load(),
		Closes:             make(map[int]uint64, len(closeCodes)+1),
	}
	for i := range c.hot {
		h := &c.hot[i]
		st.MessagesIn += h.msgsIn.Load()
		st.MessagesOut += h.msgsOut.Load()
		st.BytesIn += h.bytesIn.Load()
		st.BytesOut += h.bytesOut.Load()
		st.QueuedBytes += h.queued.Load()
	}
	for i := range c.handshakes {
		status := 0
		if i < len(hsStatuses) {
			status = hsStatuses[i]
		}
		if n := c.handshakes[i].Load(); n > 0 {
			st.Handshakes[status] = n
		}
	}
	for i := range c.closes {
		code := 0
		if i < len(closeCodes) {
			code = int(closeCodes[i])
		}
		if n := c.closes[i].Load(); n > 0 {
			st.Closes[code] = n
		}
	}
	return st
}
