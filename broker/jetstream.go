package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/handler"
)

// Channel history on JetStream. Every history rule (a channel-name prefix
// with a size and a TTL) is one stream, WSGATE_<id>, where id is a hash of
// the prefix, so that a rule keeps its stream across restarts and config
// reorderings. A channel's publications are stored on the subject
// <SubjectPrefix>h.<id>.<channel, base64url>, one subject per channel, so
// that the stream's per-subject limit is the channel's history size and
// its MaxAge the TTL. The stream republishes every stored message on
// <SubjectPrefix>r.<id>.<channel> with its sequence and the sequence of
// the subject's previous message (Nats-Sequence, Nats-Last-Sequence):
// those are what the processes with subscribers listen to, so every
// process delivers a channel's publications in stream order, its own
// included, and can tell when it missed one.
//
// Offsets are stream sequences: they grow by at least one per publication
// of a channel, and every process reads the same ones. The epoch is the
// stream's creation time: a stream that was lost (memory storage and a
// restart of NATS) and created again gets a new one.

// ErrUnavailable is returned by the stored-publication methods while the
// stream is unreachable: NATS is down, JetStream is not enabled on it, or
// the stream could not be created.
var ErrUnavailable = errors.New("broker: history store (JetStream) unavailable")

// ErrBusy is returned by PublishStoredAsync while MaxPendingPublishes
// publications wait for their acknowledgement.
var ErrBusy = errors.New("broker: too many publications waiting to be stored")

// HistoryRule stores the publications of the channels whose names start
// with Prefix (the longest matching prefix wins), keeping the last Size of
// each channel for TTL. Size 0 stores nothing.
type HistoryRule struct {
	Prefix string
	Size   int
	TTL    time.Duration
}

// jsStream is one HistoryRule's stream.
type jsStream struct {
	rule  HistoryRule
	id    string // hash of the prefix: the subjects' token and the name's suffix
	name  string // WSGATE_<id>
	store string // subject prefix of stored messages: <prefix>h.<id>.
	repub string // subject prefix of their republished copies: <prefix>r.<id>.
	epoch atomicString
}

// streamID is the id of the stream of prefix: 16 hex digits of its hash.
func streamID(prefix string) string {
	sum := sha256.Sum256([]byte(prefix))
	return hex.EncodeToString(sum[:8])
}

// newStreams makes the streams of rules, longest prefix first.
func newStreams(subjectPrefix string, rules []HistoryRule) []*jsStream {
	var out []*jsStream
	for _, r := range rules {
		id := streamID(r.Prefix)
		out = append(out, &jsStream{rule: r, id: id, name: "WSGATE_" + id,
			store: subjectPrefix + "h." + id + ".", repub: subjectPrefix + "r." + id + "."})
	}
	// Longest prefix first, so the first match is the longest.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j].rule.Prefix) > len(out[j-1].rule.Prefix); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// streamOf returns the stream that stores channel's publications, or nil.
func (b *NATS) streamOf(channel string) *jsStream {
	if strings.HasPrefix(channel, "#") {
		return nil // internal channels (join and leave pushes) keep no history
	}
	for _, st := range b.streams {
		if strings.HasPrefix(channel, st.rule.Prefix) {
			if st.rule.Size == 0 {
				return nil
			}
			return st
		}
	}
	return nil
}

func encode(channel string) string { return base64.RawURLEncoding.EncodeToString([]byte(channel)) }

// Stored reports whether channel's publications are stored. It implements
// handler.StoreBroker.
func (b *NATS) Stored(channel string) bool { return b.streamOf(channel) != nil }

// Epoch returns the epoch of channel's stream, "" while it is unknown.
func (b *NATS) Epoch(channel string) string {
	if st := b.streamOf(channel); st != nil {
		return st.epoch.Load()
	}
	return ""
}

// keepStreams creates or updates the streams each time it is kicked (on
// every connect), and retries every RequestTimeout while one fails, until
// ctx is done.
func (b *NATS) keepStreams(ctx context.Context) {
	defer b.wg.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-retry.C:
		}
		err := b.ensureStreams(ctx)
		if err == nil {
			b.readyOnce.Do(func() { close(b.ready) })
		}
		if err != nil && ctx.Err() == nil {
			b.streamFailures.Add(1)
			if b.cfg.OnStreamError != nil {
				b.cfg.OnStreamError(err)
			}
			retry.Reset(b.cfg.RequestTimeout)
		}
	}
}

