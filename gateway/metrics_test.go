package gateway

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAdminAcrossWorkers runs the binary with two workers (embedded NATS)
// and each worker's admin listener: a backend's publish to one worker
// reaches subscribers on both; each worker's /metrics has the latency
// histograms observed (handshake, fan-out) and every wsgate series the
// shipped Grafana dashboard queries.
func TestAdminAcrossWorkers(t *testing.T) {
	const key = "test-api-key-0123456789"
	// The workers' admin ports are adminPort+1 and +2: find a run of free
	// ports, and the WebSocket port while they are held, so that none of
	// them collides.
	held := freePortRun(t, 3)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	adminPort := held[0].Addr().(*net.TCPAddr).Port
	for _, l := range held {
		_ = l.Close()
	}
	startGateAt(t, addr, "-workers", "2", "-admin", "127.0.0.1:"+strconv.Itoa(adminPort), "-api-key", key, "-history-size", "0")
	admins := []string{ // worker i on the -admin port + 1 + i
		"http://127.0.0.1:" + strconv.Itoa(adminPort+1),
		"http://127.0.0.1:" + strconv.Itoa(adminPort+2),
	}
	for _, a := range admins {
		eventually(t, 10*time.Second, a+"/readyz answers 200 (NATS connected)", func() bool {
			resp, err := http.Get(a + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	cs := onWorkers(t, addr, "/ws", "0", "1")
	subscribe(t, cs["0"], "news")
	subscribe(t, cs["1"], "news")

	// Interest reaches the other worker through NATS asynchronously:
	// publish until worker 1's subscriber hears one, then check one last
	// publish reaches each exactly once.
	publish := func(data string) string {
		req, _ := http.NewRequest(http.MethodPost, admins[0]+"/api/publish",
			strings.NewReader(`{"channel":"news","data":`+data+`}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: %d %s", resp.StatusCode, body)
		}
		return strings.TrimSpace(string(body))
	}
	probe := 0
	eventually(t, 10*time.Second, "an API publish on worker 0 reaches worker 1", func() bool {
		probe++
		if got := publish(strconv.Itoa(probe)); got != `{"delivered":1}` {
			t.Fatalf("publish answered %s, want one local subscriber reached", got)
		}
		return cs["1"].next(200*time.Millisecond) != ""
	})
	for _, c := range cs {
		for c.next(300*time.Millisecond) != "" {
		}
	}
	publish(`"final"`)
	for w, c := range cs {
		if got, want := c.next(5*time.Second), `{"channel":"news","data":"final"}`; got != want {
			t.Fatalf("worker %s's subscriber got %q, want %q", w, got, want)
		}
	}

	// Each worker accepted a connection (at least) and delivered publishes:
	// its histograms have observations.
	scrapes := make([]string, len(admins))
	for i, a := range admins {
		scrapes[i] = scrape(t, a+"/metrics")
		for _, series := range []string{"wsgate_handshake_seconds_count", "wsgate_broadcast_fanout_seconds_count",
			"wsgate_broadcast_recipients_count"} {
			if v := sample(scrapes[i], series); v < 1 {
				t.Errorf("worker %d: %s = %v, want at least 1", i, series, v)
			}
		}
		if v := sample(scrapes[i], "wsgate_broker_connected"); v != 1 {
			t.Errorf("worker %d: wsgate_broker_connected = %v, want 1", i, v)
		}
	}

	// Every series the dashboard queries exists.
	dash, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(dash, &v); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	names := regexp.MustCompile(`\bwsgate_[a-z_]+`).FindAllString(string(dash), -1)
	if len(names) < 20 {
		t.Fatalf("found %d wsgate series in the dashboard, want many", len(names))
	}
	all := strings.Join(scrapes, "\n")
	for _, name := range names {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if !strings.Contains(all, "# TYPE "+family+" ") {
			t.Errorf("the dashboard queries %s; /metrics has no %s", name, family)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// sample returns the value of the unlabelled series name in a text
// exposition, or -1 if it is missing.
func sample(exposition, name string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// freePortRun listens on n consecutive loopback ports and returns the
// listeners, for the caller to close just before it needs the ports.
// They are below the ephemeral range (see freePort).
func freePortRun(t testing.TB, n int) []net.Listener {
	t.Helper()
	lo, hi := portsBelowEphemeral(t)
	for range 100 {
		base := lo + rand.IntN(hi-lo-n)
		first, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base))
		if err != nil {
			continue // taken: try another
		}
		run := []net.Listener{first}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				break
			}
			run = append(run, l)
		}
		if len(run) == n {
			return run
		}
		for _, l := range run {
			_ = l.Close()
		}
	}
	t.Fatalf("no %d consecutive free ports in 100 tries", n)
	return nil
}
