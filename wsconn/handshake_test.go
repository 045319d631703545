package wsconn

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/poller"
)

// testKey is the Sec-WebSocket-Key of the handshake table (the example of
// RFC 6455 section 1.3, answered with s3pPLMBiTxaQ9kYGzzhZRbK+xOo=).
const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// reqSpec builds an upgrade request for the handshake table.
type reqSpec struct {
	requestLine string
	headers     []string // "Name: value", in order
}

// validReq is a correct upgrade request for target.
func validReq(target string) reqSpec {
	return reqSpec{
		requestLine: "GET " + target + " HTTP/1.1",
		headers: []string{
			"Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Key: " + testKey, "Sec-WebSocket-Version: 13",
		},
	}
}

// line replaces the request line.
func (r reqSpec) line(l string) reqSpec { r.requestLine = l; return r }

// set replaces the header name (adding it if absent); an empty value
// removes it.
func (r reqSpec) set(name, value string) reqSpec {
	var hs []string
	found := false
	for _, h := range r.headers {
		if strings.HasPrefix(strings.ToLower(h), strings.ToLower(name)+":") {
			found = true
			if value != "" {
				hs = append(hs, name+": "+value)
			}
			continue
		}
		hs = append(hs, h)
	}
	if !found && value != "" {
		hs = append(hs, name+": "+value)
	}
	r.headers = hs
	return r
}

// raw appends a line as it is.
func (r reqSpec) raw(line string) reqSpec {
	r.headers = append(append([]string(nil), r.headers...), line)
	return r
}

// add appends a header line, keeping any of the same name.
func (r reqSpec) add(name, value string) reqSpec {
	r.headers = append(append([]string(nil), r.headers...), name+": "+value)
	return r
}

func (r reqSpec) String() string {
	return r.requestLine + "\r\n" + strings.Join(r.headers, "\r\n") + "\r\n\r\n"
}

// handshakeCase is one upgrade request and the answer it must get. The
// server of the table serves /echo and /info (which sends the path, query
// and subprotocol it saw as its first message), allows the origins
// https://good.example and http://localhost:8080, and accepts the
// subprotocols chat and superchat. The table also seeds FuzzUpgrade.
type handshakeCase struct {
	name    string
	req     string
	status  int
	headers []string // "Name: value" lines the response must carry
	info    string   // for 101 on /info: the first message
	after   []cframe // frames sent in the same write as the request
	echo    []sframe // what they get back
}

func handshakeConfig() Config {
	return Config{
		Routes: map[string]Handler{
			"/echo": echoHandler{},
			"/info": infoHandler{},
		},
		AllowedOrigins: []string{"https://good.example", " HTTP://localhost:8080 "},
		SelectProtocol: func(p string) bool { return p == "chat" || p == "superchat" },
	}
}

// infoHandler tells the client what its connection looks like.
type infoHandler struct{ echoHandler }

func (infoHandler) OnOpen(c Conn) {
	_ = c.Send(Text, []byte(fmt.Sprintf("path=%s query=%s proto=%s", c.Path(), c.Query(), c.Subprotocol())))
}

