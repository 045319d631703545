package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/poller"
	"github.com/wsgate/wsgate/wsconn"
)

// Checking the settings before anything starts: everything the server
// would refuse at startup is refused here, for a start and for
// -print-config alike, with one line and exit status 2.

// checkConfig makes, before anything starts, the checks of the settings
// that parseFlags cannot make and that the server or the supervisor would
// otherwise make only while starting: what handler, auth and wsconn
// refuse, the NATS URLs, the TLS certificate and key, and under -workers
// the worker arithmetic. It reads the files the settings name (TLS, JWT
// keys) and opens no socket. Run as a worker, it checks the worker's
// settings, the supervisor's share of -max-conns included.
func checkConfig(opts options) error {
	if _, err := handler.NewChannels(opts.channels); err != nil {
		return err
	}
	if opts.jwt != nil {
		if _, err := auth.New(*opts.jwt); err != nil {
			return err
		}
	}
	if opts.tlsCert != "" {
		if _, err := newCertReloader(opts.tlsCert, opts.tlsKey); err != nil {
			return err
		}
	}
	for _, u := range opts.nats {
		if !isNATSURL(u) {
			return fmt.Errorf("invalid -nats URL %q%s: want nats://host:port or tls://host:port", u, opts.where("nats"))
		}
	}
	cfg := baseConfig(opts)
	var workerAdmins []string // under a supervisor
	if opts.workers != 1 && !opts.role.isWorker {
		plan, err := planWorkers(opts)
		if err != nil {
			return err
		}
		cfg.MaxConns = plan.maxConns // each worker's config, as the worker will check it
		if opts.admin != "" {
			workerAdmins = plan.admins
		}
	}
	if err := checkListeners(opts, workerAdmins); err != nil {
		return err
	}
	if err := checkMaxConns(opts); err != nil {
		return err
	}
	cfg.Routes = map[string]wsconn.Handler{"/echo": handler.Echo{}} // any: Validate wants one
	return cfg.Validate()
}

// isNATSURL reports whether u is a URL the NATS client connects to:
// nats:// or tls://, then host:port (user:password@ allowed).
func isNATSURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "nats" && p.Scheme != "tls" || p.Hostname() == "" {
		return false
	}
	port, err := strconv.Atoi(p.Port())
	return err == nil && port > 0 && port <= 65535
}

// checkJWTFlags reports, in terms of flags, the combinations of -jwt-*
// flags that cannot work; auth.New checks the rest, such as the keys.
func checkJWTFlags(c auth.Config) error {
	secrets := 0
	if len(c.Secret) > 0 {
		secrets++
	}
	if c.SecretFile != "" {
		secrets++
	}
	switch {
	case secrets == 2:
		return errors.New("-jwt-secret and -jwt-secret-file: give one")
	case secrets > 0 && len(c.PublicKeyFiles) > 0:
		return errors.New("-jwt-secret or -jwt-secret-file, and -jwt-public-key: give one kind of key")
	case secrets == 0 && len(c.PublicKeyFiles) == 0 && (c.Issuer != "" || c.Audience != ""):
		return errors.New("-jwt-issuer and -jwt-audience need a key: -jwt-secret, -jwt-secret-file or -jwt-public-key")
	}
	return nil
}

// checkNumbers refuses numbers out of their flag's range, in terms of
// flags: negatives where none has a meaning, and zero in the settings
// whose default is not zero, where it would silently mean the default
// (-max-conns-per-ip 0 would be 10000, not "no cap").
func checkNumbers(o *options) error {
	w := &o.ws
	for _, c := range []struct {
		name      string
		v         int
		zero, neg bool // allowed
		want      string
	}{
		{"pool", w.Workers, true, false, "want a positive size, or 0 for " + zeroMeans["pool"]},
		{"max-conns", w.MaxConns, true, false, "want a positive cap, or 0 for the " + zeroMeans["max-conns"]},
		{"max-conns-per-ip", w.MaxConnsPerIP, false, true, "want a positive cap, or -1 for none"},
		{"accept-rate", w.AcceptRate, false, true, "want a positive rate, or -1 for no cap"},
		{"max-msg-rate", w.MaxMessageRate, false, true, "want a positive rate, or -1 for no cap"},
		{"max-subs", o.channels.MaxSubscriptions, false, false, "want a positive count"},
		{"max-channel-len", o.channels.MaxChannelLen, false, false, "want a positive length in bytes"},
		{"history-channels", o.channels.MaxHistoryChannels, false, false, "want a positive count"},
		{"history-memory", int(min(o.channels.MaxHistoryBytes, 1<<62)), false, false, "want a positive size"},
	} {
		if c.v == 0 && !c.zero || c.v < 0 && !c.neg {
			return fmt.Errorf("invalid -%s %d%s: %s", c.name, c.v, o.where(c.name), c.want)
		}
	}
	for _, c := range []struct {
		name      string
		v         time.Duration
		zero, neg bool // allowed
		want      string
	}{
		{"handshake-timeout", w.HandshakeTimeout, false, false, "want a positive duration"},
		{"ping-interval", w.PingInterval, false, true, "want a positive duration, or off (-1) for never"},
		{"pong-timeout", w.PongTimeout, false, false, "want a positive duration"},
		{"close-timeout", w.CloseTimeout, false, false, "want a positive duration"},
		{"message-timeout", w.MessageTimeout, false, false, "want a positive duration"},
		{"sweep-interval", w.SweepInterval, false, false, "want a positive duration"},
		{"log-warn-interval", w.WarnInterval, false, false, "want a positive duration"},
		{"shutdown-timeout", o.shutdownTimeout, true, false, "want a positive duration, or 0 to close at once"},
	} {
		if c.v == 0 && !c.zero || c.v < 0 && !c.neg {
			return fmt.Errorf("invalid -%s %v%s: %s", c.name, c.v, o.where(c.name), c.want)
		}
	}
	if msg := cmp.Or(w.MaxMessageSize, wsconn.DefaultMaxMessageSize); w.MaxFrameSize > msg {
		return fmt.Errorf("invalid -max-frame %s%s: want at most -max-message (%s)",
			formatSize(w.MaxFrameSize), o.where("max-frame"), formatSize(msg))
	}
	return nil
}

