package handler

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// ChannelsConfig configures a Channels hub. The zero value is ready to use.
type ChannelsConfig struct {
	// MaxSubscriptions is the most channels one connection may be
	// subscribed to at once; a subscribe past it is answered with
	// too_many_subscriptions (docs/design.md invariant 6). Zero means the
	// default, 64. Negative is invalid.
	MaxSubscriptions int
	// MaxChannelLen is the longest channel name accepted, in bytes. Zero
	// means the default, 128. Negative is invalid.
	MaxChannelLen int
	// Shards is the number of independently locked parts the channel table
	// is split into; it need not be a power of two. Zero means the
	// default, 64. Negative or more than 65536 is invalid.
	Shards int

	// Rules choose each channel's options (ChannelOptions: its history)
	// by the longest matching name prefix. Nil means DefaultChannelRules,
	// history for every channel; an empty, non-nil slice, or rules that
	// match nothing, turn history off.
	Rules []ChannelRule
	// MaxReplay is the most publications one recovering subscribe
	// replays; a client that missed more gets none, and recovered:false
	// with reason too_many. Zero means DefaultMaxReplay.
	MaxReplay int
	// MaxReplayBytes is the most framed bytes one recovery replays (past
	// it, too_many) and one history answer holds (past it, the answer is
	// cut short; the client asks again after its last offset). It keeps
	// both well under a connection's outbound queue. Zero means
	// DefaultMaxReplayBytes.
	MaxReplayBytes int
	// MaxHistoryLimit is the most publications one history request
	// returns, whatever its limit. Zero means DefaultMaxHistoryLimit.
	MaxHistoryLimit int
	// HistoryMetaTTL is how long a channel's epoch and last offset are
	// kept after its history TTL once nothing is published: a client back
	// within it learns offset_too_old rather than epoch_changed. Zero
	// means DefaultHistoryMetaTTL.
	HistoryMetaTTL time.Duration
	// MaxStoreJobs is how many subscribes and history requests may wait
	// for a StoreBroker at once (SetBroker; stored.go), off the
	// connections' workers; the rest queue. Zero means
	// DefaultMaxStoreJobs.
	MaxStoreJobs int
	// MaxStoreQueue bounds the queue behind MaxStoreJobs; a request past
	// it is answered busy at once, so that a reconnect storm costs memory
	// in proportion to this, not to the storm. Zero means
	// DefaultMaxStoreQueue.
	MaxStoreQueue int
	// MaxHistoryChannels bounds how many channels keep a history in this
	// process's memory (not with a StoreBroker): past it, a channel that
	// has none yet publishes as with history off until others expire.
	// Zero means DefaultMaxHistoryChannels.
	MaxHistoryChannels int
	// MaxHistoryBytes bounds the framed bytes all in-memory histories
	// keep together: past it, the publishing channel's oldest go first,
	// and the sweep halves the histories in turn (each keeps its newest).
	// Zero means DefaultMaxHistoryBytes.
	MaxHistoryBytes int64
	// MaxPresence is the most clients one presence answer lists (with
	// "more":true past it). Zero means DefaultMaxPresence.
	MaxPresence int
}

// Defaults and limits of ChannelsConfig.
const (
	defaultMaxSubscriptions = 64
	defaultMaxChannelLen    = 128
	defaultShards           = 64
	maxShards               = 1 << 16
)

// withDefaults returns cfg with every zero field set to its default.
func (cfg ChannelsConfig) withDefaults() ChannelsConfig {
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = defaultMaxSubscriptions
	}
	if cfg.MaxChannelLen == 0 {
		cfg.MaxChannelLen = defaultMaxChannelLen
	}
	if cfg.Shards == 0 {
		cfg.Shards = defaultShards
	}
	if cfg.MaxReplay == 0 {
		cfg.MaxReplay = DefaultMaxReplay
	}
	if cfg.MaxReplayBytes == 0 {
		cfg.MaxReplayBytes = DefaultMaxReplayBytes
	}
	if cfg.MaxHistoryLimit == 0 {
		cfg.MaxHistoryLimit = DefaultMaxHistoryLimit
	}
	if cfg.MaxStoreJobs == 0 {
		cfg.MaxStoreJobs = DefaultMaxStoreJobs
	}
	if cfg.MaxStoreQueue == 0 {
		cfg.MaxStoreQueue = DefaultMaxStoreQueue
	}
	if cfg.MaxPresence == 0 {
		cfg.MaxPresence = DefaultMaxPresence
	}
	if cfg.MaxHistoryChannels == 0 {
		cfg.MaxHistoryChannels = DefaultMaxHistoryChannels
	}
	if cfg.MaxHistoryBytes == 0 {
		cfg.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	if cfg.HistoryMetaTTL == 0 {
		cfg.HistoryMetaTTL = DefaultHistoryMetaTTL
	}
	return cfg
}

