package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"
)

// The /ws protocol, the same bytes wsgate's handler.Channels speaks (see
// handler/protocol.go): one JSON object per text message.
//
//	client: {"op":"subscribe"|"unsubscribe","channel":"c","id":…}
//	        {"op":"publish","channel":"c","data":<JSON>,"id":…}
//	server: {"op":"ack","id":…}  {"op":"ack","id":…,"delivered":N}
//	        {"channel":"c","data":<JSON as published>}
//	        {"op":"error","id":…,"code":…,"message":…}
//
// The id is optional (string or number, null is absent) and echoed
// verbatim; an ack goes out only when there was an id, an error always.
const (
	codeBadJSON              = "bad_json"
	codeBinaryNotSupported   = "binary_not_supported"
	codeUnknownOp            = "unknown_op"
	codeBadChannel           = "bad_channel"
	codeTooManySubscriptions = "too_many_subscriptions"
	codeNotSubscribed        = "not_subscribed"
)

// Limits, wsgate's defaults (-max-subs, -max-channel-len).
const (
	maxSubscriptions = 64
	maxChannelLen    = 128
)

// errorMessages is the human text of each code, as wsgate sends it, so that
// replies have the same size on both servers.
var errorMessages = map[string]string{
	codeBadJSON:              "message must be a JSON object with string op and channel, an id that is a string or number, and data on publish",
	codeBinaryNotSupported:   "binary messages are not supported; send JSON as text",
	codeUnknownOp:            "op must be subscribe, unsubscribe or publish",
	codeBadChannel:           "channel must be non-empty, within the length limit, and made of A-Z a-z 0-9 _ . : @ / -",
	codeTooManySubscriptions: "too many subscriptions on this connection",
	codeNotSubscribed:        "not subscribed to this channel",
}

// request is one client message; ID and Data stay raw so they can be
// echoed and pushed exactly as sent.
type request struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	ID      json.RawMessage `json:"id"`
	Data    json.RawMessage `json:"data"`
}

// hub is the channel table: who is subscribed to what, across all /ws
// connections. mu guards channels; a publish holds it for reading while it
// queues the push to every subscriber.
type hub struct {
	mu       sync.RWMutex
	channels map[string]map[*client]struct{}
}

func newHub() *hub {
	return &hub{channels: make(map[string]map[*client]struct{})}
}

func (h *hub) subscribe(name string, c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.channels[name]
	if subs == nil {
		subs = make(map[*client]struct{})
		h.channels[name] = subs
	}
	subs[c] = struct{}{}
}

func (h *hub) unsubscribe(name string, c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.channels[name]
	delete(subs, c)
	if len(subs) == 0 {
		delete(h.channels, name)
	}
}

// publish queues pm to every subscriber of name and returns how many took
// it. A subscriber whose queue is full is closed as a slow consumer (that
// only signals its writer, so it is safe under the read lock).
func (h *hub) publish(name string, pm *websocket.PreparedMessage) (delivered int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.channels[name] {
		if c.trySend(outbound{prepared: pm}) {
			delivered++
		}
	}
	return delivered
}

// channelsSession is the /ws state of one connection. It is used only by
// that connection's read goroutine, so it needs no lock.
type channelsSession struct {
	hub  *hub
	c    *client
	subs map[string]struct{}
}

