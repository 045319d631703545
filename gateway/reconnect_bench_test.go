package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wsclient "github.com/wsgate/wsgate/client"
)

// BenchmarkReconnectAfterRestart measures what a chat app sees when a node
// dies under its clients: 1,000 Go clients (package client) subscribed on
// node 1, ten to a channel, with two nodes on an external nats-server
// (JetStream history). Node 1 is SIGKILLed; ten publications a channel
// are acknowledged through node 2 while it is down; node 1 is started
// again. Reported: ms from starting the new process to every client
// holding every publication, resubscribed and recovered (each once and in
// order: anything else fails the benchmark), and how much of that the
// process took to listen. The clients' backoff decides most of it, so it
// runs with the default (500 ms to 30 s, full jitter), a short one
// (50 ms to 1 s), and 1 to 10 ms, where all 1,000 come back at once and
// the server's recovery is what takes the time.
//
//	go test -run XXX -bench ReconnectAfterRestart -benchtime 1x -count 3 ./gateway
func BenchmarkReconnectAfterRestart(b *testing.B) {
	for _, bc := range []struct {
		name    string
		backoff *wsclient.Backoff
	}{
		{"default-backoff", &wsclient.Backoff{}},
		{"short-backoff", &wsclient.Backoff{Min: 50 * time.Millisecond, Max: time.Second}},
		{"storm", &wsclient.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				reconnectAfterRestart(b, bc.backoff)
			}
		})
	}
}

func reconnectAfterRestart(b *testing.B, backoff *wsclient.Backoff) {
	const clients, perChannel, published = 1000, 10, 10
	b.StopTimer()
	url := startNATSServer(b)
	addr1 := "127.0.0.1:" + strconv.Itoa(freePort(b))
	addr2 := "127.0.0.1:" + strconv.Itoa(freePort(b))
	node1, _ := startGateAt(b, addr1, "-nats", url)
	startGateAt(b, addr2, "-nats", url)
	pub := wsclient.NewClient("ws://"+addr2+"/ws", wsclient.ClientOptions{})
	defer pub.Close()
	eventually(b, 10*time.Second, "the publisher connected", pub.Conn().Connected)

	type sub struct {
		mu  sync.Mutex
		got []uint64
	}
	subs := make([]*sub, clients)
	handles := make([]*wsclient.Subscription, clients)
	var unrecovered atomic.Int64
	for i := range subs {
		s := &sub{}
		subs[i] = s
		c := wsclient.NewClient("ws://"+addr1+"/ws", wsclient.ClientOptions{Options: wsclient.Options{Reconnect: backoff}})
		defer c.Close()
		handles[i] = c.Subscribe("room."+strconv.Itoa(i/perChannel), func(p wsclient.Publication) {
			s.mu.Lock()
			s.got = append(s.got, p.Offset)
			s.mu.Unlock()
		}, wsclient.SubscribeOptions{
			OnUnrecovered: func(string) { unrecovered.Add(1) },
		})
	}
	eventually(b, 30*time.Second, "every client subscribed", func() bool {
		for _, h := range handles {
			if h.Position().Epoch == "" {
				return false
			}
		}
		return true
	})
	if err := node1.Process.Kill(); err != nil {
		b.Fatal(err)
	}
	_, _ = node1.Process.Wait()
	acked := make(map[string][]uint64)
	for ch := range clients / perChannel {
		channel := "room." + strconv.Itoa(ch)
		for i := range published {
			p, err := pub.Publish(context.Background(), channel, i)
			if err != nil {
				b.Fatalf("publish to %s: %v", channel, err)
			}
			acked[channel] = append(acked[channel], p.Offset)
		}
	}
	b.StartTimer()
	start := time.Now()
	startGateAt(b, addr1, "-nats", url)
	listening := time.Since(start)
	eventually(b, 120*time.Second, "every client recovered", func() bool {
		for _, s := range subs {
			s.mu.Lock()
			n := len(s.got)
			s.mu.Unlock()
			if n < published {
				return false
			}
		}
		return true
	})
	all := time.Since(start)
	b.StopTimer()
	for i, s := range subs {
		want := acked["room."+strconv.Itoa(i/perChannel)]
		s.mu.Lock()
		got := fmt.Sprint(s.got)
		s.mu.Unlock()
		if got != fmt.Sprint(want) {
			b.Fatalf("client %d got offsets %s, want the acknowledged %v once and in order", i, got, want)
		}
	}
	if n := unrecovered.Load(); n != 0 {
		b.Fatalf("%d subscriptions not recovered", n)
	}
	b.ReportMetric(float64(all.Milliseconds()), "ms-all-recovered")
	b.ReportMetric(float64(listening.Milliseconds()), "ms-listening")
	b.ReportMetric(0, "ns/op")
}
