package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/handler"
)

// Presence across processes: each process answers for its own
// subscribers. A presence request is published on
// <SubjectPrefix>p.<channel, base64url>; every process with a local
// subscriber of the channel answers with its list (Config.LocalPresence),
// and the asker gathers the answers for PresenceWait. Nothing is kept
// between requests, so a process that dies (SIGKILL, a lost machine)
// takes its clients out of every presence answer at once: it simply no
// longer answers. The price is a request's latency, PresenceWait, and a
// process that is slower than that to answer is left out of that answer.

// presenceSubject is the subject of channel's presence requests.
func (b *NATS) presenceSubject(channel string) string {
	return b.cfg.SubjectPrefix + "p." + encode(channel)
}

// answerPresence serves the presence requests of the other processes
// (one wildcard subscription, made at NewNATS). The NATS connection's
// no-echo keeps this process's own requests from it.
func (b *NATS) answerPresence(m *nats.Msg) {
	enc, ok := strings.CutPrefix(m.Subject, b.cfg.SubjectPrefix+"p.")
	if !ok || m.Reply == "" {
		return
	}
	channel, ok := b.channelOf(b.cfg.SubjectPrefix + enc)
	if !ok {
		return
	}
	b.mu.Lock()
	_, local := b.subs[channel]
	b.mu.Unlock()
	if !local {
		return // nobody here: no answer
	}
	body, err := json.Marshal(b.cfg.LocalPresence(channel))
	if err == nil {
		_ = b.nc.Publish(m.Reply, body)
	}
}

// Presence asks the other processes for their subscribers of channel and
// returns the answers that came within PresenceWait. It implements
// handler.PresenceBroker.
func (b *NATS) Presence(ctx context.Context, channel string) ([]handler.PresenceAnswer, error) {
	if b.cfg.LocalPresence == nil {
		return nil, nil
	}
	if !b.nc.IsConnected() {
		return nil, fmt.Errorf("%w: not connected", ErrUnavailable)
	}
	inbox := b.nc.NewRespInbox()
	replies := make(chan *nats.Msg, 1024) // one answer per process; more than 1,024 processes would lose some
	sub, err := b.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.PublishRequest(b.presenceSubject(channel), inbox, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PresenceWait)
	defer cancel()
	var out []handler.PresenceAnswer
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return out, nil // the wait is over
		}
		var a handler.PresenceAnswer
		if json.Unmarshal(m.Data, &a) == nil {
			out = append(out, a)
		}
	}
}

// presenceWaitDefault is Config.PresenceWait's default.
const presenceWaitDefault = 100 * time.Millisecond