// handle serves one message and queues the ack or error for it.
func (s *channelsSession) handle(typ int, msg []byte) {
	if typ != websocket.TextMessage {
		s.replyError(nil, codeBinaryNotSupported)
		return
	}
	req, code := parseRequest(msg)
	if code != "" {
		s.replyError(req.ID, code)
		return
	}
	if req.Op != "subscribe" && req.Op != "unsubscribe" && req.Op != "publish" {
		s.replyError(req.ID, codeUnknownOp)
		return
	}
	if !validChannel(req.Channel) {
		s.replyError(req.ID, codeBadChannel)
		return
	}
	delivered := -1
	switch req.Op {
	case "subscribe":
		if _, ok := s.subs[req.Channel]; !ok {
			if len(s.subs) >= maxSubscriptions {
				s.replyError(req.ID, codeTooManySubscriptions)
				return
			}
			s.subs[req.Channel] = struct{}{}
			s.hub.subscribe(req.Channel, s.c)
		}
	case "unsubscribe":
		if _, ok := s.subs[req.Channel]; !ok {
			s.replyError(req.ID, codeNotSubscribed)
			return
		}
		delete(s.subs, req.Channel)
		s.hub.unsubscribe(req.Channel, s.c)
	case "publish":
		if !json.Valid(req.Data) { // missing data
			s.replyError(req.ID, codeBadJSON)
			return
		}
		delivered = s.hub.publish(req.Channel, preparePush(req.Channel, req.Data))
	}
	if len(req.ID) > 0 {
		s.reply(appendAck(nil, req.ID, delivered))
	}
}

// leave drops every subscription; called once when the connection ends.
func (s *channelsSession) leave() {
	for name := range s.subs {
		s.hub.unsubscribe(name, s.c)
	}
	clear(s.subs)
}

func (s *channelsSession) reply(msg []byte) {
	s.c.trySend(outbound{typ: websocket.TextMessage, data: msg})
}

func (s *channelsSession) replyError(id json.RawMessage, code string) {
	s.reply(appendError(nil, id, code))
}

// preparePush builds {"channel":…,"data":…} once per publish and wraps it
// in a PreparedMessage, which gorilla frames once for all subscribers.
func preparePush(channel string, data json.RawMessage) *websocket.PreparedMessage {
	buf := make([]byte, 0, len(`{"channel":"","data":}`)+len(channel)+len(data))
	buf = append(buf, `{"channel":"`...)
	buf = append(buf, channel...) // validChannel: nothing to escape
	buf = append(buf, `","data":`...)
	buf = append(buf, data...)
	buf = append(buf, '}')
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, buf)
	if err != nil { // only for compression or a bad type, neither used here
		panic(err)
	}
	return pm
}

// parseRequest decodes msg. On failure it returns a code, with req.ID kept
// when the id itself was good, so the error can carry it.
func parseRequest(msg []byte) (req request, code string) {
	trimmed := bytes.TrimLeft(msg, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return request{}, codeBadJSON
	}
	// A syntax error leaves req zero; a type error fills the other fields.
	err := json.Unmarshal(trimmed, &req)
	if !validID(req.ID) {
		req.ID = nil
		return req, codeBadJSON
	}
	if string(req.ID) == "null" {
		req.ID = nil
	}
	if err != nil {
		return req, codeBadJSON
	}
	return req, ""
}

// validID reports whether id is absent, null, a string or a number.
func validID(id json.RawMessage) bool {
	if len(id) == 0 || string(id) == "null" {
		return true
	}
	b := id[0]
	return b == '"' || b == '-' || '0' <= b && b <= '9'
}

// validChannel reports whether name is 1 to maxChannelLen bytes of
// [A-Za-z0-9_.:@/-].
func validChannel(name string) bool {
	if name == "" || len(name) > maxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '_', b == '.', b == ':', b == '@', b == '/', b == '-':
		default:
			return false
		}
	}
	return true
}

// appendAck appends {"op":"ack","id":…}, plus "delivered" when it is not
// negative.
func appendAck(dst []byte, id json.RawMessage, delivered int) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = append(dst, id...)
	if delivered >= 0 {
		dst = append(dst, `,"delivered":`...)
		dst = strconv.AppendInt(dst, int64(delivered), 10)
	}
	return append(dst, '}')
}

// appendError appends {"op":"error",…}, without "id" when id is empty.
func appendError(dst []byte, id json.RawMessage, code string) []byte {
	dst = append(dst, `{"op":"error"`...)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	dst = append(dst, `,"code":"`...)
	dst = append(dst, code...)
	dst = append(dst, `","message":"`...)
	dst = append(dst, errorMessages[code]...)
	return append(dst, `"}`...)
}
