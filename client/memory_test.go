package client_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// serverEnv, set, makes the test binary a wsgate /ws server on its value
// (an address) instead: the client memory benchmark runs its server in
// another process, so that its 10,000 connections have this process's
// descriptors, and its memory, to themselves.
const serverEnv = "WSGATE_CLIENT_TEST_SERVER"

func init() {
	addr := os.Getenv(serverEnv)
	if addr == "" {
		return
	}
	ch, err := handler.NewChannels(handler.ChannelsConfig{})
	if err == nil {
		var srv *wsconn.Server
		if srv, err = wsconn.New(wsconn.Config{Addr: addr, MaxConnsPerIP: -1, AcceptRate: -1,
			MaxMessageRate: -1, MaxByteRate: -1,
			Routes: map[string]wsconn.Handler{"/ws": ch, "/echo": handler.Echo{}}}); err == nil {
			err = srv.Start()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	os.Exit(0)
}

// serverProcess runs this test binary as a wsgate server on a free port
// and returns its /ws URL; it ends with the benchmark.
func serverProcess(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+addr)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "listening\n" {
		b.Fatalf("server process: %q %v", line, err)
	}
	return "ws://" + addr + "/ws"
}

// BenchmarkClientMemory opens 10,000 client connections to a wsgate in
// another process and reports the heap and stack they hold and their
// goroutines, per connection: this package's Conn (with its reconnect and
// heartbeat on) against gorilla/websocket's client doing the same (a
// reader goroutine per connection, as its documentation asks).
//
//	go test -run XXX -bench ClientMemory -benchtime 1x ./client
func BenchmarkClientMemory(b *testing.B) {
	const n = 10000
	url := serverProcess(b)
	for _, impl := range []string{"wsgate-client", "gorilla"} {
		b.Run(impl, func(b *testing.B) {
			for range b.N {
				heap0, stack0, gr0 := memNow()
				closeAll := openClients(b, impl, url, n)
				heap1, stack1, gr1 := memNow()
				b.ReportMetric(float64(heap1-heap0)/n, "heap-B/conn")
				b.ReportMetric(float64(stack1-stack0)/n, "stack-B/conn")
				b.ReportMetric(float64(gr1-gr0)/n, "goroutines/conn")
				closeAll()
			}
		})
	}
}

// memNow is the heap in use, the stacks in use and the goroutines, after
// a collection.
func memNow() (heap, stack uint64, goroutines int) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse, runtime.NumGoroutine()
}

// openClients opens n connections with impl and returns what closes them.
func openClients(b *testing.B, impl, url string, n int) func() {
	b.Helper()
	ctx := context.Background()
	switch impl {
	case "wsgate-client":
		cs := make([]*client.Conn, n)
		for i := range cs {
			c, err := client.Dial(ctx, url, client.Options{Reconnect: &client.Backoff{}})
			if err != nil {
				b.Fatal(err)
			}
			cs[i] = c
		}
		return func() {
			for _, c := range cs {
				_ = c.Close(1000, "")
			}
		}
	default:
		var wg sync.WaitGroup
		cs := make([]*websocket.Conn, n)
		for i := range cs {
			c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			cs[i] = c
			wg.Add(1)
			go func() { // gorilla: one reader per connection
				defer wg.Done()
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
		}
		return func() {
			for _, c := range cs {
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
				_ = c.Close()
			}
			wg.Wait()
		}
	}
}

// BenchmarkClientEcho sends a 64-byte message and waits for its echo, on
// one connection to a wsgate /echo in another process, and reports this
// process's CPU time per message (user + system, from getrusage): the
// client's own cost, not the server's. This package's Conn against
// gorilla/websocket's client, each delivering the echo to the sending
// goroutine from its reader.
//
//	go test -run XXX -bench ClientEcho -count 3 ./client
func BenchmarkClientEcho(b *testing.B) {
	url := strings.TrimSuffix(serverProcess(b), "/ws") + "/echo"
	msg := []byte("a 64-byte message, about the size of a chat line or a quote tick")
	b.Run("wsgate-client", func(b *testing.B) {
		got := make(chan struct{}, 1)
		c, err := client.Dial(context.Background(), url, client.Options{
			OnMessage: func(*client.Conn, client.MessageType, []byte) { got <- struct{}{} }})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(1000, "")
		b.ReportAllocs()
		cpu0 := cpuTime()
		for range b.N {
			if err := c.Send(msg); err != nil {
				b.Fatal(err)
			}
			<-got
		}
		reportCPU(b, cpu0)
	})
	b.Run("gorilla", func(b *testing.B) {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		// Its reader goroutine hands each message over, as this
		// package's OnMessage does: the same shape of program.
		got := make(chan struct{}, 1)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				got <- struct{}{}
			}
		}()
		b.ReportAllocs()
		cpu0 := cpuTime()
		for range b.N {
			if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
				b.Fatal(err)
			}
			<-got
		}
		reportCPU(b, cpu0)
	})
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time since cpu0 per iteration.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/msg")
}
