package wsconn

import (
	"bytes"
	"net/http"
	"strconv"
)

// Plain pages on the WebSocket port (Config.Pages): enough HTTP for a demo
// page, answered from the buffered request like a handshake rejection and
// closed after it. Anything else that is not an upgrade still goes to the
// Upgrader, which answers 400 or 404.

// pageFor returns the page a complete request asks for, if it is a GET of
// a configured path without "Upgrade: websocket".
func (s *Server) pageFor(req []byte) (Page, bool) {
	if len(s.cfg.Pages) == 0 || !bytes.HasPrefix(req, []byte("GET ")) {
		return Page{}, false
	}
	line, headers, _ := bytes.Cut(req, []byte("\r\n"))
	target, _, _ := bytes.Cut(line[len("GET "):], []byte(" "))
	path, _, _ := bytes.Cut(target, []byte("?"))
	page, ok := s.cfg.Pages[string(path)]
	if !ok || bytes.Contains(bytes.ToLower(headers), []byte("\nupgrade:")) ||
		bytes.HasPrefix(bytes.ToLower(headers), []byte("upgrade:")) {
		return Page{}, false
	}
	return page, true
}

// servePage answers 200 with the page and closes the connection once it is
// out.
func (c *conn) servePage(p Page) {
	head := "HTTP/1.1 200 OK\r\nContent-Type: " + p.ContentType + "\r\nContent-Length: " +
		strconv.Itoa(len(p.Body)) + "\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
	resp := make([]byte, 0, len(head)+len(p.Body))
	resp = append(append(resp, head...), p.Body...)
	c.answer(resp, http.StatusOK)
}
