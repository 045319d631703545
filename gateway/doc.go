// Package gateway assembles the wsgate product: the flags, WSGATE_*
// environment variables and -config file, the checks made before anything
// starts, the WebSocket server (package wsconn) with its routes /ws
// (channels, package handler) and /echo and the chat demo page at /, the
// admin listener (package admin: publish API, health, Prometheus
// /metrics), JWT authentication (package auth), NATS (package broker),
// TLS with certificate reload on SIGHUP, and under -workers the
// supervisor of worker processes (package prefork). Command wsgate, the
// module's root, is a thin main over it.
//
// Two calls run a whole wsgate: Load reads and checks the settings from a
// command line and an environment, Run serves them until its context is
// done, then drains and returns. Neither exits the process. A
// configuration problem is an error wrapping ErrInvalidConfig (wsgate exits 2
// on it); -h is ErrHelp; with -print-config, Run prints the effective
// settings and returns.
//
// A program embedding wsgate, with -workers working, has a main that exits
// with the status this returns (wsgate's own main.go is exactly this):
//
//	func run() int {
//		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
//		defer stop()
//		cfg, err := gateway.Load(os.Args[1:], os.Environ())
//		if err == nil {
//			err = gateway.Run(ctx, cfg)
//		}
//		switch {
//		case err == nil, errors.Is(err, gateway.ErrHelp):
//			return 0
//		case errors.Is(err, gateway.ErrInvalidConfig):
//			fmt.Fprintf(os.Stderr, "wsgate: %v\n", err)
//			return 2
//		}
//		return 1 // Run logged why
//	}
//
// The supervisor starts each worker as the same executable again, with
// Load's args and env and a few variables of its own (worker.go lists
// them): the worker's Load finds them in its env and runs as that worker.
// So main must pass os.Args[1:] and os.Environ() to Load, and call Run
// before doing anything else a worker should not do.
package gateway
