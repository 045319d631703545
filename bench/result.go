package main

import (
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what a run reports, as JSON. A worker process reports one; the
// parent merges them and adds what it measured of the server.
type Result struct {
	Mode      string         `json:"mode"`
	Label     string         `json:"label,omitempty"`
	Date      string         `json:"date"`
	Command   string         `json:"command"`
	Processes int            `json:"bench_processes"`
	Target    int            `json:"target_conns"`
	Open      int            `json:"open_conns"`
	PeakOpen  int            `json:"peak_open_conns"`
	Failures  map[string]int `json:"failures"`
	// Ends counts the connections that were open and ended before the
	// bench closed them, by how: "server_close_<status>" after the
	// server's close frame, "eof_without_close" or "reset_without_close"
	// when it dropped the connection (as its heartbeat does).
	Ends  map[string]int `json:"ends"`
	Pings int64          `json:"pings_answered"`
	// PortsSkipped counts local ports found taken (by another socket, or
	// a TIME_WAIT pair to the same server) and passed over for the next.
	PortsSkipped int64 `json:"ports_skipped"`

	RampSeconds float64     `json:"ramp_seconds"`
	ConnectRate float64     `json:"connect_rate_per_s"`
	Handshake   Percentiles `json:"handshake_ms"`

	Server   ServerFigures `json:"server"`
	Timeline []Sample      `json:"timeline"`

	Echo      *EchoFigures      `json:"echo,omitempty"`
	Broadcast *BroadcastFigures `json:"broadcast,omitempty"`

	// Histograms travel from workers to the parent; not in the report.
	HandshakeHist string `json:"handshake_hist,omitempty"`
	LatencyHist   string `json:"latency_hist,omitempty"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// ServerFigures are the server processes' figures.
type ServerFigures struct {
	Pids        []int      `json:"pids"`
	Before      procSample `json:"before"`
	AfterRamp   procSample `json:"after_ramp"`
	End         procSample `json:"end"`
	KiBPerConn  float64    `json:"kib_per_conn"`
	IdleCPUPct  float64    `json:"idle_cpu_pct,omitempty"`
	RunCPUSecs  float64    `json:"run_cpu_secs"`
	RunSeconds  float64    `json:"run_seconds"`
	PeakRSSKiB  int64      `json:"peak_rss_kib"`
	PeakThreads int        `json:"peak_threads"`
	// Kernel memory of the whole machine (both ends' sockets), from
	// /proc/meminfo Slab and /proc/net/sockstat, before and after the ramp.
	SlabBeforeKiB    int64   `json:"kernel_slab_before_kib"`
	SlabAfterKiB     int64   `json:"kernel_slab_after_ramp_kib"`
	TCPBufAfterKiB   int64   `json:"kernel_tcp_buffers_after_ramp_kib"`
	KernelKiBPerConn float64 `json:"kernel_kib_per_conn"`
}

// Sample is one point of the timeline, taken every second by the parent.
type Sample struct {
	T         float64 `json:"t"`
	Phase     string  `json:"phase"`
	Open      int     `json:"open_conns"`
	RSSKiB    int64   `json:"server_rss_kib"`
	CPUPct    float64 `json:"server_cpu_pct"`
	Delivered int64   `json:"delivered,omitempty"`
}

// EchoFigures report the echo mode.
type EchoFigures struct {
	Conns             int         `json:"conns"`
	PayloadBytes      int         `json:"payload_bytes"`
	Seconds           float64     `json:"seconds"`
	Messages          int64       `json:"messages"`
	MsgsPerSec        float64     `json:"msgs_per_s"`
	RTT               Percentiles `json:"rtt_ms"`
	ServerCPUusPerMsg float64     `json:"server_cpu_us_per_msg"`
}

// BroadcastFigures report the broadcast mode. Every subscriber should get
// every message exactly once and in order.
type BroadcastFigures struct {
	Subscribers int   `json:"subscribers"`
	Messages    int   `json:"messages"`
	Expected    int64 `json:"expected_deliveries"`
	Received    int64 `json:"received"`
	Missing     int64 `json:"missing"`
	Duplicates  int64 `json:"duplicates"`
	OutOfOrder  int64 `json:"out_of_order"`
	Incomplete  int64 `json:"incomplete_subscribers"`
	// Ended counts the subscribers that ended during the broadcast (see
	// Result.Ends for how); their deliveries up to then count.
	Ended       int64       `json:"ended_during_broadcast"`
	Latency     Percentiles `json:"delivery_ms"`
	PublishSecs float64     `json:"publish_seconds"`
}

// hist is a latency histogram (microseconds, 1µs to 1 hour, 3 significant
// digits) safe for concurrent recording.
type hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHist() *hist { return &hist{h: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)} }

func (h *hist) record(d time.Duration) {
	us := max(1, d.Microseconds())
	h.mu.Lock()
	_ = h.h.RecordValue(min(us, h.h.HighestTrackableValue()))
	h.mu.Unlock()
}

func (h *hist) percentiles() Percentiles {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(q float64) float64 { return float64(h.h.ValueAtQuantile(q)) / 1000 }
	return Percentiles{
		Count: h.h.TotalCount(),
		P50:   ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9),
		Max: float64(h.h.Max()) / 1000,
	}
}

// encode serialises the histogram for the trip to the parent.
func (h *hist) encode() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// mergeEncoded adds an encoded histogram into h.
func (h *hist) mergeEncoded(s string) error {
	if s == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("bad histogram encoding: %w", err)
	}
	other, err := hdrhistogram.Decode(b)
	if err != nil {
		return fmt.Errorf("bad histogram: %w", err)
	}
	h.mu.Lock()
	h.h.Merge(other)
	h.mu.Unlock()
	return nil
}

// merge combines the results of worker processes into one. The server
// figures and timeline are the parent's and are filled in afterwards.
func merge(parts []*Result) (*Result, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("no results to merge")
	}
	out := &Result{Mode: parts[0].Mode, Processes: len(parts), Failures: map[string]int{}, Ends: map[string]int{}}
	hs, lat := newHist(), newHist()
	for _, p := range parts {
		out.Target += p.Target
		out.Open += p.Open
		out.PeakOpen += p.PeakOpen
		out.RampSeconds = max(out.RampSeconds, p.RampSeconds)
		out.PortsSkipped += p.PortsSkipped
		for k, v := range p.Failures {
			out.Failures[k] += v
		}
		for k, v := range p.Ends {
			out.Ends[k] += v
		}
		out.Pings += p.Pings
		if err := hs.mergeEncoded(p.HandshakeHist); err != nil {
			return nil, err
		}
		if err := lat.mergeEncoded(p.LatencyHist); err != nil {
			return nil, err
		}
		mergeEcho(out, p.Echo)
		mergeBroadcast(out, p.Broadcast)
	}
	if out.RampSeconds > 0 {
		out.ConnectRate = float64(out.PeakOpen) / out.RampSeconds
	}
	out.Handshake = hs.percentiles()
	if out.Echo != nil {
		out.Echo.RTT = lat.percentiles()
		if out.Echo.Seconds > 0 {
			out.Echo.MsgsPerSec = float64(out.Echo.Messages) / out.Echo.Seconds
		}
	}
	if out.Broadcast != nil {
		out.Broadcast.Latency = lat.percentiles()
	}
	return out, nil
}

func mergeEcho(out *Result, e *EchoFigures) {
	if e == nil {
		return
	}
	if out.Echo == nil {
		out.Echo = &EchoFigures{PayloadBytes: e.PayloadBytes}
	}
	out.Echo.Conns += e.Conns
	out.Echo.Messages += e.Messages
	out.Echo.Seconds = max(out.Echo.Seconds, e.Seconds)
}

func mergeBroadcast(out *Result, b *BroadcastFigures) {
	if b == nil {
		return
	}
	if out.Broadcast == nil {
		out.Broadcast = &BroadcastFigures{}
	}
	o := out.Broadcast
	o.Subscribers += b.Subscribers
	o.Messages = max(o.Messages, b.Messages)
	o.Expected += b.Expected
	o.Received += b.Received
	o.Missing += b.Missing
	o.Duplicates += b.Duplicates
	o.OutOfOrder += b.OutOfOrder
	o.Incomplete += b.Incomplete
	o.Ended += b.Ended
	o.PublishSecs = max(o.PublishSecs, b.PublishSecs)
}
