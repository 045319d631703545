package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// The attack scenarios at a tiny scale against a wsconn server and its
// admin listener in this process (the server's memory is this process's).
// The checks are on what must hold whatever the timing: who opened, who
// was cut and with which code, that figures were measured at all.

const testAPIKey = "attack-test-key-0123456789"

// startAttackServer starts a server for cfg with /ws (channels) and /echo,
// and its admin listener, shut down when the test ends: their addresses.
func startAttackServer(t *testing.T, cfg wsconn.Config) (wsAddr, adminAddr string) {
	t.Helper()
	channels, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Routes = map[string]wsconn.Handler{"/ws": channels, "/echo": handler.Echo{}}
	srv := startServer(t, cfg)
	adm, err := admin.New(admin.Config{Addr: "127.0.0.1:0", APIKey: testAPIKey, WS: srv, Channels: channels})
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = adm.Shutdown(ctx)
	})
	return srv.Addr().String(), adm.Addr().String()
}

// runScenario fills o's defaults, runs it and checks the memory figures.
func runScenario(t *testing.T, o attackOptions) *AttackResult {
	t.Helper()
	o.pid, o.rate, o.timeout, o.apiKey = os.Getpid(), 2000, 5*time.Second, testAPIKey
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	res, err := o.run()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", o.scenario, res.Summary)
	m := res.Server
	if m.Before.RSSKiB <= 0 || m.PeakRSSKiB < m.Before.RSSKiB || m.Before.HeapBytes <= 0 || m.MetricsError != "" {
		t.Errorf("server memory not measured: %+v", m)
	}
	if res.Summary == "" {
		t.Error("no summary")
	}
	return res
}

func TestAttackPerAddr(t *testing.T) {
	addr, adm := startAttackServer(t, wsconn.Config{MaxConnsPerIP: 20})
	res := runScenario(t, attackOptions{scenario: "peraddr", addr: addr, admin: adm,
		cap: 20, stalled: 3, fresh: 5, duration: 10 * time.Second})
	f := res.PerAddr
	if f.HeldOpen != 20 || len(f.HeldFailures) != 0 {
		t.Errorf("held %d, failures %v; want all 20", f.HeldOpen, f.HeldFailures)
	}
	// Past the cap, wsconn answers 429 at once, without waiting for the
	// request to be complete.
	answered := 0
	for answer, n := range f.StalledAnswers {
		if !strings.HasPrefix(answer, "HTTP/1.1 429") {
			t.Errorf("stalled socket answered %q, want 429", answer)
		}
		answered += n
	}
	if answered != 3 {
		t.Errorf("stalled answers %v: want 3", f.StalledAnswers)
	}
	if f.FreshTried != 5 || f.FreshOpen != 5 || f.FreshConnect.Count != 5 {
		t.Errorf("fresh clients from %s: %d tried, %d open, %d timed; want 5 each", f.Source, f.FreshTried, f.FreshOpen, f.FreshConnect.Count)
	}
}

func TestAttackEmptyCont(t *testing.T) {
	addr, adm := startAttackServer(t, wsconn.Config{})
	res := runScenario(t, attackOptions{scenario: "emptycont", addr: addr, admin: adm, n: 2, duration: 5 * time.Second})
	f := res.EmptyCont
	if f.Opened != 2 || len(f.PerConn) != 2 {
		t.Fatalf("opened %d: want 2", f.Opened)
	}
	// The frame rate limit (1000 a second, twice that in a burst) cuts
	// each connection long before the attack's 5 s are over.
	for i, c := range f.PerConn {
		if c.Frames < 2000 || c.Ended == nil || c.Ended.How != "close" || c.Ended.Code != 1008 {
			t.Errorf("conn %d: %d frames, ended %+v; want over 2000 frames then a 1008", i, c.Frames, c.Ended)
		}
	}
	if f.ServerCPUSecs < 0 {
		t.Errorf("server CPU %v s", f.ServerCPUSecs)
	}
}

