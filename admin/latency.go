package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Latency holds the latency histograms, which need timing where things
// happen: one observation per handshake and one per publish, never per
// message per connection. Create it first and hand its methods to the
// WebSocket server (wsconn.Config.ObserveHandshake) and the hub
// (handler.Channels.SetFanoutObserver), then give it to Config.Latency.
type Latency struct {
	handshake prometheus.Histogram
	fanout    prometheus.Histogram
	fanoutTo  prometheus.Histogram
}

// NewLatency makes the histograms wsgate_handshake_seconds,
// wsgate_broadcast_fanout_seconds and wsgate_broadcast_recipients.
func NewLatency() *Latency {
	return &Latency{
		handshake: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "handshake_seconds",
			Help:    "Time from accepting a connection to its 101 answer (TLS handshake included); millisecond resolution.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. 8 s
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "broadcast_fanout_seconds",
			Help:    "Time to queue one publish to every local subscriber of its channel (this process).",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10), // 10 µs .. 2.6 s
		}),
		fanoutTo: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "broadcast_recipients",
			Help:    "Local subscribers one publish was queued to.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 .. 262144
		}),
	}
}

// ObserveHandshake records one successful upgrade.
func (l *Latency) ObserveHandshake(d time.Duration) { l.handshake.Observe(d.Seconds()) }

// ObserveFanout records one publish's local delivery.
func (l *Latency) ObserveFanout(d time.Duration, recipients int) {
	l.fanout.Observe(d.Seconds())
	l.fanoutTo.Observe(float64(recipients))
}

func (l *Latency) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.handshake, l.fanout, l.fanoutTo}
}
