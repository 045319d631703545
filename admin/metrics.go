package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// namespace prefixes every series of this package.
const namespace = "wsgate"

// metric is one series without labels: its description and how to read it
// from a snapshot.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*snapshot) float64
}

func counter(name, help string, value func(*snapshot) float64) metric {
	return metric{prometheus.NewDesc(namespace+"_"+name, help, nil, nil), prometheus.CounterValue, value}
}

func gauge(name, help string, value func(*snapshot) float64) metric {
	return metric{prometheus.NewDesc(namespace+"_"+name, help, nil, nil), prometheus.GaugeValue, value}
}

// wsMetrics read wsconn.Server.Stats, handler.Channels.Stats and the
// Server's own Stats: always present.
var wsMetrics = []metric{
	gauge("connections_open", "Connections open now (handshaking, open or closing).",
		func(s *snapshot) float64 { return float64(s.WS.Conns) }),
	counter("connections_opened_total", "TCP connections accepted on the WebSocket port.",
		func(s *snapshot) float64 { return float64(s.WS.Accepted) }),
	counter("descriptors_closed_total", "Accepted connections whose descriptor was closed, handshakes that failed included.",
		func(s *snapshot) float64 { return float64(s.WS.Closed) }),
	counter("handshake_timeouts_total", "Upgrade requests not complete within the handshake timeout.",
		func(s *snapshot) float64 { return float64(s.WS.HandshakeTimeouts) }),
	counter("messages_received_total", "Data messages received from clients.",
		func(s *snapshot) float64 { return float64(s.WS.MessagesIn) }),
	counter("messages_sent_total", "Data messages sent or queued to clients.",
		func(s *snapshot) float64 { return float64(s.WS.MessagesOut) }),
	counter("received_bytes_total", "Bytes read from WebSocket sockets.",
		func(s *snapshot) float64 { return float64(s.WS.BytesIn) }),
	counter("sent_bytes_total", "Bytes written to WebSocket sockets.",
		func(s *snapshot) float64 { return float64(s.WS.BytesOut) }),
	gauge("queued_bytes", "Bytes waiting in outbound queues now, all connections.",
		func(s *snapshot) float64 { return float64(s.WS.QueuedBytes) }),
	counter("slow_consumer_closes_total", "Connections closed with 1008 \"slow consumer\": outbound queue over its bound.",
		func(s *snapshot) float64 { return float64(s.WS.SlowConsumers) }),
	counter("slow_consumer_dropped_bytes_total", "Queued bytes dropped by slow-consumer closes.",
		func(s *snapshot) float64 { return float64(s.WS.DroppedBytes) }),
	counter("unsent_bytes_total", "Queued bytes lost when connections closed.",
		func(s *snapshot) float64 { return float64(s.WS.UnsentBytes) }),
	counter("too_big_closes_total", "Connections closed with 1009: a frame or message over the limit.",
		func(s *snapshot) float64 { return float64(s.WS.TooBig) }),
	counter("rate_limited_closes_total", "Connections closed with 1008 past the message or byte rate.",
		func(s *snapshot) float64 { return float64(s.WS.RateLimited) }),
	counter("accept_refused_total", "Connections closed at accept, past the accept rate.",
		func(s *snapshot) float64 { return float64(s.WS.AcceptRefused) }),
	counter("pings_sent_total", "Heartbeat pings sent.",
		func(s *snapshot) float64 { return float64(s.WS.Pings) }),
	counter("heartbeat_timeouts_total", "Connections lost for want of a pong.",
		func(s *snapshot) float64 { return float64(s.WS.HeartbeatTimeouts) }),
	counter("heartbeat_late_pongs_total", "Pongs read at the pong deadline, before their readiness event reached a worker: the server was busy, the peer was not lost.",
		func(s *snapshot) float64 { return float64(s.WS.LatePongs) }),
	counter("heartbeat_graces_total", "Pong waits extended because the peer's TCP stack had acknowledged the ping: its application was late, the peer was not lost.",
		func(s *snapshot) float64 { return float64(s.WS.PongGraces) }),
	counter("heartbeat_waits_restarted_total", "Pong waits started again because the ping was still queued behind output the peer was taking.",
		func(s *snapshot) float64 { return float64(s.WS.PongWaitsRestarted) }),
	counter("auth_expired_closes_total", "Connections closed with 1008 when their authorization expired.",
		func(s *snapshot) float64 { return float64(s.WS.AuthExpired) }),
	counter("handler_panics_total", "Handler panics recovered (close 1011).",
		func(s *snapshot) float64 { return float64(s.WS.Panics) }),
	counter("internal_errors_total", "Panics inside wsgate itself (close 1011): bugs.",
		func(s *snapshot) float64 { return float64(s.WS.InternalErrors) }),
	counter("tls_handshake_failures_total", "wss handshakes that failed (bad client hello, timeout, ...).",
		func(s *snapshot) float64 { return float64(s.WS.TLSHandshakeErrors) }),
	counter("tls_handshake_limit_closes_total", "Connections closed because the most TLS handshakes at once were in progress.",
		func(s *snapshot) float64 { return float64(s.WS.TLSHandshakeLimit) }),
	counter("forced_closes_total", "Connections cut at the shutdown deadline.",
		func(s *snapshot) float64 { return float64(s.WS.ForcedCloses) }),
	counter("message_timeout_closes_total", "Connections closed with 1008: a message not complete within the message timeout.",
		func(s *snapshot) float64 { return float64(s.WS.MessageTimeouts) }),
	counter("partial_limit_closes_total", "Connections closed with 1013: unfinished messages held the most memory allowed (-max-partial).",
		func(s *snapshot) float64 { return float64(s.WS.InputBudgetCloses) }),
	gauge("partial_bytes", "Memory held now by messages not yet complete, and by input put aside for a connection's next run.",
		func(s *snapshot) float64 { return float64(s.WS.PartialBytes) }),
	counter("run_yields_total", "Runs that put a connection's input aside after the run budget, so that others got a worker.",
		func(s *snapshot) float64 { return float64(s.WS.Yields) }),
	counter("refusals_dropped_total", "Connections to be refused (429, 503) closed at accept instead: too many refusals in progress.",
		func(s *snapshot) float64 { return float64(s.WS.RejectDropped) }),
	counter("pages_served_total", "Plain HTTP pages answered on the WebSocket port (the chat demo at GET /); not handshakes.",
		func(s *snapshot) float64 { return float64(s.WS.PagesServed) }),

	gauge("channels", "Channels with subscribers on this process now.",
		func(s *snapshot) float64 { return float64(s.Channels.Channels) }),
	gauge("subscriptions", "Subscriptions (connection, channel) on this process now.",
		func(s *snapshot) float64 { return float64(s.Channels.Subscriptions) }),
	counter("channel_publishes_total", "Publishes accepted, from clients and from the API.",
		func(s *snapshot) float64 { return float64(s.Channels.Published) }),
	counter("channel_remote_publishes_total", "Publishes received from other processes through the broker.",
		func(s *snapshot) float64 { return float64(s.Channels.Remote) }),
	counter("channel_pushes_delivered_total", "Pushes queued to a subscriber.",
		func(s *snapshot) float64 { return float64(s.Channels.Delivered) }),
	counter("channel_pushes_dropped_total", "Pushes a subscriber refused: closing, or its queue full.",
		func(s *snapshot) float64 { return float64(s.Channels.Dropped) }),
	counter("recoveries_total", "Subscribes with recover that replayed everything the client missed.",
		func(s *snapshot) float64 { return float64(s.Channels.Recoveries) }),
	counter("recoveries_failed_total", "Subscribes with recover answered recovered:false (history off, epoch changed, offset too old or ahead, too many to replay).",
		func(s *snapshot) float64 { return float64(s.Channels.Unrecovered) }),
	counter("replayed_total", "Publications queued to subscribers by recoveries.",
		func(s *snapshot) float64 { return float64(s.Channels.Replayed) }),
	gauge("history_channels", "Channels with a history kept now.",
		func(s *snapshot) float64 { return float64(s.Channels.HistoryChannels) }),
	gauge("history_entries", "Publications kept in channel histories now.",
		func(s *snapshot) float64 { return float64(s.Channels.HistoryEntries) }),
	gauge("history_bytes", "Framed bytes of the publications kept in channel histories now.",
		func(s *snapshot) float64 { return float64(s.Channels.HistoryBytes) }),
	counter("history_full_total", "Publishes and subscribes served without history: -history-channels channels had one already.",
		func(s *snapshot) float64 { return float64(s.Channels.HistoryFull) }),
	counter("store_publish_failures_total", "Publishes to channels with history that JetStream did not store (answered unavailable).",
		func(s *snapshot) float64 { return float64(s.Channels.StoreFailures) }),
	counter("store_gaps_total", "Times this process found it had missed stored publications and fetched them from JetStream.",
		func(s *snapshot) float64 { return float64(s.Channels.StoreGaps) }),
	counter("store_gaps_lost_total", "Fetches of missed stored publications that failed.",
		func(s *snapshot) float64 { return float64(s.Channels.StoreGapsLost) }),
	gauge("store_jobs", "Subscribes, history and presence requests running or waiting for JetStream or other processes now.",
		func(s *snapshot) float64 { return float64(s.Channels.StoreJobs) }),

	counter("api_unauthorized_total", "POST /api/publish, GET /api/history and GET /api/presence requests refused with 401: no API key, or a wrong one.",
		func(s *snapshot) float64 { return float64(s.Admin.Unauthorized) }),
}

