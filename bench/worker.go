package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A worker process holds its share of the connections and runs the mode.
// It talks to the parent over stdin (lines "go", "stop") and stdout (one
// JSON message per line): progress every 200ms, "ready" when its
// connections are up (and subscribed), and the result at the end.

// workerOptions is one worker's share of a run, passed as JSON in the
// environment variable BENCH_WORKER.
type workerOptions struct {
	Mode      string        `json:"mode"`
	Index     int           `json:"index"`
	URLs      []string      `json:"urls"`
	Sources   []string      `json:"sources"`
	PortLo    int           `json:"port_lo"` // local ports to bind on Sources
	PortHi    int           `json:"port_hi"`
	N         int           `json:"n"`
	Rate      int           `json:"rate"`
	Timeout   time.Duration `json:"timeout"`
	Pool      int           `json:"pool"`
	Size      int           `json:"size"`
	Duration  time.Duration `json:"duration"`
	Messages  int           `json:"messages"`
	PubRate   float64       `json:"pub_rate"`
	Channel   string        `json:"channel"`
	Drain     time.Duration `json:"drain"`
	Publisher bool          `json:"publisher"`
	Procs     int           `json:"procs"` // worker processes in the run
	Deflate   bool          `json:"deflate"`
}

// msg is one line from a worker to the parent.
type msg struct {
	Open      int64   `json:"open,omitempty"`
	Delivered int64   `json:"delivered,omitempty"`
	Ready     bool    `json:"ready,omitempty"`
	Result    *Result `json:"result,omitempty"`
	Err       string  `json:"err,omitempty"`
}

type worker struct {
	o       workerOptions
	f       *fleet
	targets []*target
	out     *json.Encoder
	outMu   sync.Mutex
	in      *bufio.Scanner
	lat     *hist
	acks    atomic.Int64 // subscribe acks (broadcast)
	msgs    atomic.Int64 // echo replies or broadcast pushes
	running atomic.Bool
}

func runWorker() error {
	var o workerOptions
	if err := json.Unmarshal([]byte(os.Getenv("BENCH_WORKER")), &o); err != nil {
		return fmt.Errorf("worker: bad BENCH_WORKER: %w", err)
	}
	w := &worker{o: o, out: json.NewEncoder(os.Stdout), in: bufio.NewScanner(os.Stdin), lat: newHist()}
	for _, u := range o.URLs {
		t, err := parseTarget(u)
		if err != nil {
			return err
		}
		if o.Deflate {
			t.withDeflate()
		}
		w.targets = append(w.targets, t)
	}
	f, err := newFleet(o.Pool, o.Timeout)
	if err != nil {
		return err
	}
	w.f = f
	defer f.closeAll()
	stop := w.reportProgress()
	defer close(stop)
	res, err := w.run()
	if err != nil {
		w.send(msg{Err: err.Error()})
		return err
	}
	w.send(msg{Result: res})
	return nil
}

func (w *worker) send(m msg) {
	w.outMu.Lock()
	_ = w.out.Encode(m)
	w.outMu.Unlock()
}

func (w *worker) reportProgress() chan struct{} {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				w.send(msg{Open: w.f.open.Load(), Delivered: w.msgs.Load()})
			}
		}
	}()
	return stop
}

// waitLine blocks until the parent sends want (or closes stdin).
func (w *worker) waitLine(want string) {
	for w.in.Scan() {
		if w.in.Text() == want {
			return
		}
	}
}

