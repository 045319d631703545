package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Attack mode: reproduces, against a running wsgate process, the attacks
// of the reports against older builds, and measures what they cost it:
//
//	bench attack -scenario peraddr   -addr 127.0.0.1:8080 -pid 1234
//	bench attack -scenario emptycont -addr 127.0.0.1:8080
//
// Scenarios:
//
//	peraddr    -cap upgraded connections from 127.0.0.1 fill the server's
//	           per-address cap, -stalled more send half a request and stop;
//	           then -fresh clients from -src connect one after another:
//	           their time to 101, and how the stalled ones were answered.
//	emptycont  -n connections each start a text message and send empty
//	           continuation frames as fast as the socket takes them for
//	           -duration: frames sent, how each ended, server CPU seconds.
//	endless    -n connections each send -fragments 64 KiB fragments of a
//	           message, then an empty continuation every -interval, for
//	           -duration: server memory growth, who was cut, how, when.
//	announce   -n connections each announce a 1 MiB binary frame and send
//	           10 bytes of it, held -hold: server memory growth.
//	fanout     -n subscribers on one channel, -publishers publishing
//	           -pub-rate messages a second each for -duration; meanwhile one
//	           echo client's round trips and -fresh new connections' connect
//	           times.
//	queue      -n subscribers (SO_RCVBUF -rcvbuf) subscribe and never read;
//	           pushes are published through the admin API until each was
//	           closed as a slow consumer or -duration passed: server memory
//	           growth, subscribers cut.
//
// Unlike the other modes this one uses ordinary blocking sockets, a
// goroutine or two each: the scenarios hold at most ~10,300 connections,
// and each connection does its own thing. Every loop is bounded by a count
// and a time, and every socket is closed at the end. Memory figures come
// from /proc/<pid>/status (RSS) and the server's /metrics on -admin (Go
// heap in use), sampled before, during and at the end of the attack.

// attackOptions are the flags of attack mode. Zero counts and durations
// take the scenario's default (defaults).
type attackOptions struct {
	scenario   string
	addr       string // the server's WebSocket listener
	admin      string // its admin listener: /metrics, /api/publish
	apiKey     string // queue: the server's -api-key
	pid        int    // the server's process (0: the one listening on -addr)
	n          int    // connections of the scenario (peraddr: see cap)
	cap        int    // peraddr: the server's -max-conns-per-ip
	stalled    int    // peraddr: sockets that send half a request
	fresh      int    // peraddr: clients timed from src; fanout: connects during the attack
	src        string // peraddr: source address of the fresh clients
	rate       int    // new connections per second while ramping
	timeout    time.Duration
	duration   time.Duration
	hold       time.Duration // announce
	interval   time.Duration // endless: between empty continuations
	fragments  int           // endless: 64 KiB fragments before the trickle
	fragSize   int           // endless: bytes per fragment
	publishers int           // fanout
	pubRate    int           // fanout: publishes per second per publisher
	rcvbuf     int           // queue: subscribers' SO_RCVBUF
	maxBatch   int           // queue: messages per /api/publish request
}

// scenarioDefaults are each scenario's defaults: what the reports did.
var scenarioDefaults = map[string]attackOptions{
	"peraddr":   {cap: 10000, stalled: 64, fresh: 200, src: "127.0.0.5", duration: 120 * time.Second},
	"emptycont": {n: 4, duration: 8 * time.Second},
	"endless":   {n: 300, fragments: 15, fragSize: 64 << 10, interval: 3 * time.Second, duration: 40 * time.Second},
	"announce":  {n: 1000, hold: 5 * time.Second},
	"fanout":    {n: 300, publishers: 16, pubRate: 1000, fresh: 50, duration: 10 * time.Second},
	"queue":     {n: 200, rcvbuf: 4096, maxBatch: 1000, duration: 60 * time.Second},
}