// validate reports the first field out of range, wrapping ErrInvalidConfig.
func (cfg ChannelsConfig) validate() error {
	switch {
	case cfg.MaxSubscriptions < 0:
		return fmt.Errorf("%w: MaxSubscriptions is %d, must not be negative", ErrInvalidConfig, cfg.MaxSubscriptions)
	case cfg.MaxChannelLen < 0:
		return fmt.Errorf("%w: MaxChannelLen is %d, must not be negative", ErrInvalidConfig, cfg.MaxChannelLen)
	case cfg.Shards < 0 || cfg.Shards > maxShards:
		return fmt.Errorf("%w: Shards is %d, must be 0 to %d", ErrInvalidConfig, cfg.Shards, maxShards)
	case cfg.MaxReplay < 0:
		return fmt.Errorf("%w: MaxReplay is %d, must not be negative", ErrInvalidConfig, cfg.MaxReplay)
	case cfg.MaxReplayBytes < 0:
		return fmt.Errorf("%w: MaxReplayBytes is %d, must not be negative", ErrInvalidConfig, cfg.MaxReplayBytes)
	case cfg.MaxHistoryLimit < 0:
		return fmt.Errorf("%w: MaxHistoryLimit is %d, must not be negative", ErrInvalidConfig, cfg.MaxHistoryLimit)
	case cfg.HistoryMetaTTL < 0:
		return fmt.Errorf("%w: HistoryMetaTTL is %v, must not be negative", ErrInvalidConfig, cfg.HistoryMetaTTL)
	case cfg.MaxStoreJobs < 0 || cfg.MaxStoreQueue < 0 || cfg.MaxPresence < 0 || cfg.MaxHistoryChannels < 0 || cfg.MaxHistoryBytes < 0:
		return fmt.Errorf("%w: MaxStoreJobs, MaxStoreQueue, MaxPresence, MaxHistoryChannels and MaxHistoryBytes must not be negative",
			ErrInvalidConfig)
	}
	return nil
}

// Permissions is implemented by principals that restrict channels (for
// wsgate, auth.Principal). When a connection's wsconn.Conn.Principal
// implements it, Channels asks it before every subscribe and publish the
// client requests, and answers forbidden when it says no. A connection with no
// principal, or one that does not implement Permissions, may subscribe and
// publish to any channel: the deployment does not authenticate. Both
// methods are called with a valid channel name, from the connection's
// handler calls.
type Permissions interface {
	// CanSubscribe reports whether the connection may subscribe to channel.
	CanSubscribe(channel string) bool
	// CanPublish reports whether the connection may publish to channel.
	CanPublish(channel string) bool
}

// Channels is the publish/subscribe wsconn.Handler served at /ws; its
// protocol is described in protocol.go. Connections subscribe to named
// channels, and a message published to a channel, by a connection or
// through Publish, is framed once and queued to every subscriber on this
// process.
//
// A connection whose principal implements Permissions subscribes and
// publishes only where it allows, checked at the time of each request: a
// principal replaced later (a refresh) does not undo subscriptions made
// before. Publish, the server-side API, checks nothing.
//
// A connection's subscriptions are stored with its wsconn.Conn.SetValue,
// so a Channels must be the only user of Value on the connections it
// serves.
// All methods are safe for concurrent use.
type Channels struct {
	wsconn.Base // OnOpen, OnError: nothing to do

	cfg     ChannelsConfig
	hub     *hub
	rules   rules
	history *history
	broker  Broker                                  // nil: this process only; set by SetBroker before use
	store   StoreBroker                             // broker, if it stores histories (stored.go)
	node    string                                  // this process's part of presence client ids
	jobs    jobQueue                                // the requests waiting for store
	refresh func(c wsconn.Conn, token string) error // nil: no refresh op; set by SetRefresh before use
	observe func(time.Duration, int)                // nil: none; set by SetFanoutObserver before use

	published    atomic.Uint64
	delivered    atomic.Uint64
	dropped      atomic.Uint64
	remote       atomic.Uint64
	brokerFailed atomic.Uint64
	recoveries   atomic.Uint64
	unrecovered  atomic.Uint64
	replayed     atomic.Uint64
	storeFailed  atomic.Uint64 // publishes the store did not take
	historyFull  atomic.Uint64 // publishes and subscribes without history past MaxHistoryChannels
	gaps         atomic.Uint64 // stored publications this process missed and fetched
	gapsLost     atomic.Uint64 // ... and failed to fetch
	// rejected counts error replies by code, indexed by wsproto.CodeIndex.
	rejected [wsproto.NumCodes]atomic.Uint64
}

