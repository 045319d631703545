package broker

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/wsconn"
)

// latConn is a subscriber that records how long each push took from its
// publication (its data is the publish time, unix nanoseconds).
type latConn struct {
	*recConn
	mu   sync.Mutex
	lats []time.Duration
}

func (c *latConn) SendPrepared(m *wsconn.PreparedMessage) error {
	f := m.Frame()
	var p struct{ Data int64 }
	if json.Unmarshal(f[2:], &p) == nil && p.Data > 0 {
		c.mu.Lock()
		c.lats = append(c.lats, time.Since(time.Unix(0, p.Data)))
		c.mu.Unlock()
	}
	return nil
}

// BenchmarkRecoveryStorm: 1,000 clients reconnect at once and each
// recovers the 50 publications it missed from JetStream, while a live
// subscriber on the same process keeps receiving a publication every
// millisecond. It reports the storm's recoveries per second and the live
// subscriber's delivery latency during it: the storm waits in the bounded
// store-job queue, off the workers, and must not hold up live traffic.
//
//	go test -run XXX -bench RecoveryStorm -benchtime 3x ./broker
func BenchmarkRecoveryStorm(b *testing.B) {
	e := startNATS(b, 0)
	defer e.Shutdown()
	n := newJSNode(b, e.URL(), 1000)
	live := &latConn{recConn: &recConn{id: 1}}
	n.ch.OnMessage(live, wsconn.Text, []byte(`{"op":"subscribe","channel":"live","id":1}`))
	eventually(b, 10*time.Second, "live subscribed", func() bool { return n.ch.Subscribers("live") == 1 })
	// The same live traffic without a storm first, for comparison.
	for i := range 300 {
		_, _ = n.ch.PublishWithPosition("live", json.RawMessage(strconv.FormatInt(time.Now().UnixNano(), 10)))
		if i%10 == 0 {
			time.Sleep(10 * time.Millisecond) // about 1 per ms, as below
		}
	}
	eventually(b, 10*time.Second, "the quiet deliveries", func() bool { live.mu.Lock(); defer live.mu.Unlock(); return len(live.lats) == 300 })
	live.mu.Lock()
	quiet := slices.Sorted(slices.Values(live.lats))
	live.lats = nil
	live.mu.Unlock()
	b.ResetTimer()
	const clients, missed = 1000, 50
	var all []time.Duration
	var stormTime time.Duration
	for i := range b.N {
		room := "room" + strconv.Itoa(i)
		from, err := n.ch.PublishWithPosition(room, json.RawMessage(`"first"`))
		if err != nil {
			b.Fatal(err)
		}
		for j := range missed {
			if _, err := n.ch.PublishWithPosition(room, json.RawMessage(strconv.Itoa(j))); err != nil {
				b.Fatal(err)
			}
		}
		before := n.ch.Stats().Recoveries
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the live traffic
			defer wg.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					_, _ = n.ch.PublishWithPosition("live", json.RawMessage(strconv.FormatInt(time.Now().UnixNano(), 10)))
				}
			}
		}()
		conns := make([]*recConn, clients)
		start := time.Now()
		for k := range conns {
			conns[k] = &recConn{id: uint64(10 + i*clients + k), acks: true}
			n.send(conns[k], fmt.Sprintf(`{"op":"subscribe","channel":"%s","id":1,"recover":{"offset":%d,"epoch":"%s"}}`,
				room, from.Position.Offset, from.Position.Epoch))
		}
		eventually(b, 60*time.Second, "the recoveries", func() bool { return n.ch.Stats().Recoveries-before == clients })
		for _, c := range conns {
			eventually(b, 10*time.Second, "the replays", func() bool { return len(c.pushes()) == 1+missed })
		}
		stormTime += time.Since(start)
		close(stop)
		wg.Wait()
		for _, c := range conns {
			n.ch.OnClose(c, 1000, "")
		}
	}
	live.mu.Lock()
	all = append(all, live.lats...)
	live.mu.Unlock()
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatal("no live deliveries")
	}
	b.ReportMetric(float64(clients*b.N)/stormTime.Seconds(), "recoveries/s")
	b.ReportMetric(float64(quiet[len(quiet)*99/100].Microseconds())/1000, "quiet-p99-ms")
	b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "live-p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "live-p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "live-max-ms")
	n.ch.OnClose(live, 1000, "")
}

// BenchmarkStoredPublish: one publication stored in JetStream and acked
// (Channels.PublishWithPosition on a channel with history: the HTTP
// publish path), and one recovery of 100 missed publications fetched
// from JetStream, each on an embedded NATS server.
//
//	go test -run XXX -bench 'StoredPublish|StoredRecover' ./broker
func BenchmarkStoredPublish(b *testing.B) {
	e := startNATS(b, 0)
	defer e.Shutdown()
	n := newJSNode(b, e.URL(), 100)
	data := json.RawMessage(`{"text":"a chat line of about sixty-four bytes, give or take"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := n.ch.PublishWithPosition("room", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoredRecover(b *testing.B) {
	e := startNATS(b, 0)
	defer e.Shutdown()
	n := newJSNode(b, e.URL(), 1000)
	from, err := n.ch.PublishWithPosition("room", json.RawMessage(`0`))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := n.ch.PublishWithPosition("room", json.RawMessage(strconv.Itoa(i+1))); err != nil {
			b.Fatal(err)
		}
	}
	req := []byte(fmt.Sprintf(`{"op":"subscribe","channel":"room","id":1,"recover":{"offset":%d,"epoch":"%s"}}`,
		from.Position.Offset, from.Position.Epoch))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := &recConn{id: uint64(i + 10), acks: true, full: make(chan struct{}), fullAt: 101} // the ack and 100
		n.ch.OnMessage(c, wsconn.Text, req)
		select {
		case <-c.full:
		case <-time.After(10 * time.Second):
			b.Fatalf("the replay: %d of 101 after 10 s", len(c.pushes()))
		}
		n.ch.OnClose(c, 1000, "")
	}
}