// ensureStreams creates or updates every stream and reads its epoch. A
// stream whose epoch changed (it was lost and created again) makes every
// subscription to its channels start a new generation, so that the
// handler forgets the offsets it had seen.
func (b *NATS) ensureStreams(ctx context.Context) error {
	for _, st := range b.streams {
		if st.rule.Size == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		s, err := b.js.CreateOrUpdateStream(cctx, b.streamConfig(st))
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(cctx)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("stream %s for prefix %q: %w", st.name, st.rule.Prefix, err)
		}
		epoch := strconv.FormatInt(info.Created.UnixNano(), 36)
		if old := st.epoch.Swap(epoch); old != "" && old != epoch {
			b.newGenerations(st)
		}
	}
	return nil
}

// storeReady reports whether every stream has been created.
func (b *NATS) storeReady() bool {
	select {
	case <-b.ready:
		return true
	default:
		return false
	}
}

// waitReady waits until every stream has been created, up to ctx and
// RequestTimeout: a request made just after the start waits for the
// streams rather than failing.
func (b *NATS) waitReady(ctx context.Context) error {
	if b.storeReady() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: the history streams do not exist yet", ErrUnavailable)
	}
}

// streamConfig is the configuration of st's stream.
func (b *NATS) streamConfig(st *jsStream) jetstream.StreamConfig {
	storage := jetstream.MemoryStorage
	if b.cfg.Storage == "file" {
		storage = jetstream.FileStorage
	}
	return jetstream.StreamConfig{
		Name:              st.name,
		Description:       fmt.Sprintf("wsgate channel history, prefix %q", st.rule.Prefix),
		Subjects:          []string{st.store + ">"},
		Storage:           storage,
		Replicas:          b.cfg.Replicas,
		MaxMsgsPerSubject: int64(st.rule.Size),
		MaxAge:            st.rule.TTL,
		MaxBytes:          b.cfg.StreamMaxBytes,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		RePublish:         &jetstream.RePublish{Source: st.store + ">", Destination: st.repub + ">"},
		Duplicates:        time.Minute,
	}
}

// newGenerations gives every subscription to st's channels a new
// generation.
func (b *NATS) newGenerations(st *jsStream) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.subs {
		if e.stream == st {
			b.gen++
			e.gen = b.gen
		}
	}
}

// Generation returns the generation of channel's subscription, 0 when
// there is none. It implements handler.StoreBroker.
func (b *NATS) Generation(channel string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.subs[channel]; e != nil && e.sub != nil {
		return e.gen
	}
	return 0
}

