package handler

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wsgate/wsgate/wsconn"
)

// fakePerms is a principal that allows exactly the channels listed.
type fakePerms struct {
	user     string
	sub, pub []string
}

func (p *fakePerms) CanSubscribe(channel string) bool { return slices.Contains(p.sub, channel) }
func (p *fakePerms) User() string                     { return p.user }
func (p *fakePerms) CanPublish(channel string) bool   { return slices.Contains(p.pub, channel) }

// TestChannelsPermissions sends one connection's requests, with a
// principal, and checks the replies to the last one byte for byte, and
// the number of pushes a subscriber of "news" and of "secret" got.
func TestChannelsPermissions(t *testing.T) {
	reader := &fakePerms{sub: []string{"news"}, pub: []string{"chat"}}
	tests := []struct {
		name      string
		principal any
		before    []string
		in        string
		want      []string
		pushes    int // to the other connection, subscribed to news and secret
	}{
		{name: "no principal: subscribe anything", in: `{"op":"subscribe","channel":"secret","id":1}`, want: []string{`{"op":"ack","id":1}`}},
		{name: "no principal: publish anything", in: `{"op":"publish","channel":"secret","data":1,"id":1}`, want: []string{`{"op":"ack","id":1,"delivered":1}`}, pushes: 1},
		{name: "principal without Permissions: subscribe anything", principal: "alice", in: `{"op":"subscribe","channel":"secret","id":1}`, want: []string{`{"op":"ack","id":1}`}},
		{name: "principal without Permissions: publish anything", principal: "alice", in: `{"op":"publish","channel":"news","data":1,"id":1}`, want: []string{`{"op":"ack","id":1,"delivered":1}`}, pushes: 1},
		{name: "subscribe allowed", principal: reader, in: `{"op":"subscribe","channel":"news","id":1}`, want: []string{`{"op":"ack","id":1}`}},
		{name: "subscribe forbidden", principal: reader, in: `{"op":"subscribe","channel":"secret","id":"s"}`, want: []string{errReply(`"s"`, "forbidden")}},
		{name: "subscribe forbidden without id still answered", principal: reader, in: `{"op":"subscribe","channel":"secret"}`, want: []string{errReply("", "forbidden")}},
		{name: "subscribe permission is not publish permission", principal: reader, in: `{"op":"subscribe","channel":"chat","id":1}`, want: []string{errReply("1", "forbidden")}},
		{name: "publish allowed", principal: reader, in: `{"op":"publish","channel":"chat","data":1,"id":1}`, want: []string{`{"op":"ack","id":1,"delivered":0}`}},
		{name: "publish forbidden delivers nothing", principal: reader, in: `{"op":"publish","channel":"news","data":1,"id":2}`, want: []string{errReply("2", "forbidden")}},
		{name: "bad channel before forbidden", principal: reader, in: `{"op":"subscribe","channel":"a b","id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "publish: bad channel before forbidden", principal: reader, in: `{"op":"publish","channel":"","data":1,"id":1}`, want: []string{errReply("1", "bad_channel")}},
		{name: "publish: forbidden before bad data", principal: reader, in: `{"op":"publish","channel":"secret","id":1}`, want: []string{errReply("1", "forbidden")}},
		{name: "publish: bad data on an allowed channel", principal: reader, in: `{"op":"publish","channel":"chat","id":1}`, want: []string{errReply("1", "bad_json")}},
		{name: "unsubscribe is never checked", principal: reader, in: `{"op":"unsubscribe","channel":"secret","id":1}`, want: []string{errReply("1", "not_subscribed")}},
		{
			name: "connection usable after forbidden", principal: reader,
			before: []string{`{"op":"subscribe","channel":"secret","id":1}`, `{"op":"publish","channel":"news","data":1,"id":2}`},
			in:     `{"op":"subscribe","channel":"news","id":3}`, want: []string{`{"op":"ack","id":3}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, ChannelsConfig{})
			other := newFakeConn()
			send(h, other, `{"op":"subscribe","channel":"news"}`, `{"op":"subscribe","channel":"secret"}`)
			c := newFakeConn()
			if tt.principal != nil {
				c.SetPrincipal(tt.principal, time.Time{})
			}
			send(h, c, tt.before...)
			c.replies()
			other.pushes()
			send(h, c, tt.in)
			if got := c.replies(); !slices.Equal(got, tt.want) {
				t.Errorf("got replies %q, want %q", got, tt.want)
			}
			if got := len(other.pushes()); got != tt.pushes {
				t.Errorf("got %d pushes to the other connection, want %d", got, tt.pushes)
			}
			h.OnClose(c, 1000, "")
			h.OnClose(other, 1000, "")
		})
	}
}

// errRefused is what the test refresh hook returns for a bad token.
var errRefused = errors.New("refused")

