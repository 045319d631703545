package handler

import (
	"time"

	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// The requests that read a channel's history: subscribe (which may
// recover) and history. Publishing into it is Channels.PublishWithPosition;
// the store itself is history.go.

// subscribe adds req.Channel to c's subscriptions, if c's principal
// allows it, and acks (when req has an id) with the channel's position and
// the outcome of req.Recover; subscribing again to a channel is only
// acked. With a recovery, the ack is followed by the publications the
// client missed, and then by the live ones, with nothing between them
// lost or doubled: both happen with the channel's history locked. On an
// error nothing is sent. Called only from c's handler calls.
func (h *Channels) subscribe(c wsconn.Conn, req *wsproto.Request) error {
	channel := req.Channel
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return ErrBadChannel
	}
	if p, ok := c.Principal().(Permissions); ok && !p.CanSubscribe(channel) {
		return errForbidden
	}
	subs, _ := c.Value().(*subscriptions)
	if subs == nil {
		subs = &subscriptions{}
	}
	subs.mu.Lock()
	already, n := subs.has(channel)
	subs.mu.Unlock()
	if !already && n >= h.cfg.MaxSubscriptions {
		return ErrTooManySubscriptions
	}
	if h.storeFor(channel) != nil {
		if !already {
			return h.subscribeStored(c, subs, req)
		}
		ack := wsproto.Ack{Delivered: -1}
		if st := h.history.lock(channel, h.rules.match(channel), false, time.Now()); st != nil {
			if st.synced {
				ack.Position = wsproto.Position{Offset: st.top, Epoch: st.epoch}
			}
			st.mu.Unlock()
		}
		h.replyAck(c, req.ID, ack)
		return nil
	}
	ack := wsproto.Ack{Delivered: -1}
	opts := h.historyOptions(channel)
	if opts.HistorySize == 0 {
		if req.Recover != nil && !already {
			ack.Recovery = wsproto.ReasonHistoryOff
			h.unrecovered.Add(1)
		}
		h.join(c, subs, channel, already, req.JoinLeave)
		h.replyAck(c, req.ID, ack)
		if !already {
			h.joinLeave(c, channel, true)
		}
		return nil
	}
	now := time.Now()
	st := h.history.lock(channel, opts, true, now)
	defer st.mu.Unlock()
	h.history.evict(st, now.UnixNano())
	var replay []entry
	if req.Recover != nil && !already {
		ack.Recovery, replay = h.recovery(st, *req.Recover)
	}
	h.join(c, subs, channel, already, req.JoinLeave)
	ack.Position = wsproto.Position{Offset: st.top, Epoch: st.epoch}
	h.replyAck(c, req.ID, ack)
	for i := range replay {
		if c.SendPrepared(replay[i].pm) != nil {
			break // closing; OnClose follows
		}
		h.replayed.Add(1)
	}
	if !already {
		h.joinLeave(c, channel, true)
	}
	return nil
}

// join adds channel to c's subscriptions unless already there, and c to
// its join and leave listeners with listen, if the channel has them.
func (h *Channels) join(c wsconn.Conn, subs *subscriptions, channel string, already, listen bool) {
	if already {
		return
	}
	subs.mu.Lock()
	first := len(subs.list) == 0 && len(subs.pending) == 0
	subs.list = append(subs.list, h.hub.subscribe(channel, c))
	if listen && h.rules.match(channel).JoinLeave {
		h.listenLocked(c, subs, channel)
	}
	subs.mu.Unlock()
	if first {
		c.SetValue(subs)
	}
}

// recovery decides a recovery from position p in st, which is locked: it
// returns wsproto.RecoveryOK and the publications after p, or the reason
// it cannot, and nothing.
func (h *Channels) recovery(st *stream, p wsproto.Position) (string, []entry) {
	reason := ""
	var replay []entry
	switch {
	case p.Epoch != st.epoch:
		reason = wsproto.ReasonEpochChanged
	case p.Offset > st.top:
		reason = wsproto.ReasonOffsetAhead
	case p.Offset+1 < st.first():
		reason = wsproto.ReasonOffsetTooOld
	default:
		replay = st.since(p.Offset)
		if len(replay) > h.cfg.MaxReplay || framedSize(replay) > h.cfg.MaxReplayBytes {
			reason, replay = wsproto.ReasonTooMany, nil
		}
	}
	if reason != "" {
		h.unrecovered.Add(1)
		return reason, nil
	}
	h.recoveries.Add(1)
	return wsproto.RecoveryOK, replay
}

