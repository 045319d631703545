package wsconn

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// logSink collects JSON log records.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// records returns the records logged so far with message msg.
func (s *logSink) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func newLogSink(level slog.Level) (*logSink, *slog.Logger) {
	s := &logSink{}
	return s, slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: level}))
}

// waitRecords polls until n records with msg are logged.
func (s *logSink) waitRecords(t testing.TB, msg string, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	if !poll(5*time.Second, func() bool { got = s.records(t, msg); return len(got) >= n }) {
		t.Fatalf("got %d %q records, want %d; log:\n%s", len(got), msg, n, s.buf.String())
	}
	return got
}

// TestDebugLogs: at debug level a refused handshake, a closed connection
// and a timed-out handshake are each one record with what happened.
func TestDebugLogs(t *testing.T) {
	sink, log := newLogSink(slog.LevelDebug)
	srv := startServer(t, Config{Logger: log, HandshakeTimeout: 200 * time.Millisecond,
		SweepInterval: 10 * time.Millisecond})

	c := dialRaw(t, srv)
	c.write([]byte(upgradeRequest("/nowhere", newKey())))
	if resp := c.readResponse(); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("got %d, want 404", resp.StatusCode)
	}
	r := sink.waitRecords(t, "handshake refused", 1)[0]
	if r["status"] != float64(404) || r["level"] != "DEBUG" || r["remote"] == "" {
		t.Errorf("refusal record %v", r)
	}

	ok := dialWS(t, srv, "/echo")
	ok.send(closeWith(StatusNormalClosure, "bye"))
	ok.expectClose(StatusNormalClosure, ioTimeout)
	r = sink.waitRecords(t, "connection closed", 1)[0]
	if r["code"] != float64(1000) || r["reason"] != "bye" || r["path"] != "/echo" {
		t.Errorf("close record %v", r)
	}

	slow := dialRaw(t, srv)
	slow.write([]byte("GET /echo HTTP/1.1\r\n")) // and nothing more
	r = sink.waitRecords(t, "connection closed before the upgrade", 1)[0]
	if r["err"] != ErrHandshakeTimeout.Error() {
		t.Errorf("timeout record %v", r)
	}
	if n := len(sink.records(t, "handshake refused")); n != 1 {
		t.Errorf("got %d refusal records, want 1 (a timeout is not a refusal)", n)
	}
}

// TestInfoLevelLogsNothingPerConnection: at info level, connections that
// open, echo and close leave no record.
func TestInfoLevelLogsNothingPerConnection(t *testing.T) {
	sink, log := newLogSink(slog.LevelInfo)
	srv := startServer(t, Config{Logger: log})
	for range 20 {
		c := dialWS(t, srv, "/echo")
		c.send(textFrame("hi"))
		c.expectFrame(textEcho("hi"))
		c.closeHandshake()
	}
	if !poll(5*time.Second, func() bool { return srv.Stats().Closed == 20 }) {
		t.Fatalf("closed %d of 20", srv.Stats().Closed)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.buf.Len() != 0 {
		t.Errorf("logged at info level:\n%s", sink.buf.String())
	}
}

// TestWarningsRateLimited: clients repeating an error (here, message rate
// exceeded) get one warning per interval, however many there are; the
// counters count them all.
func TestWarningsRateLimited(t *testing.T) {
	sink, log := newLogSink(slog.LevelInfo)
	srv := startServer(t, Config{Logger: log, MaxMessageRate: 5, WarnInterval: time.Hour,
		Routes: map[string]Handler{"/nop": nopHandler{}}})
	const n = 8
	for range n {
		c := dialWS(t, srv, "/nop")
		for range 20 {
			c.send(textFrame("x"))
		}
		c.expectClose(StatusPolicyViolation, ioTimeout)
	}
	if got := srv.Stats().RateLimited; got != n {
		t.Fatalf("counted %d rate-limit closes, want %d", got, n)
	}
	recs := sink.waitRecords(t, "message or byte rate exceeded: closing with 1008", 1)
	if len(recs) != 1 || recs[0]["level"] != "WARN" {
		t.Errorf("got %d warnings %v, want one", len(recs), recs)
	}
}

// TestWarningsReportSuppressed: the next warning of a kind after the
// interval says how many were left out, exactly.
func TestWarningsReportSuppressed(t *testing.T) {
	sink, log := newLogSink(slog.LevelWarn)
	w := newWarnings(log, 20*time.Millisecond)
	attrs := func() []any { return []any{"k", "v"} }
	calls := 0
	if !poll(5*time.Second, func() bool {
		w.warn(warnSlowConsumer, slog.LevelWarn, "slow", attrs)
		calls++
		return len(sink.records(t, "slow")) == 2
	}) {
		t.Fatal("no second warning within 5s")
	}
	recs := sink.records(t, "slow")
	if _, ok := recs[0]["suppressed"]; ok {
		t.Errorf("first warning %v reports suppressed ones", recs[0])
	}
	if got, want := recs[1]["suppressed"], float64(calls-2); got != want {
		t.Errorf("second warning reports %v suppressed, want %v (%d calls)", got, want, calls)
	}
	// Kinds are limited separately.
	w.warn(warnPanic, slog.LevelError, "panic", attrs)
	if n := len(sink.records(t, "panic")); n != 1 {
		t.Errorf("another kind: got %d records, want 1", n)
	}
}

// TestWarnLevelFiltered: below the logger's level nothing is built or
// counted as suppressed.
func TestWarnLevelFiltered(t *testing.T) {
	sink, log := newLogSink(slog.LevelError)
	w := newWarnings(log, time.Hour)
	built := 0
	for range 3 {
		w.warn(warnFull, slog.LevelWarn, "full", func() []any { built++; return nil })
	}
	if built != 0 || w.kinds[warnFull].suppressed.Load() != 0 || len(sink.records(t, "full")) != 0 {
		t.Errorf("built %d, suppressed %d, records %d; want 0, 0, 0", built,
			w.kinds[warnFull].suppressed.Load(), len(sink.records(t, "full")))
	}
}

// TestWarnConnectionCap: a full server warns once per interval and answers
// every excess handshake 503.
func TestWarnConnectionCap(t *testing.T) {
	sink, log := newLogSink(slog.LevelWarn)
	srv := startServer(t, Config{Logger: log, MaxConns: 1})
	_ = dialWS(t, srv, "/echo")
	for i := range 3 {
		c := dialRaw(t, srv)
		c.write([]byte(upgradeRequest("/echo", newKey())))
		if resp := c.readResponse(); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%d: got %d, want 503", i, resp.StatusCode)
		}
	}
	recs := sink.waitRecords(t, "connection cap reached: refusing handshakes with 503", 1)
	if len(recs) != 1 || recs[0]["max_conns"] != float64(1) {
		t.Errorf("warnings %v, want one with max_conns 1", recs)
	}
	if got := srv.Stats().Handshakes[http.StatusServiceUnavailable]; got != 3 {
		t.Errorf("counted %d 503s, want 3", got)
	}
}