// NewChannels returns a Channels hub configured by cfg, or an error
// wrapping ErrInvalidConfig.
func NewChannels(cfg ChannelsConfig) (*Channels, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("failed to create channels: %w", err)
	}
	rs, err := compileRules(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("failed to create channels: %w", err)
	}
	h := &Channels{cfg: cfg, rules: rs}
	h.hub = newHub(cfg.Shards, h.interest)
	h.history = newHistory(cfg.Shards, cfg.HistoryMetaTTL, cfg.MaxHistoryChannels, cfg.MaxHistoryBytes)
	h.jobs = jobQueue{max: cfg.MaxStoreJobs, maxQueue: cfg.MaxStoreQueue}
	h.node = strconv.FormatUint(rand.Uint64(), 36)
	return h, nil
}

// SetFanoutObserver makes h call observe after each local delivery of a
// publish with how long queueing it to every local subscriber took and to
// how many: for a latency histogram. Call it before h serves any
// connection; observe must be quick.
func (h *Channels) SetFanoutObserver(observe func(d time.Duration, recipients int)) {
	h.observe = observe
}

// SetBroker makes h share publishes with other processes through b: b
// learns which channels have local subscribers, every publish is also
// handed to b, and b hands publishes from elsewhere to DeliverRemote. Call
// it before h serves any connection.
//
// A history kept in one process's memory cannot give positions that every
// process agrees on, so with a broker the channels' histories are the
// broker's: when b is a StoreBroker, the channels it stores keep their
// history there (stored.go), and the others keep none.
func (h *Channels) SetBroker(b Broker) {
	h.broker = b
	h.store, _ = b.(StoreBroker)
}

// historyOptions is options for a channel about to get a history kept in
// memory: off when MaxHistoryChannels have one already.
func (h *Channels) historyOptions(channel string) ChannelOptions {
	opts := h.options(channel)
	if opts.HistorySize > 0 && !h.history.admit(channel) {
		h.historyFull.Add(1)
		return ChannelOptions{Presence: opts.Presence, JoinLeave: opts.JoinLeave}
	}
	return opts
}

// options returns the options of channel.
func (h *Channels) options(channel string) ChannelOptions {
	if h.broker != nil {
		return ChannelOptions{}
	}
	return h.rules.match(channel)
}

// Sweep drops the publications whose history TTL has passed at now, and
// the histories left empty for HistoryMetaTTL. Publishing and recovering
// evict a channel's expired publications too, so Sweep only bounds the
// memory of channels nobody touches. A wsconn.Server serving h does this
// by itself (OnTick); Sweep is for a Channels used without one, and sweeps
// everything at once.
func (h *Channels) Sweep(now time.Time) { h.history.sweep(now) }

// OnTick sweeps one shard of the histories, without waiting on a lock: a
// wsconn.Server calls it every SweepInterval (wsconn.TickHandler), so
// every history is swept once every Shards ticks (64 s with the
// defaults).
func (h *Channels) OnTick(now time.Time) { h.history.sweepNext(now) }

// SetRefresh turns on the refresh op of the /ws protocol: fn is called
// with the connection and the token of each refresh request, from the
// connection's handler call, and should verify the token and, if it is
// good, install the new principal with c.SetPrincipal (auth's
// Verifier.RefreshHook does both). A nil error is acked; any error is
// answered invalid_token, and the connection keeps its principal and
// expiry. Without SetRefresh, or with a nil fn, refresh is an unknown_op.
// Call it before h serves any connection.
func (h *Channels) SetRefresh(fn func(c wsconn.Conn, token string) error) { h.refresh = fn }

// interest tells the broker about a channel gaining its first or losing its
// last local subscriber. The hub calls it under the channel's shard lock,
// so calls for one channel arrive in order.
func (h *Channels) interest(channel string, on bool) {
	if h.broker != nil {
		h.broker.Interest(channel, on)
	}
}

