package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// Channels whose history a StoreBroker keeps (JetStream, across processes
// and nodes). The store holds the publications and numbers them; this
// process delivers what the broker hands DeliverStored, in the store's
// order, its own publications included. The channel's stream (history.go)
// keeps no entries here, only top: the last offset this process delivered
// to the channel's subscribers, for the broker subscription of generation
// gen. Every process delivers every stored publication once: one that
// arrives at or below top is a copy, and one whose predecessor (prev) is
// past top shows that this process missed some, which are fetched from the
// store and delivered first.
//
// A subscribe that can be answered from top alone (no recovery, or a
// recovery from top itself) is answered on the connection's worker. The
// others need the store, so they wait in a bounded queue of jobs that run
// off the workers, at most MaxStoreJobs at once: a reconnect storm after a
// restart waits there, and live traffic goes on. Such a subscribe is
// pending on the connection until its job joins it (or an unsubscribe or a
// close cancels it). The job subscribes to the channel's stored
// publications (Acquire), fetches what the client missed, then, with the
// channel's stream locked, sends the ack and the missed publications up to
// top and joins the channel: those after top come live. A publication
// fetched but not yet delivered here is not replayed; it comes live.

// storeFor returns the StoreBroker keeping channel's history, or nil.
func (h *Channels) storeFor(channel string) StoreBroker {
	if h.store != nil && h.rules.match(channel).HistorySize > 0 && h.store.Stored(channel) {
		return h.store
	}
	return nil
}

