package wsconn

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// The opening handshake (RFC 6455 section 4.2), on the raw socket: no
// net/http, no goroutine. Request bytes accumulate across readable events
// until the blank line that ends the headers, bounded by MaxHandshakeSize
// (431 past it) and HandshakeTimeout (the sweeper closes the connection).
// Then gobwas/ws parses the request from memory and writes the response
// into a buffer that goes out through the ordinary write path. Bytes after
// the blank line (a client may send its first frame at once) go to the
// frame parser.

var headerEnd = []byte("\r\n\r\n")

// Rejections the server makes itself, on top of gobwas/ws's own (400 for a
// malformed request or bad header, 405 for a method other than GET, 426
// with Sec-WebSocket-Version: 13 for another version).
var (
	errRejectNotFound = ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound),
		ws.RejectionReason("no WebSocket endpoint at this path"))
	errRejectOrigin = ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden),
		ws.RejectionReason("origin not allowed"))
	errRejectFull = ws.RejectConnectionError(ws.RejectionStatus(http.StatusServiceUnavailable),
		ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: 1\r\n")),
		ws.RejectionReason("server at its connection limit"))
	errRejectForbidden = ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden),
		ws.RejectionReason("not authorized"))
	errRejectPerIP = ws.RejectConnectionError(ws.RejectionStatus(http.StatusTooManyRequests),
		ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: 10\r\n")),
		ws.RejectionReason("too many connections from your address"))
	errRejectShutdown = ws.RejectConnectionError(ws.RejectionStatus(http.StatusServiceUnavailable),
		ws.RejectionReason("server shutting down"))
)

// tooLargeResponse answers a request whose headers pass MaxHandshakeSize.
var (
	tooLargeResponse   = httpErrorResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
	badRequestResponse = httpErrorResponse(http.StatusBadRequest, "malformed request")
	fullResponse       = httpErrorResponse(http.StatusServiceUnavailable, "server at its connection limit", "Retry-After: 1")
	perIPResponse      = httpErrorResponse(http.StatusTooManyRequests, "too many connections from your address", "Retry-After: 10")
)

