package handler

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wsproto"
	"github.com/wsgate/wsgate/wsconn"
)

// historyConfig keeps size publications of every channel.
func historyConfig(size int) ChannelsConfig {
	return ChannelsConfig{Rules: []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: size}}}}
}

// ackOf decodes an ack reply.
type ackOf struct {
	Op           string            `json:"op"`
	Offset       uint64            `json:"offset"`
	Epoch        string            `json:"epoch"`
	Recovered    *bool             `json:"recovered"`
	Reason       string            `json:"reason"`
	Code         string            `json:"code"`
	Publications []json.RawMessage `json:"publications"`
}

// oneReply returns the only reply c got, decoded.
func oneReply(t *testing.T, c *fakeConn) ackOf {
	t.Helper()
	rs := c.replies()
	if len(rs) != 1 {
		t.Fatalf("got replies %q, want one", rs)
	}
	var a ackOf
	if err := json.Unmarshal([]byte(rs[0]), &a); err != nil {
		t.Fatalf("reply %s: %v", rs[0], err)
	}
	return a
}

// pushedOffsets returns the offsets and data of the pushes c got.
func pushedOffsets(t *testing.T, c *fakeConn) (offsets []uint64, data []string) {
	t.Helper()
	for _, m := range c.pushes() {
		var p struct {
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(payload(t, m)), &p); err != nil {
			t.Fatalf("push %s: %v", payload(t, m), err)
		}
		offsets = append(offsets, p.Offset)
		data = append(data, string(p.Data))
	}
	return offsets, data
}