func parseAttack(args []string) (attackOptions, error) {
	var o attackOptions
	fs := flag.NewFlagSet("bench attack", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.scenario, "scenario", "", "peraddr, emptycont, endless, announce, fanout or queue")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "the server's WebSocket address, host:port")
	fs.StringVar(&o.admin, "admin", "127.0.0.1:8081", "the server's admin address (/metrics; queue: /api/publish)")
	fs.StringVar(&o.apiKey, "api-key", "", "queue: the server's -api-key (or WSGATE_API_KEY)")
	fs.IntVar(&o.pid, "pid", 0, "server pid (0: the process listening on -addr's port)")
	fs.IntVar(&o.n, "n", 0, "connections (0: the scenario's default; fanout, queue: subscribers)")
	fs.IntVar(&o.cap, "cap", 0, "peraddr: connections held from 127.0.0.1, the server's -max-conns-per-ip (default 10000)")
	fs.IntVar(&o.stalled, "stalled", 0, "peraddr: half requests sent past the cap (default 64)")
	fs.IntVar(&o.fresh, "fresh", 0, "peraddr: clients timed from -src (default 200); fanout: connections opened during the attack (default 50)")
	fs.StringVar(&o.src, "src", "", "peraddr: source address of the timed clients (default 127.0.0.5)")
	fs.IntVar(&o.rate, "rate", 2000, "new connections per second while opening a scenario's connections")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "connect + handshake timeout per connection")
	fs.DurationVar(&o.duration, "duration", 0, "how long the attack runs at most (default per scenario)")
	fs.DurationVar(&o.hold, "hold", 0, "announce: how long to hold the announcements (default 5s)")
	fs.DurationVar(&o.interval, "interval", 0, "endless: time between empty continuations (default 3s)")
	fs.IntVar(&o.fragments, "fragments", 0, "endless: 64 KiB fragments sent first (default 15)")
	fs.IntVar(&o.publishers, "publishers", 0, "fanout: publisher connections (default 16)")
	fs.IntVar(&o.pubRate, "pub-rate", 0, "fanout: publishes per second per publisher, sent in 10 batches (default 1000)")
	fs.IntVar(&o.rcvbuf, "rcvbuf", 0, "queue: SO_RCVBUF of the subscribers, bytes (default 4096)")
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	if o.apiKey == "" {
		o.apiKey = os.Getenv("WSGATE_API_KEY")
	}
	return o, o.defaults()
}

// defaults fills what was left zero with the scenario's defaults and
// checks the rest.
func (o *attackOptions) defaults() error {
	d, ok := scenarioDefaults[o.scenario]
	if !ok {
		return fmt.Errorf("-scenario %q: want peraddr, emptycont, endless, announce, fanout or queue", o.scenario)
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&o.n, d.n)
	setInt(&o.cap, d.cap)
	setInt(&o.stalled, d.stalled)
	setInt(&o.fresh, d.fresh)
	setInt(&o.fragments, d.fragments)
	setInt(&o.fragSize, d.fragSize)
	setInt(&o.publishers, d.publishers)
	setInt(&o.pubRate, d.pubRate)
	setInt(&o.rcvbuf, d.rcvbuf)
	setInt(&o.maxBatch, d.maxBatch)
	setDur(&o.duration, d.duration)
	setDur(&o.hold, d.hold)
	setDur(&o.interval, d.interval)
	if o.src == "" {
		o.src = d.src
	}
	switch {
	case o.n < 0 || o.cap < 0 || o.stalled < 0 || o.fresh < 0 || o.fragments < 0 || o.publishers < 0 || o.pubRate < 0:
		return errors.New("counts must not be negative")
	case o.rate <= 0 || o.timeout <= 0:
		return errors.New("-rate and -timeout must be positive")
	case o.scenario == "queue" && len(o.apiKey) < 16:
		return errors.New("queue publishes through the admin API: give the server's -api-key (at least 16 bytes)")
	case o.scenario == "peraddr" && net.ParseIP(o.src).To4() == nil:
		return fmt.Errorf("-src %q: not an IPv4 address", o.src)
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		return fmt.Errorf("-addr %q: %w", o.addr, err)
	}
	return nil
}

