package handler

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// newTestChannels returns a Channels configured by cfg or fails the test.
//
// Nil Rules mean no history here, unlike in NewChannels: most tests check
// the protocol's shape without positions; the history tests set rules.
func newTestChannels(t testing.TB, cfg ChannelsConfig) *Channels {
	t.Helper()
	if cfg.Rules == nil {
		cfg.Rules = []ChannelRule{}
	}
	h, err := NewChannels(cfg)
	if err != nil {
		t.Fatalf("NewChannels(%+v): %v", cfg, err)
	}
	return h
}

// errReply is the error reply for code; id is raw JSON, "" for none.
func errReply(id, code string) string {
	return string(wsproto.AppendError(nil, json.RawMessage(id), code))
}

// withHistoryDefaults sets cfg's history limits to their defaults.
func withHistoryDefaults(cfg ChannelsConfig) ChannelsConfig {
	cfg.MaxStoreJobs, cfg.MaxStoreQueue, cfg.MaxPresence = DefaultMaxStoreJobs, DefaultMaxStoreQueue, DefaultMaxPresence
	cfg.MaxHistoryChannels, cfg.MaxHistoryBytes = DefaultMaxHistoryChannels, DefaultMaxHistoryBytes
	cfg.MaxReplay, cfg.MaxReplayBytes = DefaultMaxReplay, DefaultMaxReplayBytes
	cfg.MaxHistoryLimit, cfg.HistoryMetaTTL = DefaultMaxHistoryLimit, DefaultHistoryMetaTTL
	return cfg
}

func TestChannelsConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ChannelsConfig
		want    ChannelsConfig // after defaults, when valid
		wantErr bool
	}{
		{name: "zero means defaults", cfg: ChannelsConfig{}, want: withHistoryDefaults(ChannelsConfig{MaxSubscriptions: 64, MaxChannelLen: 128, Shards: 64})},
		{name: "explicit values kept", cfg: ChannelsConfig{MaxSubscriptions: 1, MaxChannelLen: 2, Shards: 3, MaxReplay: 4, MaxReplayBytes: 5, MaxHistoryLimit: 6, HistoryMetaTTL: 7},
			want: ChannelsConfig{MaxSubscriptions: 1, MaxChannelLen: 2, Shards: 3, MaxReplay: 4, MaxReplayBytes: 5, MaxHistoryLimit: 6, HistoryMetaTTL: 7,
				MaxStoreJobs: DefaultMaxStoreJobs, MaxStoreQueue: DefaultMaxStoreQueue, MaxPresence: DefaultMaxPresence,
				MaxHistoryChannels: DefaultMaxHistoryChannels, MaxHistoryBytes: DefaultMaxHistoryBytes}},
		{name: "explicit store bounds kept", cfg: ChannelsConfig{MaxStoreJobs: 2, MaxStoreQueue: 3},
			want: func() ChannelsConfig {
				c := withHistoryDefaults(ChannelsConfig{MaxSubscriptions: 64, MaxChannelLen: 128, Shards: 64})
				c.MaxStoreJobs, c.MaxStoreQueue = 2, 3
				return c
			}()},
		{name: "negative MaxStoreJobs", cfg: ChannelsConfig{MaxStoreJobs: -1}, wantErr: true},
		{name: "negative MaxStoreQueue", cfg: ChannelsConfig{MaxStoreQueue: -1}, wantErr: true},
		{name: "largest shard count", cfg: ChannelsConfig{Shards: 65536}, want: withHistoryDefaults(ChannelsConfig{MaxSubscriptions: 64, MaxChannelLen: 128, Shards: 65536})},
		{name: "negative MaxReplay", cfg: ChannelsConfig{MaxReplay: -1}, wantErr: true},
		{name: "negative MaxReplayBytes", cfg: ChannelsConfig{MaxReplayBytes: -1}, wantErr: true},
		{name: "negative MaxHistoryLimit", cfg: ChannelsConfig{MaxHistoryLimit: -1}, wantErr: true},
		{name: "negative HistoryMetaTTL", cfg: ChannelsConfig{HistoryMetaTTL: -1}, wantErr: true},
		{name: "negative HistorySize", cfg: ChannelsConfig{Rules: []ChannelRule{{Prefix: "a", ChannelOptions: ChannelOptions{HistorySize: -1}}}}, wantErr: true},
		{name: "huge HistorySize", cfg: ChannelsConfig{Rules: []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: 1<<20 + 1}}}}, wantErr: true},
		{name: "negative HistoryBytes", cfg: ChannelsConfig{Rules: []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: 1, HistoryBytes: -1}}}}, wantErr: true},
		{name: "negative HistoryTTL", cfg: ChannelsConfig{Rules: []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: 1, HistoryTTL: -1}}}}, wantErr: true},
		{name: "prefix twice", cfg: ChannelsConfig{Rules: []ChannelRule{{Prefix: "a"}, {Prefix: "a"}}}, wantErr: true},
		{name: "negative MaxSubscriptions", cfg: ChannelsConfig{MaxSubscriptions: -1}, wantErr: true},
		{name: "negative MaxChannelLen", cfg: ChannelsConfig{MaxChannelLen: -1}, wantErr: true},
		{name: "negative Shards", cfg: ChannelsConfig{Shards: -1}, wantErr: true},
		{name: "too many Shards", cfg: ChannelsConfig{Shards: 65537}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewChannels(tt.cfg)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("got error %v, want %v", err, ErrInvalidConfig)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			got := h.cfg
			got.Rules = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got config %+v, want %+v", h.cfg, tt.want)
			}
			if len(h.hub.shards) != tt.want.Shards {
				t.Errorf("got %d shards, want %d", len(h.hub.shards), tt.want.Shards)
			}
		})
	}
}

