package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// Presence: who is subscribed to a channel, and join and leave pushes.
//
// Nothing is stored for it: a channel's presence is its subscribers in the
// hub, each described when asked from what its connection has anyway (its
// id, its principal's user, the info query parameter it connected with),
// so presence costs an idle connection nothing and a subscriber nothing
// more than its subscription. Across processes (PresenceBroker) each
// process answers for its own subscribers when asked: a process that dies
// takes its clients out of every presence answer at once, with no entry
// left to expire.
//
// Join and leave pushes go to the subscribers that asked for them
// ("join_leave":true on subscribe). They are subscribers of a second,
// internal channel per channel, named jlPrefix + the channel, which no
// client can name ('#' is no channel name's byte); through the broker it
// reaches the other processes as any channel without history does.

// jlPrefix names the internal channel of a channel's join and leave
// listeners.
const jlPrefix = "#jl#"

// User is implemented by principals that name a user (auth.Principal):
// presence lists it with each of the user's connections.
type User interface {
	User() string
}

// PresenceBroker is a Broker that asks the other processes for their
// subscribers of a channel (package broker: NATS request and replies).
type PresenceBroker interface {
	Broker
	// Presence returns the other processes' answers for channel: each the
	// clients it lists (AppendClient objects, at most MaxPresence) and
	// its count of them. It waits for the processes that answer, a
	// bounded time.
	Presence(ctx context.Context, channel string) ([]PresenceAnswer, error)
}

// PresenceAnswer is one process's answer to a presence request.
type PresenceAnswer struct {
	Clients []json.RawMessage `json:"clients"` // AppendClient objects
	Total   int               `json:"total"`   // subscribers, listed or not
}

// clientOf describes c for presence.
func (h *Channels) clientOf(c wsconn.Conn) []byte { return h.appendClient(nil, c) }

// appendClient appends c's description for presence to dst.
func (h *Channels) appendClient(dst []byte, c wsconn.Conn) []byte {
	var idBuf [48]byte
	id := append(append(append(idBuf[:0], h.node...), '-'), strconv.FormatUint(c.ID(), 10)...)
	cl := wsproto.Client{ID: string(id), Info: clientInfo(c.Query())}
	if u, ok := c.Principal().(User); ok {
		cl.User = u.User()
	}
	return wsproto.AppendClient(dst, cl)
}

// clientInfo is the info query parameter of a connection when it is one
// JSON value of at most MaxClientInfo bytes, or nil.
func clientInfo(query string) json.RawMessage {
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		v, ok := strings.CutPrefix(kv, "info=")
		if !ok {
			continue
		}
		info, err := url.QueryUnescape(v)
		if err != nil || info == "" || len(info) > MaxClientInfo || !json.Valid([]byte(info)) {
			return nil
		}
		var b bytes.Buffer
		if json.Compact(&b, []byte(info)) != nil {
			return nil
		}
		return b.Bytes()
	}
	return nil
}

// localStats counts channel's subscribers on this process and adds their
// users to users.
func (h *Channels) localStats(channel string, users map[string]bool) int {
	ch := h.hub.lookup(channel)
	if ch == nil {
		return 0
	}
	ch.mu.RLock()
	conns := append([]wsconn.Conn(nil), ch.subs.conns...)
	ch.mu.RUnlock()
	for _, c := range conns { // unlocked: Principal takes c's lock
		if u, ok := c.Principal().(User); ok && u.User() != "" {
			users[u.User()] = true
		}
	}
	return len(conns)
}

// LocalPresence is this process's answer for channel: its subscribers,
// at most MaxPresence of them listed. The broker calls it to answer the
// other processes.
func (h *Channels) LocalPresence(channel string) PresenceAnswer {
	var a PresenceAnswer
	ch := h.hub.lookup(channel)
	if ch == nil {
		return a
	}
	ch.mu.RLock()
	conns := ch.subs.conns[:min(len(ch.subs.conns), h.cfg.MaxPresence)]
	listed := append([]wsconn.Conn(nil), conns...)
	a.Total = ch.subs.len()
	ch.mu.RUnlock()
	var buf []byte // one buffer for all: Clients are slices of it
	ends := make([]int, 0, len(listed))
	for _, c := range listed { // described unlocked: Principal and Query take c's lock
		buf = h.appendClient(buf, c)
		ends = append(ends, len(buf))
	}
	start := 0
	for _, end := range ends {
		a.Clients = append(a.Clients, buf[start:end:end])
		start = end
	}
	return a
}

