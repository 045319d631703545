// Command bench is wsgate's load generator: it holds many WebSocket
// connections without a goroutine each and measures the server.
//
//	go run ./bench idle -url ws://127.0.0.1:8080/ws -n 15000 -rate 2000 -hold 20s
//
// Modes:
//
//	idle   open -n connections at -rate per second, hold them for -hold,
//	       report connect rate, handshake latency, and the server's memory
//	       per connection, CPU while idle and threads.
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
		fmt.Fprintln(os.Stderr, "usage: bench idle [flags]; bench idle -h for flags")
		os.Exit(2)
	}
	mode, args := os.Args[1], os.Args[2:]
	var err error
	switch mode {
	case "idle":
		var o idleOptions
		if err = o.parse(args); err == nil {
			err = runIdle(o)
		} else if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		} else {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown mode %q: want idle\n", mode)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// common are the flags every mode has.
type common struct {
	urls     []*target
	sources  []net.IP
	n        int
	rate     int
	timeout  time.Duration
	pids     []int
	jsonPath string
	workers  int
}

func (c *common) register(fs *flag.FlagSet, urls, src, pids *string) {
	fs.StringVar(urls, "url", "ws://127.0.0.1:8080/ws", "server URL(s), comma-separated; connections are spread over them")
	fs.StringVar(src, "src", "", "source addresses, a range 127.0.0.2-127.0.0.40 or a comma list (empty: kernel's choice)")
	fs.IntVar(&c.n, "n", 1000, "connections")
	fs.IntVar(&c.rate, "rate", 2000, "new connections per second")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "connect + handshake timeout per connection")
	fs.StringVar(pids, "pid", "", "server pid(s), comma-separated (empty: the processes listening on the first URL's port)")
	fs.StringVar(&c.jsonPath, "json", "", "write the result as JSON to this file")
	fs.IntVar(&c.workers, "pool", 8, "bench's own worker pool size")
}

func (c *common) finish(urls, src, pids string) error {
	for _, u := range strings.Split(urls, ",") {
		t, err := parseTarget(strings.TrimSpace(u))
		if err != nil {
			return err
		}
		c.urls = append(c.urls, t)
	}
	var err error
	if c.sources, err = parseSources(src); err != nil {
		return err
	}
	switch {
	case c.n <= 0:
		return fmt.Errorf("-n %d: want at least 1", c.n)
	case c.rate <= 0:
		return fmt.Errorf("-rate %d: want at least 1", c.rate)
	}
	if pids != "" {
		for _, p := range strings.Split(pids, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("-pid %q: %v", p, err)
			}
			c.pids = append(c.pids, pid)
		}
		return nil
	}
	c.pids, err = pidsListening(c.urls[0].sa.Port)
	return err
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
		if hi < lo || hi-lo > 1<<16 {
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

func writeJSON(path string, v any, w io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if path != "" {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
