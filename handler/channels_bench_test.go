package handler

import (
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/wsconn"
)

// benchSubscribers returns a Channels with n counting subscribers on
// channel.
func benchSubscribers(b *testing.B, channel string, n int) *Channels {
	return benchSubscribersWith(b, ChannelsConfig{}, channel, n)
}

// benchSubscribersWith is benchSubscribers with a config (history rules).
func benchSubscribersWith(b *testing.B, cfg ChannelsConfig, channel string, n int) *Channels {
	b.Helper()
	h := newTestChannels(b, cfg)
	for range n {
		c := &fakeConn{id: lastConnID.Add(1), discard: true}
		h.OnMessage(c, wsconn.Text, []byte(`{"op":"subscribe","channel":"`+channel+`"}`))
	}
	return h
}

// BenchmarkPublish publishes to 1,000 subscribers: one push built and framed
// per publish, then 1,000 SendPrepared calls.
func BenchmarkPublish(b *testing.B) {
	h := benchSubscribers(b, "bench", 1000)
	data := json.RawMessage(`{"sym":"ABC","price":123.45,"ts":1700000000}`)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := h.Publish("bench", data); err != nil || n != 1000 {
			b.Fatalf("got Publish = %d, %v, want 1000, nil", n, err)
		}
	}
}

// BenchmarkPublishParallel publishes from many goroutines to many
// channels, each with 10 subscribers, to show the shards not contending.
func BenchmarkPublishParallel(b *testing.B) {
	h := newTestChannels(b, ChannelsConfig{})
	const channels = 256
	for i := range channels {
		for range 10 {
			c := &fakeConn{id: lastConnID.Add(1), discard: true}
			h.OnMessage(c, wsconn.Text, []byte(`{"op":"subscribe","channel":"c`+strconv.Itoa(i)+`"}`))
		}
	}
	names := make([]string, channels)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	data := json.RawMessage(`{"n":1}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(lastConnID.Add(1))
		for pb.Next() {
			i++
			if _, err := h.Publish(names[i%channels], data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOnMessagePublish measures a client publish request end to end:
// parse, validate, build, frame, deliver to one subscriber, ack.
func BenchmarkOnMessagePublish(b *testing.B) {
	h := benchSubscribers(b, "bench", 1)
	c := &fakeConn{id: lastConnID.Add(1), discard: true}
	msg := []byte(`{"op":"publish","channel":"bench","data":{"sym":"ABC","price":123.45},"id":"42"}`)
	b.ReportAllocs()
	for b.Loop() {
		h.OnMessage(c, wsconn.Text, msg)
	}
}

// BenchmarkPublishHistory is BenchmarkPublish on a channel that keeps a
// history of 100: the cost of numbering, storing and evicting, against
// BenchmarkPublish in the same run.
func BenchmarkPublishHistory(b *testing.B) {
	h := benchSubscribersWith(b, historyConfig(100), "bench", 1000)
	data := json.RawMessage(`{"sym":"ABC","price":123.45,"ts":1700000000}`)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := h.Publish("bench", data); err != nil || n != 1000 {
			b.Fatalf("got Publish = %d, %v, want 1000, nil", n, err)
		}
	}
}

// BenchmarkRecover measures one recovering subscribe that replays 100
// publications, and reports the heap each channel with a full history of
// 100 publications of 100 bytes of data costs.
func BenchmarkRecover(b *testing.B) {
	const channels, kept = 1000, 100
	data := json.RawMessage(`"` + strings.Repeat("x", 98) + `"`)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h := newTestChannels(b, historyConfig(kept))
	var pos Position
	for i := range channels {
		for range kept {
			p, err := h.PublishWithPosition("room:"+strconv.Itoa(i), data)
			if err != nil {
				b.Fatal(err)
			}
			pos = p.Position
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	sub := []byte(`{"op":"subscribe","channel":"room:` + strconv.Itoa(channels-1) + `","id":1,"recover":{"offset":` +
		strconv.FormatUint(pos.Offset-kept, 10) + `,"epoch":"` + pos.Epoch + `"}}`)
	b.ReportAllocs()
	for b.Loop() {
		c := &fakeConn{id: lastConnID.Add(1), discard: true}
		h.OnMessage(c, wsconn.Text, sub)
		h.OnClose(c, 1000, "")
	}
	if s := h.Stats(); s.Unrecovered != 0 {
		b.Fatalf("got %d unrecovered", s.Unrecovered)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/channels, "heap-B/channel")
	runtime.KeepAlive(h)
}