// publishN publishes the numbers from..to-1 to channel and returns the
// last position.
func publishN(t *testing.T, h *Channels, channel string, from, to int) Position {
	t.Helper()
	var p Published
	for i := from; i < to; i++ {
		var err error
		if p, err = h.PublishWithPosition(channel, json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	return p.Position
}

func TestPublishPositions(t *testing.T) {
	h := newTestChannels(t, historyConfig(10))
	var last Position
	for i := 1; i <= 3; i++ {
		p, err := h.PublishWithPosition("a", json.RawMessage(`1`))
		if err != nil {
			t.Fatal(err)
		}
		if p.Position.Offset != uint64(i) || p.Position.Epoch == "" || (last.Epoch != "" && p.Position.Epoch != last.Epoch) {
			t.Fatalf("publish %d: got position %+v after %+v, want offset %d in one epoch", i, p.Position, last, i)
		}
		last = p.Position
	}
	if p, _ := h.PublishWithPosition("b", json.RawMessage(`1`)); p.Position.Offset != 1 || p.Position.Epoch == last.Epoch {
		t.Errorf("other channel: got %+v, want offset 1 in its own epoch", p.Position)
	}
	off := newTestChannels(t, ChannelsConfig{})
	if p, _ := off.PublishWithPosition("a", json.RawMessage(`1`)); p.Position != (Position{}) {
		t.Errorf("history off: got position %+v, want none", p.Position)
	}
	// A client's publish is acked with its position.
	c := newFakeConn()
	send(h, c, `{"op":"publish","channel":"a","data":2,"id":1}`)
	if a := oneReply(t, c); a.Offset != 4 || a.Epoch != last.Epoch {
		t.Errorf("publish ack: got %+v, want offset 4 epoch %s", a, last.Epoch)
	}
}

func TestRecovery(t *testing.T) {
	tests := []struct {
		name      string
		cfg       ChannelsConfig
		published int
		recover   func(pos Position) string // the recover field, from the position after 5 publications
		wantOK    bool
		reason    string
		replayed  []uint64
	}{
		{name: "everything after the offset", cfg: historyConfig(100), published: 10,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":%d,"epoch":"%s"}`, p.Offset, p.Epoch) },
			wantOK:  true, replayed: []uint64{6, 7, 8, 9, 10}},
		{name: "nothing missed", cfg: historyConfig(100), published: 5,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":%d,"epoch":"%s"}`, p.Offset, p.Epoch) },
			wantOK:  true},
		{name: "from the start", cfg: historyConfig(100), published: 5,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":0,"epoch":"%s"}`, p.Epoch) },
			wantOK:  true, replayed: []uint64{1, 2, 3, 4, 5}},
		{name: "epoch changed", cfg: historyConfig(100), published: 10,
			recover: func(p Position) string { return `{"offset":5,"epoch":"gone"}` },
			reason:  wsproto.ReasonEpochChanged},
		{name: "no epoch", cfg: historyConfig(100), published: 10,
			recover: func(p Position) string { return `{"offset":5}` },
			reason:  wsproto.ReasonEpochChanged},
		{name: "offset too old", cfg: historyConfig(3), published: 10,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":%d,"epoch":"%s"}`, p.Offset, p.Epoch) },
			reason:  wsproto.ReasonOffsetTooOld},
		{name: "offset ahead", cfg: historyConfig(100), published: 10,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":99,"epoch":"%s"}`, p.Epoch) },
			reason:  wsproto.ReasonOffsetAhead},
		{name: "offset ahead, huge", cfg: historyConfig(100), published: 10,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":18446744073709551615,"epoch":"%s"}`, p.Epoch) },
			reason:  wsproto.ReasonOffsetAhead},
		{name: "more than one recovery replays", cfg: func() ChannelsConfig { c := historyConfig(100); c.MaxReplay = 4; return c }(), published: 10,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":%d,"epoch":"%s"}`, p.Offset, p.Epoch) },
			reason:  wsproto.ReasonTooMany},
		{name: "more bytes than one recovery replays", cfg: func() ChannelsConfig { c := historyConfig(100); c.MaxReplayBytes = 20; return c }(), published: 10,
			recover: func(p Position) string { return fmt.Sprintf(`{"offset":%d,"epoch":"%s"}`, p.Offset, p.Epoch) },
			reason:  wsproto.ReasonTooMany},
		{name: "history off", cfg: ChannelsConfig{}, published: 10,
			recover: func(p Position) string { return `{"offset":5,"epoch":"x"}` },
			reason:  wsproto.ReasonHistoryOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, tt.cfg)
			pos := publishN(t, h, "room", 1, 6)
			publishN(t, h, "room", 6, tt.published+1)
			c := newFakeConn()
			send(h, c, `{"op":"subscribe","channel":"room","id":1,"recover":`+tt.recover(pos)+`}`)
			a := oneReply(t, c)
			if a.Op != "ack" || a.Recovered == nil || *a.Recovered != tt.wantOK || a.Reason != tt.reason {
				t.Fatalf("got reply %+v, want an ack with recovered %v reason %q", a, tt.wantOK, tt.reason)
			}
			if tt.reason != wsproto.ReasonHistoryOff && (a.Offset != uint64(tt.published) || a.Epoch != pos.Epoch) {
				t.Errorf("got ack position %d %s, want %d %s", a.Offset, a.Epoch, tt.published, pos.Epoch)
			}
			offsets, _ := pushedOffsets(t, c)
			if fmt.Sprint(offsets) != fmt.Sprint(tt.replayed) {
				t.Errorf("got replayed offsets %v, want %v", offsets, tt.replayed)
			}
			// Subscribed either way: the next publication arrives live.
			publishN(t, h, "room", 0, 1)
			if offsets, _ := pushedOffsets(t, c); len(offsets) != 1 {
				t.Errorf("got %d live pushes after the ack, want 1", len(offsets))
			}
			s := h.Stats()
			if tt.wantOK && (s.Recoveries != 1 || s.Replayed != uint64(len(tt.replayed))) || !tt.wantOK && s.Unrecovered != 1 {
				t.Errorf("got stats %+v", s)
			}
			h.OnClose(c, 1000, "")
		})
	}
}