// pollerMetrics read poller.Poller.Stats: present once the WebSocket
// server has started.
var pollerMetrics = []metric{
	gauge("pool_workers", "Worker pool size.",
		func(s *snapshot) float64 { return float64(s.Poller.Workers) }),
	gauge("pool_running", "Pool workers serving connections now.",
		func(s *snapshot) float64 { return float64(s.Poller.Running) }),
	gauge("pool_queued", "Connections waiting for a pool worker now.",
		func(s *snapshot) float64 { return float64(s.Poller.Queued) }),
	gauge("pool_queued_peak", "Most connections ever waiting for a pool worker at once.",
		func(s *snapshot) float64 { return float64(s.Poller.PeakQueue) }),
	counter("pool_overflow_total", "Connections that had to wait because every pool worker was busy.",
		func(s *snapshot) float64 { return float64(s.Poller.Overflow) }),
	counter("pool_drainers_total", "Pool tasks the reactor or a wake-up started; each serves queued connections until none is left (events per task: how well hand-offs are shared).",
		func(s *snapshot) float64 { return float64(s.Poller.Drainers) }),
	counter("pool_panics_total", "Panics recovered in pool tasks.",
		func(s *snapshot) float64 { return float64(s.Poller.Panics) }),
	counter("reactor_events_total", "Readiness events the reactor delivered.",
		func(s *snapshot) float64 { return float64(s.Poller.Events) }),
	counter("reactor_stale_events_total", "Readiness events dropped for descriptors already closed.",
		func(s *snapshot) float64 { return float64(s.Poller.Stale) }),
	counter("reactor_wakes_total", "Wake-ups delivered to connections (queued writes, closes).",
		func(s *snapshot) float64 { return float64(s.Poller.Wakes) }),
}