func TestAttackEndless(t *testing.T) {
	addr, adm := startAttackServer(t, wsconn.Config{MessageTimeout: 300 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	res := runScenario(t, attackOptions{scenario: "endless", addr: addr, admin: adm,
		n: 3, fragments: 2, interval: 100 * time.Millisecond, duration: 5 * time.Second})
	f := res.Endless
	if f.Opened != 3 || f.Cut != 3 || f.Ends[`close 1008 "message not completed in time"`] != 3 || f.CutAfter == nil {
		t.Errorf("opened %d, cut %d, ends %v; want 3 cut by the message timeout", f.Opened, f.Cut, f.Ends)
	}
	if f.SentBytes < 3*2*64<<10 {
		t.Errorf("sent %d bytes: want at least the fragments", f.SentBytes)
	}
}

func TestAttackAnnounce(t *testing.T) {
	addr, adm := startAttackServer(t, wsconn.Config{MaxMessageSize: 16 << 20})
	res := runScenario(t, attackOptions{scenario: "announce", addr: addr, admin: adm, n: 5, hold: 200 * time.Millisecond})
	f := res.Announce
	if f.Opened != 5 || f.SentBytes != 24 || f.AnnouncedBytes != 1<<20 || f.Ends["open"] != 5 {
		t.Errorf("announce %+v: want 5 open connections that sent 24 bytes each", f)
	}
}

func TestAttackFanout(t *testing.T) {
	addr, adm := startAttackServer(t, wsconn.Config{})
	res := runScenario(t, attackOptions{scenario: "fanout", addr: addr, admin: adm,
		n: 5, publishers: 2, pubRate: 100, fresh: 5, duration: time.Second})
	f := res.Fanout
	if f.SubscribersOpen != 5 || f.Acked != 5 || f.PublishersOpen != 2 {
		t.Errorf("%d subscribers (%d acks), %d publishers: want 5, 5, 2", f.SubscribersOpen, f.Acked, f.PublishersOpen)
	}
	if f.PublishesSent == 0 || f.PushesReceived == 0 || f.EchoRTT.Count == 0 || f.EchoError != "" {
		t.Errorf("sent %d, received %d, echo round trips %d (%s): want some of each", f.PublishesSent, f.PushesReceived, f.EchoRTT.Count, f.EchoError)
	}
	if f.ConnectsOpen != 5 || f.ConnectLatency.Count != 5 {
		t.Errorf("connects %d open, %d timed: want 5", f.ConnectsOpen, f.ConnectLatency.Count)
	}
}

func TestAttackQueue(t *testing.T) {
	addr, adm := startAttackServer(t, wsconn.Config{MaxQueueBytes: 16 << 10, MaxMessageSize: 4 << 10})
	res := runScenario(t, attackOptions{scenario: "queue", addr: addr, admin: adm, n: 3, duration: 8 * time.Second})
	f := res.Queue
	if f.Opened != 3 || f.Acked != 3 || f.PushBytes != 27 || f.Delivered == 0 {
		t.Errorf("queue %+v: want 3 subscribers acked and pushes of 27 bytes delivered", f)
	}
	if f.Cut != 3 || f.SlowCloses != 3 {
		t.Errorf("cut %d, server counted %v slow consumers, ends %v: want 3", f.Cut, f.SlowCloses, f.Ends)
	}
}

func TestParseAttack(t *testing.T) {
	o, err := parseAttack([]string{"-scenario", "endless"})
	if err != nil {
		t.Fatal(err)
	}
	if o.n != 300 || o.fragments != 15 || o.fragSize != 64<<10 || o.interval != 3*time.Second || o.duration != 40*time.Second {
		t.Errorf("endless defaults %+v", o)
	}
	for _, bad := range [][]string{{"-scenario", "nope"}, {"-scenario", "queue"}, {"-scenario", "peraddr", "-src", "x"}} {
		if _, err := parseAttack(bad); err == nil {
			t.Errorf("parseAttack(%q) succeeded, want an error", bad)
		}
	}
}
