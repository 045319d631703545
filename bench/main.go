// Command bench is wsgate's load generator: it holds many WebSocket
// connections without a goroutine each (raw sockets on wsgate's own epoll
// poller), splits them over worker processes when one process cannot hold
// them all, and measures the server. It is a module of its own (bench/go.mod,
// so that the server's go.mod lists none of its dependencies); from the
// repository root, go -C bench build -o "$PWD/bin/" . ./baseline builds
// bin/bench and bin/baseline.
//
//	bench idle      -url ws://127.0.0.1:8080/ws -n 15000 -hold 20s
//	bench echo      -url ws://127.0.0.1:8080/echo -n 1000 -duration 10s -size 64
//	bench broadcast -url ws://127.0.0.1:8080/ws -n 15000 -messages 100 -pub-rate 20
//	bench report    -o results/ run1.json run2.json
//
// Modes:
//
//	idle       open -n connections at -rate per second, hold them for -hold:
//	           connect rate, handshake latency, the server's memory per
//	           connection, its CPU while idle, its threads.
//	echo       -n connections each in a closed loop (one -size message in
//	           flight): messages per second, round-trip percentiles, server
//	           CPU time per message.
//	broadcast  -n subscribers on one channel, one publisher sending -messages
//	           messages at -pub-rate: delivery latency percentiles and
//	           completeness (each subscriber got each message once, in order).
//	report     render charts from saved JSON results, several runs side by side.
//	table      print a Markdown table comparing two labelled sets of results.
//	attack     reproduce one of the reported attacks (-scenario) against a
//	           running server and measure its cost (attack.go).
//
// Each run prints its result as JSON; -out DIR also saves the JSON and PNG
// charts there. Failures are classified (refused, timeout, status_503, ...)
// and nothing is retried.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench idle|echo|broadcast|attack|report|table [flags]  (bench MODE -h lists flags)")
		os.Exit(2)
	}
	mode, args := os.Args[1], os.Args[2:]
	if mode == "worker" {
		if err := runWorker(); err != nil {
			fmt.Fprintf(os.Stderr, "bench worker: %v\n", err)
			os.Exit(1)
		}
		return
	}
	switch mode {
	case "report":
		exitOn(runReport(args))
		return
	case "table":
		exitOn(runTable(args, os.Stdout))
		return
	case "attack":
		exitOn(runAttack(args, os.Stdout))
		return
	}
	o, err := parseOptions(mode, args)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	res, err := runParent(o)
	if err == nil {
		err = writeOutputs(res, o.out)
	}
	if err == nil {
		err = printJSON(res, os.Stdout)
	}
	exitOn(err)
}

// parseFlags parses args into fs: -h prints the flags and returns
// flag.ErrHelp, and an argument left over is an error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// usageError is a bad flag or argument: exit status 2, as for the other
// modes' flags.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitOn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// options are the parent's flags.
type options struct {
	mode       string
	urlStrings []string
	sources    []net.IP
	n, rate    int
	procs      int
	pool       int
	timeout    time.Duration
	pids       []int
	out, label string
	hold       time.Duration // idle
	duration   time.Duration // echo
	size       int           // echo
	messages   int           // broadcast
	pubRate    float64       // broadcast
	channel    string        // broadcast
	drain      time.Duration // broadcast
	deflate    bool          // idle: offer and require permessage-deflate
}

