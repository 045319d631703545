package handler

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/wsgate/wsgate/wsconn"
)

// FuzzChannelsProtocol feeds arbitrary text to Channels, one message per
// line, and checks that it never panics, that every reply and push is
// valid JSON in valid UTF-8, that each message gets at most one reply, and
// that closing the connection leaves the hub empty. Channels starting with
// "a" keep a history of 4, and a recovery replays at most 3.
func FuzzChannelsProtocol(f *testing.F) {
	for _, seed := range []string{
		`{"op":"subscribe","channel":"news","id":"1"}` + "\n" + `{"op":"publish","channel":"news","data":{"a":1},"id":2}`,
		`{"op":"subscribe","channel":"a"}` + "\n" + `{"op":"subscribe","channel":"b"}` + "\n" + `{"op":"subscribe","channel":"c","id":3}`,
		`{"op":"unsubscribe","channel":"news","id":2.5e1}`,
		`{"op":"publish","channel":"news","data":null}`,
		`{"op":1,"id":"x"}`,
		`{"op":"subscribe","channel":"a b","id":"\u00e9"}`,
		`[1,2]`, `null`, `{`, ``, `{"id":true}`, `{"op":"shout"}`,
		`{"op":"publish","channel":"a","data":1}` + "\n" + `{"op":"subscribe","channel":"a","id":1,"recover":{"offset":0,"epoch":""}}`,
		`{"op":"subscribe","channel":"a","id":1,"recover":{"offset":-1,"epoch":"x"}}`,
		`{"op":"subscribe","channel":"a","id":1,"recover":{"offset":18446744073709551615,"epoch":"x"}}`,
		`{"op":"subscribe","channel":"a","recover":7}`,
		`{"op":"history","channel":"a","id":1,"limit":1000000}`,
		`{"op":"history","channel":"a","id":1,"after":{"offset":1,"epoch":"y"},"limit":-5}`,
		`{"op":"history","channel":"nohist","id":1}`,
		`{"op":"presence","channel":"a","id":1}`,
		`{"op":"presence_stats","channel":"a","id":[1]}`,
		`{"op":"subscribe","channel":"a","id":1,"join_leave":true}`,
		`{"op":"subscribe","channel":"a","join_leave":"yes"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h := newTestChannels(t, ChannelsConfig{MaxSubscriptions: 2, MaxChannelLen: 8, Shards: 2,
			Rules: []ChannelRule{{Prefix: "a", ChannelOptions: ChannelOptions{HistorySize: 4, Presence: true, JoinLeave: true}}}, MaxReplay: 3})
		c := newFakeConn()
		for _, msg := range bytes.Split(in, []byte("\n")) {
			if !utf8.Valid(msg) {
				continue // the server rejects invalid text before a Handler sees it
			}
			h.OnMessage(c, wsconn.Text, msg)
			replies := c.replies()
			if len(replies) > 1 {
				t.Fatalf("message %q: got %d replies, want at most 1", msg, len(replies))
			}
			for _, r := range replies {
				checkJSONText(t, "reply", r)
			}
			for _, m := range c.pushes() {
				checkJSONText(t, "push", payload(t, m))
			}
		}
		h.OnClose(c, 1000, "")
		if s := h.Stats(); s.HistoryEntries > 4*int64(s.HistoryChannels) || s.Replayed > 3*(s.Recoveries) {
			t.Fatalf("history past its bounds: %+v", s)
		}
		if s := h.Stats(); s.Subscriptions != 0 || s.Channels != 0 {
			t.Fatalf("after close: got stats %+v, want no subscriptions or channels", s)
		}
	})
}

// checkJSONText fails unless s is valid UTF-8 holding one JSON object.
func checkJSONText(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) || !json.Valid([]byte(s)) || s[0] != '{' {
		t.Fatalf("got %s %q, want a JSON object in valid UTF-8", what, s)
	}
}
