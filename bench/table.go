package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// runTable prints a Markdown table comparing the results of two labels
// (the first label found is A, the second B), mode by mode, with ratios.
func runTable(args []string, w io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("table: name result JSON files of two labelled runs")
	}
	byLabel := map[string]map[string]*Result{}
	var labels []string
	for _, path := range args {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if byLabel[r.Label] == nil {
			byLabel[r.Label] = map[string]*Result{}
			labels = append(labels, r.Label)
		}
		byLabel[r.Label][r.Mode] = &r
	}
	if len(labels) != 2 {
		return fmt.Errorf("table: want results of exactly two labels, got %q", labels)
	}
	a, b := byLabel[labels[0]], byLabel[labels[1]]
	fmt.Fprintf(w, "| figure | %s | %s | ratio |\n|---|---|---|---|\n", labels[0], labels[1])
	row := func(name string, x, y float64, unit string, lowerIsBetter bool) {
		ratio := "–"
		if x > 0 && y > 0 {
			better, worse, f := labels[0], labels[1], y/x
			if lowerIsBetter == (x > y) {
				better, worse, f = labels[1], labels[0], x/y
			}
			if lowerIsBetter {
				ratio = fmt.Sprintf("%s %.1f× less than %s", better, max(f, 1/f), worse)
			} else {
				ratio = fmt.Sprintf("%s %.1f× more than %s", better, max(f, 1/f), worse)
			}
		}
		fmt.Fprintf(w, "| %s | %.3g %s | %.3g %s | %s |\n", name, x, unit, y, unit, ratio)
	}
	if ra, rb := a["idle"], b["idle"]; ra != nil && rb != nil {
		row(fmt.Sprintf("memory per idle connection (%d conns)", ra.PeakOpen), ra.Server.KiBPerConn, rb.Server.KiBPerConn, "KiB", true)
		row("server CPU while idle", ra.Server.IdleCPUPct, rb.Server.IdleCPUPct, "%", true)
		row("server threads", float64(ra.Server.PeakThreads), float64(rb.Server.PeakThreads), "", true)
	}
	if ra, rb := a["echo"], b["echo"]; ra != nil && rb != nil && ra.Echo != nil && rb.Echo != nil {
		row(fmt.Sprintf("echo throughput (%d conns, %d B)", ra.Echo.Conns, ra.Echo.PayloadBytes), ra.Echo.MsgsPerSec, rb.Echo.MsgsPerSec, "msg/s", false)
		row("echo round trip p99", ra.Echo.RTT.P99, rb.Echo.RTT.P99, "ms", true)
		row("server CPU per echo", ra.Echo.ServerCPUusPerMsg, rb.Echo.ServerCPUusPerMsg, "µs", true)
	}
	if ra, rb := a["broadcast"], b["broadcast"]; ra != nil && rb != nil && ra.Broadcast != nil && rb.Broadcast != nil {
		row(fmt.Sprintf("broadcast delivery p50 (%d subscribers)", ra.Broadcast.Subscribers), ra.Broadcast.Latency.P50, rb.Broadcast.Latency.P50, "ms", true)
		row("broadcast delivery p99", ra.Broadcast.Latency.P99, rb.Broadcast.Latency.P99, "ms", true)
		row("broadcast messages missing", float64(ra.Broadcast.Missing), float64(rb.Broadcast.Missing), "", true)
		row("server memory during broadcast (peak RSS)", float64(ra.Server.PeakRSSKiB)/1024, float64(rb.Server.PeakRSSKiB)/1024, "MiB", true)
	}
	return nil
}
