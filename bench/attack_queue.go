package main

// Attack mode (attack.go): the queue scenario, and the server memory watch every scenario uses.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// QueueFigures are queue's figures.
type QueueFigures struct {
	Subscribers  int            `json:"subscribers"`
	Opened       int            `json:"opened"`
	Acked        int            `json:"subscribe_acks"`
	Failures     map[string]int `json:"failures"`
	RcvBufBytes  int            `json:"rcvbuf_bytes"`
	PushBytes    int            `json:"push_bytes"` // payload of one push
	Requests     int            `json:"publish_requests"`
	RequestFails map[string]int `json:"publish_failures"`
	Delivered    int64          `json:"delivered"` // pushes queued, by the server's answers
	Seconds      float64        `json:"publish_seconds"`
	SlowCloses   float64        `json:"slow_consumer_closes"` // the server's counter, during the run
	Cut          int            `json:"cut_slow_consumer"`    // subscribers that found 1008 "slow consumer"
	Ends         map[string]int `json:"ends"`                 // what each subscriber found when drained
}

func (f *QueueFigures) summary() string {
	return fmt.Sprintf("%d subscribers, %d pushes queued in %.1f s by %d requests; %d cut as slow consumers (server counter %.0f); ends %v",
		f.Opened, f.Delivered, f.Seconds, f.Requests, f.Cut, f.SlowCloses, f.Ends)
}

func (a *attack) queue() *QueueFigures {
	const data = `"xy"` // the push {"channel":"q","data":"xy"} is 27 bytes
	f := &QueueFigures{Subscribers: a.o.n, RcvBufBytes: a.o.rcvbuf, RequestFails: map[string]int{},
		PushBytes: len(`{"channel":"q","data":` + data + `}`)}
	subs, fails := a.dialMany(a.o.n, "/ws", a.o.rcvbuf)
	f.Opened, f.Failures = len(subs), fails
	// Subscribe and read the ack, then read nothing more until the end.
	subscribe := clientFrame(0x1, []byte(`{"op":"subscribe","channel":"q","id":1}`))
	for _, p := range subs {
		_ = p.conn.SetReadDeadline(time.Now().Add(a.o.timeout))
		if err := p.write(subscribe); err != nil {
			f.Failures["subscribe_"+failClass(err)]++
			continue
		}
		if _, payload, err := p.next(true); err == nil && bytes.HasPrefix(payload, ackPrefixAttack) {
			f.Acked++
		}
		_ = p.conn.SetReadDeadline(time.Time{})
	}
	var body bytes.Buffer
	body.WriteString(`{"messages":[`)
	for i := range a.o.maxBatch {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"channel":"q","data":` + data + `}`)
	}
	body.WriteString(`]}`)
	tr := &http.Transport{MaxIdleConnsPerHost: 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	slow0 := a.mem.slowCloses()
	progressf("queue: %d subscribers (%d acks); publishing", len(subs), f.Acked)

	t0 := time.Now()
	for time.Since(t0) < a.o.duration && a.mem.slowCloses()-slow0 < float64(len(subs)) {
		f.Requests++
		delivered, err := publishBatch(client, "http://"+a.o.admin+"/api/publish", a.o.apiKey, body.Bytes())
		f.Delivered += delivered
		if err != nil {
			f.RequestFails[err.Error()]++
			if f.RequestFails[err.Error()] > 100 {
				break // the API refuses: no point going on
			}
			time.Sleep(10 * time.Millisecond)
		}
		if delivered == 0 && err == nil {
			time.Sleep(10 * time.Millisecond) // nobody left to push to
		}
	}
	f.Seconds = time.Since(t0).Seconds()
	a.mem.sample() // the counter as of now
	f.SlowCloses = a.mem.slowCloses() - slow0

	// Drain: read what each subscriber was sent, up to its close frame or
	// the end of the stream, to see how the server ended it. A large
	// receive buffer now, so that what the server's socket still holds
	// comes through quickly.
	drainBy := time.Now().Add(max(15*time.Second, a.o.timeout))
	for _, p := range subs {
		if tc, ok := p.conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 20)
		}
		_ = p.conn.SetDeadline(drainBy)
		a.read(p, nil)
	}
	for _, p := range subs {
		<-p.done
	}
	f.Ends, _ = endCounts(subs)
	if n := f.Ends["open"]; n > 0 {
		delete(f.Ends, "open")
		f.Ends["no_end_seen_in_drain"] = n // still reading data at drainBy
	}
	for _, p := range subs {
		if e := p.endOf(); e != nil && e.How == "close" && e.Code == 1008 && e.Reason == "slow consumer" {
			f.Cut++
		}
	}
	return f
}

// publishBatch posts one batch to the admin API and returns how many
// pushes the answer says were queued.
func publishBatch(client *http.Client, url, key string, body []byte) (int64, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, errors.New(failClass(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("status_%d", resp.StatusCode)
	}
	var answer struct {
		Results []struct {
			Delivered int64 `json:"delivered"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return 0, errors.New("bad_answer")
	}
	var n int64
	for _, r := range answer.Results {
		n += r.Delivered
	}
	return n, nil
}