// TestChannelsProtocol sends one connection's requests and checks the
// replies to the last one, byte for byte.
func TestChannelsProtocol(t *testing.T) {
	long := strings.Repeat("a", 128)
	tests := []struct {
		name   string
		cfg    ChannelsConfig
		before []string // sent first; their replies are not checked
		in     string
		binary bool
		want   []string
	}{
		{name: "subscribe string id", in: `{"op":"subscribe","channel":"news","id":"1"}`, want: []string{`{"op":"ack","id":"1"}`}},
		{name: "subscribe number id verbatim", in: `{"op":"subscribe","channel":"news","id":7.50e1}`, want: []string{`{"op":"ack","id":7.50e1}`}},
		{name: "subscribe escaped string id verbatim", in: `{"id":"a\u0022\n\u00e9","op":"subscribe","channel":"news"}`, want: []string{`{"op":"ack","id":"a\u0022\n\u00e9"}`}},
		{name: "subscribe negative id", in: `{"op":"subscribe","channel":"news","id":-3}`, want: []string{`{"op":"ack","id":-3}`}},
		{name: "subscribe without id is silent", in: `{"op":"subscribe","channel":"news"}`},
		{name: "null id counts as absent", in: `{"op":"subscribe","channel":"news","id":null}`},
		{name: "whitespace around request", in: " \n{ \"op\" : \"subscribe\" , \"channel\" : \"news\" , \"id\" : 1 }\n", want: []string{`{"op":"ack","id":1}`}},
		{name: "subscribe twice is idempotent", before: []string{`{"op":"subscribe","channel":"news"}`}, in: `{"op":"subscribe","channel":"news","id":2}`, want: []string{`{"op":"ack","id":2}`}},
		{name: "unsubscribe", before: []string{`{"op":"subscribe","channel":"news"}`}, in: `{"op":"unsubscribe","channel":"news","id":"u"}`, want: []string{`{"op":"ack","id":"u"}`}},
		{name: "unsubscribe not subscribed", in: `{"op":"unsubscribe","channel":"news","id":"u"}`, want: []string{errReply(`"u"`, "not_subscribed")}},
		{name: "unsubscribe twice", before: []string{`{"op":"subscribe","channel":"news"}`, `{"op":"unsubscribe","channel":"news"}`}, in: `{"op":"unsubscribe","channel":"news"}`, want: []string{errReply("", "not_subscribed")}},
		{name: "publish to nobody", in: `{"op":"publish","channel":"news","data":1,"id":"p"}`, want: []string{`{"op":"ack","id":"p","delivered":0}`}},
		{name: "publish to self", before: []string{`{"op":"subscribe","channel":"news"}`}, in: `{"op":"publish","channel":"news","data":{"a":[1,2]},"id":3}`, want: []string{`{"op":"ack","id":3,"delivered":1}`}},
		{name: "publish null data", in: `{"op":"publish","channel":"news","data":null,"id":3}`, want: []string{`{"op":"ack","id":3,"delivered":0}`}},
		{name: "publish without id is silent", in: `{"op":"publish","channel":"news","data":"x"}`},
		{name: "publish without data", in: `{"op":"publish","channel":"news","id":4}`, want: []string{errReply("4", "bad_json")}},
		{name: "invalid JSON", in: `{"op":"subscribe",`, want: []string{errReply("", "bad_json")}},
		{name: "trailing garbage", in: `{"op":"subscribe","channel":"news","id":1} x`, want: []string{errReply("", "bad_json")}},
		{name: "empty message", in: ``, want: []string{errReply("", "bad_json")}},
		{name: "array", in: `[{"op":"subscribe"}]`, want: []string{errReply("", "bad_json")}},
		{name: "null", in: `null`, want: []string{errReply("", "bad_json")}},
		{name: "string", in: `"subscribe"`, want: []string{errReply("", "bad_json")}},
		{name: "op of wrong type keeps id", in: `{"op":1,"channel":"news","id":"k"}`, want: []string{errReply(`"k"`, "bad_json")}},
		{name: "channel of wrong type keeps id", in: `{"op":"subscribe","channel":["a"],"id":5}`, want: []string{errReply("5", "bad_json")}},
		{name: "id of wrong type", in: `{"op":"subscribe","channel":"news","id":true}`, want: []string{errReply("", "bad_json")}},
		{name: "id object", in: `{"op":"subscribe","channel":"news","id":{"a":1}}`, want: []string{errReply("", "bad_json")}},
		{name: "binary", in: `{"op":"subscribe","channel":"news","id":1}`, binary: true, want: []string{errReply("", "binary_not_supported")}},
		{name: "unknown op", in: `{"op":"shout","channel":"news","id":"z"}`, want: []string{errReply(`"z"`, "unknown_op")}},
		{name: "missing op", in: `{"channel":"news","id":"z"}`, want: []string{errReply(`"z"`, "unknown_op")}},
		{name: "empty object", in: `{}`, want: []string{errReply("", "unknown_op")}},
		{name: "empty channel", in: `{"op":"subscribe","channel":"","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "missing channel", in: `{"op":"publish","data":1,"id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "channel at max length", in: `{"op":"subscribe","channel":"` + long + `","id":1}`, want: []string{`{"op":"ack","id":1}`}},
		{name: "channel too long", in: `{"op":"subscribe","channel":"` + long + `a","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "channel too long, small limit", cfg: ChannelsConfig{MaxChannelLen: 4}, in: `{"op":"subscribe","channel":"abcde","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "channel full charset", in: `{"op":"subscribe","channel":"AZaz09_.:@/-","id":1}`, want: []string{`{"op":"ack","id":1}`}},
		{name: "channel with space", in: `{"op":"subscribe","channel":"a b","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "channel with quote", in: `{"op":"publish","channel":"a\"b","data":1,"id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "channel with non-ASCII", in: `{"op":"subscribe","channel":"café","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "channel with star", in: `{"op":"unsubscribe","channel":"news.*","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{
			name:   "too many subscriptions",
			cfg:    ChannelsConfig{MaxSubscriptions: 2},
			before: []string{`{"op":"subscribe","channel":"a"}`, `{"op":"subscribe","channel":"b"}`},
			in:     `{"op":"subscribe","channel":"c","id":"t"}`,
			want:   []string{errReply(`"t"`, "too_many_subscriptions")},
		},
		{
			name:   "resubscribe at the limit is idempotent",
			cfg:    ChannelsConfig{MaxSubscriptions: 2},
			before: []string{`{"op":"subscribe","channel":"a"}`, `{"op":"subscribe","channel":"b"}`},
			in:     `{"op":"subscribe","channel":"a","id":"t"}`,
			want:   []string{`{"op":"ack","id":"t"}`},
		},
		{
			name:   "unsubscribe frees a slot",
			cfg:    ChannelsConfig{MaxSubscriptions: 1},
			before: []string{`{"op":"subscribe","channel":"a"}`, `{"op":"unsubscribe","channel":"a"}`},
			in:     `{"op":"subscribe","channel":"b","id":"t"}`,
			want:   []string{`{"op":"ack","id":"t"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, tt.cfg)
			c := newFakeConn()
			send(h, c, tt.before...)
			c.replies()
			typ := wsconn.Text
			if tt.binary {
				typ = wsconn.Binary
			}
			h.OnMessage(c, typ, []byte(tt.in))
			got := c.replies()
			if !slices.Equal(got, tt.want) {
				t.Errorf("got replies %q, want %q", got, tt.want)
			}
			for _, r := range got {
				if !json.Valid([]byte(r)) {
					t.Errorf("reply %q is not valid JSON", r)
				}
			}
		})
	}
}

// TestErrorReplyShape checks every error code's reply decodes to the
// documented fields.
func TestErrorReplyShape(t *testing.T) {
	for _, code := range ErrorCodes() {
		for _, id := range []string{"", `"x"`, `12`} {
			t.Run(code+"/"+id, func(t *testing.T) {
				var got struct {
					Op      string          `json:"op"`
					ID      json.RawMessage `json:"id"`
					Code    string          `json:"code"`
					Message string          `json:"message"`
				}
				if err := json.Unmarshal([]byte(errReply(id, code)), &got); err != nil {
					t.Fatalf("failed to decode error reply: %v", err)
				}
				if got.Op != "error" || string(got.ID) != id || got.Code != code || got.Message == "" {
					t.Errorf("got %+v, want op error, id %s, code %s and a message", got, id, code)
				}
			})
		}
	}
}

// TestErrorCodes checks that ErrorCodes lists each Code constant once,
// with a message, and that other strings have no slot.
func TestErrorCodes(t *testing.T) {
	want := []string{CodeBadJSON, CodeBinaryNotSupported, CodeUnknownOp, CodeBadChannel,
		CodeTooManySubscriptions, CodeNotSubscribed, CodeForbidden, CodeInvalidToken,
		CodeHistoryOff, CodeEpochChanged, CodeOffsetTooOld, CodeUnavailable, CodeBusy, CodePresenceOff}
	got := ErrorCodes()
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("got codes %q, want %q in some order", got, want)
	}
	for i, code := range got {
		if wsproto.CodeIndex(code) != i {
			t.Errorf("code %s: got index %d, want %d (listed twice?)", code, wsproto.CodeIndex(code), i)
		}
		if wsproto.ErrorMessage(code) == "" {
			t.Errorf("code %s has no message", code)
		}
	}
	for _, s := range []string{"", "bad_jsonx", "ack", "BAD_JSON"} {
		if i := wsproto.CodeIndex(s); i != -1 || wsproto.ErrorMessage(s) != "" {
			t.Errorf("%q: got index %d, message %q; want -1 and none", s, i, wsproto.ErrorMessage(s))
		}
	}
}

// TestChannelsRejectedByCode makes one request fail with each error code
// and checks that it is counted under that code, and under no other.
func TestChannelsRejectedByCode(t *testing.T) {
	reader := &fakePerms{sub: []string{"news"}}
	tests := []struct {
		code      string
		cfg       ChannelsConfig
		principal any
		refresh   bool
		before    []string // sent first; they must succeed
		in        string
		inFn      func(h *Channels) string // instead of in, after before
		binary    bool
		setup     func(t *testing.T, h *Channels) // after NewChannels
	}{
		{code: CodeBadJSON, in: `{"op":"subscribe",`},
		{code: CodePresenceOff, in: `{"op":"presence","channel":"news"}`},
		{
			code: CodeUnavailable, cfg: historyConfig(10), in: `{"op":"publish","channel":"news","data":1}`,
			setup: func(t *testing.T, h *Channels) { newFakeStore(t, h, 10).set(func(s *fakeStore) { s.down = true }) },
		},
		{
			code: CodeBusy, cfg: ChannelsConfig{Rules: historyConfig(10).Rules, MaxStoreJobs: 1, MaxStoreQueue: 1},
			before: []string{`{"op":"subscribe","channel":"a"}`, `{"op":"subscribe","channel":"b"}`},
			in:     `{"op":"subscribe","channel":"c"}`,
			setup: func(t *testing.T, h *Channels) {
				hold := make(chan struct{})
				newFakeStore(t, h, 10).set(func(s *fakeStore) { s.hold = hold })
				t.Cleanup(func() { close(hold) }) // before the store's cleanup waits for the jobs
			},
		},
		{code: CodeBinaryNotSupported, in: `{"op":"subscribe","channel":"news"}`, binary: true},
		{code: CodeUnknownOp, in: `{"op":"shout","channel":"news"}`},
		{code: CodeBadChannel, cfg: ChannelsConfig{MaxChannelLen: 4}, in: `{"op":"subscribe","channel":"abcde"}`},
		{
			code: CodeTooManySubscriptions, cfg: ChannelsConfig{MaxSubscriptions: 1},
			before: []string{`{"op":"subscribe","channel":"a"}`}, in: `{"op":"subscribe","channel":"b"}`,
		},
		{code: CodeNotSubscribed, in: `{"op":"unsubscribe","channel":"news"}`},
		{code: CodeForbidden, principal: reader, in: `{"op":"subscribe","channel":"secret"}`},
		{code: CodeInvalidToken, refresh: true, in: `{"op":"refresh","token":"bad"}`},
		{code: CodeHistoryOff, in: `{"op":"history","channel":"news"}`},
		{
			code: CodeEpochChanged, cfg: ChannelsConfig{Rules: []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: 2}}}},
			before: []string{`{"op":"publish","channel":"news","data":1}`},
			in:     `{"op":"history","channel":"news","after":{"offset":1,"epoch":"other"}}`,
		},
		{
			code: CodeOffsetTooOld, cfg: ChannelsConfig{Rules: []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: 1}}}},
			before: []string{`{"op":"publish","channel":"news","data":1}`, `{"op":"publish","channel":"news","data":2}`},
			inFn: func(h *Channels) string {
				pos, _, _ := h.History("news", nil, 0)
				return `{"op":"history","channel":"news","after":{"offset":0,"epoch":"` + pos.Epoch + `"}}`
			},
		},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.code] = true
		t.Run(tt.code, func(t *testing.T) {
			h := newTestChannels(t, tt.cfg)
			if tt.setup != nil {
				tt.setup(t, h)
			}
			if tt.refresh {
				var seen []string
				h.SetRefresh(refreshHook(&seen))
			}
			c := newFakeConn()
			if tt.principal != nil {
				c.SetPrincipal(tt.principal, time.Time{})
			}
			send(h, c, tt.before...)
			if s := h.Stats(); s.Rejected != 0 {
				t.Fatalf("setup: got %d rejected, want 0", s.Rejected)
			}
			typ := wsconn.Text
			if tt.binary {
				typ = wsconn.Binary
			}
			in := tt.in
			if tt.inFn != nil {
				in = tt.inFn(h)
			}
			h.OnMessage(c, typ, []byte(in))
			if got, want := c.replies(), []string{errReply("", tt.code)}; !slices.Equal(got, want) {
				t.Fatalf("got replies %q, want %q", got, want)
			}
			s := h.Stats()
			if s.Rejected != 1 {
				t.Errorf("got Rejected %d, want 1", s.Rejected)
			}
			for _, code := range ErrorCodes() {
				n, ok := s.RejectedByCode[code]
				want := uint64(0)
				if code == tt.code {
					want = 1
				}
				if !ok || n != want {
					t.Errorf("RejectedByCode[%s]: got %d (present %v), want %d", code, n, ok, want)
				}
			}
			if len(s.RejectedByCode) != len(ErrorCodes()) {
				t.Errorf("got %d codes in RejectedByCode, want %d", len(s.RejectedByCode), len(ErrorCodes()))
			}
			h.OnClose(c, 1000, "")
		})
	}
	for _, code := range ErrorCodes() {
		if !covered[code] {
			t.Errorf("no case for code %s", code)
		}
	}
}