// AttackResult is what attack mode prints: the server's memory and the
// scenario's figures (one of the pointers is set).
type AttackResult struct {
	Scenario  string           `json:"scenario"`
	Date      string           `json:"date"`
	Command   string           `json:"command"`
	Addr      string           `json:"addr"`
	Seconds   float64          `json:"seconds"`
	Summary   string           `json:"summary"`
	Server    MemFigures       `json:"server"`
	PerAddr   *PerAddrFigures  `json:"peraddr,omitempty"`
	EmptyCont *ContFigures     `json:"emptycont,omitempty"`
	Endless   *EndlessFigures  `json:"endless,omitempty"`
	Announce  *AnnounceFigures `json:"announce,omitempty"`
	Fanout    *FanoutFigures   `json:"fanout,omitempty"`
	Queue     *QueueFigures    `json:"queue,omitempty"`
}

// runAttack is attack mode: parse, run, print the JSON to out and the
// summary to stderr.
func runAttack(args []string, out io.Writer) error {
	o, err := parseAttack(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the flags were printed
	}
	if err != nil {
		return usageError{err}
	}
	res, err := o.run()
	if err != nil {
		return err
	}
	res.Command = "bench attack " + strings.Join(args, " ")
	fmt.Fprintf(os.Stderr, "bench attack %s: %s\n", res.Scenario, res.Summary)
	return printJSON(res, out)
}

// run runs the scenario; every connection it opened is closed on return.
func (o attackOptions) run() (*AttackResult, error) {
	if o.pid == 0 {
		_, port, _ := net.SplitHostPort(o.addr)
		p, _ := strconv.Atoi(port)
		pids, err := pidsListening(p)
		if err != nil {
			return nil, err
		}
		if len(pids) != 1 {
			return nil, fmt.Errorf("%d processes listen on %s: run the server as one process (-workers 1) or give -pid", len(pids), o.addr)
		}
		o.pid = pids[0]
	}
	a := &attack{o: o, mem: newMemWatch(o.pid, o.admin)}
	defer a.closeAll()
	res := &AttackResult{Scenario: o.scenario, Date: time.Now().UTC().Format(time.RFC3339), Addr: o.addr}
	start := time.Now()
	if err := a.mem.start(); err != nil {
		return nil, err
	}
	switch o.scenario {
	case "peraddr":
		res.PerAddr = a.perAddr()
		res.Summary = res.PerAddr.summary()
	case "emptycont":
		res.EmptyCont = a.emptyCont()
		res.Summary = res.EmptyCont.summary()
	case "endless":
		res.Endless = a.endless()
		res.Summary = res.Endless.summary()
	case "announce":
		res.Announce = a.announce()
		res.Summary = res.Announce.summary()
	case "fanout":
		res.Fanout = a.fanout()
		res.Summary = res.Fanout.summary()
	case "queue":
		res.Queue = a.queue()
		res.Summary = res.Queue.summary()
	}
	res.Server = a.mem.stop()
	res.Seconds = time.Since(start).Seconds()
	res.Summary += "; " + res.Server.summary()
	return res, nil
}

// attack is one scenario's run: its connections and the memory watch.
type attack struct {
	o       attackOptions
	mem     *memWatch
	mu      sync.Mutex
	peers   []*peer    // every upgraded connection, to close at the end
	raw     []net.Conn // sockets never upgraded (peraddr's stalled ones)
	readers sync.WaitGroup
}

// closeAll closes every socket of the run and waits for its readers.
func (a *attack) closeAll() {
	a.mu.Lock()
	peers, raw := a.peers, a.raw
	a.peers, a.raw = nil, nil
	a.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
	for _, c := range raw {
		c.Close()
	}
	a.readers.Wait()
}
