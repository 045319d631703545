package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"wsgate/admin"
	"wsgate/auth"
	"wsgate/wsconn"
)

// parseFlags reads flags, falling back to WSGATE_* environment variables.
func parseFlags(args []string, getenv func(string) string) (options, error) {
	o := options{workers: 1}
	fs := flag.NewFlagSet("wsgate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	w := &o.ws
	fs.StringVar(&w.Addr, "addr", wsconn.DefaultAddr, "WebSocket listen address, host:port")
	fs.BoolVar(&w.ReusePort, "reuse-port", false, "set SO_REUSEPORT on the listener")
	fs.IntVar(&w.Workers, "pool", 0, "worker pool size (0: max(16, 8*GOMAXPROCS))")
	fs.IntVar(&w.MaxConns, "max-conns", 0, "connection cap, 503 past it (0: descriptor limit - 128)")
	fs.Var(sizeFlag{&w.MaxMessageSize}, "max-message", "largest message, bytes (K/M suffixes ok); 1009 past it")
	fs.Var(sizeFlag{&w.MaxFrameSize}, "max-frame", "largest frame payload (0: -max-message)")
	fs.Var(intSizeFlag{&w.MaxQueueBytes}, "max-queue", "outbound queue per connection, bytes; 1008 past it (0: 4M)")
	fs.Var(intSizeFlag{&w.MaxHandshakeSize}, "max-handshake", "largest upgrade request, bytes; 431 past it (0: 8K)")
	fs.DurationVar(&w.HandshakeTimeout, "handshake-timeout", wsconn.DefaultHandshakeTimeout, "time allowed for the upgrade request")
	fs.DurationVar(&w.PingInterval, "ping-interval", wsconn.DefaultPingInterval, "ping a connection silent this long (negative: never)")
	fs.DurationVar(&w.PongTimeout, "pong-timeout", wsconn.DefaultPongTimeout, "close a pinged connection silent this long")
	fs.DurationVar(&w.CloseTimeout, "close-timeout", wsconn.DefaultCloseTimeout, "wait this long for the peer's close frame")
	fs.DurationVar(&w.SweepInterval, "sweep-interval", wsconn.DefaultSweepInterval, "tick of the timer sweep")
	fs.Var(workersFlag{&o.workers}, "workers", "worker processes on the port (SO_REUSEPORT), joined by NATS; auto: enough for -max-conns")
	fs.Var(listFlag{&o.nats}, "nats", "NATS URLs, comma-separated, to join other workers or nodes (default with -workers: embedded)")
	fs.StringVar(&o.origins, "origins", "", "comma-separated allowed Origin values (empty: any)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve wss:// (with -tls-key; reloaded on SIGHUP)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of -tls-cert")
	fs.BoolVar(&w.Compression, "compression", false, "offer permessage-deflate (no context takeover) to clients that ask")
	fs.IntVar(&w.MaxConnsPerIP, "max-conns-per-ip", 10000, "connections per source address, 429 past it (negative: no cap)")
	fs.IntVar(&w.AcceptRate, "accept-rate", 10000, "new connections per second, the excess closed at once (negative: no cap)")
	fs.IntVar(&w.MaxMessageRate, "max-msg-rate", 1000, "messages per second per connection, 1008 past it (negative: no cap)")
	fs.Var(intSizeFlag{&w.MaxByteRate}, "max-byte-rate", "bytes per second per connection, 1008 past it (default 4M; negative: no cap)")
	fs.IntVar(&o.channels.MaxSubscriptions, "max-subs", 64, "channel subscriptions per connection")
	fs.IntVar(&o.channels.MaxChannelLen, "max-channel-len", 128, "longest channel name, bytes")
	fs.StringVar(&o.admin, "admin", admin.DefaultAddr, "admin listener (API, /metrics, health), host:port; \"\" or off: none. "+
		"With -workers, worker i listens on this port + 1 + i, the supervisor on none")
	fs.StringVar(&o.apiKey, "api-key", "", "bearer key for POST /api/publish on -admin, at least 16 bytes; empty: publishing disabled "+
		"(prefer WSGATE_API_KEY: ps shows flags)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on -admin")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "graceful shutdown deadline")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	var jwtCfg auth.Config
	var jwtSecret string
	fs.StringVar(&jwtSecret, "jwt-secret", "", "HMAC secret of JWTs, at least 32 bytes (prefer the environment or -jwt-secret-file: ps shows flags)")
	fs.StringVar(&jwtCfg.SecretFile, "jwt-secret-file", "", "file holding the HMAC secret of JWTs")
	fs.Var(listFlag{&jwtCfg.PublicKeyFiles}, "jwt-public-key", "PEM files of the RSA, ECDSA or Ed25519 public keys of JWTs, comma-separated")
	fs.StringVar(&jwtCfg.Issuer, "jwt-issuer", "", "iss claim every JWT must have")
	fs.StringVar(&jwtCfg.Audience, "jwt-audience", "", "aud value every JWT must have")
	fs.Usage = func() {} // errors are one line; -h prints usage below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs)
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := applyEnv(fs, getenv); err != nil {
		return o, err
	}
	if o.origins != "" {
		w.AllowedOrigins = strings.Split(o.origins, ",")
	}
	if err := checkAdminFlags(&o); err != nil {
		return o, err
	}
	jwtCfg.Secret = []byte(jwtSecret)
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	if err := checkJWTFlags(jwtCfg); err != nil {
		return o, err
	}
	if len(jwtCfg.Secret) > 0 || jwtCfg.SecretFile != "" || len(jwtCfg.PublicKeyFiles) > 0 {
		o.jwt = &jwtCfg
	}
	return o, nil
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

// checkAdminFlags reads "off" in -admin as "" (no admin listener) and
// reports, in terms of flags, an address or key that admin.New would refuse
// (the supervisor never calls it).
func checkAdminFlags(o *options) error {
	if o.admin == "off" {
		o.admin = ""
	}
	if o.admin != "" {
		if _, _, err := net.SplitHostPort(o.admin); err != nil {
			return fmt.Errorf("invalid -admin %q: want host:port, or off", o.admin)
		}
	}
	if o.apiKey != "" && len(o.apiKey) < admin.MinAPIKeyLen {
		return fmt.Errorf("-api-key is %d bytes: want at least %d", len(o.apiKey), admin.MinAPIKeyLen)
	}
	return nil
}

// applyEnv sets every flag not given on the command line from its
// WSGATE_* variable, if set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, name, e)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "WSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func usage(fs *flag.FlagSet) {
	fmt.Fprintf(os.Stderr, "usage: wsgate [flags]\n\nflags (environment variable in brackets):\n")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(os.Stderr, "  -%s [%s]\n    \t%s (default %q)\n", f.Name, envName(f.Name), f.Usage, f.DefValue)
	})
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid -log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid -log-format %q: want text or json", format)
}

