package handler

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// storedChannels returns a Channels whose every channel's history is in a
// fakeStore keeping size publications.
func storedChannels(t *testing.T, size int) (*Channels, *fakeStore) {
	t.Helper()
	h := newTestChannels(t, historyConfig(size))
	return h, newFakeStore(t, h, size)
}

// logOf waits until c has been sent n messages and returns them.
func logOf(t *testing.T, c *fakeConn, n int) []string {
	t.Helper()
	var got []string
	waitFor(t, fmt.Sprintf("%d messages", n), func() bool {
		got = append(got, c.log()...)
		return len(got) >= n
	})
	if len(got) > n {
		t.Fatalf("got %d messages, want %d: %q", len(got), n, got)
	}
	return got
}

// storedPublish publishes data to channel through h and returns its
// offset.
func storedPublish(t *testing.T, h *Channels, channel, data string) uint64 {
	t.Helper()
	p, err := h.PublishWithPosition(channel, json.RawMessage(data))
	if err != nil {
		t.Fatal(err)
	}
	if p.Delivered != -1 || p.Position.Offset == 0 || p.Position.Epoch != "e1" {
		t.Fatalf("publish: got %+v, want delivered -1 and a position", p)
	}
	return p.Position.Offset
}

// TestStoredPublishSubscribe: with a StoreBroker, a subscribe is answered
// with the store's position, a publish op is acked once stored with its
// offset, and the push comes through the store with the same offset.
func TestStoredPublishSubscribe(t *testing.T) {
	h, _ := storedChannels(t, 10)
	storedPublish(t, h, "other", "0") // offsets are the store's, shared by all channels
	first := storedPublish(t, h, "room", "1")
	c := newFakeConn()
	send(h, c, `{"op":"subscribe","channel":"room","id":1}`)
	if got, want := logOf(t, c, 1)[0], fmt.Sprintf(`{"op":"ack","id":1,"offset":%d,"epoch":"e1"}`, first); got != want {
		t.Fatalf("subscribe: got %s, want %s", got, want)
	}
	send(h, c, `{"op":"publish","channel":"room","id":2,"data":"hi"}`)
	got := logOf(t, c, 2)
	want := []string{
		fmt.Sprintf(`{"op":"ack","id":2,"offset":%d,"epoch":"e1"}`, first+1),
		fmt.Sprintf(`{"channel":"room","offset":%d,"data":"hi"}`, first+1),
	}
	// The ack and the push travel apart: either may come first.
	if !(got[0] == want[0] && got[1] == want[1] || got[0] == want[1] && got[1] == want[0]) {
		t.Fatalf("publish: got %q, want %q in either order", got, want)
	}
	// Subscribed and synced: a second connection is answered at once.
	d := newFakeConn()
	send(h, d, `{"op":"subscribe","channel":"room","id":3}`)
	if got := d.log(); len(got) != 1 || got[0] != fmt.Sprintf(`{"op":"ack","id":3,"offset":%d,"epoch":"e1"}`, first+1) {
		t.Fatalf("second subscribe: got %q, want the ack at once", got)
	}
	h.OnClose(c, 1000, "")
	h.OnClose(d, 1000, "")
}

// TestStoredRecovery: a recovery through the store replays what the
// client missed, in order, then live; the ack says why when it cannot.
func TestStoredRecovery(t *testing.T) {
	tests := []struct {
		name    string
		from    int    // index of the publication recovered from; -1: offset 0
		epoch   string // "": the store's
		offset  uint64 // used when from is -2
		reason  string // "": recovered
		replays int
	}{
		{name: "missed four", from: 1, replays: 4},
		{name: "missed none", from: 5, replays: 0},
		{name: "from zero", from: -1, replays: 6},
		{name: "epoch changed", from: 1, epoch: "other", reason: "epoch_changed"},
		{name: "too old", from: -2, offset: 1, reason: "offset_too_old"},
		{name: "ahead", from: -2, offset: 1000, reason: "offset_ahead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := storedChannels(t, 8)
			storedPublish(t, h, "room", `"gone"`) // offset 1; the second channel's publications push it out below
			for range 8 {
				storedPublish(t, h, "room", `"old"`)
			}
			var offs []uint64
			for i := range 6 {
				offs = append(offs, storedPublish(t, h, "room", strconv.Itoa(i)))
			}
			var from uint64
			switch tt.from {
			case -1:
				from = 0
			case -2:
				from = tt.offset
			default:
				from = offs[tt.from]
			}
			if tt.from == -1 {
				// From offset 0 only with fewer kept than the size: a new channel.
				h, _ = storedChannels(t, 8)
				offs = nil
				for i := range 6 {
					offs = append(offs, storedPublish(t, h, "room", strconv.Itoa(i)))
				}
			}
			epoch := "e1"
			if tt.epoch != "" {
				epoch = tt.epoch
			}
			c := newFakeConn()
			send(h, c, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":1,"recover":{"offset":%d,"epoch":"%s"}}`, from, epoch))
			got := logOf(t, c, 1+tt.replays)
			top := offs[len(offs)-1]
			wantAck := fmt.Sprintf(`{"op":"ack","id":1,"offset":%d,"epoch":"e1","recovered":true}`, top)
			if tt.reason != "" {
				wantAck = fmt.Sprintf(`{"op":"ack","id":1,"offset":%d,"epoch":"e1","recovered":false,"reason":"%s"}`, top, tt.reason)
			}
			if got[0] != wantAck {
				t.Fatalf("ack: got %s, want %s", got[0], wantAck)
			}
			for i, m := range got[1:] {
				k := len(offs) - tt.replays + i
				if want := fmt.Sprintf(`{"channel":"room","offset":%d,"data":%d}`, offs[k], k); m != want {
					t.Errorf("replay %d: got %s, want %s", i, m, want)
				}
			}
			// Then live.
			next := storedPublish(t, h, "room", `"live"`)
			if got := logOf(t, c, 1)[0]; got != fmt.Sprintf(`{"channel":"room","offset":%d,"data":"live"}`, next) {
				t.Fatalf("live: got %s", got)
			}
			h.OnClose(c, 1000, "")
		})
	}
}

