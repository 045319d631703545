package main

// Attack mode (attack.go): the scenarios against connection handling: peraddr and fanout.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// PerAddrFigures are peraddr's figures.
type PerAddrFigures struct {
	Cap            int            `json:"cap"`
	HeldOpen       int            `json:"held_open"`
	HeldFailures   map[string]int `json:"held_failures"`
	HeldSeconds    float64        `json:"held_open_seconds"`
	HeldEnds       map[string]int `json:"held_ends"`
	Stalled        int            `json:"stalled"`
	StalledAnswers map[string]int `json:"stalled_answers"` // first line, closed_eof, closed_reset, nothing_within_2s
	Source         string         `json:"fresh_source"`
	FreshTried     int            `json:"fresh_tried"`
	FreshOpen      int            `json:"fresh_open"`
	FreshFailures  map[string]int `json:"fresh_failures"`
	FreshConnect   Percentiles    `json:"fresh_connect_ms"` // dial to 101, the ones that opened
	FreshSeconds   float64        `json:"fresh_seconds"`
}

func (f *PerAddrFigures) summary() string {
	return fmt.Sprintf("held %d/%d from 127.0.0.1; stalled answered %v; %d/%d fresh from %s: connect p50 %.1f ms p99 %.1f ms max %.1f ms, failures %v",
		f.HeldOpen, f.Cap, f.StalledAnswers, f.FreshOpen, f.FreshTried, f.Source,
		f.FreshConnect.P50, f.FreshConnect.P99, f.FreshConnect.Max, f.FreshFailures)
}

func (a *attack) perAddr() *PerAddrFigures {
	f := &PerAddrFigures{Cap: a.o.cap, Stalled: a.o.stalled, Source: a.o.src,
		StalledAnswers: map[string]int{}, FreshFailures: map[string]int{}}
	// The held connections, from 127.0.0.1 (the kernel's choice towards
	// a loopback server), on /ws; their readers answer pings.
	start := time.Now()
	held, fails := a.dialMany(a.o.cap, "/ws", 0)
	f.HeldSeconds = time.Since(start).Seconds()
	f.HeldOpen, f.HeldFailures = len(held), fails
	for _, p := range held {
		a.read(p, nil)
	}
	progressf("peraddr: %d of %d held in %.1f s, failures %v", f.HeldOpen, f.Cap, f.HeldSeconds, fails)

	// The stalled sockets: half an upgrade request, then nothing. Each
	// watcher notes the first thing the server does within 2 s; the
	// socket stays open (if the server keeps it) to the end of the run.
	var mu sync.Mutex
	var watch sync.WaitGroup
	for range a.o.stalled {
		conn, err := net.DialTimeout("tcp4", a.o.addr, a.o.timeout)
		if err != nil {
			f.StalledAnswers["dial_"+failClass(err)]++
			continue
		}
		a.mu.Lock()
		a.raw = append(a.raw, conn)
		a.mu.Unlock()
		sent := time.Now()
		if _, err := conn.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n")); err != nil {
			f.StalledAnswers["write_"+failClass(err)]++
			continue
		}
		watch.Add(1)
		go func() {
			defer watch.Done()
			answer := stalledAnswer(conn, sent.Add(2*time.Second))
			mu.Lock()
			f.StalledAnswers[answer]++
			mu.Unlock()
		}()
	}

	// The fresh clients, one after another from another address, while
	// the stalled sockets stall; each closed once upgraded.
	hist := newHist()
	src := net.ParseIP(a.o.src).To4()
	start = time.Now()
	for i := 0; i < a.o.fresh && time.Since(start) < a.o.duration; i++ {
		f.FreshTried++
		p, err := a.dial("/echo", src, 0)
		if err != nil {
			f.FreshFailures[failClass(err)]++
			continue
		}
		hist.record(p.opened.Sub(p.dialed))
		f.FreshOpen++
		p.close()
	}
	f.FreshSeconds = time.Since(start).Seconds()
	f.FreshConnect = hist.percentiles()
	watch.Wait()
	f.HeldEnds, _ = endCounts(held)
	return f
}