// TestChannelsRejectedConcurrent counts rejections from many connections
// at once: every one is counted, under its code.
func TestChannelsRejectedConcurrent(t *testing.T) {
	const conns, each = 8, 50
	h := newTestChannels(t, ChannelsConfig{})
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c := newFakeConn()
			for range each {
				send(h, c, `nope`, `{"op":"unsubscribe","channel":"news"}`)
			}
		})
	}
	wg.Wait()
	s := h.Stats()
	if s.RejectedByCode[CodeBadJSON] != conns*each || s.RejectedByCode[CodeNotSubscribed] != conns*each || s.Rejected != 2*conns*each {
		t.Errorf("got %d rejected, %v by code; want %d bad_json and %d not_subscribed", s.Rejected, s.RejectedByCode, conns*each, conns*each)
	}
}

func TestChannelsPushShape(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{name: "object", data: `{"a":[1,2]}`, want: `{"channel":"news","data":{"a":[1,2]}}`},
		{name: "string", data: `"hi"`, want: `{"channel":"news","data":"hi"}`},
		{name: "number kept verbatim", data: `1.0e3`, want: `{"channel":"news","data":1.0e3}`},
		{name: "null", data: `null`, want: `{"channel":"news","data":null}`},
		{name: "inner whitespace kept", data: `{ "a" : 1 }`, want: `{"channel":"news","data":{ "a" : 1 }}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, ChannelsConfig{})
			sub, pub := newFakeConn(), newFakeConn()
			send(h, sub, `{"op":"subscribe","channel":"news"}`)
			send(h, pub, `{"op":"publish","channel":"news","data":`+tt.data+`}`)
			pushes := sub.pushes()
			if len(pushes) != 1 {
				t.Fatalf("got %d pushes, want 1", len(pushes))
			}
			if got := payload(t, pushes[0]); got != tt.want {
				t.Errorf("got push %s, want %s", got, tt.want)
			}
		})
	}
}

func TestChannelsPublishAPI(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		data    json.RawMessage
		want    int
		wantErr error
	}{
		{name: "delivered to subscribers", channel: "news", data: json.RawMessage(`{"x":1}`), want: 2},
		{name: "no subscribers", channel: "other", data: json.RawMessage(`1`), want: 0},
		{name: "empty channel", channel: "", data: json.RawMessage(`1`), wantErr: ErrBadChannel},
		{name: "bad channel byte", channel: "a\"b", data: json.RawMessage(`1`), wantErr: ErrBadChannel},
		{name: "channel too long", channel: strings.Repeat("n", 129), data: json.RawMessage(`1`), wantErr: ErrBadChannel},
		{name: "nil data", channel: "news", data: nil, wantErr: ErrBadData},
		{name: "invalid data", channel: "news", data: json.RawMessage(`{"x":`), wantErr: ErrBadData},
		{name: "two values", channel: "news", data: json.RawMessage(`1 2`), wantErr: ErrBadData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, ChannelsConfig{})
			a, b := newFakeConn(), newFakeConn()
			send(h, a, `{"op":"subscribe","channel":"news"}`)
			send(h, b, `{"op":"subscribe","channel":"news"}`)
			got, err := h.Publish(tt.channel, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got delivered %d, want %d", got, tt.want)
			}
			wantPublished := uint64(1)
			if tt.wantErr != nil {
				wantPublished = 0
			}
			if s := h.Stats(); s.Published != wantPublished || s.Delivered != uint64(tt.want) {
				t.Errorf("got stats %+v, want Published %d, Delivered %d", s, wantPublished, tt.want)
			}
		})
	}
}