// TestStoredTooMany: a recovery past MaxReplay replays nothing.
func TestStoredTooMany(t *testing.T) {
	cfg := historyConfig(100)
	cfg.MaxReplay = 3
	h := newTestChannels(t, cfg)
	newFakeStore(t, h, 100)
	from := storedPublish(t, h, "room", "0")
	for i := range 5 {
		storedPublish(t, h, "room", strconv.Itoa(i+1))
	}
	c := newFakeConn()
	send(h, c, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":1,"recover":{"offset":%d,"epoch":"e1"}}`, from))
	if got := logOf(t, c, 1)[0]; !strings.Contains(got, `"recovered":false,"reason":"too_many"`) {
		t.Fatalf("got %s, want too_many", got)
	}
	if s := h.Stats(); s.Unrecovered != 1 || s.Replayed != 0 {
		t.Errorf("stats: %+v", s)
	}
	h.OnClose(c, 1000, "")
}

// TestStoredGapFill: deliveries this process lost are fetched from the
// store, so subscribers get every publication once and in order.
func TestStoredGapFill(t *testing.T) {
	h, s := storedChannels(t, 100)
	c := newFakeConn()
	send(h, c, `{"op":"subscribe","channel":"room","id":1}`)
	logOf(t, c, 1)
	var offs []uint64
	offs = append(offs, storedPublish(t, h, "room", "0"))
	s.set(func(s *fakeStore) { s.drop = 2 })
	for i := 1; i < 5; i++ {
		offs = append(offs, storedPublish(t, h, "room", strconv.Itoa(i)))
	}
	got := logOf(t, c, 5)
	for i, m := range got {
		if want := fmt.Sprintf(`{"channel":"room","offset":%d,"data":%d}`, offs[i], i); m != want {
			t.Errorf("push %d: got %s, want %s", i, m, want)
		}
	}
	if st := h.Stats(); st.StoreGaps != 1 {
		t.Errorf("got %d gaps, want 1", st.StoreGaps)
	}
	h.OnClose(c, 1000, "")
}

// TestStoredRecoveryWithConcurrentPublisher: publications made while a
// recovery fetches and joins reach the client once each, in order.
func TestStoredRecoveryWithConcurrentPublisher(t *testing.T) {
	h, _ := storedChannels(t, 10000)
	live := newFakeConn() // keeps the channel subscribed on this process
	send(h, live, `{"op":"subscribe","channel":"room","id":0}`)
	logOf(t, live, 1)
	from := storedPublish(t, h, "room", "0")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 500; i++ { // bounded: fewer than MaxReplay
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.PublishWithPosition("room", json.RawMessage(strconv.Itoa(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var cs []*fakeConn
	for i := range 20 {
		c := newFakeConn()
		cs = append(cs, c)
		send(h, c, fmt.Sprintf(`{"op":"subscribe","channel":"room","id":%d,"recover":{"offset":%d,"epoch":"e1"}}`, i+1, from))
	}
	waitFor(t, "the recoveries", func() bool { return h.Stats().Recoveries+h.Stats().Unrecovered == 20 })
	close(stop)
	wg.Wait()
	last := storedPublish(t, h, "room", `"end"`)
	for i, c := range cs {
		var seen uint64 = from
		waitFor(t, "the last publication", func() bool {
			for _, m := range c.log() {
				var p struct {
					Op        string
					Offset    uint64
					Recovered *bool
				}
				if err := json.Unmarshal([]byte(m), &p); err != nil {
					t.Fatal(err)
				}
				if p.Op == "ack" {
					if p.Recovered == nil || !*p.Recovered {
						t.Fatalf("client %d: %s", i, m)
					}
					continue
				}
				if p.Offset <= seen {
					t.Fatalf("client %d: offset %d after %d: doubled or out of order", i, p.Offset, seen)
				}
				seen = p.Offset
			}
			return seen == last
		})
	}
	// Every offset once: the live subscriber saw them all, as the store numbered them.
	h.OnClose(live, 1000, "")
	for _, c := range cs {
		h.OnClose(c, 1000, "")
	}
}

// TestStoredFailures: a store that does not answer makes publish and
// subscribe answer unavailable, and nothing is acked or subscribed; a
// full job queue answers busy.
func TestStoredFailures(t *testing.T) {
	h, s := storedChannels(t, 10)
	s.set(func(s *fakeStore) { s.down = true })
	c := newFakeConn()
	send(h, c, `{"op":"publish","channel":"room","id":1,"data":1}`)
	if got := logOf(t, c, 1)[0]; got != errReply("1", CodeUnavailable) {
		t.Fatalf("publish: got %s", got)
	}
	if _, err := h.PublishWithPosition("room", json.RawMessage("1")); err == nil {
		t.Fatal("PublishWithPosition: want ErrUnavailable")
	}
	send(h, c, `{"op":"subscribe","channel":"room","id":2}`)
	if got := logOf(t, c, 1)[0]; got != errReply("2", CodeUnavailable) {
		t.Fatalf("subscribe: got %s", got)
	}
	send(h, c, `{"op":"history","channel":"room","id":3}`)
	if got := logOf(t, c, 1)[0]; got != errReply("3", CodeUnavailable) {
		t.Fatalf("history: got %s", got)
	}
	if h.Subscribers("room") != 0 {
		t.Fatal("subscribed with the store down")
	}
	// Unsubscribe and close while a subscribe waits: nothing joins.
	hold := make(chan struct{})
	s.set(func(s *fakeStore) { s.down, s.hold = false, hold })
	send(h, c, `{"op":"subscribe","channel":"a","id":4}`, `{"op":"unsubscribe","channel":"a","id":5}`)
	if got := logOf(t, c, 1)[0]; got != `{"op":"ack","id":5}` {
		t.Fatalf("unsubscribe while pending: got %s", got)
	}
	d := newFakeConn()
	send(h, d, `{"op":"subscribe","channel":"b","id":6}`)
	h.OnClose(d, 1000, "")
	close(hold)
	waitFor(t, "the jobs", func() bool { return h.jobs.waiting() == 0 })
	if h.Subscribers("a") != 0 || h.Subscribers("b") != 0 || len(c.log()) != 0 || len(d.log()) != 0 {
		t.Fatal("a cancelled subscribe joined or answered")
	}
	h.OnClose(c, 1000, "")
}

// TestStoredBusy: past MaxStoreJobs running and MaxStoreQueue waiting, a
// subscribe is answered busy at once.
func TestStoredBusy(t *testing.T) {
	cfg := historyConfig(10)
	cfg.MaxStoreJobs, cfg.MaxStoreQueue = 1, 1
	h := newTestChannels(t, cfg)
	s := newFakeStore(t, h, 10)
	hold := make(chan struct{})
	s.set(func(s *fakeStore) { s.hold = hold })
	c := newFakeConn()
	send(h, c, `{"op":"subscribe","channel":"a","id":1}`, `{"op":"subscribe","channel":"b","id":2}`,
		`{"op":"subscribe","channel":"c","id":3}`)
	if got := logOf(t, c, 1)[0]; got != errReply("3", CodeBusy) {
		t.Fatalf("third subscribe: got %s, want busy", got)
	}
	close(hold)
	got := logOf(t, c, 2)
	if len(got) != 2 || !strings.HasPrefix(got[0], `{"op":"ack"`) || !strings.HasPrefix(got[1], `{"op":"ack"`) {
		t.Fatalf("after the store answered: got %q, want two acks", got)
	}
	h.OnClose(c, 1000, "")
}

// TestStoredHistory: the history op and Channels.History read the store.
func TestStoredHistory(t *testing.T) {
	h, _ := storedChannels(t, 50)
	var offs []uint64
	for i := range 30 {
		offs = append(offs, storedPublish(t, h, "room", strconv.Itoa(i)))
	}
	pos, pushes, err := h.History("room", nil, 5)
	if err != nil || pos.Offset != offs[29] || len(pushes) != 5 {
		t.Fatalf("last 5: %+v %d %v", pos, len(pushes), err)
	}
	if got, want := string(pushes[0]), fmt.Sprintf(`{"channel":"room","offset":%d,"data":25}`, offs[25]); got != want {
		t.Errorf("last 5, first: got %s, want %s", got, want)
	}
	_, pushes, err = h.History("room", &Position{Offset: offs[9], Epoch: "e1"}, 3)
	if err != nil || len(pushes) != 3 || !strings.Contains(string(pushes[0]), `"data":10`) {
		t.Fatalf("after the 10th: %q %v", pushes, err)
	}
	if _, _, err := h.History("room", &Position{Offset: offs[9], Epoch: "zz"}, 3); err != ErrEpochChanged {
		t.Errorf("other epoch: got %v", err)
	}
	c := newFakeConn()
	send(h, c, `{"op":"history","channel":"room","id":1,"limit":2}`)
	if got := logOf(t, c, 1)[0]; !strings.Contains(got, fmt.Sprintf(`"offset":%d`, offs[28])) || !strings.Contains(got, `"data":29`) {
		t.Errorf("history op: got %s", got)
	}
}
