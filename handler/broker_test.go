package handler

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/wsconn"
)

// fakeBroker records what Channels tells a Broker.
type fakeBroker struct {
	mu        sync.Mutex
	interest  []string // "+name" / "-name", in order
	published []string // "channel push"
	fail      error
}

func (b *fakeBroker) Interest(channel string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sign := "-"
	if on {
		sign = "+"
	}
	b.interest = append(b.interest, sign+channel)
}

func (b *fakeBroker) Publish(channel string, push []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.published = append(b.published, channel+" "+string(push))
	return nil
}

func TestChannelsBrokerInterest(t *testing.T) {
	h, _ := NewChannels(ChannelsConfig{})
	b := &fakeBroker{}
	h.SetBroker(b)
	a, c := newFakeConn(), newFakeConn()
	send(h, a, `{"op":"subscribe","channel":"x"}`, `{"op":"subscribe","channel":"y"}`)
	send(h, c, `{"op":"subscribe","channel":"x"}`) // x already has interest
	send(h, a, `{"op":"unsubscribe","channel":"x"}`)
	send(h, c, `{"op":"unsubscribe","channel":"x"}`) // last subscriber of x
	h.OnClose(a, wsconn.StatusNormalClosure, "")     // last subscriber of y
	want := []string{"+x", "+y", "-x", "-y"}
	if !slices.Equal(b.interest, want) {
		t.Fatalf("got interest %v, want %v", b.interest, want)
	}
}

func TestChannelsBrokerPublish(t *testing.T) {
	h, _ := NewChannels(ChannelsConfig{})
	b := &fakeBroker{}
	h.SetBroker(b)
	local := newFakeConn()
	send(h, local, `{"op":"subscribe","channel":"news"}`)
	n, err := h.Publish("news", []byte(`{"a":1}`))
	if err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1 local delivery", n, err)
	}
	want := []string{`#jl#news {"channel":"news","join":{"client":"` + h.node + `-` + strconv.FormatUint(local.ID(), 10) + `"}}`,
		`news {"channel":"news","data":{"a":1}}`} // the join, for listeners on other processes
	if !slices.Equal(b.published, want) {
		t.Fatalf("broker got %q, want %q", b.published, want)
	}
	if got := len(local.pushes()); got != 1 {
		t.Fatalf("local subscriber got %d pushes, want exactly 1 (no echo through the broker)", got)
	}

	// A publish from another process reaches the local subscriber once
	// and is not sent back to the broker.
	if n := h.DeliverRemote("news", []byte(`{"channel":"news","data":2}`)); n != 1 {
		t.Fatalf("DeliverRemote = %d, want 1", n)
	}
	pushes := local.pushes()
	if len(pushes) != 1 || payload(t, pushes[0]) != `{"channel":"news","data":2}` {
		t.Fatalf("remote push: got %d pushes", len(pushes))
	}
	if len(b.published) != 2 {
		t.Fatalf("remote push went back to the broker: %q", b.published)
	}

	b.fail = errors.New("disconnected")
	if n, err := h.Publish("news", []byte(`3`)); err != nil || n != 1 {
		t.Fatalf("Publish with the broker down = %d, %v; want local delivery to go on", n, err)
	}
	st := h.Stats()
	if st.BrokerFailures != 1 || st.Remote != 1 {
		t.Fatalf("stats %+v: want 1 broker failure and 1 remote publish", st)
	}
}

func TestFanoutObserver(t *testing.T) {
	h, _ := NewChannels(ChannelsConfig{})
	var recipients []int
	h.SetFanoutObserver(func(d time.Duration, n int) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		recipients = append(recipients, n)
	})
	a, b := newFakeConn(), newFakeConn()
	send(h, a, `{"op":"subscribe","channel":"x"}`)
	send(h, b, `{"op":"subscribe","channel":"x"}`)
	if _, err := h.Publish("x", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish("nobody", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recipients, []int{2, 0}) {
		t.Fatalf("observed recipients %v, want [2 0]", recipients)
	}
}