func (w *worker) run() (*Result, error) {
	switch w.o.Mode {
	case "echo":
		w.f.onMessage = w.onEcho
	case "broadcast":
		w.f.onOpen = func(c *client) {
			_ = c.send(0x1, []byte(`{"op":"subscribe","channel":"`+w.o.Channel+`","id":1}`))
		}
		w.f.onMessage = w.onPush
	}
	start := time.Now()
	w.ramp()
	res := &Result{Mode: w.o.Mode, Target: w.o.N, PeakOpen: int(w.f.peakOpen.Load()),
		RampSeconds: time.Since(start).Seconds()}
	if w.o.Mode == "broadcast" {
		w.waitFor(func() bool { return w.acks.Load() >= w.f.open.Load() }, w.o.Timeout)
	}
	w.send(msg{Ready: true})
	w.waitLine("go")
	switch w.o.Mode {
	case "idle":
		w.waitLine("stop")
	case "echo":
		res.Echo = w.runEcho()
	case "broadcast":
		res.Broadcast = w.runBroadcast()
	}
	res.Open = int(w.f.open.Load())
	res.Failures, _ = w.f.failures()
	res.Ends = w.f.endCounts()
	res.Pings = w.f.pings.Load()
	res.PortsSkipped = w.f.portsSkipped.Load()
	res.HandshakeHist = w.f.hsLat.encode()
	res.LatencyHist = w.lat.encode()
	return res, nil
}

