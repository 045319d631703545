package gateway

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/prefork"
	"github.com/wsgate/wsgate/wsconn"
)

// The contract between a supervisor (-workers) and its workers, all of it
// in this file.
//
// The supervisor (package prefork) starts each worker as its own
// executable again (os.Executable), with the command line and the
// environment that its Load was given, plus these variables:
//
//	WSGATE_WORKER_ID=i           prefork.EnvWorkerID: the worker's number, 0 to N-1.
//	                             Load finds it in its env: the process is worker i.
//	WSGATE_READY_FD=3            prefork.EnvReadyFD: a pipe; the worker writes one line
//	                             to it once it listens (prefork.ReadyFD), and the
//	                             supervisor waits for every worker's before it runs.
//	WSGATE_WORKER_ADMIN=addr     envWorkerAdmin: the worker's admin listener, "off" for
//	                             none; worker i's port is the -admin port + 1 + i
//	                             (workerAdminAddrs), so that none takes the -admin
//	                             address a single process would use. It wins over
//	                             -admin, which the workers inherit.
//	WSGATE_WORKER_MAX_CONNS=n    envWorkerMaxConns: the worker's share of -max-conns
//	                             (workerShare), when -max-conns is set.
//	WSGATE_NATS=url,...          the NATS joining the workers: the embedded server the
//	                             supervisor runs, or -nats.
//	GOMAXPROCS=n                 the CPUs divided among the workers, unless set.
//
// A worker listens with SO_REUSEPORT on the shared -addr and answers every
// handshake with the header X-Wsgate-Worker: i. It exits 2 on a
// configuration problem before it is ready, which the supervisor reports
// as its own (workerConfigError) instead of restarting it.
//
// So a program embedding wsgate gets working -workers only if its main
// does what wsgate's does: Load(os.Args[1:], os.Environ()), then Run, in
// the process as it starts, and exit 2 on ErrInvalidConfig.

const (
	// envWorkerAdmin carries a worker's admin address ("off": none).
	envWorkerAdmin = "WSGATE_WORKER_ADMIN"
	// envWorkerMaxConns carries a worker's share of -max-conns.
	envWorkerMaxConns = "WSGATE_WORKER_MAX_CONNS"
)

// spreadSlack is the headroom each worker gets over an even share of the
// connections: the kernel spreads SO_REUSEPORT connections by a hash, not
// evenly.
const spreadSlack = 1.10

// A workerRole is what the supervisor told this process, read by Load
// from its environment.
type workerRole struct {
	isWorker bool
	id       int    // the worker's number, with isWorker
	readyFD  string // prefork.EnvReadyFD's value
	admin    string // envWorkerAdmin's value, with hasAdmin
	hasAdmin bool
	maxConns int // envWorkerMaxConns's value; 0: not set
}

// workerFromEnv reads this process's worker role from lookup (Load's env).
func workerFromEnv(lookup func(string) (string, bool)) workerRole {
	var w workerRole
	if v, ok := lookup(prefork.EnvWorkerID); ok {
		id, err := strconv.Atoi(v)
		w.id, w.isWorker = id, err == nil
	}
	if !w.isWorker {
		return workerRole{}
	}
	w.readyFD, _ = lookup(prefork.EnvReadyFD)
	w.admin, w.hasAdmin = lookup(envWorkerAdmin)
	if v, _ := lookup(envWorkerMaxConns); v != "" {
		w.maxConns, _ = strconv.Atoi(v) // not a number: the worker's default
	}
	return w
}

// ready tells the supervisor, if there is one, that this worker serves.
func (w workerRole) ready() error {
	if !w.isWorker {
		return nil
	}
	return prefork.ReadyFD(w.readyFD)
}

// serverConfig is w's part of the worker's wsconn.Config: the shared
// port, the header naming the worker, its share of -max-conns.
func (w workerRole) serverConfig(cfg *wsconn.Config) {
	if !w.isWorker {
		return
	}
	cfg.ReusePort = true
	cfg.ResponseHeader = http.Header{"X-Wsgate-Worker": {strconv.Itoa(w.id)}}
	if w.maxConns != 0 {
		cfg.MaxConns = w.maxConns
	}
}

// adminAddr is the admin address of this process: addr (-admin), or for
// a worker the one the supervisor chose.
func (w workerRole) adminAddr(addr string) string {
	if w.isWorker && w.hasAdmin {
		return w.admin
	}
	return addr
}

// workerEnv is the environment the supervisor adds for worker i, besides
// prefork's: env (Load's, with WSGATE_NATS, GOMAXPROCS and the share of
// -max-conns set) and worker i's admin address.
func workerEnv(env []string, p workerPlan, nats []string) func(i int) []string {
	extra := []string{"WSGATE_NATS=" + strings.Join(nats, ",")}
	if v, _ := lookupIn(env)("GOMAXPROCS"); v == "" {
		// Workers share the CPUs: more Ps than a worker's share only adds
		// scheduler spinning across dozens of processes.
		extra = append(extra, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/p.workers)))
	}
	if p.maxConns > 0 {
		extra = append(extra, envWorkerMaxConns+"="+strconv.Itoa(p.maxConns))
	}
	return func(i int) []string { return append(extra[:len(extra):len(extra)], envWorkerAdmin+"="+p.admins[i]) }
}

// workerAdminAddrs returns the admin address of each of n workers: worker
// i on addr's port + 1 + i, so that none takes the address a single
// process would use; every worker on a free port if addr's port is 0;
// "off" for all if addr is "".
func workerAdminAddrs(addr string, n int) ([]string, error) {
	addrs := make([]string, n)
	if addr == "" {
		for i := range addrs {
			addrs[i] = "off"
		}
		return addrs, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("invalid -admin %q: %w", addr, err)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return nil, fmt.Errorf("invalid -admin %q: %w", addr, err)
	}
	if port > 0 && port+n > 65535 {
		return nil, fmt.Errorf("-admin port %d: %d workers need ports up to %d, past 65535", port, n, port+n)
	}
	for i := range addrs {
		if port > 0 {
			p = strconv.Itoa(port + 1 + i)
		}
		addrs[i] = net.JoinHostPort(host, p)
	}
	return addrs, nil
}

// autoWorkers is enough workers for maxConns connections under the
// descriptor limit, with spreadSlack, or one per CPU without a target.
func autoWorkers(maxConns int) int {
	per := wsconn.DefaultMaxConns()
	if maxConns <= 0 {
		return max(1, runtime.NumCPU())
	}
	return int(math.Ceil(float64(maxConns) * spreadSlack / float64(per)))
}

// workerShare is one worker's connection cap: an even share of the total
// plus spreadSlack, within the descriptor limit.
func workerShare(total, workers int) int {
	return min(wsconn.DefaultMaxConns(), int(math.Ceil(float64(total)/float64(workers)*spreadSlack)))
}