// refreshHook installs a new fakePerms for the token "good:<channel>",
// allowed to subscribe to that channel, and refuses any other token. It
// records the tokens it saw.
func refreshHook(seen *[]string) func(wsconn.Conn, string) error {
	return func(c wsconn.Conn, token string) error {
		*seen = append(*seen, token)
		if len(token) < 6 || token[:5] != "good:" {
			return errRefused
		}
		c.SetPrincipal(&fakePerms{user: "alice", sub: []string{token[5:]}}, time.Unix(2000000000, 0))
		return nil
	}
}

func TestChannelsRefresh(t *testing.T) {
	start := &fakePerms{user: "alice", sub: []string{"news"}}
	startExp := time.Unix(1900000000, 0)
	tests := []struct {
		name      string
		noHook    bool
		before    []string
		in        string
		want      []string
		wantSeen  []string
		wantSub   string    // a channel the principal after in allows to subscribe
		wantExp   time.Time // the expiry after in
		wantStill int       // subscribers of news after in
	}{
		{name: "without hook refresh is unknown", noHook: true, in: `{"op":"refresh","token":"good:x","id":1}`,
			want: []string{errReply("1", "unknown_op")}, wantSub: "news", wantExp: startExp},
		{name: "good token acked and installed", in: `{"op":"refresh","token":"good:sport","id":1}`,
			want: []string{`{"op":"ack","id":1}`}, wantSeen: []string{"good:sport"}, wantSub: "sport", wantExp: time.Unix(2000000000, 0)},
		{name: "good token without id is silent", in: `{"op":"refresh","token":"good:sport"}`,
			wantSeen: []string{"good:sport"}, wantSub: "sport", wantExp: time.Unix(2000000000, 0)},
		{name: "refused token keeps principal and expiry", in: `{"op":"refresh","token":"bad","id":"r"}`,
			want: []string{errReply(`"r"`, "invalid_token")}, wantSeen: []string{"bad"}, wantSub: "news", wantExp: startExp},
		{name: "refused token without id still answered", in: `{"op":"refresh","token":"bad"}`,
			want: []string{errReply("", "invalid_token")}, wantSeen: []string{"bad"}, wantSub: "news", wantExp: startExp},
		{name: "missing token goes to the hook as empty", in: `{"op":"refresh","id":1}`,
			want: []string{errReply("1", "invalid_token")}, wantSeen: []string{""}, wantSub: "news", wantExp: startExp},
		{name: "token of wrong type", in: `{"op":"refresh","token":5,"id":1}`,
			want: []string{errReply("1", "bad_json")}, wantSub: "news", wantExp: startExp},
		{name: "escaped token decoded", in: `{"op":"refresh","token":"good:\u0061b","id":1}`,
			want: []string{`{"op":"ack","id":1}`}, wantSeen: []string{"good:ab"}, wantSub: "ab", wantExp: time.Unix(2000000000, 0)},
		{
			name:   "narrowing refresh keeps existing subscriptions",
			before: []string{`{"op":"subscribe","channel":"news"}`},
			in:     `{"op":"refresh","token":"good:sport","id":1}`, want: []string{`{"op":"ack","id":1}`},
			wantSeen: []string{"good:sport"}, wantSub: "sport", wantExp: time.Unix(2000000000, 0), wantStill: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, ChannelsConfig{})
			var seen []string
			if !tt.noHook {
				h.SetRefresh(refreshHook(&seen))
			}
			c := newFakeConn()
			c.SetPrincipal(start, startExp)
			send(h, c, tt.before...)
			c.replies()
			send(h, c, tt.in)
			if got := c.replies(); !slices.Equal(got, tt.want) {
				t.Errorf("got replies %q, want %q", got, tt.want)
			}
			if !slices.Equal(seen, tt.wantSeen) {
				t.Errorf("got tokens %q given to the hook, want %q", seen, tt.wantSeen)
			}
			c.mu.Lock()
			exp := c.expires
			c.mu.Unlock()
			if !exp.Equal(tt.wantExp) {
				t.Errorf("got expiry %v, want %v", exp, tt.wantExp)
			}
			if got := h.Subscribers("news"); got != tt.wantStill {
				t.Errorf("got %d subscribers of news, want %d", got, tt.wantStill)
			}
			send(h, c, `{"op":"subscribe","channel":"`+tt.wantSub+`","id":"after"}`)
			if got, want := c.replies(), []string{`{"op":"ack","id":"after"}`}; !slices.Equal(got, want) {
				t.Errorf("subscribe to %s after: got replies %q, want %q", tt.wantSub, got, want)
			}
			h.OnClose(c, 1000, "")
		})
	}
}

// TestChannelsRefreshNilHook checks that SetRefresh(nil) leaves refresh an
// unknown op.
func TestChannelsRefreshNilHook(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{})
	h.SetRefresh(nil)
	c := newFakeConn()
	send(h, c, `{"op":"refresh","token":"x","id":1}`)
	if got, want := c.replies(), []string{errReply("1", "unknown_op")}; !slices.Equal(got, want) {
		t.Errorf("got replies %q, want %q", got, want)
	}
}
