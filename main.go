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
package main

import "github.com/wsgate/wsgate/gateway"

func main() { gateway.Main() }