// ramp dials this worker's connections at its rate, spread over targets
// and source addresses, and waits until each is open or has failed.
func (w *worker) ramp() {
	const tick = 10 * time.Millisecond
	perTick := float64(w.o.Rate) * tick.Seconds()
	var sources []net.IP
	for _, s := range w.o.Sources {
		sources = append(sources, net.ParseIP(s).To4())
	}
	cursors := make([]int, len(sources)) // per source: the next port to try
	for j := range cursors {
		cursors[j] = w.o.PortLo
	}
	next, budget := time.Now(), 0.0
	for i := 0; i < w.o.N; {
		budget += perTick
		for ; budget >= 1 && i < w.o.N; budget-- {
			var src net.IP
			var cursor *int // nil: the kernel picks the port
			if len(sources) > 0 {
				// Each connection its own source address and port: no
				// port search in the kernel's connect (it slows down as
				// the ports of an address fill up).
				src, cursor = sources[i%len(sources)], &cursors[i%len(sources)]
			}
			if t := w.targets[i%len(w.targets)]; t.tls {
				w.f.dialTLS(t, src)
			} else {
				w.f.dial(t, src, cursor, w.o.PortHi, int32(i))
			}
			i++
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	w.f.waitTLSDials()
	w.waitFor(func() bool {
		w.f.expire()
		_, failed := w.f.failures()
		return int(w.f.open.Load()+w.f.endedEarly.Load())+failed >= w.o.N
	}, w.o.Timeout+time.Second)
}

func (w *worker) waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Echo mode: every connection runs a closed loop, one message in flight:
// send a payload stamped with the time, get it back, record the RTT, send
// the next.

func (w *worker) echoPayload() []byte {
	p := bytes.Repeat([]byte{'x'}, max(8, w.o.Size))
	binary.LittleEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	return p
}

func (w *worker) onEcho(c *client, payload []byte) {
	if len(payload) < 8 {
		return
	}
	sent := int64(binary.LittleEndian.Uint64(payload))
	w.lat.record(time.Duration(time.Now().UnixNano() - sent))
	w.msgs.Add(1)
	if w.running.Load() {
		binary.LittleEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		_ = c.send(0x2, payload)
	}
}

func (w *worker) runEcho() *EchoFigures {
	w.running.Store(true)
	start := time.Now()
	w.f.each(func(c *client) { _ = c.send(0x2, w.echoPayload()) })
	time.Sleep(w.o.Duration)
	w.running.Store(false)
	secs := time.Since(start).Seconds()
	time.Sleep(200 * time.Millisecond) // let the last round trips land
	return &EchoFigures{Conns: int(w.f.open.Load()), PayloadBytes: max(8, w.o.Size),
		Seconds: secs, Messages: w.msgs.Load()}
}

// Broadcast mode: every connection subscribes to one channel; the
// publisher (one extra connection, in worker 0) publishes Messages
// messages [seq, unix ns]; every subscriber checks it gets each seq once,
// in order, and records the delivery latency.

var (
	ackPrefix  = []byte(`{"op":"ack"`)
	dataPrefix = []byte(`"data":[`)
)

func (w *worker) onPush(c *client, payload []byte) {
	if bytes.HasPrefix(payload, ackPrefix) {
		w.acks.Add(1)
		return
	}
	i := bytes.Index(payload, dataPrefix)
	if i < 0 {
		return
	}
	rest := payload[i+len(dataPrefix):]
	comma := bytes.IndexByte(rest, ',')
	end := bytes.IndexByte(rest, ']')
	if comma < 0 || end < comma {
		return
	}
	seq, err1 := strconv.ParseInt(string(rest[:comma]), 10, 64)
	ts, err2 := strconv.ParseInt(string(rest[comma+1:end]), 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	w.lat.record(time.Duration(time.Now().UnixNano() - ts))
	w.msgs.Add(1)
	c.received++
	switch {
	case seq == c.lastSeq+1:
		c.lastSeq = seq
	case seq <= c.lastSeq:
		c.dups++
	default:
		c.ooo++
		c.lastSeq = seq
	}
}

func (w *worker) runBroadcast() *BroadcastFigures {
	// The subscribers are the connections open now; one that ends during
	// the broadcast still counts with what it received until then, so
	// that a dropped connection shows as such, not as lost deliveries.
	subs := 0
	w.f.each(func(c *client) {
		c.inRound.Store(true)
		subs++
	})
	fig := &BroadcastFigures{Subscribers: subs, Messages: w.o.Messages,
		Expected: int64(subs) * int64(w.o.Messages)}
	if w.o.Publisher {
		secs, err := w.publish()
		fig.PublishSecs = secs
		if err != nil {
			w.send(msg{Err: "publisher: " + err.Error()})
		}
	}
	w.waitFor(func() bool { return w.msgs.Load() >= fig.Expected }, w.o.Drain+
		time.Duration(float64(w.o.Messages)/w.o.PubRate*float64(time.Second)))
	w.f.everyClient(func(c *client) {
		if !c.inRound.Load() {
			return
		}
		fig.Received += c.received
		fig.Duplicates += c.dups
		fig.OutOfOrder += c.ooo
		if c.received-c.dups < int64(w.o.Messages) {
			fig.Incomplete++
		}
		if uint8(c.phase.Load()) != phOpen {
			fig.Ended++
		}
	})
	fig.Incomplete += int64(w.o.N - subs) // never connected or dropped
	fig.Missing = fig.Expected - (fig.Received - fig.Duplicates)
	return fig
}

// publish connects the publisher and sends the messages at PubRate.
func (w *worker) publish() (float64, error) {
	pub, err := dialBlocking(w.targets[0])
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	var wmu sync.Mutex // the pongs and the publishes
	go answerPings(pub, &wmu)
	interval := time.Duration(float64(time.Second) / w.o.PubRate)
	start := time.Now()
	next := start
	for seq := 1; seq <= w.o.Messages; seq++ {
		body := `{"op":"publish","channel":"` + w.o.Channel + `","data":[` + strconv.Itoa(seq) + `,` +
			strconv.FormatInt(time.Now().UnixNano(), 10) + `]}`
		wmu.Lock()
		_, err := pub.Write(clientFrame(0x1, []byte(body)))
		wmu.Unlock()
		if err != nil {
			return time.Since(start).Seconds(), err
		}
		next = next.Add(interval)
		time.Sleep(time.Until(next))
	}
	return time.Since(start).Seconds(), nil
}

// answerPings reads the publisher's connection until it ends, answering
// the server's pings (a publisher slower than the server's ping interval
// would be dropped otherwise) and dropping the rest (acks: not needed).
func answerPings(conn net.Conn, wmu *sync.Mutex) {
	br := bufio.NewReader(conn)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return
		}
		op, n := hdr[0]&0x0f, uint64(hdr[1]&0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(br, hdr[:8]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if op != 0x9 {
			if _, err := br.Discard(int(min(n, 1<<30))); err != nil {
				return
			}
			continue
		}
		if n > 125 { // a control frame's most: not a server to talk to
			return
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		wmu.Lock()
		_, err := conn.Write(clientFrame(0xA, payload))
		wmu.Unlock()
		if err != nil {
			return
		}
	}
}