// brokerMetrics read the broker's Stats: present with a broker.
var brokerMetrics = []metric{
	gauge("broker_connected", "1 while the broker (NATS) is connected, else 0.",
		func(s *snapshot) float64 {
			if s.Broker.Connected {
				return 1
			}
			return 0
		}),
	gauge("broker_subjects", "Channels subscribed to on the broker now.",
		func(s *snapshot) float64 { return float64(s.Broker.Subjects) }),
	counter("broker_published_total", "Publishes handed to the broker.",
		func(s *snapshot) float64 { return float64(s.Broker.Published) }),
	counter("broker_publish_failures_total", "Publishes the broker refused while disconnected: other processes missed them.",
		func(s *snapshot) float64 { return float64(s.Broker.PublishFailed) }),
	counter("broker_received_total", "Publishes received from other processes.",
		func(s *snapshot) float64 { return float64(s.Broker.Received) }),
	counter("broker_dropped_total", "Publishes from other processes dropped because the dispatchers were behind.",
		func(s *snapshot) float64 { return float64(s.Broker.Dropped) }),
	counter("broker_subscribe_failures_total", "Subscriptions the broker refused.",
		func(s *snapshot) float64 { return float64(s.Broker.SubscribeFails) }),
}

// Series with labels, read from the maps of wsconn.Stats and
// handler.ChannelsStats.
var (
	closesDesc = prometheus.NewDesc(namespace+"_connections_closed_total",
		"WebSocket connections closed, by the close code their handler got (code=\"other\": codes not counted apart).",
		[]string{"code"}, nil)
	handshakesDesc = prometheus.NewDesc(namespace+"_handshakes_total",
		"Upgrade requests answered, by HTTP status (101: upgraded; status=\"other\": statuses not counted apart).",
		[]string{"status"}, nil)
	// Read from handler.ChannelsStats.RejectedByCode: each abuse limit of
	// the /ws protocol (too_many_subscriptions, bad_channel) apart from
	// mere mistakes (bad_json, not_subscribed, ...).
	rejectedDesc = prometheus.NewDesc(namespace+"_channel_requests_rejected_total",
		"/ws requests answered with an error, by the error code of the reply.",
		[]string{"code"}, nil)
)

