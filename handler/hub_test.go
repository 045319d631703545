package handler

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/wsconn"
)

func TestChannelsDelivery(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{})
	pub, sub, other, bystander := newFakeConn(), newFakeConn(), newFakeConn(), newFakeConn()
	send(h, pub, `{"op":"subscribe","channel":"news"}`)
	send(h, sub, `{"op":"subscribe","channel":"news"}`)
	send(h, other, `{"op":"subscribe","channel":"sport"}`)
	send(h, pub, `{"op":"publish","channel":"news","data":[1],"id":1}`)

	const want = `{"channel":"news","data":[1]}`
	tests := []struct {
		name string
		conn *fakeConn
		want []string
	}{
		{name: "publisher receives its own publish", conn: pub, want: []string{want}},
		{name: "subscriber", conn: sub, want: []string{want}},
		{name: "subscriber of another channel", conn: other},
		{name: "not subscribed", conn: bystander},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, m := range tt.conn.pushes() {
				got = append(got, payload(t, m))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got pushes %q, want %q", got, tt.want)
			}
		})
	}
	if got, want := pub.replies(), `{"op":"ack","id":1,"delivered":2}`; len(got) != 1 || got[0] != want {
		t.Errorf("got publisher replies %q, want [%s]", got, want)
	}
}

// TestChannelsSerialiseOnce checks that one publish hands the same
// PreparedMessage to every subscriber (docs/design.md invariant 7).
func TestChannelsSerialiseOnce(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{})
	conns := make([]*fakeConn, 50)
	for i := range conns {
		conns[i] = newFakeConn()
		send(h, conns[i], `{"op":"subscribe","channel":"news"}`)
	}
	if n, err := h.Publish("news", json.RawMessage(`"x"`)); err != nil || n != len(conns) {
		t.Fatalf("got Publish = %d, %v, want %d, nil", n, err, len(conns))
	}
	var first *wsconn.PreparedMessage
	for i, c := range conns {
		got := c.pushes()
		if len(got) != 1 {
			t.Fatalf("conn %d: got %d pushes, want 1", i, len(got))
		}
		if first == nil {
			first = got[0]
		}
		if got[0] != first {
			t.Errorf("conn %d: got PreparedMessage %p, want the shared %p", i, got[0], first)
		}
	}
}

func TestChannelsFailingSubscribers(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{})
	conns := make([]*fakeConn, 6)
	for i := range conns {
		conns[i] = newFakeConn()
		send(h, conns[i], `{"op":"subscribe","channel":"news"}`)
	}
	conns[1].fail(wsconn.ErrSlowConsumer)
	conns[4].fail(wsconn.ErrClosed)

	n, err := h.Publish("news", json.RawMessage(`1`))
	if err != nil || n != 4 {
		t.Fatalf("got Publish = %d, %v, want 4, nil", n, err)
	}
	for i, c := range conns {
		want := 1
		if i == 1 || i == 4 {
			want = 0
		}
		if got := len(c.pushes()); got != want {
			t.Errorf("conn %d: got %d pushes, want %d", i, got, want)
		}
	}
	s := h.Stats()
	if s.Delivered != 4 || s.Dropped != 2 || s.Published != 1 {
		t.Errorf("got stats %+v, want Published 1, Delivered 4, Dropped 2", s)
	}
}

func TestChannelsOnClose(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{})
	leaving, staying := newFakeConn(), newFakeConn()
	send(h, leaving,
		`{"op":"subscribe","channel":"a"}`,
		`{"op":"subscribe","channel":"b"}`,
		`{"op":"subscribe","channel":"shared"}`)
	send(h, staying, `{"op":"subscribe","channel":"shared"}`)

	if got, want := h.Channels(), map[string]int{"a": 1, "b": 1, "shared": 2}; !maps.Equal(got, want) {
		t.Fatalf("before close: got channels %v, want %v", got, want)
	}
	h.OnClose(leaving, 1000, "")

	if got, want := h.Channels(), map[string]int{"shared": 1}; !maps.Equal(got, want) {
		t.Errorf("after close: got channels %v, want %v", got, want)
	}
	if got := leaving.Value(); got != nil {
		t.Errorf("after close: got value %v, want nil", got)
	}
	if s := h.Stats(); s.Subscriptions != 1 || s.Channels != 1 {
		t.Errorf("after close: got stats %+v, want Subscriptions 1, Channels 1", s)
	}
	if got := shardEntries(h); got != 1 {
		t.Errorf("after close: got %d channels in shard maps, want 1", got)
	}
	if n, _ := h.Publish("a", json.RawMessage(`1`)); n != 0 {
		t.Errorf("publish to a closed subscriber's channel: got delivered %d, want 0", n)
	}

	h.OnClose(staying, 1000, "")
	h.OnClose(newFakeConn(), 1006, "") // never subscribed
	if s := h.Stats(); s.Subscriptions != 0 || s.Channels != 0 || shardEntries(h) != 0 {
		t.Errorf("after all closed: got stats %+v and %d shard entries, want none", s, shardEntries(h))
	}
}

