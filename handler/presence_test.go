package handler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/wsconn"
)

func presenceConfig() ChannelsConfig {
	return ChannelsConfig{Rules: []ChannelRule{
		{ChannelOptions: ChannelOptions{Presence: true, JoinLeave: true}},
		{Prefix: "quiet.", ChannelOptions: ChannelOptions{Presence: true}},
	}}
}

// clientID is the presence id of c on h.
func clientID(h *Channels, c *fakeConn) string { return fmt.Sprintf("%s-%d", h.node, c.ID()) }

// TestPresence: presence lists a channel's subscribers with their user and
// client info, presence_stats counts clients and distinct users, both
// follow the subscribe permission, and the answer is cut at MaxPresence.
func TestPresence(t *testing.T) {
	cfg := presenceConfig()
	cfg.MaxPresence = 3
	h := newTestChannels(t, cfg)
	alice1, alice2, bob := newFakeConn(), newFakeConn(), newFakeConn()
	alice1.query = `info=%7B%22name%22%3A%20%22Alice%22%7D&x=1` // {"name": "Alice"}
	alice2.query = `info=not-json`
	alice1.SetPrincipal(&fakePerms{user: "alice", sub: []string{"room"}}, time.Time{})
	alice2.SetPrincipal(&fakePerms{user: "alice", sub: []string{"room"}}, time.Time{})
	bob.SetPrincipal(&fakePerms{user: "bob", sub: []string{"room"}}, time.Time{})
	for _, c := range []*fakeConn{alice1, alice2, bob} {
		send(h, c, `{"op":"subscribe","channel":"room"}`)
	}
	send(h, bob, `{"op":"presence","channel":"room","id":1}`, `{"op":"presence_stats","channel":"room","id":2}`)
	got := bob.replies()
	want := fmt.Sprintf(`{"op":"ack","id":1,"presence":[{"client":"%s","user":"alice","info":{"name":"Alice"}},`+
		`{"client":"%s","user":"alice"},{"client":"%s","user":"bob"}]}`, clientID(h, alice1), clientID(h, alice2), clientID(h, bob))
	if len(got) != 2 || got[0] != want || got[1] != `{"op":"ack","id":2,"clients":3,"users":2}` {
		t.Fatalf("got %q, want %q and the stats", got, want)
	}
	carol := newFakeConn()
	send(h, carol, `{"op":"subscribe","channel":"room"}`, `{"op":"presence","channel":"room","id":3}`)
	if got := carol.replies(); len(got) != 1 || !strings.HasSuffix(got[0], `],"more":true}`) || strings.Count(got[0], `"client"`) != 3 {
		t.Fatalf("past MaxPresence: got %q, want 3 listed and more", got)
	}
	outsider := newFakeConn()
	outsider.SetPrincipal(&fakePerms{user: "eve"}, time.Time{})
	send(h, outsider, `{"op":"presence","channel":"room","id":4}`)
	if got := outsider.replies(); len(got) != 1 || got[0] != errReply("4", CodeForbidden) {
		t.Fatalf("without the subscribe permission: got %q", got)
	}
	send(h, carol, `{"op":"presence","channel":"nobody","id":5}`) // carol: no principal, no limits
	if got := carol.replies(); len(got) != 1 || got[0] != `{"op":"ack","id":5,"presence":[]}` {
		t.Fatalf("an empty channel: got %q", got)
	}
	for _, c := range []*fakeConn{alice1, alice2, bob, carol} {
		h.OnClose(c, 1000, "")
	}
}

// TestJoinLeave: a subscriber that asked for them gets the joins and
// leaves of the others (its own join too, after its ack), by unsubscribe
// and by close; one that did not ask gets none, nor does any on a channel
// whose options have no join and leave.
func TestJoinLeave(t *testing.T) {
	h := newTestChannels(t, presenceConfig())
	listener, plain, other := newFakeConn(), newFakeConn(), newFakeConn()
	send(h, listener, `{"op":"subscribe","channel":"room","id":1,"join_leave":true}`)
	if got := listener.log(); len(got) != 2 || got[0] != `{"op":"ack","id":1}` ||
		got[1] != fmt.Sprintf(`{"channel":"room","join":{"client":"%s"}}`, clientID(h, listener)) {
		t.Fatalf("own subscribe: got %q, want the ack, then the own join", got)
	}
	send(h, plain, `{"op":"subscribe","channel":"room"}`)
	send(h, other, `{"op":"subscribe","channel":"room"}`, `{"op":"unsubscribe","channel":"room"}`)
	send(h, other, `{"op":"subscribe","channel":"room"}`)
	h.OnClose(other, 1000, "")
	want := []string{
		fmt.Sprintf(`{"channel":"room","join":{"client":"%s"}}`, clientID(h, plain)),
		fmt.Sprintf(`{"channel":"room","join":{"client":"%s"}}`, clientID(h, other)),
		fmt.Sprintf(`{"channel":"room","leave":{"client":"%s"}}`, clientID(h, other)),
		fmt.Sprintf(`{"channel":"room","join":{"client":"%s"}}`, clientID(h, other)),
		fmt.Sprintf(`{"channel":"room","leave":{"client":"%s"}}`, clientID(h, other)),
	}
	if got := listener.log(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listener got %q, want %q", got, want)
	}
	if got := plain.pushes(); len(got) != 0 {
		t.Fatalf("a subscriber that did not ask got %d join/leave pushes", len(got))
	}
	if ch := h.Channels(); len(ch) != 1 || ch["room"] != 2 {
		t.Errorf("Channels() shows the internal listeners' channel: %v", ch)
	}
	// Unsubscribed, the listener hears no more.
	send(h, listener, `{"op":"unsubscribe","channel":"room"}`)
	listener.log()
	late := newFakeConn()
	send(h, late, `{"op":"subscribe","channel":"room"}`)
	defer h.OnClose(late, 1000, "")
	if got := listener.log(); len(got) != 0 {
		t.Fatalf("after unsubscribing: got %q", got)
	}
	// No join and leave on quiet.*, even when asked.
	send(h, listener, `{"op":"subscribe","channel":"quiet.room","id":2,"join_leave":true}`)
	send(h, plain, `{"op":"subscribe","channel":"quiet.room"}`)
	if got := listener.log(); len(got) != 1 || got[0] != `{"op":"ack","id":2}` {
		t.Fatalf("quiet channel: got %q, want the ack alone", got)
	}
	h.OnClose(listener, 1000, "")
	h.OnClose(plain, 1000, "")
}

// BenchmarkPresence: one presence answer (1,000 listed) and one
// presence_stats on a channel of 1,000 subscribers, half of them with
// client info.
//
//	go test -run XXX -bench Presence ./handler
func BenchmarkPresence(b *testing.B) {
	h, err := NewChannels(presenceConfig())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		c := newFakeConn()
		if i%2 == 0 {
			c.query = `info=%7B%22name%22%3A%22n` + fmt.Sprint(i) + `%22%7D`
		}
		c.SetPrincipal(&fakePerms{user: fmt.Sprint("u", i%300), sub: []string{"room"}}, time.Time{})
		send(h, c, `{"op":"subscribe","channel":"room"}`)
	}
	asker := newFakeConn()
	asker.discard = true
	for _, op := range []string{"presence", "presence_stats"} {
		b.Run(op, func(b *testing.B) {
			req := []byte(`{"op":"` + op + `","channel":"room","id":1}`)
			b.ReportAllocs()
			for range b.N {
				h.OnMessage(asker, wsconn.Text, req)
			}
		})
	}
}