var handshakeCases = []handshakeCase{
	{name: "valid", req: validReq("/echo").String(), status: 101,
		headers: []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
	{name: "header names in any case, Connection with several tokens",
		req: validReq("/echo").set("Connection", "").set("Upgrade", "").
			add("upgrade", "WebSocket").add("connection", "keep-alive, Upgrade").String(), status: 101},
	{name: "wrong method", req: validReq("/echo").line("POST /echo HTTP/1.1").String(), status: 405},
	{name: "missing Host", req: validReq("/echo").set("Host", "").String(), status: 400},
	{name: "missing Upgrade", req: validReq("/echo").set("Upgrade", "").String(), status: 400},
	{name: "wrong Upgrade", req: validReq("/echo").set("Upgrade", "h2c").String(), status: 400},
	{name: "missing Connection", req: validReq("/echo").set("Connection", "").String(), status: 400},
	{name: "wrong Connection", req: validReq("/echo").set("Connection", "keep-alive").String(), status: 400},
	{name: "missing key", req: validReq("/echo").set("Sec-WebSocket-Key", "").String(), status: 400},
	{name: "short key", req: validReq("/echo").set("Sec-WebSocket-Key", "c2hvcnQ=").String(), status: 400},
	{name: "long key", req: validReq("/echo").set("Sec-WebSocket-Key", testKey+"AAAA").String(), status: 400},
	{name: "version 8", req: validReq("/echo").set("Sec-WebSocket-Version", "8").String(), status: 426,
		headers: []string{"Sec-WebSocket-Version: 13"}},
	{name: "missing version", req: validReq("/echo").set("Sec-WebSocket-Version", "").String(), status: 400},
	{name: "unknown path", req: validReq("/nope").String(), status: 404},
	{name: "path with a trailing slash", req: validReq("/echo/").String(), status: 404},
	{name: "query is kept and does not affect routing", req: validReq("/info?room=a&x=%20").String(), status: 101,
		info: "path=/info query=room=a&x=%20 proto="},
	{name: "empty query", req: validReq("/info?").String(), status: 101, info: "path=/info query= proto="},
	{name: "unknown path with a query", req: validReq("/nope?/echo").String(), status: 404},
	{name: "header larger than MaxHandshakeSize", req: validReq("/echo").add("X-Pad", strings.Repeat("p", 9000)).String(), status: 431},
	{name: "allowed origin", req: validReq("/echo").set("Origin", "https://good.example").String(), status: 101},
	{name: "allowed origin in another case", req: validReq("/echo").set("Origin", "HTTPS://Good.Example").String(), status: 101},
	{name: "second allowed origin", req: validReq("/echo").set("Origin", "http://localhost:8080").String(), status: 101},
	{name: "other origin", req: validReq("/echo").set("Origin", "https://evil.example").String(), status: 403},
	{name: "origin with a suffix", req: validReq("/echo").set("Origin", "https://good.example.evil").String(), status: 403},
	{name: "no origin", req: validReq("/echo").String(), status: 101},
	{name: "first acceptable subprotocol", req: validReq("/info").set("Sec-WebSocket-Protocol", "foo, superchat, chat").String(), status: 101,
		headers: []string{"Sec-WebSocket-Protocol: superchat"}, info: "path=/info query= proto=superchat"},
	{name: "subprotocol in a second header", req: validReq("/info").add("Sec-WebSocket-Protocol", "foo").add("Sec-WebSocket-Protocol", "chat").String(), status: 101,
		headers: []string{"Sec-WebSocket-Protocol: chat"}, info: "path=/info query= proto=chat"},
	{name: "no acceptable subprotocol", req: validReq("/info").set("Sec-WebSocket-Protocol", "foo, bar").String(), status: 101,
		info: "path=/info query= proto="},
	{name: "HTTP/1.0", req: validReq("/echo").line("GET /echo HTTP/1.0").String(), status: 505},
	{name: "malformed request line", req: validReq("/echo").line("GET/echo").String(), status: 400},
	{name: "malformed header line", req: validReq("/echo").raw("NoColonHere").String(), status: 400},
	{name: "frames in the same write as the request", req: validReq("/echo").String(), status: 101,
		after: []cframe{textFrame("early"), pingFrame("p")}, echo: []sframe{textEcho("early"), pongOf("p")}},
}

// TestHandshake sends each handshakeCase at once and a byte per read.
func TestHandshake(t *testing.T) {
	modes := []struct {
		name   string
		chunks func(b []byte) [][]byte
	}{
		{"whole", func(b []byte) [][]byte { return [][]byte{b} }},
		{"bytewise", func(b []byte) [][]byte { return bytewise(b, 1024) }},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range handshakeCases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					srv := startServer(t, handshakeConfig())
					c := dialRaw(t, srv)
					wait := c.feed(mode.chunks(append([]byte(tc.req), encodeAll(tc.after)...)), true)
					checkHandshake(t, c, tc)
					if tc.status != http.StatusSwitchingProtocols {
						_ = wait() // the server closes after its answer
						c.expectEOF()
						return
					}
					if err := wait(); err != nil {
						t.Fatalf("write: %v", err)
					}
					c.closeHandshake()
				})
			}
		})
	}
}