// PublishStored stores data as channel's next publication and returns its
// position. It implements handler.StoreBroker.
func (b *NATS) PublishStored(ctx context.Context, channel string, data []byte) (handler.Position, error) {
	if err := b.waitReady(ctx); err != nil {
		b.pubFailed.Add(1)
		return handler.Position{}, err
	}
	st := b.streamOf(channel)
	epoch := ""
	if st != nil {
		epoch = st.epoch.Load()
	}
	if epoch == "" || !b.nc.IsConnected() {
		b.pubFailed.Add(1)
		return handler.Position{}, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	ack, err := b.js.Publish(ctx, st.store+encode(channel), data, jetstream.WithExpectStream(st.name))
	if err != nil {
		b.pubFailed.Add(1)
		return handler.Position{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	b.published.Add(1)
	return handler.Position{Offset: ack.Sequence, Epoch: epoch}, nil
}

// PublishStoredAsync is PublishStored with the outcome handed to done,
// from another goroutine. It implements handler.StoreBroker.
func (b *NATS) PublishStoredAsync(channel string, data []byte, done func(handler.Position, error)) error {
	st := b.streamOf(channel)
	epoch := ""
	if st != nil {
		epoch = st.epoch.Load()
	}
	if epoch == "" || !b.nc.IsConnected() {
		b.pubFailed.Add(1)
		return ErrUnavailable
	}
	select {
	case b.inflight <- struct{}{}:
	default:
		b.pubFailed.Add(1)
		return ErrBusy
	}
	fut, err := b.js.PublishAsync(st.store+encode(channel), data, jetstream.WithExpectStream(st.name))
	if err != nil {
		<-b.inflight
		b.pubFailed.Add(1)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	go func() {
		defer func() { <-b.inflight }()
		select {
		case ack := <-fut.Ok():
			b.published.Add(1)
			done(handler.Position{Offset: ack.Sequence, Epoch: epoch}, nil)
		case err := <-fut.Err():
			b.pubFailed.Add(1)
			done(handler.Position{}, fmt.Errorf("%w: %v", ErrUnavailable, err))
		}
	}()
	return nil
}

// directGet is the body of a JetStream direct get request.
type directGet struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// Fetch returns channel's stored publications after offset after, with a
// JetStream batch direct get: at most max, about maxBytes of data (at
// least one). It implements handler.StoreBroker.
func (b *NATS) Fetch(ctx context.Context, channel string, after uint64, max, maxBytes int) ([]handler.StoredMessage, string, bool, error) {
	if err := b.waitReady(ctx); err != nil {
		return nil, "", false, err
	}
	st := b.streamOf(channel)
	if st == nil || st.epoch.Load() == "" {
		return nil, "", false, ErrUnavailable
	}
	epoch := st.epoch.Load()
	if after == math.MaxUint64 || max <= 0 {
		return nil, epoch, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	inbox := b.nc.NewRespInbox()
	// A channel with room for the whole batch and its end: SubscribeSync
	// would allocate the client's default of 64k slots per fetch.
	replies := make(chan *nats.Msg, max+2)
	sub, err := b.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, "", false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(directGet{Seq: after + 1, NextFor: st.store + encode(channel), Batch: max, MaxBytes: maxBytes})
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+st.name, inbox, req); err != nil {
		return nil, "", false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var msgs []handler.StoredMessage
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, "", false, fmt.Errorf("%w: fetching %s: %v", ErrUnavailable, channel, ctx.Err())
		}
		switch m.Header.Get("Status") {
		case "":
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return nil, "", false, fmt.Errorf("%w: fetching %s: a message without its sequence", ErrUnavailable, channel)
			}
			msgs = append(msgs, handler.StoredMessage{Offset: seq, Data: m.Data})
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return msgs, epoch, pending > 0, nil
		case "404": // nothing after it
			return msgs, epoch, false, nil
		default:
			return nil, "", false, fmt.Errorf("%w: fetching %s: %s %s", ErrUnavailable, channel,
				m.Header.Get("Status"), m.Header.Get("Description"))
		}
	}
}

// Last returns the position of channel's last stored publication. It
// implements handler.StoreBroker.
func (b *NATS) Last(ctx context.Context, channel string) (handler.Position, error) {
	if err := b.waitReady(ctx); err != nil {
		return handler.Position{}, err
	}
	st := b.streamOf(channel)
	if st == nil || st.epoch.Load() == "" {
		return handler.Position{}, ErrUnavailable
	}
	epoch := st.epoch.Load()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	m, err := b.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+st.name+"."+st.store+encode(channel), nil)
	if err != nil {
		return handler.Position{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch m.Header.Get("Status") {
	case "":
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return handler.Position{}, fmt.Errorf("%w: a message without its sequence", ErrUnavailable)
		}
		return handler.Position{Offset: seq, Epoch: epoch}, nil
	case "404":
		return handler.Position{Epoch: epoch}, nil
	}
	return handler.Position{}, fmt.Errorf("%w: %s %s", ErrUnavailable, m.Header.Get("Status"), m.Header.Get("Description"))
}

// stored hands one republished message to DeliverStored, if it came on
// the channel's current subscription (a message still queued from one
// that ended is dropped).
func (b *NATS) stored(m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, b.cfg.SubjectPrefix+"r.")
	if !ok {
		return
	}
	id, enc, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return
	}
	channel := string(raw)
	st := b.streamOf(channel)
	if st == nil || st.id != id {
		return
	}
	b.mu.Lock()
	e := b.subs[channel]
	gen := uint64(0)
	if e != nil && e.sub == m.Sub {
		gen = e.gen
	}
	b.mu.Unlock()
	seq, err1 := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	prev, err2 := strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
	if gen == 0 || err1 != nil || err2 != nil {
		return
	}
	b.received.Add(1)
	b.cfg.DeliverStored(channel, gen, seq, prev, st.epoch.Load(), m.Data)
}

// atomicString is a string read and written atomically.
type atomicString struct{ p atomic.Pointer[string] }

func (a *atomicString) Load() string {
	if s := a.p.Load(); s != nil {
		return *s
	}
	return ""
}

func (a *atomicString) Swap(s string) string {
	if old := a.p.Swap(&s); old != nil {
		return *old
	}
	return ""
}
