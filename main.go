// Command wsgate is a WebSocket gateway for push and instant messaging:
// echo at /echo, publish/subscribe channels at /ws, one epoll reactor and a
// bounded worker pool for every connection.
//
// With -workers N it runs as a supervisor of N worker processes sharing the
// port (SO_REUSEPORT), joined by NATS: an embedded NATS server unless -nats
// names an external cluster. A single process with -nats joins other nodes.
//
// With -jwt-secret, -jwt-secret-file or -jwt-public-key it admits only
// connections that present a valid JSON Web Token, and /ws checks the
// token's channel permissions (package auth).
//
// An admin listener (package admin, -admin, 127.0.0.1:8081 by default)
// serves POST /api/publish (with -api-key), /api/channels, /api/stats,
// /healthz, /readyz, Prometheus /metrics, and with -pprof net/http/pprof.
// Under a supervisor, worker i serves it on the -admin port + 1 + i, and
// the supervisor serves none.
//
// Every flag has an environment variable and a key in the YAML file named
// by -config: -max-conns is WSGATE_MAX_CONNS and max-conns. The command
// line wins over the environment, the environment over the file, the file
// over the default; -print-config shows the result.
//
// Package gateway does all of it; this is its command line: exit status 2
// for a configuration problem, 1 for any other failure, 0 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsgate/wsgate/gateway"
)

func main() { os.Exit(run()) }

// run is main's body, returning the exit status: its deferred calls run.
func run() int {
	// Before Load: a SIGTERM at any point after must shut down cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := gateway.Load(os.Args[1:], os.Environ())
	if err == nil {
		err = gateway.Run(ctx, cfg)
	}
	switch {
	case err == nil, errors.Is(err, gateway.ErrHelp):
		return 0
	case errors.Is(err, gateway.ErrInvalidConfig):
		fmt.Fprintf(os.Stderr, "wsgate: %v\n", err)
		return 2
	}
	return 1 // Run logged why
}