// stalledAnswer reads conn until deadline and names the server's first
// answer: its first line, closed_eof or closed_reset, or nothing_within_2s.
func stalledAnswer(conn net.Conn, deadline time.Time) string {
	_ = conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if i := bytes.Index(got, []byte("\r\n")); i >= 0 {
			return string(got[:i])
		}
		switch {
		case err == nil:
			continue
		case len(got) > 0:
			return strings.TrimSpace(string(got))
		case errors.Is(err, os.ErrDeadlineExceeded):
			return "nothing_within_2s"
		case errors.Is(err, unix.ECONNRESET):
			return "closed_reset"
		case errors.Is(err, io.EOF):
			return "closed_eof"
		}
		return "error: " + err.Error()
	}
}

// Scenario emptycont.

// FanoutFigures are fanout's figures.
type FanoutFigures struct {
	Subscribers     int            `json:"subscribers"`
	SubscribersOpen int            `json:"subscribers_open"`
	Acked           int64          `json:"subscribe_acks"`
	SubFailures     map[string]int `json:"subscriber_failures"`
	Publishers      int            `json:"publishers"`
	PublishersOpen  int            `json:"publishers_open"`
	PubRate         int            `json:"pub_rate_per_publisher"`
	Seconds         float64        `json:"seconds"`
	PublishesSent   int64          `json:"publishes_sent"`
	PushesReceived  int64          `json:"pushes_received"`
	SubscriberEnds  map[string]int `json:"subscriber_ends"`
	PublisherEnds   map[string]int `json:"publisher_ends"`
	EchoRTT         Percentiles    `json:"echo_rtt_ms"`
	EchoError       string         `json:"echo_error,omitempty"`
	Connects        int            `json:"connects"`
	ConnectsOpen    int            `json:"connects_open"`
	ConnectFailures map[string]int `json:"connect_failures"`
	ConnectLatency  Percentiles    `json:"connect_ms"`
}

func (f *FanoutFigures) summary() string {
	echoEnd := ""
	if f.EchoError != "" {
		echoEnd = ", then " + f.EchoError
	}
	return fmt.Sprintf("%d subs, %d pubs sent %d, %d pushes received; echo rtt p50 %.1f ms p99 %.1f ms max %.1f ms (%d round trips%s); "+
		"connect p50 %.1f ms p99 %.1f ms max %.1f ms (%d/%d, failures %v); sub ends %v, pub ends %v",
		f.SubscribersOpen, f.PublishersOpen, f.PublishesSent, f.PushesReceived,
		f.EchoRTT.P50, f.EchoRTT.P99, f.EchoRTT.Max, f.EchoRTT.Count, echoEnd,
		f.ConnectLatency.P50, f.ConnectLatency.P99, f.ConnectLatency.Max, f.ConnectsOpen, f.Connects, f.ConnectFailures,
		f.SubscriberEnds, f.PublisherEnds)
}

var ackPrefixAttack = []byte(`{"op":"ack"`)

