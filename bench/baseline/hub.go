package main

import (
	"encoding/json"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/internal/wsproto"
)

// The /ws protocol is wsgate's (handler/protocol.go): the baseline uses the
// same parser and reply builders (internal/wsproto), so that both servers
// answer with the same bytes and only the connection handling differs.

// Limits, wsgate's defaults (-max-subs, -max-channel-len).
const (
	maxSubscriptions = 64
	maxChannelLen    = 128
)

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
		s.replyError(nil, wsproto.CodeBinaryNotSupported)
		return
	}
	req, code := wsproto.ParseRequest(msg)
	if code != "" {
		s.replyError(req.ID, code)
		return
	}
	if req.Op != wsproto.OpSubscribe && req.Op != wsproto.OpUnsubscribe && req.Op != wsproto.OpPublish {
		s.replyError(req.ID, wsproto.CodeUnknownOp)
		return
	}
	if !wsproto.ValidChannel(req.Channel, maxChannelLen) {
		s.replyError(req.ID, wsproto.CodeBadChannel)
		return
	}
	delivered := -1
	switch req.Op {
	case wsproto.OpSubscribe:
		if _, ok := s.subs[req.Channel]; !ok {
			if len(s.subs) >= maxSubscriptions {
				s.replyError(req.ID, wsproto.CodeTooManySubscriptions)
				return
			}
			s.subs[req.Channel] = struct{}{}
			s.hub.subscribe(req.Channel, s.c)
		}
	case wsproto.OpUnsubscribe:
		if _, ok := s.subs[req.Channel]; !ok {
			s.replyError(req.ID, wsproto.CodeNotSubscribed)
			return
		}
		delete(s.subs, req.Channel)
		s.hub.unsubscribe(req.Channel, s.c)
	case wsproto.OpPublish:
		if !json.Valid(req.Data) { // missing data
			s.replyError(req.ID, wsproto.CodeBadJSON)
			return
		}
		delivered = s.hub.publish(req.Channel, preparePush(req.Channel, req.Data))
	}
	if len(req.ID) > 0 {
		s.reply(wsproto.AppendAck(nil, req.ID, delivered))
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
	s.reply(wsproto.AppendError(nil, id, code))
}

// preparePush builds {"channel":…,"data":…} once per publish and wraps it
// in a PreparedMessage, which gorilla frames once for all subscribers.
func preparePush(channel string, data json.RawMessage) *websocket.PreparedMessage {
	buf := wsproto.AppendPush(nil, channel, data)
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, buf)
	if err != nil { // only for compression or a bad type, neither used here
		panic(err)
	}
	return pm
}