// framedSize returns the framed bytes of es.
func framedSize(es []entry) int {
	n := 0
	for i := range es {
		n += len(es[i].pm.Frame())
	}
	return n
}

// historyOp answers a history request with the channel's last
// publications, or those after req.After, at most req.Limit (or
// MaxHistoryLimit, whichever is less) and MaxReplayBytes (at least one).
// The answer needs an id to be sent. Called only from c's handler calls.
func (h *Channels) historyOp(c wsconn.Conn, req *wsproto.Request) error {
	channel := req.Channel
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return ErrBadChannel
	}
	if p, ok := c.Principal().(Permissions); ok && !p.CanSubscribe(channel) {
		return errForbidden
	}
	if req.Limit < 0 {
		return ErrBadData
	}
	if h.storeFor(channel) != nil {
		return h.historyStoredOp(c, req)
	}
	pos, pushes, err := h.History(channel, (*Position)(req.After), req.Limit)
	if err != nil {
		return err
	}
	if len(req.ID) == 0 {
		return nil
	}
	buf := getBuf()
	*buf = wsproto.AppendHistory(*buf, req.ID, wsproto.Position(pos), pushes)
	_ = c.Send(wsconn.Text, *buf) // Send copies
	putBuf(buf)
	return nil
}

// History returns the position of channel's last publication and the
// pushes of its kept publications, oldest first: the last ones, or, when
// after is not nil, those that follow it. At most limit are returned (zero
// or more than MaxHistoryLimit: MaxHistoryLimit), and no more than
// MaxReplayBytes of them framed, but always one if there is one. A
// channel that has never been published to (or whose history expired)
// has the zero Position. The errors are ErrBadChannel, ErrHistoryOff for
// a channel that keeps no history, and ErrEpochChanged or ErrOffsetTooOld
// when the publications after after are not all kept. The pushes are
// shared and must not be modified.
func (h *Channels) History(channel string, after *Position, limit int) (Position, [][]byte, error) {
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return Position{}, nil, ErrBadChannel
	}
	if limit <= 0 || limit > h.cfg.MaxHistoryLimit {
		limit = h.cfg.MaxHistoryLimit
	}
	if h.storeFor(channel) != nil {
		return h.historyStored(channel, after, limit)
	}
	opts := h.options(channel)
	if opts.HistorySize == 0 {
		return Position{}, nil, ErrHistoryOff
	}
	now := time.Now()
	st := h.history.lock(channel, opts, false, now)
	if st == nil {
		if after != nil && (after.Epoch != "" || after.Offset != 0) {
			return Position{}, nil, ErrEpochChanged
		}
		return Position{}, [][]byte{}, nil
	}
	defer st.mu.Unlock()
	h.history.evict(st, now.UnixNano())
	var es []entry
	if after == nil {
		es = st.entries[st.start:]
		es = es[len(es)-h.within(es, limit, true):]
	} else {
		switch {
		case after.Epoch != st.epoch:
			return Position{}, nil, ErrEpochChanged
		case after.Offset >= st.top:
			es = nil // nothing after it
		case after.Offset+1 < st.first():
			return Position{}, nil, ErrOffsetTooOld
		default:
			es = st.since(after.Offset)
		}
		es = es[:h.within(es, limit, false)]
	}
	pushes := make([][]byte, len(es))
	for i := range es {
		pushes[i] = es[i].pm.Payload()
	}
	return Position{st.top, st.epoch}, pushes, nil
}

// within returns how many entries of es, counted from its end when newest
// is set and from its start otherwise, fit in limit and MaxReplayBytes;
// at least one when es has any.
func (h *Channels) within(es []entry, limit int, newest bool) int {
	n, size := 0, 0
	for ; n < len(es) && n < limit; n++ {
		i := n
		if newest {
			i = len(es) - 1 - n
		}
		if size += len(es[i].pm.Frame()); size > h.cfg.MaxReplayBytes && n > 0 {
			break
		}
	}
	return n
}