// TestRecoveryBadFields checks that recover values of the wrong type are
// bad_json, with nothing subscribed.
func TestRecoveryBadFields(t *testing.T) {
	h := newTestChannels(t, historyConfig(10))
	for _, rec := range []string{`{"offset":-1,"epoch":"x"}`, `{"offset":1e30,"epoch":"x"}`, `{"offset":"1"}`,
		`{"offset":1,"epoch":7}`, `5`, `"x"`, `[1]`, `{"offset":1.5}`, `{"offset":18446744073709551616}`} {
		c := newFakeConn()
		send(h, c, `{"op":"subscribe","channel":"a","id":1,"recover":`+rec+`}`)
		if a := oneReply(t, c); a.Code != CodeBadJSON {
			t.Errorf("recover %s: got %+v, want bad_json", rec, a)
		}
		if h.Subscribers("a") != 0 {
			t.Fatalf("recover %s: subscribed anyway", rec)
		}
	}
	c := newFakeConn()
	send(h, c, `{"op":"history","channel":"a","limit":-1,"id":1}`)
	if a := oneReply(t, c); a.Code != CodeBadJSON {
		t.Errorf("negative limit: got %+v, want bad_json", a)
	}
}

// TestRecoveryWithConcurrentPublisher recovers while another goroutine
// publishes: the recovering client gets every offset once and in order,
// replay and live pushes joined with nothing between.
func TestRecoveryWithConcurrentPublisher(t *testing.T) {
	const before, during = 200, 2000
	cfg := historyConfig(before + during)
	// The publisher may be anywhere in its run when the subscribe reads
	// the history: the replay must be allowed all of it, or how far it
	// got decides between recovered and too_many.
	cfg.MaxReplay = before + during
	h := newTestChannels(t, cfg)
	pos := publishN(t, h, "room", 1, 2)
	publishN(t, h, "room", 2, before+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range during {
			if _, err := h.Publish("room", json.RawMessage(strconv.Itoa(i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	c := newFakeConn()
	send(h, c, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":1,"recover":{"offset":%d,"epoch":"%s"}}`, pos.Offset, pos.Epoch))
	wg.Wait()
	if a := oneReply(t, c); a.Recovered == nil || !*a.Recovered {
		t.Fatalf("got %+v, want recovered", a)
	}
	offsets, _ := pushedOffsets(t, c)
	for i, off := range offsets {
		if off != uint64(i)+2 {
			t.Fatalf("push %d has offset %d, want %d (got %d pushes)", i, off, i+2, len(offsets))
		}
	}
	if len(offsets) != before+during-1 {
		t.Fatalf("got %d pushes, want %d", len(offsets), before+during-1)
	}
	h.OnClose(c, 1000, "")
}

func TestHistoryEviction(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{Rules: []ChannelRule{
		{Prefix: "size:", ChannelOptions: ChannelOptions{HistorySize: 3}},
		{Prefix: "bytes:", ChannelOptions: ChannelOptions{HistorySize: 100, HistoryBytes: 100}},
		{Prefix: "ttl:", ChannelOptions: ChannelOptions{HistorySize: 100, HistoryTTL: time.Hour}},
	}})
	publishN(t, h, "size:a", 1, 11)
	if _, pushes, _ := h.History("size:a", nil, 0); len(pushes) != 3 {
		t.Errorf("size 3: got %d kept", len(pushes))
	}
	publishN(t, h, "bytes:a", 1, 51) // frames of 33-34 bytes: two fit in 100
	if _, pushes, _ := h.History("bytes:a", nil, 0); len(pushes) != 2 {
		t.Errorf("100 bytes: got %d kept, %q", len(pushes), pushes)
	}
	if _, err := h.PublishWithPosition("bytes:a", json.RawMessage(`"`+string(make([]byte, 200))+`"`)); err == nil {
		t.Fatal("want bad data for NULs") // not JSON text: checks the guard, not eviction
	}
	big := `"` + fmt.Sprintf("%0200d", 0) + `"`
	if _, err := h.PublishWithPosition("bytes:a", json.RawMessage(big)); err != nil {
		t.Fatal(err)
	}
	if _, pushes, _ := h.History("bytes:a", nil, 0); len(pushes) != 1 {
		t.Errorf("one publication past the byte cap: got %d kept, want it alone", len(pushes))
	}
	pos := publishN(t, h, "ttl:a", 1, 6)
	h.Sweep(time.Now().Add(90 * time.Minute))
	if p, pushes, _ := h.History("ttl:a", nil, 0); len(pushes) != 0 || p != pos {
		t.Errorf("after the TTL: got %d kept at %+v, want none at %+v", len(pushes), p, pos)
	}
	c := newFakeConn()
	send(h, c, fmt.Sprintf(`{"op":"subscribe","channel":"ttl:a","id":1,"recover":{"offset":2,"epoch":"%s"}}`, pos.Epoch))
	if a := oneReply(t, c); a.Reason != wsproto.ReasonOffsetTooOld {
		t.Errorf("recovering after the TTL: got %+v, want offset_too_old", a)
	}
	h.OnClose(c, 1000, "")
	h.Sweep(time.Now().Add(DefaultHistoryMetaTTL + 3*time.Hour))
	if s := h.Stats(); s.HistoryChannels != 0 || s.HistoryEntries != 0 || s.HistoryBytes != 0 {
		t.Errorf("after the meta TTL: got stats %+v, want no history", s)
	}
	if p, _, _ := h.History("ttl:a", nil, 0); p != (Position{}) {
		t.Errorf("after the meta TTL: got position %+v, want none", p)
	}
	if _, _, err := h.History("other", nil, 0); err != ErrHistoryOff {
		t.Errorf("channel no rule matches: got %v, want ErrHistoryOff", err)
	}
}

// TestOnTick: the timer tick sweeps one shard at a time, every shard once
// in Shards ticks, and skips a stream whose lock is held instead of
// waiting for it.
func TestOnTick(t *testing.T) {
	cfg := historyConfig(10)
	cfg.Shards = 4
	cfg.Rules[0].HistoryTTL = time.Hour
	h := newTestChannels(t, cfg)
	for i := range 40 {
		publishN(t, h, fmt.Sprint("ch", i), 1, 3)
	}
	held := h.history.lookup("ch0")
	held.mu.Lock()
	later := time.Now().Add(90 * time.Minute)
	h.OnTick(later) // one shard of four
	if n := h.Stats().HistoryEntries; n == 0 || n == 80 {
		t.Errorf("after one tick: %d entries kept, want one shard's swept", n)
	}
	for range cfg.Shards - 1 {
		h.OnTick(later)
	}
	if n := h.Stats().HistoryEntries; n != 2 {
		t.Errorf("after a tick per shard, with ch0 locked: %d entries kept, want ch0's 2", n)
	}
	held.mu.Unlock()
	for range cfg.Shards {
		h.OnTick(later)
	}
	if n := h.Stats().HistoryEntries; n != 0 {
		t.Errorf("after another round: %d entries kept, want none", n)
	}
}

func TestHistoryOp(t *testing.T) {
	cfg := historyConfig(100)
	cfg.MaxHistoryLimit = 5
	h := newTestChannels(t, cfg)
	pos := publishN(t, h, "room", 1, 21)
	tests := []struct {
		req  string
		want []uint64
		code string
	}{
		{req: `"limit":3`, want: []uint64{18, 19, 20}},
		{req: `"limit":50`, want: []uint64{16, 17, 18, 19, 20}}, // MaxHistoryLimit
		{req: `"limit":0`, want: []uint64{16, 17, 18, 19, 20}},
		{req: `"after":{"offset":10,"epoch":"E"},"limit":2`, want: []uint64{11, 12}},
		{req: `"after":{"offset":17,"epoch":"E"}`, want: []uint64{18, 19, 20}},
		{req: `"after":{"offset":20,"epoch":"E"}`, want: nil},
		{req: `"after":{"offset":99,"epoch":"E"}`, want: nil},
		{req: `"after":{"offset":1,"epoch":"other"}`, code: CodeEpochChanged},
	}
	for _, tt := range tests {
		c := newFakeConn()
		h.OnMessage(c, wsconn.Text, []byte(strings.ReplaceAll(`{"op":"history","channel":"room","id":1,`+tt.req+`}`, `"E"`, `"`+pos.Epoch+`"`)))
		a := oneReply(t, c)
		if a.Code != tt.code {
			t.Errorf("%s: got %+v, want code %q", tt.req, a, tt.code)
			continue
		}
		if tt.code != "" {
			continue
		}
		var got []uint64
		for _, p := range a.Publications {
			var push struct {
				Channel string `json:"channel"`
				Offset  uint64 `json:"offset"`
			}
			if err := json.Unmarshal(p, &push); err != nil || push.Channel != "room" {
				t.Fatalf("%s: publication %s: %v", tt.req, p, err)
			}
			got = append(got, push.Offset)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || a.Offset != 20 || a.Epoch != pos.Epoch {
			t.Errorf("%s: got offsets %v at %d %s, want %v at 20 %s", tt.req, got, a.Offset, a.Epoch, tt.want, pos.Epoch)
		}
	}
	// History follows the subscribe permission.
	c := newFakeConn()
	c.SetPrincipal(&fakePerms{sub: []string{"news"}}, time.Time{})
	send(h, c, `{"op":"history","channel":"room","id":1}`)
	if a := oneReply(t, c); a.Code != CodeForbidden {
		t.Errorf("without permission: got %+v, want forbidden", a)
	}
}

// TestHistoryCaps: past MaxHistoryChannels a new channel publishes as with
// history off, the channels that have one keep it; past MaxHistoryBytes
// the publishing channel gives its oldest first, and the sweep halves the
// others, each keeping its newest.
func TestHistoryCaps(t *testing.T) {
	cfg := historyConfig(100)
	cfg.MaxHistoryChannels = 2
	h := newTestChannels(t, cfg)
	publishN(t, h, "a", 1, 2)
	publishN(t, h, "b", 1, 2)
	if p, err := h.PublishWithPosition("c", json.RawMessage("1")); err != nil || p.Position != (Position{}) {
		t.Fatalf("third channel past the cap: got %+v %v, want no position", p, err)
	}
	if p := publishN(t, h, "a", 2, 3); p.Offset != 2 {
		t.Fatalf("a channel under the cap: got %+v, want offset 2", p)
	}
	c := newFakeConn()
	send(h, c, `{"op":"subscribe","channel":"d","id":1,"recover":{"offset":1,"epoch":"x"}}`)
	if a := oneReply(t, c); a.Reason != wsproto.ReasonHistoryOff {
		t.Errorf("recovering past the cap: got %+v, want history_off", a)
	}
	if s := h.Stats(); s.HistoryFull != 2 || s.HistoryChannels != 2 {
		t.Errorf("stats: %+v", s)
	}
	h.OnClose(c, 1000, "")

	cfg = historyConfig(1000)
	cfg.MaxHistoryBytes = 2000 // about 60 frames of 33 bytes
	cfg.Shards = 1
	h = newTestChannels(t, cfg)
	publishN(t, h, "a", 1, 101)
	if s := h.Stats(); s.HistoryBytes > 2000 || s.HistoryEntries < 50 {
		t.Fatalf("one channel past the cap: %+v, want at most 2000 bytes, the newest kept", s)
	}
	publishN(t, h, "b", 1, 2)
	h.OnTick(time.Now())
	_, pushes, _ := h.History("a", nil, 100)
	if s := h.Stats(); len(pushes) > 35 || s.HistoryBytes > 2000 {
		t.Fatalf("after a sweep past the cap: a keeps %d, stats %+v; want it halved", len(pushes), s)
	}
	if _, pushes, _ := h.History("b", nil, 0); len(pushes) != 1 {
		t.Fatalf("b: got %d kept, want its newest", len(pushes))
	}
}