func (a *attack) fanout() *FanoutFigures {
	f := &FanoutFigures{Subscribers: a.o.n, Publishers: a.o.publishers, PubRate: a.o.pubRate,
		Connects: a.o.fresh, ConnectFailures: map[string]int{}}
	var acks, pushes atomic.Int64
	subs, fails := a.dialMany(a.o.n, "/ws", 0)
	f.SubscribersOpen, f.SubFailures = len(subs), fails
	subscribe := clientFrame(0x1, []byte(`{"op":"subscribe","channel":"room","id":1}`))
	for _, p := range subs {
		a.read(p, func(_ *peer, _ ws.OpCode, payload []byte) {
			if bytes.HasPrefix(payload, ackPrefixAttack) {
				acks.Add(1)
			} else {
				pushes.Add(1)
			}
		})
		if err := p.write(subscribe); err != nil {
			f.SubFailures["subscribe_"+failClass(err)]++
		}
	}
	for wait := time.Now().Add(a.o.timeout); acks.Load() < int64(len(subs)) && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	f.Acked = acks.Load()
	pubs, pubFails := a.dialMany(a.o.publishers, "/ws", 0)
	f.PublishersOpen = len(pubs)
	for k, v := range pubFails {
		f.SubFailures["publisher_"+k] += v
	}
	echo, echoErr := a.dial("/echo", nil, 0)
	progressf("fanout: %d subscribers (%d acks), %d publishers", len(subs), f.Acked, len(pubs))

	// The attack: each publisher one write of pubRate/10 publishes every
	// 100 ms; the echo client's round trips; a new connection every
	// duration/fresh.
	t0 := time.Now()
	stop := t0.Add(a.o.duration)
	pushes.Store(0)
	var sent atomic.Int64
	var wg sync.WaitGroup
	perBatch := max(1, a.o.pubRate/10)
	batch := bytes.Repeat(clientFrame(0x1, []byte(`{"op":"publish","channel":"room","data":"x"}`)), perBatch)
	for _, p := range pubs {
		a.read(p, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			_ = p.conn.SetWriteDeadline(stop.Add(time.Second))
			for time.Now().Before(stop) && p.endOf() == nil {
				if p.write(batch) != nil {
					return
				}
				sent.Add(int64(perBatch))
				<-tick.C
			}
		}()
	}
	echoHist := newHist()
	if echoErr != nil {
		f.EchoError = "dial: " + failClass(echoErr)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.EchoError = echoLoop(echo, stop, a.o.timeout, echoHist)
		}()
	}
	connHist := newHist()
	var cmu sync.Mutex
	every := a.o.duration / time.Duration(max(1, a.o.fresh))
	for i := 0; i < a.o.fresh; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := a.dial("/echo", nil, 0)
			cmu.Lock()
			defer cmu.Unlock()
			if err != nil {
				f.ConnectFailures[failClass(err)]++
				return
			}
			connHist.record(p.opened.Sub(p.dialed))
			f.ConnectsOpen++
			p.close()
		}()
		time.Sleep(every)
	}
	wg.Wait()
	f.Seconds = time.Since(t0).Seconds()
	f.PublishesSent = sent.Load()
	f.PushesReceived = pushes.Load()
	f.EchoRTT = echoHist.percentiles()
	f.ConnectLatency = connHist.percentiles()
	f.SubscriberEnds, _ = endCounts(subs)
	f.PublisherEnds, _ = endCounts(pubs)
	return f
}

// echoLoop does round trips of a 16-byte binary message on p, one after
// another, until stop; a reply later than timeout ends it. It starts a
// round trip at most every echoEvery, which keeps it well under the
// server's -max-msg-rate (1000 a second by default): an ordinary client,
// not one more attacker. It returns why it stopped early, or "".
func echoLoop(p *peer, stop time.Time, timeout time.Duration, h *hist) string {
	msg := clientFrame(0x2, []byte("wsgate-echo-16by"))
	for next := time.Now(); next.Before(stop); next = next.Add(echoEvery) {
		time.Sleep(time.Until(next))
		sent := time.Now()
		err := p.write(msg)
		if err == nil {
			_ = p.conn.SetReadDeadline(sent.Add(timeout))
			_, _, err = p.next(false)
		}
		if err != nil {
			if e := p.endOf(); e != nil {
				return e.String()
			}
			return failClass(err)
		}
		h.record(time.Since(sent))
		if late := time.Since(next); late > echoEvery {
			next = next.Add(late - echoEvery) // a slow reply: no catching up
		}
	}
	return ""
}

// echoEvery is the least time between two echo round trips' starts.
const echoEvery = 2 * time.Millisecond

// Scenario queue.