// sizeFlag parses a byte count with an optional K, M or G suffix (powers
// of 1024; "KiB" and "KB" mean the same).
type sizeFlag struct{ v *int64 }

func (f sizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	return strconv.FormatInt(*f.v, 10)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err == nil {
		*f.v = n
	}
	return err
}

// intSizeFlag is sizeFlag for an int field.
type intSizeFlag struct{ v *int }

func (f intSizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	return strconv.Itoa(*f.v)
}

func (f intSizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err == nil && n > 1<<31-1 {
		err = errors.New("too large")
	}
	if err == nil {
		*f.v = int(n)
	}
	return err
}

func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult = 1 << 10
	case strings.HasSuffix(t, "M"):
		mult = 1 << 20
	case strings.HasSuffix(t, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q: want a byte count such as 1048576 or 1M", s)
	}
	return n * mult, nil
}

// workersFlag parses -workers: a count, or "auto" (stored as 0).
type workersFlag struct{ v *int }

func (f workersFlag) String() string {
	if f.v == nil || *f.v == 1 {
		return "1"
	}
	if *f.v == 0 {
		return "auto"
	}
	return strconv.Itoa(*f.v)
}

func (f workersFlag) Set(s string) error {
	if s == "auto" {
		*f.v = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 4096 {
		return fmt.Errorf("want a number from 1 to 4096, or auto")
	}
	*f.v = n
	return nil
}

// listFlag parses a comma-separated list.
type listFlag struct{ v *[]string }

func (f listFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strings.Join(*f.v, ",")
}

func (f listFlag) Set(s string) error {
	*f.v = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*f.v = append(*f.v, part)
		}
	}
	return nil
}