// presenceOp answers presence and presence_stats: off the worker when
// other processes must be asked.
func (h *Channels) presenceOp(c wsconn.Conn, req *wsproto.Request) error {
	channel := req.Channel
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return ErrBadChannel
	}
	if p, ok := c.Principal().(Permissions); ok && !p.CanSubscribe(channel) {
		return errForbidden
	}
	if !h.rules.match(channel).Presence {
		return ErrPresenceOff
	}
	if len(req.ID) == 0 {
		return nil // nothing to answer to
	}
	id, stats := bytes.Clone(req.ID), req.Op == wsproto.OpPresenceStats
	answer := func() {
		p, err := h.presence(context.Background(), channel, stats)
		if err != nil {
			h.replyError(c, id, codeOf(err))
			return
		}
		var reply []byte
		if stats {
			reply = wsproto.AppendPresenceStats(nil, id, p.Total, p.Users)
		} else {
			clients := make([][]byte, len(p.Clients))
			for i, cl := range p.Clients {
				clients[i] = cl
			}
			reply = wsproto.AppendPresence(nil, id, clients, p.More)
		}
		_ = c.Send(wsconn.Text, reply) // Send copies
	}
	if _, ok := h.broker.(PresenceBroker); !ok {
		answer()
		return nil
	}
	if !h.jobs.submit(answer) {
		return ErrBusy
	}
	return nil
}

// PresenceInfo is a channel's presence on every process.
type PresenceInfo struct {
	Clients []json.RawMessage // at most MaxPresence (AppendClient objects)
	More    bool              // some subscribers are not listed
	Total   int               // subscribers
	Users   int               // distinct users: exact on this process, among those listed elsewhere
}

// Presence returns channel's presence on every process: this one's
// subscribers, and with a PresenceBroker the other processes' that
// answered in time. It blocks on the broker: do not call it from a
// handler call. The errors are ErrBadChannel, ErrPresenceOff and
// ErrUnavailable (the broker could not ask).
func (h *Channels) Presence(ctx context.Context, channel string) (PresenceInfo, error) {
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return PresenceInfo{}, ErrBadChannel
	}
	if !h.rules.match(channel).Presence {
		return PresenceInfo{}, ErrPresenceOff
	}
	return h.presence(ctx, channel, false)
}

// presence gathers channel's presence; with countsOnly, no client is
// listed (presence_stats).
func (h *Channels) presence(ctx context.Context, channel string, countsOnly bool) (PresenceInfo, error) {
	var p PresenceInfo
	users := map[string]bool{}
	var answers []PresenceAnswer
	if countsOnly {
		p.Total = h.localStats(channel, users)
	} else {
		local := h.LocalPresence(channel)
		answers = append(answers, local)
		h.localStats(channel, users)
		p.Total = local.Total
	}
	if pb, ok := h.broker.(PresenceBroker); ok {
		remote, err := pb.Presence(ctx, channel)
		if err != nil {
			return PresenceInfo{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		for _, a := range remote {
			p.Total += a.Total
			for _, cl := range a.Clients {
				var u struct{ User string }
				if json.Unmarshal(cl, &u) == nil && u.User != "" {
					users[u.User] = true
				}
			}
		}
		answers = append(answers, remote...)
	}
	p.Users = len(users)
	for _, a := range answers {
		for _, cl := range a.Clients {
			if len(p.Clients) == h.cfg.MaxPresence {
				p.More = true
				break
			}
			p.Clients = append(p.Clients, cl)
		}
		p.More = p.More || len(a.Clients) < a.Total
	}
	return p, nil
}

// listen adds c to channel's join and leave listeners, once. subs.mu is
// held.
func (h *Channels) listenLocked(c wsconn.Conn, subs *subscriptions, channel string) {
	name := jlPrefix + channel
	for _, ch := range subs.jl {
		if ch.name == name {
			return
		}
	}
	subs.jl = append(subs.jl, h.hub.subscribe(name, c))
}

// unlistenLocked removes c from channel's join and leave listeners.
// subs.mu is held.
func (h *Channels) unlistenLocked(c wsconn.Conn, subs *subscriptions, channel string) {
	name := jlPrefix + channel
	for i, ch := range subs.jl {
		if ch.name == name {
			h.hub.unsubscribe(ch, c)
			last := len(subs.jl) - 1
			subs.jl[i], subs.jl[last] = subs.jl[last], nil
			subs.jl = subs.jl[:last]
			return
		}
	}
}

// joinLeave pushes c's join (or leave) of channel to the channel's
// listeners on every process.
func (h *Channels) joinLeave(c wsconn.Conn, channel string, join bool) {
	if !h.rules.match(channel).JoinLeave {
		return
	}
	push := wsproto.AppendJoinLeave(nil, channel, join, h.clientOf(c))
	h.hub.deliver(jlPrefix+channel, wsconn.NewPreparedMessage(wsconn.Text, push))
	if h.broker != nil {
		if err := h.broker.Publish(jlPrefix+channel, push); err != nil {
			h.brokerFailed.Add(1)
		}
	}
}