// rejectCodes are the label values of rejectedDesc: every error code of
// the /ws protocol.
var rejectCodes = handler.ErrorCodes()

// collector is a prometheus.Collector that reads a snapshot once per
// scrape. Nothing is counted for it: it only reads counters that exist
// anyway.
type collector struct {
	read func() snapshot
}

func newCollector(read func() snapshot) *collector { return &collector{read: read} }

// Describe sends the description of every series the collector can send.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, set := range [][]metric{wsMetrics, pollerMetrics, brokerMetrics} {
		for _, m := range set {
			ch <- m.desc
		}
	}
	ch <- closesDesc
	ch <- handshakesDesc
	ch <- rejectedDesc
}

// Collect reads one snapshot and sends every series from it.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.read()
	send := func(set []metric) {
		for _, m := range set {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&snap))
		}
	}
	send(wsMetrics)
	if snap.Poller != nil {
		send(pollerMetrics)
	}
	if snap.Broker != nil {
		send(brokerMetrics)
	}
	// Every counted code and status, zeros included: a series that
	// appears only at its first event hides that event from rate().
	for _, code := range wsconn.CountedCloseCodes() {
		ch <- prometheus.MustNewConstMetric(closesDesc, prometheus.CounterValue, float64(snap.WS.Closes[code]), labelOf(code))
	}
	for _, status := range wsconn.CountedHandshakeStatuses() {
		ch <- prometheus.MustNewConstMetric(handshakesDesc, prometheus.CounterValue, float64(snap.WS.Handshakes[status]), labelOf(status))
	}
	for _, code := range rejectCodes {
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(snap.Channels.RejectedByCode[code]), code)
	}
}

// labelOf is the label value of a close code or HTTP status: the number,
// or "other" for 0, the slot of those not counted apart.
func labelOf(n int) string {
	if n == 0 {
		return "other"
	}
	return strconv.Itoa(n)
}
