package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/handler"
)

// scrape fetches base/metrics and parses the text exposition.
func scrape(t *testing.T, c *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := get(t, c, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: got %d %.200s", status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return families
}

// value returns the value of the series of family name whose labels
// include want (label=value pairs), and whether there is one.
func value(families map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Config{APIKey: testKey}, true)
	e.startWS(t)
	base := e.startAdmin(t)
	client := httpClient(t)
	news := subscriber(t, e, "news")
	request(t, news, `{"op":"unsubscribe","channel":"sport","id":2}`, `"code":"not_subscribed"`)
	request(t, news, `{"op":"subscribe","channel":"a b","id":3}`, `"code":"bad_channel"`)
	request(t, news, `{"op":"subscribe","channel":"c d","id":4}`, `"code":"bad_channel"`)
	if rec := e.serve(newPublishRequest("wrong-key-0123456789", `{"channel":"news","data":1}`)); rec.Code != http.StatusUnauthorized {
		t.Fatalf("publish with a wrong key: got %d, want 401", rec.Code)
	}
	gone := subscriber(t, e, "other")
	if err := gone.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The close code is counted before the connection's OnClose has
	// dropped its subscription and the open count, and messages are
	// counted once per read, after the handler answered them: wait for
	// all of it.
	eventually(t, "a connection closed with 1000 and gone, five messages counted", func() bool {
		ws, ch := e.ws.Stats(), e.ch.Stats()
		return ws.Closes[1000] == 1 && ws.Conns == 1 && ch.Subscriptions == 1 && ch.Channels == 1 && ws.MessagesIn == 5
	})

	families := scrape(t, client, base)
	for _, name := range []string{
		"wsgate_connections_open", "wsgate_pages_served_total", "wsgate_connections_opened_total", "wsgate_connections_closed_total",
		"wsgate_handshakes_total", "wsgate_messages_received_total", "wsgate_messages_sent_total",
		"wsgate_received_bytes_total", "wsgate_sent_bytes_total", "wsgate_queued_bytes",
		"wsgate_slow_consumer_closes_total", "wsgate_rate_limited_closes_total", "wsgate_accept_refused_total",
		"wsgate_heartbeat_timeouts_total", "wsgate_pool_workers", "wsgate_pool_running", "wsgate_pool_queued",
		"wsgate_pool_overflow_total", "wsgate_pool_drainers_total", "wsgate_reactor_events_total", "wsgate_reactor_stale_events_total",
		"wsgate_broker_connected", "wsgate_broker_publish_failures_total", "wsgate_channels",
		"wsgate_subscriptions", "wsgate_tls_handshake_failures_total",
		"wsgate_channel_requests_rejected_total", "wsgate_api_unauthorized_total",
		"wsgate_recoveries_total", "wsgate_recoveries_failed_total", "wsgate_replayed_total",
		"wsgate_history_channels", "wsgate_history_entries", "wsgate_history_bytes",
		"go_goroutines", "process_open_fds",
	} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}

	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{name: "wsgate_connections_open", want: 1},
		{name: "wsgate_connections_opened_total", want: 2},
		{name: "wsgate_connections_closed_total", labels: []string{"code", "1000"}, want: 1},
		{name: "wsgate_handshakes_total", labels: []string{"status", "101"}, want: 2},
		// Codes and statuses that never happened are there, at zero.
		{name: "wsgate_connections_closed_total", labels: []string{"code", "1011"}, want: 0},
		{name: "wsgate_connections_closed_total", labels: []string{"code", "other"}, want: 0},
		{name: "wsgate_handshakes_total", labels: []string{"status", "503"}, want: 0},
		{name: "wsgate_messages_received_total", want: 5}, // the subscribes and the bad requests
		{name: "wsgate_channel_requests_rejected_total", labels: []string{"code", "not_subscribed"}, want: 1},
		{name: "wsgate_channel_requests_rejected_total", labels: []string{"code", "bad_channel"}, want: 2},
		{name: "wsgate_channel_requests_rejected_total", labels: []string{"code", "too_many_subscriptions"}, want: 0},
		{name: "wsgate_api_unauthorized_total", want: 1},
		{name: "wsgate_channels", want: 1},
		{name: "wsgate_subscriptions", want: 1},
		{name: "wsgate_broker_connected", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name+strings.Join(tt.labels, "="), func(t *testing.T) {
			got, ok := value(families, tt.name, tt.labels...)
			if !ok || got != tt.want {
				t.Errorf("got %v (present %v), want %v", got, ok, tt.want)
			}
		})
	}

	// Every error code of the /ws protocol has its series, once, and no
	// other code does: an abuse limit's counter exists before it is hit.
	t.Run("rejected codes", func(t *testing.T) {
		f := families["wsgate_channel_requests_rejected_total"]
		got := map[string]int{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				got[l.GetName()+"="+l.GetValue()]++
			}
		}
		codes := handler.ErrorCodes()
		for _, code := range codes {
			if got["code="+code] != 1 {
				t.Errorf("got %d series with code=%s, want 1", got["code="+code], code)
			}
		}
		if len(f.GetMetric()) != len(codes) {
			t.Errorf("got %d series, want %d (one per code): %v", len(f.GetMetric()), len(codes), got)
		}
	})

	t.Run("broker down", func(t *testing.T) {
		e.broker.connected.Store(false)
		e.broker.failed.Store(3)
		families := scrape(t, client, base)
		if got, _ := value(families, "wsgate_broker_connected"); got != 0 {
			t.Errorf("got wsgate_broker_connected %v, want 0", got)
		}
		if got, _ := value(families, "wsgate_broker_publish_failures_total"); got != 3 {
			t.Errorf("got wsgate_broker_publish_failures_total %v, want 3", got)
		}
	})

	t.Run("lint", func(t *testing.T) {
		problems, err := testutil.CollectAndLint(newCollector(e.adm.snapshot))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})
}

// TestMetricsWithoutBroker checks that a process without a broker exports
// no broker series (a broker_connected of 0 would page someone), and none
// of the pool's before the WebSocket server has started.
func TestMetricsWithoutBroker(t *testing.T) {
	e := newEnv(t, Config{}, false)
	base := e.startAdmin(t)
	client := httpClient(t)
	families := scrape(t, client, base)
	for name := range families {
		if strings.HasPrefix(name, "wsgate_broker_") || strings.HasPrefix(name, "wsgate_pool_") {
			t.Errorf("got %s, want no broker or pool series", name)
		}
	}
	if families["wsgate_connections_open"] == nil {
		t.Error("no wsgate_connections_open")
	}
	e.startWS(t)
	if families := scrape(t, client, base); families["wsgate_pool_workers"] == nil {
		t.Error("no wsgate_pool_workers once the WebSocket server runs")
	}
}

func TestLatencyHistograms(t *testing.T) {
	lat := NewLatency()
	lat.ObserveHandshake(3 * time.Millisecond)
	lat.ObserveFanout(40*time.Microsecond, 100)
	reg := prometheus.NewRegistry()
	reg.MustRegister(lat.collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		got[f.GetName()] = f.GetMetric()[0].GetHistogram().GetSampleCount()
	}
	for _, name := range []string{"wsgate_handshake_seconds", "wsgate_broadcast_fanout_seconds", "wsgate_broadcast_recipients"} {
		if got[name] != 1 {
			t.Errorf("%s: %d observations, want 1", name, got[name])
		}
	}
}