func parseOptions(mode string, args []string) (options, error) {
	o := options{mode: mode}
	switch mode {
	case "idle", "echo", "broadcast":
	default:
		return o, fmt.Errorf("unknown mode %q: want idle, echo, broadcast, report or table", mode)
	}
	fs := flag.NewFlagSet("bench "+mode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defURL := "ws://127.0.0.1:8080/ws"
	if mode == "echo" {
		defURL = "ws://127.0.0.1:8080/echo"
	}
	urls := fs.String("url", defURL, "server URL(s), comma-separated; connections are spread over them")
	src := fs.String("src", "", "source addresses: a range 127.0.0.2-127.0.0.40 or a comma list (empty: the kernel's choice)")
	pids := fs.String("pid", "", "server pid(s), comma-separated (empty: the processes listening on the first URL's port)")
	fs.IntVar(&o.n, "n", 1000, "connections (broadcast: subscribers)")
	fs.IntVar(&o.rate, "rate", 2000, "new connections per second, all processes together")
	fs.IntVar(&o.procs, "procs", 0, "bench worker processes (0: as few as the descriptor limit allows)")
	fs.IntVar(&o.pool, "pool", 4, "worker pool size of each bench process")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "connect + handshake timeout per connection")
	fs.StringVar(&o.out, "out", "", "directory for the JSON result and PNG charts")
	fs.StringVar(&o.label, "label", "", "name of this run in reports and charts")
	defHold := time.Duration(0)
	if mode == "idle" {
		defHold = 20 * time.Second
	}
	fs.DurationVar(&o.hold, "hold", defHold, "how long to hold the connections once open (echo, broadcast: before the run)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "echo: how long to run")
	fs.IntVar(&o.size, "size", 64, "echo: payload bytes (at least 8)")
	fs.IntVar(&o.messages, "messages", 100, "broadcast: messages to publish")
	fs.Float64Var(&o.pubRate, "pub-rate", 10, "broadcast: messages per second (0.2: one every 5 s)")
	fs.StringVar(&o.channel, "channel", "bench", "broadcast: channel name")
	fs.DurationVar(&o.drain, "drain", 15*time.Second, "broadcast: how long to wait for deliveries after the last publish")
	fs.BoolVar(&o.deflate, "deflate", false, "idle: offer permessage-deflate and count a connection only if the server accepts it")
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	return o, o.finish(*urls, *src, *pids)
}

func (o *options) finish(urls, src, pids string) error {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		t, err := parseTarget(u)
		if err != nil {
			return err
		}
		if t.tls && o.mode != "idle" {
			return fmt.Errorf("-url %s: wss:// is supported in idle mode only", u)
		}
		o.urlStrings = append(o.urlStrings, u)
	}
	var err error
	if o.sources, err = parseSources(src); err != nil {
		return err
	}
	switch {
	case o.n <= 0:
		return fmt.Errorf("-n %d: want at least 1", o.n)
	case o.rate <= 0:
		return fmt.Errorf("-rate %d: want at least 1", o.rate)
	case o.procs < 0 || o.pool <= 0 || o.size < 0 || o.messages < 0:
		return fmt.Errorf("-procs, -pool, -size and -messages must not be negative, -pool at least 1")
	case o.deflate && o.mode != "idle":
		return fmt.Errorf("-deflate is supported in idle mode only (the bench does not inflate messages)")
	case o.pubRate <= 0 || o.pubRate > 1e6:
		return fmt.Errorf("-pub-rate %v: want more than 0, at most 1000000", o.pubRate)
	}
	if pids == "" {
		t, _ := parseTarget(o.urlStrings[0])
		o.pids, err = pidsListening(t.sa.Port)
		return err
	}
	for _, p := range strings.Split(pids, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || pid <= 0 {
			return fmt.Errorf("-pid %q: not a process id", p)
		}
		o.pids = append(o.pids, pid)
	}
	return nil
}

// parseSources reads "a.b.c.d-a.b.c.e" or "ip,ip,...".
func parseSources(s string) ([]net.IP, error) {
	if s == "" {
		return nil, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, b := net.ParseIP(from).To4(), net.ParseIP(to).To4()
		if a == nil || b == nil {
			return nil, fmt.Errorf("-src %q: want an IPv4 range like 127.0.0.2-127.0.0.40", s)
		}
		lo, hi := ipToInt(a), ipToInt(b)
		if hi < lo || hi-lo >= 1<<16 {
			return nil, fmt.Errorf("-src %q: empty or too large range", s)
		}
		var ips []net.IP
		for v := lo; v <= hi; v++ {
			ips = append(ips, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4())
		}
		return ips, nil
	}
	var ips []net.IP
	for _, p := range strings.Split(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(p)).To4()
		if ip == nil {
			return nil, fmt.Errorf("-src: %q is not an IPv4 address", p)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

func ipToInt(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

func printJSON(v any, w io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// runReport renders charts of saved results side by side.
func runReport(args []string) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	out := fs.String("o", ".", "output directory")
	name := fs.String("name", "report", "file name prefix of the charts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("report: name one or more result JSON files")
	}
	var runs []*Result
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		runs = append(runs, &r)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := renderCharts(runs, *out, *name); err != nil {
		return err
	}
	progressf("wrote %s/%s-timeline.png and %s-latency.png", *out, *name, *name)
	return nil
}