// Server memory.

// MemReading is one reading of the server.
type MemReading struct {
	RSSKiB    int64   `json:"rss_kib"`
	HeapBytes int64   `json:"heap_inuse_bytes"` // -1: /metrics not read
	CPUSecs   float64 `json:"cpu_secs"`
}

// MemFigures are the server's memory before the attack, at its peak (RSS
// and heap each at its own) and at the end.
type MemFigures struct {
	Pid           int        `json:"pid"`
	Before        MemReading `json:"before"`
	End           MemReading `json:"end"`
	PeakRSSKiB    int64      `json:"peak_rss_kib"`
	PeakHeapBytes int64      `json:"peak_heap_inuse_bytes"`
	RSSGrowthMiB  float64    `json:"rss_growth_mib"`  // peak - before
	HeapGrowthMiB float64    `json:"heap_growth_mib"` // peak - before
	CPUSecs       float64    `json:"cpu_secs"`        // end - before
	Samples       int        `json:"samples"`
	MetricsError  string     `json:"metrics_error,omitempty"`
}

func (m MemFigures) summary() string {
	return fmt.Sprintf("server RSS %+.0f MiB (peak %.0f MiB), heap %+.0f MiB (peak %.0f MiB), CPU %.1f s",
		m.RSSGrowthMiB, float64(m.PeakRSSKiB)/1024, m.HeapGrowthMiB, float64(m.PeakHeapBytes)/(1<<20), m.CPUSecs)
}

// memWatch samples the server's RSS and heap every 200 ms from start to
// stop, keeping the peaks, and its slow-consumer counter.
type memWatch struct {
	pid     int
	url     string
	client  *http.Client
	tr      *http.Transport
	mu      sync.Mutex
	fig     MemFigures
	slow    float64 // wsgate_slow_consumer_closes_total, last read
	stopCh  chan struct{}
	stopped chan struct{}
}

func newMemWatch(pid int, admin string) *memWatch {
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	return &memWatch{pid: pid, url: "http://" + admin + "/metrics", tr: tr,
		client: &http.Client{Transport: tr, Timeout: 5 * time.Second},
		fig:    MemFigures{Pid: pid}, stopCh: make(chan struct{}), stopped: make(chan struct{})}
}

// read takes one reading.
func (m *memWatch) read() (MemReading, error) {
	s, err := readProc(m.pid)
	if err != nil {
		return MemReading{}, err
	}
	r := MemReading{RSSKiB: s.RSSKiB, CPUSecs: s.CPUSecs, HeapBytes: -1}
	heap, slow, merr := m.metrics()
	m.mu.Lock()
	defer m.mu.Unlock()
	if merr != nil {
		m.fig.MetricsError = merr.Error()
	} else {
		r.HeapBytes, m.slow = heap, slow
	}
	return r, nil
}

// metrics reads the heap in use and the slow-consumer counter from the
// server's Prometheus text.
func (m *memWatch) metrics() (heap int64, slow float64, err error) {
	resp, err := m.client.Get(m.url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: status %d", m.url, resp.StatusCode)
	}
	heap = -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			v, _ := strconv.ParseFloat(value, 64)
			heap = int64(v)
		case "wsgate_slow_consumer_closes_total":
			slow, _ = strconv.ParseFloat(value, 64)
		}
	}
	if heap < 0 {
		return 0, 0, fmt.Errorf("%s: no go_memstats_heap_inuse_bytes", m.url)
	}
	return heap, slow, sc.Err()
}

// sample takes a reading into the peaks.
func (m *memWatch) sample() {
	r, err := m.read()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fig.Samples++
	m.fig.PeakRSSKiB = max(m.fig.PeakRSSKiB, r.RSSKiB)
	m.fig.PeakHeapBytes = max(m.fig.PeakHeapBytes, r.HeapBytes)
}

func (m *memWatch) slowCloses() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slow
}

// start takes the reading before the attack and starts sampling.
func (m *memWatch) start() error {
	r, err := m.read()
	if err != nil {
		return fmt.Errorf("server pid %d: %w", m.pid, err)
	}
	m.fig.Before = r
	m.fig.PeakRSSKiB, m.fig.PeakHeapBytes = r.RSSKiB, r.HeapBytes
	go func() {
		defer close(m.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stopCh:
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return nil
}

// stop takes the end reading and returns the figures.
func (m *memWatch) stop() MemFigures {
	close(m.stopCh)
	<-m.stopped
	m.sample()
	r, _ := m.read()
	m.tr.CloseIdleConnections()
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.fig
	f.End = r
	f.RSSGrowthMiB = float64(f.PeakRSSKiB-f.Before.RSSKiB) / 1024
	if f.Before.HeapBytes >= 0 && f.PeakHeapBytes >= 0 {
		f.HeapGrowthMiB = float64(f.PeakHeapBytes-f.Before.HeapBytes) / (1 << 20)
	}
	f.CPUSecs = r.CPUSecs - f.Before.CPUSecs
	return f
}