// OnMessage serves one request of the /ws protocol and answers c with an
// ack or an error as protocol.go describes.
func (h *Channels) OnMessage(c wsconn.Conn, t wsconn.MessageType, data []byte) {
	if t != wsconn.Text {
		h.replyError(c, nil, CodeBinaryNotSupported)
		return
	}
	req, code := wsproto.ParseRequest(data)
	if code != "" {
		h.replyError(c, req.ID, code)
		return
	}
	ack := wsproto.Ack{Delivered: -1} // no "delivered" in the ack
	var err error
	switch req.Op {
	case wsproto.OpSubscribe:
		if err = h.subscribe(c, &req); err == nil {
			return // subscribe acks itself, before any replay
		}
	case wsproto.OpUnsubscribe:
		err = h.unsubscribe(c, req.Channel)
	case wsproto.OpPublish:
		if err = h.mayPublish(c, req.Channel); err == nil {
			if store := h.storeFor(req.Channel); store != nil {
				if err = h.publishStoredOp(c, store, &req); err == nil {
					return // acked once stored
				}
				break
			}
			var p Published
			p, err = h.PublishWithPosition(req.Channel, req.Data)
			ack.Delivered, ack.Position = p.Delivered, wsproto.Position(p.Position)
		}
	case wsproto.OpPresence, wsproto.OpPresenceStats:
		if err = h.presenceOp(c, &req); err == nil {
			return
		}
	case wsproto.OpHistory:
		if err = h.historyOp(c, &req); err == nil {
			return
		}
	case wsproto.OpRefresh:
		if h.refresh == nil {
			h.replyError(c, req.ID, CodeUnknownOp)
			return
		}
		if h.refresh(c, req.Token) != nil {
			err = errInvalidToken
		}
	default:
		h.replyError(c, req.ID, CodeUnknownOp)
		return
	}
	if err != nil {
		h.replyError(c, req.ID, codeOf(err))
		return
	}
	h.replyAck(c, req.ID, ack)
}

// OnClose removes all of c's subscriptions.
func (h *Channels) OnClose(c wsconn.Conn, _ wsconn.StatusCode, _ string) {
	subs, _ := c.Value().(*subscriptions)
	if subs == nil {
		return
	}
	subs.mu.Lock()
	subs.closed = true
	list, jl := subs.list, subs.jl
	subs.list, subs.pending, subs.jl = nil, nil, nil
	subs.mu.Unlock()
	for _, ch := range jl {
		h.hub.unsubscribe(ch, c)
	}
	for _, ch := range list {
		h.hub.unsubscribe(ch, c)
		h.joinLeave(c, ch.name, false)
	}
	c.SetValue(nil)
}

// Position is a place in a channel's history: the offset of a
// publication, within an epoch. Offsets start at 1 and grow by at least
// one per publication; the epoch changes whenever the history could have
// been lost (a restart, an expiry), and offsets of different epochs are
// not comparable. The zero Position (no epoch) is a channel with history
// off.
type Position struct {
	Offset uint64
	Epoch  string
}

// Published is the outcome of a publish.
type Published struct {
	// Delivered is the number of subscribers on this process the push was
	// queued to, or -1 for a channel whose history a StoreBroker keeps:
	// its publications reach every process's subscribers, this one's
	// included, through the store, after the publish returns.
	Delivered int
	// Position is the publication's place in the channel's history, or
	// zero when the channel keeps none.
	Position Position
}

// Publish is PublishWithPosition without the position: it returns how
// many subscribers on this process the push was queued to.
func (h *Channels) Publish(channel string, data json.RawMessage) (delivered int, err error) {
	p, err := h.PublishWithPosition(channel, data)
	return p.Delivered, err
}

// PublishWithPosition sends data to every subscriber of channel on this
// process, keeps it in the channel's history if its options ask for one,
// and returns the publication's position and how many subscribers it was
// queued to. data must be one valid JSON value; it is pushed as it is, in
// {"channel":…,"offset":N,"data":…} ("offset" only with history). It
// returns ErrBadChannel or ErrBadData for bad arguments. Subscribers that
// refuse the push (they are closing or too slow) are counted in
// Stats().Dropped.
//
// The publications of one channel with history are numbered and delivered
// one at a time, so every subscriber gets them in offset order.
func (h *Channels) PublishWithPosition(channel string, data json.RawMessage) (Published, error) {
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return Published{}, ErrBadChannel
	}
	if !json.Valid(data) {
		return Published{}, ErrBadData
	}
	if store := h.storeFor(channel); store != nil {
		p, err := h.publishStored(store, channel, data)
		if err == nil {
			h.published.Add(1)
		}
		return p, err
	}
	h.published.Add(1)
	buf := getBuf()
	defer putBuf(buf)
	opts := h.historyOptions(channel)
	if opts.HistorySize == 0 {
		*buf = wsproto.AppendPush(*buf, channel, data)
		delivered := h.deliverLocal(channel, wsconn.NewPreparedMessage(wsconn.Text, *buf)) // framed once; copies
		if h.broker != nil {
			if err := h.broker.Publish(channel, *buf); err != nil {
				h.brokerFailed.Add(1)
			}
		}
		return Published{Delivered: delivered}, nil
	}
	now := time.Now()
	st := h.history.lock(channel, opts, true, now)
	defer st.mu.Unlock()
	*buf = wsproto.AppendPushAt(*buf, channel, st.top+1, data)
	pm := wsconn.NewPreparedMessage(wsconn.Text, *buf)
	offset := h.history.append(st, pm, now)
	return Published{Delivered: h.deliverLocal(channel, pm), Position: Position{offset, st.epoch}}, nil
}