// publishStored stores data in channel's history and returns its
// position, once stored; its delivery, here and elsewhere, comes through
// DeliverStored.
func (h *Channels) publishStored(store StoreBroker, channel string, data json.RawMessage) (Published, error) {
	p, err := store.PublishStored(context.Background(), channel, data)
	if err != nil {
		h.storeFailed.Add(1)
		return Published{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return Published{Delivered: -1, Position: p}, nil
}

// publishStoredOp is the publish op on a stored channel: acked (or
// answered unavailable) from the store's answer, off c's worker.
func (h *Channels) publishStoredOp(c wsconn.Conn, store StoreBroker, req *wsproto.Request) error {
	id, data := bytes.Clone(req.ID), bytes.Clone(req.Data) // req is c's read buffer
	err := store.PublishStoredAsync(req.Channel, data, func(p Position, err error) {
		if err != nil {
			h.storeFailed.Add(1)
			h.replyError(c, id, CodeUnavailable)
			return
		}
		h.replyAck(c, id, wsproto.Ack{Delivered: -1, Position: wsproto.Position(p)})
	})
	if err != nil {
		h.storeFailed.Add(1)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	h.published.Add(1)
	return nil
}

// DeliverStored delivers a stored publication of channel to its
// subscribers on this process: data (one JSON value) at offset, whose
// predecessor in the channel is prev (0: none kept), from the broker
// subscription of generation gen, in epoch. The broker calls it for each
// channel in store order; it fetches what this process missed before it.
func (h *Channels) DeliverStored(channel string, gen, offset, prev uint64, epoch string, data []byte) {
	h.remote.Add(1)
	now := time.Now()
	st := h.history.lock(channel, h.rules.match(channel), true, now)
	defer st.mu.Unlock()
	st.touched = now.UnixNano()
	if st.gen != gen || st.epoch != epoch {
		st.gen, st.epoch, st.top, st.synced = gen, epoch, 0, false
	}
	if st.synced {
		if offset <= st.top {
			return // a copy: delivered already
		}
		if prev > st.top {
			h.fillGap(st, channel, prev)
		}
	}
	h.deliverStored(st, channel, offset, data)
}

// fillGap fetches and delivers the publications of channel after st.top
// up to prev, which this process missed. st is locked.
func (h *Channels) fillGap(st *stream, channel string, prev uint64) {
	h.gaps.Add(1)
	for st.top < prev {
		msgs, _, more, err := h.store.Fetch(context.Background(), channel, st.top, h.cfg.MaxReplay, h.cfg.MaxReplayBytes)
		if err != nil {
			h.gapsLost.Add(1)
			return
		}
		progress := false
		for _, m := range msgs {
			if m.Offset > prev {
				return
			}
			if m.Offset > st.top {
				h.deliverStored(st, channel, m.Offset, m.Data)
				progress = true
			}
		}
		if !more || !progress {
			return
		}
	}
}

// deliverStored delivers one stored publication and makes it st's top.
// st is locked.
func (h *Channels) deliverStored(st *stream, channel string, offset uint64, data []byte) {
	buf := getBuf()
	*buf = wsproto.AppendPushAt(*buf, channel, offset, data)
	h.deliverLocal(channel, wsconn.NewPreparedMessage(wsconn.Text, *buf)) // framed once; copies
	putBuf(buf)
	st.top, st.synced = offset, true
}

// subscribeStored is subscribe for a stored channel: answered here when
// the channel's top is known and enough, by a store job otherwise.
func (h *Channels) subscribeStored(c wsconn.Conn, subs *subscriptions, req *wsproto.Request) error {
	channel := req.Channel
	opts := h.rules.match(channel)
	if gen := h.store.Generation(channel); gen != 0 {
		if st := h.history.lock(channel, opts, false, time.Now()); st != nil {
			done := st.synced && st.gen == gen && st.epoch == h.store.Epoch(channel) && h.answerFromTop(c, subs, st, req)
			st.mu.Unlock()
			if done {
				return nil
			}
		}
	}
	id := bytes.Clone(req.ID)
	var recover *wsproto.Position
	if req.Recover != nil {
		r := *req.Recover
		recover = &r
	}
	subs.mu.Lock()
	first := len(subs.list) == 0 && len(subs.pending) == 0
	subs.pending = append(subs.pending, channel)
	subs.mu.Unlock()
	if first {
		c.SetValue(subs)
	}
	listen := req.JoinLeave
	if !h.jobs.submit(func() { h.establish(c, subs, channel, id, recover, listen) }) {
		h.leavePending(c, subs, channel)
		return ErrBusy
	}
	return nil
}

// answerFromTop acks and joins a subscribe whose recovery, if any, needs
// nothing from the store, and reports whether it did. st is locked and
// synced.
func (h *Channels) answerFromTop(c wsconn.Conn, subs *subscriptions, st *stream, req *wsproto.Request) bool {
	ack := wsproto.Ack{Delivered: -1, Position: wsproto.Position{Offset: st.top, Epoch: st.epoch}}
	if r := req.Recover; r != nil {
		switch {
		case r.Epoch != st.epoch:
			ack.Recovery = wsproto.ReasonEpochChanged
		case r.Offset == st.top:
			ack.Recovery = wsproto.RecoveryOK
		default:
			// Behind: the store has what it missed. Ahead: the client saw
			// more on another process than this one delivered yet, or
			// the offset is bogus; the store tells.
			return false
		}
		h.countRecovery(ack.Recovery)
	}
	h.join(c, subs, req.Channel, false, req.JoinLeave)
	h.replyAck(c, req.ID, ack)
	h.joinLeave(c, req.Channel, true)
	return true
}

// countRecovery counts a recovery's outcome.
func (h *Channels) countRecovery(outcome string) {
	if outcome == wsproto.RecoveryOK {
		h.recoveries.Add(1)
	} else {
		h.unrecovered.Add(1)
	}
}

// leavePending cancels a pending subscribe of c, if it still is.
func (h *Channels) leavePending(c wsconn.Conn, subs *subscriptions, channel string) {
	subs.mu.Lock()
	subs.dropPending(channel)
	subs.mu.Unlock()
}

// establish is a stored subscribe's job: see the comment at the top.
func (h *Channels) establish(c wsconn.Conn, subs *subscriptions, channel string, id []byte, recover *wsproto.Position,
	listen bool) {
	ctx := context.Background()
	fail := func() {
		h.leavePending(c, subs, channel)
		h.replyError(c, id, CodeUnavailable)
	}
	gen, err := h.store.Acquire(ctx, channel)
	if err != nil {
		fail()
		return
	}
	defer h.store.Release(channel) // the hub's interest holds it once joined
	epoch := h.store.Epoch(channel)
	if epoch == "" {
		fail()
		return
	}
	ack := wsproto.Ack{Delivered: -1}
	var missed []StoredMessage
	var covered uint64 // every publication up to here is in missed or was seen
	if recover != nil && recover.Epoch != epoch {
		ack.Recovery = wsproto.ReasonEpochChanged
	} else if recover != nil {
		missed, covered, ack.Recovery, err = h.fetchMissed(ctx, channel, recover.Offset)
		if err != nil {
			fail()
			return
		}
	}
	if ack.Recovery != wsproto.RecoveryOK {
		missed = nil
		last, err := h.store.Last(ctx, channel)
		if err != nil {
			fail()
			return
		}
		covered = last.Offset
	}
	opts := h.rules.match(channel)
	for tries := 0; ; tries++ {
		st := h.history.lock(channel, opts, true, time.Now())
		switch {
		case st.gen != gen || st.epoch != epoch || !st.synced:
			// Nothing delivered here in this generation yet: what this
			// process delivers starts after what was fetched.
			st.gen, st.epoch, st.top, st.synced = gen, epoch, covered, true
		case st.top < covered:
			// This process is behind the store: catch up, for every
			// subscriber here, so that nothing the client has comes
			// again live.
			h.fillGap(st, channel, covered)
		}
		if st.top < covered {
			st.mu.Unlock()
			fail() // the store failed while catching up
			return
		}
		if top := st.top; top > covered && ack.Recovery == wsproto.RecoveryOK {
			// Delivered here past what was fetched: fetch up to it too,
			// unlocked for the first tries, then locked, so as to end.
			if tries < 3 {
				st.mu.Unlock()
			}
			more, err := h.fetchRange(ctx, channel, covered, top)
			if err != nil {
				if tries >= 3 {
					st.mu.Unlock()
				}
				fail()
				return
			}
			if len(missed)+len(more) > h.cfg.MaxReplay {
				ack.Recovery, missed = wsproto.ReasonTooMany, nil
			} else {
				missed = append(missed, more...)
			}
			covered = top
			if tries < 3 {
				continue
			}
		}
		h.finishStored(c, subs, st, channel, id, ack, missed, listen)
		st.mu.Unlock()
		return
	}
}

// finishStored joins c to channel, acks, and replays missed up to st.top,
// unless the subscribe was cancelled meanwhile. st is locked.
func (h *Channels) finishStored(c wsconn.Conn, subs *subscriptions, st *stream, channel string, id []byte,
	ack wsproto.Ack, missed []StoredMessage, listen bool) {
	subs.mu.Lock()
	if subs.closed || !subs.dropPending(channel) {
		subs.mu.Unlock()
		return // unsubscribed or closed while it waited
	}
	subs.list = append(subs.list, h.hub.subscribe(channel, c))
	if listen && h.rules.match(channel).JoinLeave {
		h.listenLocked(c, subs, channel)
	}
	subs.mu.Unlock()
	defer h.joinLeave(c, channel, true) // after the replay
	ack.Position = wsproto.Position{Offset: st.top, Epoch: st.epoch}
	if ack.Recovery != "" {
		h.countRecovery(ack.Recovery)
	}
	h.replyAck(c, id, ack)
	buf := getBuf()
	defer putBuf(buf)
	for _, m := range missed {
		if m.Offset > st.top {
			break // comes live
		}
		*buf = wsproto.AppendPushAt((*buf)[:0], channel, m.Offset, m.Data)
		if c.Send(wsconn.Text, *buf) != nil {
			return // closing; OnClose follows
		}
		h.replayed.Add(1)
	}
}

// fetchMissed fetches the publications of channel after offset for a
// recovery, and returns them, the offset they cover up to, and the
// outcome: RecoveryOK, or the reason it cannot recover. The store numbers
// all its channels together, so a channel's offsets have gaps; a
// recovery is only known to miss nothing when the publication at offset
// itself is still kept (offset 0: when fewer than the history size are
// kept), so that none after it can have been evicted.
func (h *Channels) fetchMissed(ctx context.Context, channel string, offset uint64) ([]StoredMessage, uint64, string, error) {
	from := offset
	if from > 0 {
		from-- // fetch the one at offset too, to see it is kept
	}
	msgs, _, more, err := h.store.Fetch(ctx, channel, from, h.cfg.MaxReplay+2, h.cfg.MaxReplayBytes+1)
	if err != nil {
		return nil, 0, "", err
	}
	if offset > 0 {
		if len(msgs) == 0 || msgs[0].Offset != offset {
			last, err := h.store.Last(ctx, channel)
			switch {
			case err != nil:
				return nil, 0, "", err
			case last.Offset < offset && len(msgs) == 0:
				return nil, 0, wsproto.ReasonOffsetAhead, nil
			}
			return nil, 0, wsproto.ReasonOffsetTooOld, nil
		}
		msgs = msgs[1:]
	} else if len(msgs) >= h.rules.match(channel).HistorySize {
		return nil, 0, wsproto.ReasonOffsetTooOld, nil
	}
	size := 0
	for _, m := range msgs {
		size += len(m.Data)
	}
	if more || len(msgs) > h.cfg.MaxReplay || size > h.cfg.MaxReplayBytes {
		return nil, 0, wsproto.ReasonTooMany, nil
	}
	covered := offset
	if len(msgs) > 0 {
		covered = msgs[len(msgs)-1].Offset
	}
	return msgs, covered, wsproto.RecoveryOK, nil
}

// fetchRange fetches the publications of channel after from, up to to.
func (h *Channels) fetchRange(ctx context.Context, channel string, from, to uint64) ([]StoredMessage, error) {
	var out []StoredMessage
	for from < to {
		msgs, _, more, err := h.store.Fetch(ctx, channel, from, h.cfg.MaxReplay+1, h.cfg.MaxReplayBytes)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Offset > to {
				return out, nil
			}
			out = append(out, m)
			from = m.Offset
		}
		if !more || len(msgs) == 0 || len(out) > h.cfg.MaxReplay {
			return out, nil
		}
	}
	return out, nil
}

// historyStored is History for a stored channel: it asks the store, and
// blocks until it answers.
func (h *Channels) historyStored(channel string, after *Position, limit int) (Position, [][]byte, error) {
	ctx := context.Background()
	last, err := h.store.Last(ctx, channel)
	if err != nil {
		return Position{}, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var msgs []StoredMessage
	if after != nil {
		if after.Epoch != last.Epoch {
			return Position{}, nil, ErrEpochChanged
		}
		if after.Offset >= last.Offset {
			return last, [][]byte{}, nil
		}
		from := after.Offset
		if from > 0 {
			from--
		}
		got, _, _, err := h.store.Fetch(ctx, channel, from, limit+1, h.cfg.MaxReplayBytes)
		if err != nil {
			return Position{}, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if after.Offset > 0 {
			if len(got) == 0 || got[0].Offset != after.Offset {
				return Position{}, nil, ErrOffsetTooOld // evicted: the ones after it may be too
			}
			got = got[1:]
		}
		msgs = got[:min(len(got), limit)]
	} else {
		// The last limit: the store reads forward, so read the channel's
		// history (at most its size) and keep the newest.
		var from uint64
		for range h.rules.match(channel).HistorySize/max(limit, 1) + 2 {
			got, _, more, err := h.store.Fetch(ctx, channel, from, max(limit, 100), h.cfg.MaxReplayBytes)
			if err != nil {
				return Position{}, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			msgs = append(msgs, got...)
			if len(msgs) > limit {
				msgs = append(msgs[:0:0], msgs[len(msgs)-limit:]...)
			}
			if !more || len(got) == 0 || got[len(got)-1].Offset >= last.Offset {
				break
			}
			from = got[len(got)-1].Offset
		}
		// Newest first within MaxReplayBytes, at least one.
		size, keep := 0, 0
		for i := len(msgs) - 1; i >= 0; i-- {
			size += len(msgs[i].Data)
			if keep > 0 && size > h.cfg.MaxReplayBytes {
				break
			}
			keep++
		}
		msgs = msgs[len(msgs)-keep:]
	}
	pushes := make([][]byte, len(msgs))
	for i, m := range msgs {
		pushes[i] = wsproto.AppendPushAt(nil, channel, m.Offset, m.Data)
	}
	return last, pushes, nil
}

// historyStoredOp is the history op on a stored channel: answered by a
// store job.
func (h *Channels) historyStoredOp(c wsconn.Conn, req *wsproto.Request) error {
	id := bytes.Clone(req.ID)
	channel, limit := req.Channel, req.Limit
	var after *Position
	if req.After != nil {
		a := Position(*req.After)
		after = &a
	}
	if limit <= 0 || limit > h.cfg.MaxHistoryLimit {
		limit = h.cfg.MaxHistoryLimit
	}
	ok := h.jobs.submit(func() {
		pos, pushes, err := h.historyStored(channel, after, limit)
		if err != nil {
			h.replyError(c, id, codeOf(err))
			return
		}
		if len(id) == 0 {
			return
		}
		buf := getBuf()
		*buf = wsproto.AppendHistory(*buf, id, wsproto.Position(pos), pushes)
		_ = c.Send(wsconn.Text, *buf) // Send copies
		putBuf(buf)
	})
	if !ok {
		return ErrBusy
	}
	return nil
}