// checkHandshake reads the response to tc.req and what follows it.
func checkHandshake(t *testing.T, c *rawClient, tc handshakeCase) {
	t.Helper()
	resp := c.readResponse()
	if resp.StatusCode != tc.status {
		t.Fatalf("got status %d, want %d", resp.StatusCode, tc.status)
	}
	for _, h := range tc.headers {
		name, value, _ := strings.Cut(h, ": ")
		if got := resp.Header.Values(name); len(got) != 1 || got[0] != value {
			t.Errorf("got %s %q, want %q", name, got, value)
		}
	}
	if tc.status != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, resp.Body)
		return
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(testKey); got != want {
		t.Errorf("got Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if !strings.Contains(tc.req, "Sec-WebSocket-Protocol: ") || len(tc.headers) == 0 {
		if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 0 {
			t.Errorf("got Sec-WebSocket-Protocol %q, want none", got)
		}
	}
	if tc.info != "" {
		c.expectFrame(textEcho(tc.info))
	}
	for _, f := range tc.echo {
		c.expectFrame(f)
	}
}

// TestHandshakeStats: each answer is counted by status.
func TestHandshakeStats(t *testing.T) {
	srv := startServer(t, handshakeConfig())
	for _, req := range []string{
		validReq("/echo").String(),
		validReq("/nope").String(),
		validReq("/echo").set("Sec-WebSocket-Version", "8").String(),
	} {
		c := dialRaw(t, srv)
		c.write([]byte(req))
		_ = c.readResponse()
		_ = c.conn.Close()
	}
	eventually(t, ioTimeout, "all closed", func() bool { return srv.Conns() == 0 })
	want := map[int]uint64{101: 1, 404: 1, 426: 1}
	got := srv.Stats().Handshakes
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got handshakes %v, want %v", got, want)
	}
}

// TestHandshakeMaxConns: past MaxConns a connection gets 503 with Retry-After;
// once one closes, a new one gets in.
func TestHandshakeMaxConns(t *testing.T) {
	srv := startServer(t, Config{MaxConns: 2})
	a := dialWS(t, srv, "/echo")
	dialWS(t, srv, "/echo")

	c := dialRaw(t, srv)
	c.write([]byte(upgradeRequest("/echo", newKey())))
	resp := c.readResponse()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: got status %d, want 503", resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got == "" {
		t.Errorf("got no Retry-After header, want one")
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	c.expectEOF()

	a.closeHandshake()
	eventually(t, ioTimeout, "a slot is free", func() bool { return srv.Conns() < 2 })
	d := dialWS(t, srv, "/echo")
	d.send(textFrame("in"))
	d.expectFrame(textEcho("in"))
	if st := srv.Stats(); st.Handshakes[http.StatusServiceUnavailable] != 1 {
		t.Errorf("got %d answers 503, want 1", st.Handshakes[http.StatusServiceUnavailable])
	}
}

// TestHandshakeRandomKeys: the harness's own accept computation matches
// the RFC example, and the server's answer to random keys matches it.
func TestHandshakeRandomKeys(t *testing.T) {
	if got, want := acceptFor(testKey), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf("acceptFor(RFC example): got %q, want %q", got, want)
	}
	srv := startServer(t, Config{})
	for range 5 {
		c := dialWS(t, srv, "/echo") // checks the accept for a random key
		c.closeHandshake()
	}
}

// TestAcceptAfterPollerClosed: a connection the server cannot register
// with its poller is closed at once, not leaked.
func TestAcceptAfterPollerClosed(t *testing.T) {
	p, err := poller.New(poller.Config{Workers: 2})
	if err != nil {
		t.Fatalf("poller.New: %v", err)
	}
	srv := startServer(t, Config{Poller: p})
	if err := p.Close(time.Second); err != nil {
		t.Fatalf("poller Close: %v", err)
	}
	c := pairClient(t, srv) // Server.accept: the registration fails
	c.expectEOF()
	if n := srv.Conns(); n != 0 {
		t.Errorf("got %d connections, want 0", n)
	}
}