// DeliverRemote delivers a push that another process published (the JSON
// bytes of {"channel":…,"data":…}, as the broker carried them) to this
// process's subscribers of channel, framing it once. It returns how many
// it was queued to. The broker calls it; push is not kept.
func (h *Channels) DeliverRemote(channel string, push []byte) int {
	h.remote.Add(1)
	return h.deliverLocal(channel, wsconn.NewPreparedMessage(wsconn.Text, push))
}

// deliverLocal queues pm to the subscribers of channel on this process,
// counts the outcome and returns the number it was queued to. It is the one
// way into local delivery, for Publish and for messages from other nodes.
func (h *Channels) deliverLocal(channel string, pm *wsconn.PreparedMessage) int {
	var start time.Time
	if h.observe != nil {
		start = time.Now()
	}
	delivered, dropped := h.hub.deliver(channel, pm)
	if h.observe != nil {
		h.observe(time.Since(start), delivered+dropped)
	}
	h.delivered.Add(uint64(delivered))
	h.dropped.Add(uint64(dropped))
	return delivered
}

// Subscribers returns the number of connections on this process
// subscribed to channel.
func (h *Channels) Subscribers(channel string) int {
	return h.hub.subscribers(channel)
}

// Channels returns each channel that has subscribers on this process, with
// their number. The map is the caller's.
func (h *Channels) Channels() map[string]int {
	m := h.hub.snapshot()
	for name := range m {
		if strings.HasPrefix(name, jlPrefix) {
			delete(m, name) // internal: join and leave listeners
		}
	}
	return m
}

// mayPublish checks a client's publish before Publish: a valid channel
// name that c's principal, if it has Permissions, allows.
func (h *Channels) mayPublish(c wsconn.Conn, channel string) error {
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return ErrBadChannel
	}
	if p, ok := c.Principal().(Permissions); ok && !p.CanPublish(channel) {
		return errForbidden
	}
	return nil
}

// unsubscribe removes channel from c's subscriptions. Called only from c's
// handler calls.
func (h *Channels) unsubscribe(c wsconn.Conn, channel string) error {
	if !wsproto.ValidChannel(channel, h.cfg.MaxChannelLen) {
		return ErrBadChannel
	}
	subs, _ := c.Value().(*subscriptions)
	if subs == nil {
		return ErrNotSubscribed
	}
	subs.mu.Lock()
	if subs.dropPending(channel) { // its store job will not join it
		subs.mu.Unlock()
		return nil
	}
	i := subs.find(channel)
	if i < 0 {
		subs.mu.Unlock()
		return ErrNotSubscribed
	}
	ch := subs.list[i]
	subs.removeAt(i)
	h.unlistenLocked(c, subs, channel)
	empty := len(subs.list) == 0 && len(subs.pending) == 0
	subs.mu.Unlock()
	h.hub.unsubscribe(ch, c)
	h.joinLeave(c, channel, false)
	if empty {
		c.SetValue(nil) // an idle connection holds nothing
	}
	return nil
}

// replyAck sends an ack with what a reports if the request had an id. A
// send error means c is closing and OnClose will follow.
func (h *Channels) replyAck(c wsconn.Conn, id json.RawMessage, a wsproto.Ack) {
	if len(id) == 0 {
		return
	}
	buf := getBuf()
	*buf = wsproto.AppendAckWith(*buf, id, a)
	_ = c.Send(wsconn.Text, *buf) // Send copies
	putBuf(buf)
}

// replyError counts and sends an error reply with code, and id if there
// is one. code is always one of the Code constants, so it has a slot.
func (h *Channels) replyError(c wsconn.Conn, id json.RawMessage, code string) {
	if i := wsproto.CodeIndex(code); i >= 0 {
		h.rejected[i].Add(1)
	}
	buf := getBuf()
	*buf = wsproto.AppendError(*buf, id, code)
	_ = c.Send(wsconn.Text, *buf) // Send copies
	putBuf(buf)
}
