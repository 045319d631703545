package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

// idleOptions configures the idle mode.
type idleOptions struct {
	common
	hold time.Duration
}

func (o *idleOptions) parse(args []string) error {
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var urls, src, pids string
	o.register(fs, &urls, &src, &pids)
	fs.DurationVar(&o.hold, "hold", 20*time.Second, "how long to hold the connections once open")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return err
	}
	return o.finish(urls, src, pids)
}

// idleResult is the JSON report of an idle run.
type idleResult struct {
	Mode          string         `json:"mode"`
	Target        int            `json:"target_conns"`
	Open          int64          `json:"open_conns"`
	Failures      map[string]int `json:"failures"`
	RampSeconds   float64        `json:"ramp_seconds"`
	ConnectRate   float64        `json:"connect_rate_per_s"`
	HandshakeMs   latency        `json:"handshake_ms"`
	ServerPids    []int          `json:"server_pids"`
	Before        procSample     `json:"server_before"`
	After         procSample     `json:"server_after"`
	KiBPerConn    float64        `json:"server_kib_per_conn"`
	IdleCPUPct    float64        `json:"server_idle_cpu_pct"`
	HoldSeconds   float64        `json:"hold_seconds"`
	ServerClosed  int64          `json:"closed_by_server"`
	PingsAnswered int64          `json:"pings_answered"`
}

// latency is a set of percentiles in milliseconds.
type latency struct {
	P50, P90, P99, P999, Max float64
}

func percentiles(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(d)-1))
		return float64(d[i]) / 1e6
	}
	return latency{P50: at(.5), P90: at(.9), P99: at(.99), P999: at(.999), Max: at(1)}
}

func runIdle(o idleOptions) error {
	f, err := newFleet(o.workers, o.timeout)
	if err != nil {
		return err
	}
	defer f.closeAll()
	before, err := sumProcs(o.pids)
	if err != nil {
		return err
	}
	start := time.Now()
	ramp(f, &o.common)
	rampSecs := time.Since(start).Seconds()
	time.Sleep(2 * time.Second) // let the server settle: pools, GC
	after, err := sumProcs(o.pids)
	if err != nil {
		return err
	}
	progress("holding %d connections for %v", f.open.Load(), o.hold)
	time.Sleep(o.hold)
	end, err := sumProcs(o.pids)
	if err != nil {
		return err
	}
	open := f.open.Load()
	f.mu.Lock()
	res := idleResult{
		Mode: "idle", Target: o.n, Open: open, Failures: f.fails,
		RampSeconds: rampSecs, ConnectRate: float64(open) / rampSecs,
		HandshakeMs: percentiles(f.hsLat), ServerPids: o.pids,
		Before: before, After: after, HoldSeconds: o.hold.Seconds(),
		IdleCPUPct:    100 * (end.CPUSecs - after.CPUSecs) / o.hold.Seconds(),
		ServerClosed:  f.closedBy.Load(),
		PingsAnswered: f.pings.Load(),
	}
	f.mu.Unlock()
	if open > 0 {
		res.KiBPerConn = float64(after.RSSKiB-before.RSSKiB) / float64(open)
	}
	return writeJSON(o.jsonPath, res, os.Stdout)
}

// ramp dials o.n connections at o.rate per second, spread over targets and
// source addresses, and waits until each is open or failed.
func ramp(f *fleet, o *common) {
	const tick = 10 * time.Millisecond
	perTick := max(1, o.rate/int(time.Second/tick))
	next := time.Now()
	lastReport := time.Now()
	for i := 0; i < o.n; {
		for j := 0; j < perTick && i < o.n; j++ {
			t := o.urls[i%len(o.urls)]
			var src []byte
			if len(o.sources) > 0 {
				src = o.sources[i%len(o.sources)]
			}
			f.dial(t, src, int32(i))
			i++
		}
		if time.Since(lastReport) > time.Second {
			progress("ramp: %d dialed, %d open", i, f.open.Load())
			lastReport = time.Now()
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	deadline := time.Now().Add(o.timeout + time.Second)
	for time.Now().Before(deadline) {
		f.expire()
		f.mu.Lock()
		failed := 0
		for _, n := range f.fails {
			failed += n
		}
		f.mu.Unlock()
		if int(f.open.Load())+failed >= o.n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	progress("ramp done: %d open", f.open.Load())
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}