// TestChannelsIdleHoldsNothing checks that a connection subscribed to
// nothing keeps no value (docs/design.md invariant 3).
func TestChannelsIdleHoldsNothing(t *testing.T) {
	tests := []struct {
		name string
		msgs []string
	}{
		{name: "fresh"},
		{name: "after publish", msgs: []string{`{"op":"publish","channel":"a","data":1,"id":1}`}},
		{name: "after errors", msgs: []string{`x`, `{"op":"unsubscribe","channel":"a"}`, `{"op":"subscribe","channel":""}`}},
		{name: "after subscribe and unsubscribe", msgs: []string{
			`{"op":"subscribe","channel":"a"}`, `{"op":"subscribe","channel":"b"}`,
			`{"op":"unsubscribe","channel":"b"}`, `{"op":"unsubscribe","channel":"a"}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestChannels(t, ChannelsConfig{MaxSubscriptions: 1})
			c := newFakeConn()
			send(h, c, tt.msgs...)
			if got := c.Value(); got != nil {
				t.Errorf("got value %v, want nil", got)
			}
			if s := h.Stats(); s.Channels != 0 || s.Subscriptions != 0 {
				t.Errorf("got stats %+v, want no channels or subscriptions", s)
			}
		})
	}
}

func TestChannelsSubscribers(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{Shards: 3})
	for i := range 5 {
		c := newFakeConn()
		for j := range i + 1 {
			send(h, c, fmt.Sprintf(`{"op":"subscribe","channel":"c%d"}`, j))
		}
	}
	want := map[string]int{"c0": 5, "c1": 4, "c2": 3, "c3": 2, "c4": 1}
	if got := h.Channels(); !maps.Equal(got, want) {
		t.Errorf("got channels %v, want %v", got, want)
	}
	for name, n := range want {
		if got := h.Subscribers(name); got != n {
			t.Errorf("Subscribers(%q): got %d, want %d", name, got, n)
		}
	}
	if got := h.Subscribers("none"); got != 0 {
		t.Errorf(`Subscribers("none"): got %d, want 0`, got)
	}
	if s := h.Stats(); s.Subscriptions != 15 || s.Channels != 5 {
		t.Errorf("got stats %+v, want Subscriptions 15, Channels 5", s)
	}
}

func TestSubscriberSet(t *testing.T) {
	conns := []*fakeConn{newFakeConn(), newFakeConn(), newFakeConn(), newFakeConn()}
	tests := []struct {
		name   string
		remove []int // indexes into conns, after adding all
		want   []int // remaining, in slice order
	}{
		{name: "remove none", want: []int{0, 1, 2, 3}},
		{name: "remove last", remove: []int{3}, want: []int{0, 1, 2}},
		{name: "remove first swaps last in", remove: []int{0}, want: []int{3, 1, 2}},
		{name: "remove middle then moved", remove: []int{1, 3}, want: []int{0, 2}},
		{name: "remove all", remove: []int{2, 0, 3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s subscriberSet
			for _, c := range conns {
				if !s.add(c) {
					t.Fatalf("add(%d): got false, want true", c.id)
				}
			}
			if s.add(conns[0]) {
				t.Errorf("second add: got true, want false")
			}
			for _, i := range tt.remove {
				if !s.remove(conns[i]) {
					t.Errorf("remove(%d): got false, want true", i)
				}
				if s.remove(conns[i]) {
					t.Errorf("second remove(%d): got true, want false", i)
				}
			}
			var got []uint64
			for j, c := range s.conns {
				got = append(got, c.ID())
				if s.index[c.ID()] != j {
					t.Errorf("index of %d: got %d, want %d", c.ID(), s.index[c.ID()], j)
				}
			}
			var want []uint64
			for _, i := range tt.want {
				want = append(want, conns[i].id)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(s.index) != len(want) {
				t.Errorf("got %v (index %v), want %v", got, s.index, want)
			}
		})
	}
}

// TestChannelsConcurrent runs connections that subscribe, publish,
// unsubscribe and close at once, with API publishers alongside, then checks
// that every counter agrees with what the connections saw.
func TestChannelsConcurrent(t *testing.T) {
	h := newTestChannels(t, ChannelsConfig{Shards: 2, MaxSubscriptions: 4})
	channels := []string{"c0", "c1", "c2", "c3", "c4", "c5"}

	// Long-lived subscribers, one per channel, kept to the end.
	stayers := make([]*fakeConn, len(channels))
	for i, name := range channels {
		stayers[i] = newFakeConn()
		send(h, stayers[i], `{"op":"subscribe","channel":"`+name+`"}`)
	}

	const workers, conns, ops = 8, 20, 60
	var (
		mu        sync.Mutex
		all       []*fakeConn
		acked     int // sum of "delivered" in acks and Publish results
		wg        sync.WaitGroup
		apiWG     sync.WaitGroup
		stop      = make(chan struct{})
		apiCounts = make([]int, 2)
	)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range conns {
				c := newFakeConn()
				sum := churn(h, c, rng, channels, ops)
				mu.Lock()
				all = append(all, c)
				acked += sum
				mu.Unlock()
			}
		})
	}
	for i := range apiCounts {
		apiWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := h.Publish(channels[apiCounts[i]%len(channels)], json.RawMessage(`"api"`))
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				acked += n
				mu.Unlock()
				apiCounts[i]++
			}
		})
	}
	wg.Wait()
	close(stop)
	apiWG.Wait()

	all = append(all, stayers...)
	var delivered, attempts int64
	for _, c := range all {
		delivered += c.prepares.Load()
		attempts += c.attempts.Load()
	}
	s := h.Stats()
	if s.Delivered != uint64(delivered) || s.Delivered+s.Dropped != uint64(attempts) || s.Delivered != uint64(acked) {
		t.Errorf("got stats %+v, want Delivered = %d received = %d acked, Delivered+Dropped = %d attempts", s, delivered, acked, attempts)
	}
	want := map[string]int{}
	for _, name := range channels {
		want[name] = 1
	}
	if got := h.Channels(); !maps.Equal(got, want) || s.Subscriptions != int64(len(channels)) || s.Channels != int64(len(channels)) {
		t.Errorf("got channels %v, stats %+v, want %v", got, s, want)
	}
	for _, c := range stayers {
		h.OnClose(c, 1000, "")
	}
	if s := h.Stats(); s.Subscriptions != 0 || s.Channels != 0 || shardEntries(h) != 0 || len(h.Channels()) != 0 {
		t.Errorf("after all closed: got stats %+v, %d shard entries, want none", s, shardEntries(h))
	}
}

// churn plays one connection's life: ops random requests, then a close in
// which its pushes start failing before OnClose, as on a real connection.
// It returns the sum of "delivered" in its publish acks.
func churn(h *Channels, c *fakeConn, rng *rand.Rand, channels []string, ops int) int {
	for i := range ops {
		name := channels[rng.IntN(len(channels))]
		var op string
		switch rng.IntN(3) {
		case 0:
			op = `"op":"subscribe"`
		case 1:
			op = `"op":"unsubscribe"`
		default:
			op = `"op":"publish","data":{"n":1}`
		}
		send(h, c, fmt.Sprintf(`{%s,"channel":"%s","id":%d}`, op, name, i))
	}
	c.fail(wsconn.ErrClosed)
	h.OnClose(c, 1000, "")

	sum := 0
	for _, r := range c.replies() {
		var ack struct {
			Delivered int `json:"delivered"`
		}
		if json.Unmarshal([]byte(r), &ack) == nil {
			sum += ack.Delivered
		}
	}
	c.pushes() // free the recorded messages
	return sum
}

// shardEntries counts the channels in all shard maps.
func shardEntries(h *Channels) int {
	n := 0
	for i := range h.hub.shards {
		sh := &h.hub.shards[i]
		sh.mu.RLock()
		n += len(sh.channels)
		sh.mu.RUnlock()
	}
	return n
}

// TestHubChurnOneChannel subscribes and unsubscribes a few connections to
// one channel as fast as possible, so that a channel is often emptied and
// removed between another subscriber's lookup and its lock. Whatever the
// interleaving, a subscriber must always land in the channel that is in
// the shard map.
func TestHubChurnOneChannel(t *testing.T) {
	h := newHub(1, nil)
	const goroutines, rounds = 4, 5000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			c := newFakeConn()
			for range rounds {
				ch := h.subscribe("hot", c)
				if got := h.lookup("hot"); got != ch {
					t.Errorf("got channel %p in the map, want %p that subscribe returned", got, ch)
					return
				}
				h.unsubscribe(ch, c)
			}
		})
	}
	wg.Wait()
	if s, n := h.subscriptions.Load(), h.channels.Load(); s != 0 || n != 0 || len(h.shards[0].channels) != 0 {
		t.Errorf("got %d subscriptions, %d channels, %d map entries, want none", s, n, len(h.shards[0].channels))
	}
}
