package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/handler"
)

// Errors returned by this package.
var (
	// ErrInvalidConfig wraps the reasons a Config is invalid; NewNATS
	// returns it.
	ErrInvalidConfig = errors.New("broker: invalid config")
	// ErrDisconnected is returned by Publish while NATS is unreachable.
	ErrDisconnected = errors.New("broker: not connected to NATS")
)

// Config configures a NATS broker. Zero values give the defaults.
type Config struct {
	// URLs are the NATS servers, "nats://host:port". Required.
	URLs []string
	// Name is the connection's name in NATS monitoring. Default: "wsgate".
	Name string
	// SubjectPrefix is prepended to the encoded channel name. Processes
	// that must share channels need the same prefix. Default: "wsgate.ch.".
	SubjectPrefix string
	// Dispatchers is how many goroutines deliver publishes that arrive from
	// other processes; a channel always goes to the same one, so its
	// messages stay in order. Default: 4.
	Dispatchers int
	// QueueLen bounds the messages waiting for each dispatcher; past it
	// NATS drops messages for this process and Stats counts them (slow
	// consumer). Default: 65536.
	QueueLen int
	// ReconnectWait is the pause between reconnection attempts. Default: 1s.
	ReconnectWait time.Duration
	// OnStateChange, if set, is called when the connection goes down (with
	// the error, if any) or comes back. It runs on a NATS goroutine and
	// must not block.
	OnStateChange func(connected bool, err error)

	// Histories are the channels whose publications are stored in
	// JetStream (jetstream.go), one stream per rule. None: no JetStream.
	Histories []HistoryRule
	// DeliverStored receives the stored publications of the channels this
	// process acquired (handler.Channels.DeliverStored), in stream order
	// for each channel. Required with Histories.
	DeliverStored func(channel string, gen, offset, prev uint64, epoch string, data []byte)
	// Storage of the streams: "memory" (the default; lost when NATS
	// restarts) or "file".
	Storage string
	// Replicas of each stream, on a JetStream cluster. Default: 1.
	Replicas int
	// StreamMaxBytes caps each stream; past it the oldest publications go
	// first, whatever their channel. Default: 1 GiB.
	StreamMaxBytes int64
	// RequestTimeout bounds one JetStream request: a publication's
	// acknowledgement, a fetch. Default: 5s.
	RequestTimeout time.Duration
	// MaxPendingPublishes bounds the publications PublishStoredAsync has
	// waiting for their acknowledgement; past it, ErrBusy. Default: 4096.
	MaxPendingPublishes int
	// LocalPresence, if set, answers the other processes' presence
	// requests with this process's subscribers of a channel
	// (handler.Channels.LocalPresence); presence.go says how.
	LocalPresence func(channel string) handler.PresenceAnswer
	// PresenceWait is how long a presence request waits for the other
	// processes' answers. Default: 100ms.
	PresenceWait time.Duration
	// OnStreamError, if set, is told when a stream cannot be created or
	// updated (it is retried every RequestTimeout). It must not block.
	OnStreamError func(err error)
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "wsgate"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "wsgate.ch."
	}
	if c.Dispatchers == 0 {
		c.Dispatchers = 4
	}
	if c.QueueLen == 0 {
		c.QueueLen = 65536
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = time.Second
	}
	if c.Storage == "" {
		c.Storage = "memory"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.StreamMaxBytes == 0 {
		c.StreamMaxBytes = 1 << 30
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.MaxPendingPublishes == 0 {
		c.MaxPendingPublishes = 4096
	}
	if c.PresenceWait == 0 {
		c.PresenceWait = presenceWaitDefault
	}
	return c
}

func (c Config) validate() error {
	switch {
	case len(c.URLs) == 0:
		return fmt.Errorf("%w: no NATS URL", ErrInvalidConfig)
	case c.Dispatchers < 0 || c.Dispatchers > 1024:
		return fmt.Errorf("%w: dispatchers %d outside 1..1024", ErrInvalidConfig, c.Dispatchers)
	case c.QueueLen < 0:
		return fmt.Errorf("%w: negative queue length", ErrInvalidConfig)
	case c.ReconnectWait < 0:
		return fmt.Errorf("%w: negative reconnect wait", ErrInvalidConfig)
	case strings.ContainsAny(c.SubjectPrefix, " *>"):
		return fmt.Errorf("%w: subject prefix %q has a space or wildcard", ErrInvalidConfig, c.SubjectPrefix)
	case len(c.Histories) > 0 && c.DeliverStored == nil:
		return fmt.Errorf("%w: histories without DeliverStored", ErrInvalidConfig)
	case c.Storage != "" && c.Storage != "memory" && c.Storage != "file":
		return fmt.Errorf("%w: storage %q: want memory or file", ErrInvalidConfig, c.Storage)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("%w: replicas %d outside 1..5", ErrInvalidConfig, c.Replicas)
	case c.StreamMaxBytes < 0 || c.RequestTimeout < 0 || c.MaxPendingPublishes < 0 || c.PresenceWait < 0:
		return fmt.Errorf("%w: negative stream bytes, request timeout or pending publishes", ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for _, r := range c.Histories {
		switch {
		case seen[r.Prefix]:
			return fmt.Errorf("%w: two history rules for prefix %q", ErrInvalidConfig, r.Prefix)
		case r.Size < 0 || r.TTL < 0:
			return fmt.Errorf("%w: history rule %q: negative size or TTL", ErrInvalidConfig, r.Prefix)
		}
		seen[r.Prefix] = true
	}
	for _, u := range c.URLs {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("%w: NATS URL %q: want nats://host:port", ErrInvalidConfig, u)
		}
	}
	return nil
}

// NATS is a handler.Broker over one NATS connection.
type NATS struct {
	cfg     Config
	nc      *nats.Conn
	deliver func(channel string, push []byte) int
	seed    maphash.Seed

	// mu guards subs and gen. Interest holds it while it subscribes or
	// unsubscribes with the NATS client, and the Channels handler calls
	// Interest with one of its hub's shard locks held (shard.mu, then
	// mu, then the client's locks). So nothing under mu calls into the
	// handler: dispatch delivers with mu not held.
	mu   sync.Mutex
	subs map[string]*subscription // by channel; only channels with local subscribers
	gen  uint64                   // the last generation given to a subscription

	// JetStream, with Config.Histories (jetstream.go).
	js             jetstream.JetStream
	streams        []*jsStream   // longest prefix first
	kick           chan struct{} // (re)connected: ensure the streams
	stop           context.CancelFunc
	inflight       chan struct{} // a token per PublishStoredAsync in flight
	ready          chan struct{} // closed once every stream exists (at once without Histories)
	readyOnce      sync.Once
	streamFailures atomic.Uint64

	queues []chan *nats.Msg
	wg     sync.WaitGroup // dispatchers

	connected   atomic.Bool
	closing     atomic.Bool
	published   atomic.Uint64
	pubFailed   atomic.Uint64
	received    atomic.Uint64
	slow        atomic.Uint64
	subFailures atomic.Uint64
}

// subscription is one channel's NATS subscription, counted: the hub's
// interest is one reference, each Acquire another.
type subscription struct {
	sub    *nats.Subscription // nil: NATS refused it; retried on the next Acquire
	refs   int
	gen    uint64    // its generation, for StoreBroker.Acquire
	stream *jsStream // the channel's stream, nil for a channel not stored
}

// Stats is a snapshot of a broker's counters.
type Stats struct {
	Connected      bool   // connected to NATS now
	Subjects       int    // channels subscribed to now
	Published      uint64 // publishes handed to NATS
	PublishFailed  uint64 // publishes refused while disconnected
	Received       uint64 // publishes received from other processes
	Dropped        uint64 // publishes NATS dropped because the dispatchers were behind
	SubscribeFails uint64 // subscriptions NATS refused
	StreamFailures uint64 // failed attempts to create or update the history streams
	StoreReady     bool   // the history streams exist (true without Histories)
}

// NewNATS connects to NATS (in the background: it does not fail if NATS is
// down, it retries) and returns a broker that hands publishes from other
// processes to deliver.
func NewNATS(cfg Config, deliver func(channel string, push []byte) int) (*NATS, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	b := &NATS{cfg: cfg, deliver: deliver, seed: maphash.MakeSeed(), subs: map[string]*subscription{}}
	b.streams = newStreams(cfg.SubjectPrefix, cfg.Histories)
	b.kick = make(chan struct{}, 1)
	b.inflight = make(chan struct{}, cfg.MaxPendingPublishes)
	b.ready = make(chan struct{})
	if len(cfg.Histories) == 0 {
		close(b.ready)
	}
	b.queues = make([]chan *nats.Msg, cfg.Dispatchers)
	for i := range b.queues {
		b.queues[i] = make(chan *nats.Msg, cfg.QueueLen)
		b.wg.Add(1)
		go b.dispatch(b.queues[i])
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","),
		nats.Name(cfg.Name),
		nats.NoEcho(), // never our own publishes: no double delivery
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectBufSize(-1), // fail publishes while disconnected, don't hold them
		nats.ConnectHandler(func(*nats.Conn) { b.setState(true, nil) }),
		nats.ReconnectHandler(func(*nats.Conn) { b.setState(true, nil) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.setState(false, err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				b.slow.Add(1)
			}
		}),
	)
	if err != nil {
		b.stopDispatchers()
		return nil, fmt.Errorf("broker: failed to set up NATS connection: %w", err)
	}
	b.nc = nc
	if cfg.LocalPresence != nil {
		if _, err := nc.Subscribe(cfg.SubjectPrefix+"p.*", b.answerPresence); err != nil {
			nc.Close()
			b.stopDispatchers()
			return nil, fmt.Errorf("broker: failed to subscribe to presence requests: %w", err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	b.stop = stop
	if len(b.streams) > 0 {
		// Twice the bound PublishStoredAsync keeps: the client's own
		// bound is never what stops a publish.
		b.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*cfg.MaxPendingPublishes),
			jetstream.WithPublishAsyncTimeout(cfg.RequestTimeout))
		if err != nil {
			nc.Close()
			b.stopDispatchers()
			return nil, fmt.Errorf("broker: failed to set up JetStream: %w", err)
		}
		b.wg.Add(1)
		go b.keepStreams(ctx)
	}
	if nc.IsConnected() {
		b.setState(true, nil)
	}
	return b, nil
}

func (b *NATS) setState(up bool, err error) {
	if up {
		select { // ensure the streams: NATS may have lost them
		case b.kick <- struct{}{}:
		default:
		}
	}
	if b.connected.Swap(up) == up || b.closing.Load() {
		return
	}
	if b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(up, err)
	}
}

// subject maps a channel name to its NATS subject. The name is encoded
// (base64url) so that any channel name is a single valid subject token.
func (b *NATS) subject(channel string) string {
	return b.cfg.SubjectPrefix + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

func (b *NATS) channelOf(subject string) (string, bool) {
	enc, ok := strings.CutPrefix(subject, b.cfg.SubjectPrefix)
	if !ok {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	return string(raw), err == nil
}

// Interest subscribes to channel's subject while it has local
// subscribers. It implements handler.Broker.
func (b *NATS) Interest(channel string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on {
		b.acquireLocked(channel)
	} else {
		b.releaseLocked(channel)
	}
}

// Acquire takes a reference to channel's subscription and waits until
// NATS has it. It implements handler.StoreBroker.
func (b *NATS) Acquire(ctx context.Context, channel string) (uint64, error) {
	if b.streamOf(channel) != nil {
		if err := b.waitReady(ctx); err != nil {
			return 0, err
		}
	}
	b.mu.Lock()
	e := b.acquireLocked(channel)
	gen, ok := e.gen, e.sub != nil
	b.mu.Unlock()
	if !ok {
		b.Release(channel)
		return 0, fmt.Errorf("%w: NATS refused the subscription", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil {
		b.Release(channel)
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return gen, nil
}

// Release drops a reference Acquire took. It implements
// handler.StoreBroker.
func (b *NATS) Release(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(channel)
}

// acquireLocked adds a reference to channel's subscription, subscribing
// if it is the first or NATS refused the last try. b.mu is held.
func (b *NATS) acquireLocked(channel string) *subscription {
	e := b.subs[channel]
	if e == nil {
		e = &subscription{stream: b.streamOf(channel)}
		b.subs[channel] = e
	}
	e.refs++
	if e.sub != nil {
		return e
	}
	q := b.queues[maphash.String(b.seed, channel)%uint64(len(b.queues))]
	subject := b.subject(channel)
	if e.stream != nil {
		subject = e.stream.repub + encode(channel)
	}
	sub, err := b.nc.ChanSubscribe(subject, q)
	if err != nil {
		b.subFailures.Add(1)
		return e
	}
	b.gen++
	e.sub, e.gen = sub, b.gen
	return e
}

// releaseLocked drops a reference, unsubscribing with the last. b.mu is
// held.
func (b *NATS) releaseLocked(channel string) {
	e := b.subs[channel]
	if e == nil {
		return
	}
	if e.refs--; e.refs > 0 {
		return
	}
	if e.sub != nil {
		_ = e.sub.Unsubscribe()
	}
	delete(b.subs, channel)
}

// Publish hands push to NATS for the other processes. It implements
// handler.Broker.
func (b *NATS) Publish(channel string, push []byte) error {
	if !b.nc.IsConnected() {
		b.pubFailed.Add(1)
		return ErrDisconnected
	}
	if err := b.nc.Publish(b.subject(channel), push); err != nil {
		b.pubFailed.Add(1)
		return fmt.Errorf("broker: failed to publish: %w", err)
	}
	b.published.Add(1)
	return nil
}

// dispatch delivers the messages of one queue, in order.
func (b *NATS) dispatch(q chan *nats.Msg) {
	defer b.wg.Done()
	for m := range q {
		if m.Header != nil { // only the stream's republished copies have headers
			b.stored(m)
			continue
		}
		channel, ok := b.channelOf(m.Subject)
		if !ok {
			continue
		}
		b.received.Add(1)
		b.deliver(channel, m.Data)
	}
}

// Connected reports whether NATS is reachable now.
func (b *NATS) Connected() bool { return b.connected.Load() }

// Stats returns the broker's counters.
func (b *NATS) Stats() Stats {
	b.mu.Lock()
	n := len(b.subs)
	b.mu.Unlock()
	return Stats{
		Connected: b.Connected(), Subjects: n,
		Published: b.published.Load(), PublishFailed: b.pubFailed.Load(),
		Received: b.received.Load(), Dropped: b.slow.Load(), SubscribeFails: b.subFailures.Load(),
		StreamFailures: b.streamFailures.Load(), StoreReady: b.storeReady(),
	}
}

// Close flushes what was published, closes the connection and stops the
// dispatchers. Closing again does nothing.
func (b *NATS) Close() error {
	if b.closing.Swap(true) {
		return nil // closed already
	}
	b.stop()
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(time.Second)
	}
	b.nc.Close()
	b.mu.Lock()
	b.subs = map[string]*subscription{}
	b.mu.Unlock()
	b.stopDispatchers()
	return nil
}

func (b *NATS) stopDispatchers() {
	for _, q := range b.queues {
		close(q)
	}
	b.wg.Wait()
}