// httpErrorResponse is a complete HTTP error response with body and the
// extra header lines.
func httpErrorResponse(code int, body string, header ...string) []byte {
	var extra string
	for _, h := range header {
		extra += h + "\r\n"
	}
	return []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n" +
		"Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" + extra +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// refuseAtOnce answers a connection that was accepted only to be refused
// (past MaxConns or MaxConnsPerIP) without waiting for its request, so
// that a client that never completes it holds its place among the
// refusals (rejectSlack, refusalsPerAddress) only until it hangs up or the
// answer's linger ends. It reports whether it answered. Not on wss: the
// answer must wait for the TLS handshake, and goes out once the request
// is read (upgrade). Only the owner calls it.
func (c *conn) refuseAtOnce() bool {
	if c.reject == rejectNone || c.phaseNow() != phaseHandshake || c.tlsSession() != nil || c.in != nil && c.in.discard {
		return false
	}
	if c.in == nil {
		c.in = getInState()
	}
	if c.reject == rejectFull {
		c.rejectRaw(fullResponse, http.StatusServiceUnavailable, "server at its connection limit")
	} else {
		c.rejectRaw(perIPResponse, http.StatusTooManyRequests, "too many connections from your address")
	}
	return true
}

// handshake accumulates request bytes and upgrades once they are complete.
// budget is the run's (see parse).
func (c *conn) handshake(p []byte, budget int64) {
	if c.in == nil {
		c.in = getInState()
	}
	st := c.in
	limit := c.srv.cfg.MaxHandshakeSize
	from := max(0, len(st.hs)-3) // the end marker may straddle two reads
	st.hs = append(st.hs, p...)
	end := bytes.Index(st.hs[from:], headerEnd)
	if end < 0 {
		if len(st.hs) >= limit {
			c.rejectRaw(tooLargeResponse, http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		}
		return
	}
	end += from + len(headerEnd)
	if end > limit {
		c.rejectRaw(tooLargeResponse, http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		return
	}
	req, rest := st.hs[:end], st.hs[end:]
	if !crlfOnly(req) {
		// Lines end in CRLF here; a bare LF is legal for a lenient
		// parser (RFC 9112 section 2.2), but this server finds the end of
		// the headers by CRLF CRLF, and one request read two ways is how
		// request smuggling starts: refuse it.
		c.rejectRaw(badRequestResponse, http.StatusBadRequest, "bare LF or CR line end")
		return
	}
	if page, ok := c.srv.pageFor(req); ok {
		c.servePage(page)
		return
	}
	if !c.upgrade(req) {
		return
	}
	// The request buffer is done with; what followed it is frame data.
	rest = append([]byte(nil), rest...)
	st.hs = nil
	c.frames(rest, budget)
}

// hsIO gives gobwas's Upgrader the request from memory and collects its
// response.
type hsIO struct {
	r   sliceReader
	out []byte
}

func (h *hsIO) Read(p []byte) (int, error) { return h.r.Read(p) }

func (h *hsIO) Write(p []byte) (int, error) {
	h.out = append(h.out, p...)
	return len(p), nil
}

// upgrade runs gobwas/ws's zero-copy Upgrader over the complete request and
// sends its response. It returns true if the connection is now open.
func (c *conn) upgrade(req []byte) bool {
	srv := c.srv
	var rt *route
	var auth *authorizing
	if srv.cfg.Authorize != nil {
		auth = &authorizing{r: UpgradeRequest{Header: http.Header{}, Remote: c.RemoteAddr()}}
	}
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			path, query, _ := bytes.Cut(uri, []byte("?"))
			if rt = srv.routes[string(path)]; rt == nil {
				return errRejectNotFound
			}
			if len(query) > 0 {
				c.extras().query = string(query)
			}
			if auth != nil {
				auth.r.Path, auth.r.Query = rt.path, string(query)
			}
			return nil
		},
		OnHeader: func(key, value []byte) error {
			if len(srv.origins) > 0 && string(key) == "Origin" && !srv.originAllowed(value) {
				return errRejectOrigin
			}
			if auth != nil {
				auth.r.Header.Add(string(key), string(value))
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			switch {
			case srv.shuttingDown.Load():
				return nil, errRejectShutdown
			case c.reject == rejectFull:
				return nil, errRejectFull
			case c.reject == rejectPerIP:
				return nil, errRejectPerIP
			case auth != nil:
				return nil, auth.run(&srv.cfg)
			}
			return nil, nil
		},
	}
	if len(srv.cfg.ResponseHeader) > 0 {
		u.Header = ws.HandshakeHeaderHTTP(srv.cfg.ResponseHeader)
	}
	var deflate *deflateNegotiation
	if srv.cfg.Compression {
		// permessage-deflate with no context takeover either way (see
		// negotiate.go): each message is compressed on its own, so a
		// connection keeps no compression state between messages (a flate
		// window and writer are tens to hundreds of KiB).
		deflate = &deflateNegotiation{}
		u.Negotiate = deflate.negotiate
	}
	if srv.cfg.SelectProtocol != nil {
		u.ProtocolCustom = func(v []byte) (string, bool) { return srv.selectProtocol(v) }
	}
	io := &hsIO{r: sliceReader{b: req}}
	hs, err := u.Upgrade(io)
	if err != nil {
		resp := io.out
		if len(resp) == 0 { // not a rejection: gobwas wrote nothing
			resp = badRequestResponse
		}
		c.rejectRaw(resp, rejectStatus(err), err.Error())
		return false
	}
	if auth != nil && auth.inBand != nil {
		c.refuseInBand(io.out, auth.inBand)
		return false
	}
	if hs.Protocol != "" {
		c.extras().proto = hs.Protocol
	}
	if auth != nil {
		e := c.extras()
		e.principal, e.expires = auth.principal, auth.expires
	}
	if deflate != nil && deflate.accepted {
		st := stDeflate
		if deflate.windowBits < maxWindowBits {
			st |= stDeflateHuffman
		}
		c.state.Or(st)
	}
	if srv.cfg.ObserveHandshake != nil {
		srv.cfg.ObserveHandshake(elapsed(srv.nowExact(), c.acceptedAt()))
	}
	c.rt = rt
	c.endHandshakeDeadline()
	if auth != nil {
		c.setExpiry(auth.expires)
	}
	c.setPhase(phaseOpen)
	srv.stats.countHandshake(http.StatusSwitchingProtocols)
	c.mu.Lock()
	buf := getBuffer(len(io.out))
	copy(buf.b, io.out)
	_ = c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
	c.callOnOpen()
	return true
}

// refuseInBand completes a handshake that Authorize refused (resp is the
// 101 response) and closes the connection at once with 4000 plus the
// refusal's status and its message (Config.CloseRefused). The connection
// never opens: no route is set, so the handler never sees it, and its
// input is ignored until the peer answers the close or CloseTimeout ends
// it.
func (c *conn) refuseInBand(resp []byte, he *HTTPError) {
	c.logRefused(he.Status, he.Message)
	c.srv.stats.countHandshake(he.Status)
	c.endHandshakeDeadline()
	c.setPhase(phaseOpen)
	c.in.hs = nil
	c.mu.Lock()
	buf := getBuffer(len(resp))
	copy(buf.b, resp)
	_ = c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
	c.fail(StatusCode(4000+he.Status), he.Message, nil)
}

// rejectRaw refuses the handshake with an HTTP error response (status, for
// reason) and logs it.
func (c *conn) rejectRaw(resp []byte, status int, reason string) {
	c.logRefused(status, reason)
	c.answer(resp, status)
}

// answer sends a complete HTTP response instead of upgrading, counted (a
// refusal by status, a page apart), and closes the connection once it is out. Input that follows is
// ignored.
func (c *conn) answer(resp []byte, status int) {
	if status == http.StatusOK {
		c.srv.stats.pagesServed.Add(1) // a page (Config.Pages), not a handshake
	} else {
		c.srv.stats.countHandshake(status)
	}
	c.in.discard = true
	c.in.hs = nil
	buf := getBuffer(len(resp))
	copy(buf.b, resp)
	c.mu.Lock()
	c.wflags |= wfCloseAfter
	_ = c.sendLocked(buf.b, buf, false)
	c.mu.Unlock()
}

// rejectStatus is the HTTP status gobwas/ws answered with.
func rejectStatus(err error) int {
	var rej *ws.ConnectionRejectedError
	if errors.As(err, &rej) && rej.StatusCode() != 0 {
		return rej.StatusCode()
	}
	return http.StatusBadRequest
}

// originAllowed reports whether an Origin header value is in the allow-list.
func (s *Server) originAllowed(origin []byte) bool {
	if s.origins["*"] {
		return true
	}
	return s.origins[strings.ToLower(string(origin))]
}

// selectProtocol picks the first offered subprotocol that
// Config.SelectProtocol accepts, from one Sec-WebSocket-Protocol value.
func (s *Server) selectProtocol(v []byte) (string, bool) {
	for _, p := range bytes.Split(v, []byte(",")) {
		p = bytes.TrimSpace(p)
		if len(p) == 0 {
			continue
		}
		if name := string(p); s.cfg.SelectProtocol(name) {
			return name, true
		}
	}
	return "", true
}

// authorizing carries one request through Config.Authorize.
type authorizing struct {
	r         UpgradeRequest
	principal any
	expires   time.Time
	inBand    *HTTPError // a refusal to tell with a close frame (Config.CloseRefused)
}

// run calls the server's Authorize and turns a refusal into gobwas's
// rejection, or, if Config.CloseRefused asks for it, records it in
// a.inBand and lets the upgrade go on.
func (a *authorizing) run(cfg *Config) error {
	p, exp, err := cfg.Authorize(&a.r)
	if err == nil {
		a.principal, a.expires = p, exp
		return nil
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		he = &HTTPError{Status: http.StatusForbidden, Message: "not authorized"}
		err = errRejectForbidden
	}
	if cfg.CloseRefused != nil && he.Status >= 400 && he.Status < 1000 && cfg.CloseRefused(&a.r) {
		a.inBand = he
		return nil
	}
	if err == errRejectForbidden {
		return err
	}
	opts := []ws.RejectOption{ws.RejectionStatus(he.Status), ws.RejectionReason(he.Message)}
	if len(he.Header) > 0 {
		opts = append(opts, ws.RejectionHeader(ws.HandshakeHeaderHTTP(he.Header)))
	}
	return ws.RejectConnectionError(opts...)
}

// crlfOnly reports whether every LF in req follows a CR, and every CR
// precedes an LF.
func crlfOnly(req []byte) bool {
	for i, b := range req {
		switch {
		case b == '\n' && (i == 0 || req[i-1] != '\r'):
			return false
		case b == '\r' && (i+1 == len(req) || req[i+1] != '\n'):
			return false
		}
	}
	return true
}