// checkAdminFlags reads "off" in -admin as "" (no admin listener) and
// reports, in terms of flags, an address or key that admin.New would refuse
// (the supervisor never calls it), and an -addr no listener would take.
func checkAdminFlags(o *options) error {
	if o.admin == "off" {
		o.admin = ""
	}
	if o.admin != "" && !isHostPort(o.admin) {
		return fmt.Errorf("invalid -admin %q%s: want host:port, or off", o.admin, o.where("admin"))
	}
	if !isHostPort(o.ws.Addr) {
		return fmt.Errorf("invalid -addr %q%s: want host:port", o.ws.Addr, o.where("addr"))
	}
	if o.apiKey != "" && len(o.apiKey) < admin.MinAPIKeyLen {
		return fmt.Errorf("-api-key%s is %d bytes: want at least %d", o.where("api-key"), len(o.apiKey), admin.MinAPIKeyLen)
	}
	return nil
}

// checkMaxConns refuses a connection cap past what the descriptor limit
// leaves (wsconn.DefaultMaxConns, the one computation wsconn checks too),
// naming the setting and its source: -max-conns in a single process, the
// share the supervisor passed in a worker. A supervisor's -max-conns is
// the workers' together (planWorkers).
func checkMaxConns(o options) error {
	most := wsconn.DefaultMaxConns()
	name, n, from := "-max-conns", o.ws.MaxConns, o.origin("max-conns")
	switch {
	case o.role.isWorker && o.role.maxConns != 0:
		name, n, from = envWorkerMaxConns, o.role.maxConns, " (the share of -max-conns from the supervisor)"
	case o.workers != 1 && !o.role.isWorker:
		return nil
	}
	if n <= most {
		return nil
	}
	return fmt.Errorf("invalid %s %d%s: want at most %d, the descriptor limit %d - %d (raise ulimit -n, or use -workers)",
		name, n, from, most, poller.DescriptorLimit(), wsconn.DescriptorHeadroom)
}

// checkListeners refuses two listeners on one address, which would fail
// only once the second one starts: -addr and the admin listener of this
// process (-admin, or a worker's from its supervisor), or under a
// supervisor -addr and each worker's admin listener (workerAdmins: the
// -admin port + 1 + i). The listeners of wss and ws are one (-addr).
func checkListeners(o options, workerAdmins []string) error {
	addr := o.ws.Addr
	if workerAdmins == nil {
		a, admin := o.role.adminAddr(o.admin), fmt.Sprintf("-admin %q%s", o.admin, o.origin("admin"))
		if a != o.admin { // a worker's, from its supervisor
			admin = fmt.Sprintf("%s %q", envWorkerAdmin, a)
		}
		if a != "" && a != "off" && sameListener(addr, a) {
			return fmt.Errorf("-addr %q%s and %s are one address: give each listener its own port", addr, o.origin("addr"), admin)
		}
		return nil
	}
	for i, a := range workerAdmins {
		if sameListener(addr, a) {
			return fmt.Errorf("-addr %q%s is worker %d's admin address, the -admin port + 1 + %d (-admin %q%s): "+
				"give each listener its own port", addr, o.origin("addr"), i, i, o.admin, o.origin("admin"))
		}
	}
	return nil
}

// sameListener reports whether listeners on host:port addresses a and b
// would take one address: the same port (not 0: any free one), and the
// same host or a wildcard one ("", 0.0.0.0, ::) for either. Host names
// other than localhost are compared as written.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return false
	}
	na, errA := net.LookupPort("tcp", pa)
	nb, errB := net.LookupPort("tcp", pb)
	if errA != nil || errB != nil || na == 0 || na != nb {
		return false
	}
	ha, hb = canonicalHost(ha), canonicalHost(hb)
	return ha == "" || hb == "" || ha == hb
}

// canonicalHost is host written one way: "" for a wildcard address, an IP
// address in its shortest form, localhost as 127.0.0.1.
func canonicalHost(host string) string {
	if host == "localhost" {
		return "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return host
	case ip.IsUnspecified():
		return ""
	}
	return ip.Unmap().String()
}

// isHostPort reports whether addr is host:port with a valid port (a
// number up to 65535 or a service name), as a listener needs.
func isHostPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	return err == nil
}
