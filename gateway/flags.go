package gateway

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// cliOnly are flags that are actions, not settings: the command line is
// their only source, and -print-config does not list them.
var cliOnly = map[string]bool{"config": true, "print-config": true}

// zeroMeans is what a zero value stands for, in -print-config's comments.
var zeroMeans = map[string]string{
	"pool":          "max(16, 8*GOMAXPROCS)",
	"max-conns":     "descriptor limit - 128",
	"max-message":   "1M",
	"max-frame":     "max-message",
	"max-queue":     "4M, at least one largest message",
	"max-handshake": "8K",
	"max-byte-rate": "4M",
}

// secretFlags are printed as "<redacted>" by -print-config when set.
var secretFlags = map[string]bool{"jwt-secret": true, "api-key": true}

// flagTargets is what a flag set writes to.
type flagTargets struct {
	o         options
	jwt       auth.Config
	jwtSecret string
}

// parseFlags reads the settings, each from the highest source that has it:
// the command line, a WSGATE_* environment variable, the -config file
// (WSGATE_CONFIG), or the built-in default. lookupEnv is os.LookupEnv or a
// test's fake: a variable that is set counts, even empty. Every value from
// every source is checked, even one that a higher source overrides;
// checkConfig makes the checks that read files or depend on the machine.
func parseFlags(args []string, lookupEnv func(string) (string, bool)) (options, error) {
	// First pass: the command line alone, for -config, -print-config, -h
	// and the names given there.
	var cli flagTargets
	cfs := newFlagSet(&cli)
	if err := cfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(cfs)
		}
		return options{}, err
	}
	if cfs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", cfs.Arg(0))
	}
	onCommandLine := map[string]bool{}
	cfs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	// Second pass, lowest source first, each overwriting the one before.
	var t flagTargets
	fs := newFlagSet(&t)
	sources, lines := map[string]source{}, map[string]int{}
	fs.VisitAll(func(f *flag.Flag) { sources[f.Name] = fromDefault })
	configFile, configFrom := cli.o.configFile, "-config"
	if !onCommandLine["config"] {
		configFile, _ = lookupEnv(envName("config"))
		configFrom = envName("config")
	}
	if configFile != "" {
		if err := applyConfigFile(fs, configFile, configFrom, sources, lines, &t.o.prefixRules); err != nil {
			return options{}, err
		}
	}
	if err := applyEnv(fs, lookupEnv, sources); err != nil {
		return options{}, err
	}
	if err := fs.Parse(args); err != nil { // cannot fail: the first pass took it
		return options{}, err
	}
	for name := range onCommandLine {
		sources[name] = fromFlag
	}
	o := t.o
	o.configFile, o.sources, o.fileLines = configFile, sources, lines
	if o.printConfig {
		o.effective = formatConfig(fs, sources, configFile, autoWorkers(o.ws.MaxConns)) + formatChannels(o.prefixRules)
	}
	return finishFlags(o, t.jwt, t.jwtSecret)
}

// newFlagSet defines every flag, writing to t; the defaults are set here.
func newFlagSet(t *flagTargets) *flag.FlagSet {
	o := &t.o
	o.workers = 1
	fs := flag.NewFlagSet("wsgate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are one line; -h prints usage below
	w := &o.ws
	fs.StringVar(&o.configFile, "config", "", "YAML file of settings, keyed by flag name (max-conns: 50000); flags and environment win over it")
	fs.BoolVar(&o.printConfig, "print-config", false, "print the effective configuration, each value's source as a comment, and exit")
	fs.StringVar(&w.Addr, "addr", wsconn.DefaultAddr, "WebSocket listen address, host:port")
	fs.BoolVar(&w.ReusePort, "reuse-port", false, "set SO_REUSEPORT on the listener")
	fs.IntVar(&w.Workers, "pool", 0, "worker pool size (0: max(16, 8*GOMAXPROCS))")
	fs.IntVar(&w.MaxConns, "max-conns", 0, "connection cap, 503 past it (0: descriptor limit - 128)")
	fs.Var(sizeFlag{&w.MaxMessageSize}, "max-message", "largest message, bytes (K/M suffixes ok); 1009 past it (0: 1M)")
	fs.Var(sizeFlag{&w.MaxFrameSize}, "max-frame", "largest frame payload (0: -max-message)")
	fs.DurationVar(&w.MessageTimeout, "message-timeout", wsconn.DefaultMessageTimeout, "time a message may take from its first byte to its last; 1008 past it")
	w.MaxPartialBytes = wsconn.DefaultMaxPartialBytes
	fs.Var(partialFlag{&w.MaxPartialBytes}, "max-partial", "memory all unfinished messages may hold together; 1013 past it (0: 256M; negative: no cap)")
	fs.Var(intSizeFlag{v: &w.MaxQueueBytes}, "max-queue", "outbound queue per connection, bytes; 1008 past it (0: 4M)")
	fs.Var(intSizeFlag{v: &w.MaxHandshakeSize}, "max-handshake", "largest upgrade request, bytes; 431 past it (0: 8K)")
	fs.DurationVar(&w.HandshakeTimeout, "handshake-timeout", wsconn.DefaultHandshakeTimeout, "time allowed for the upgrade request")
	w.PingInterval = wsconn.DefaultPingInterval
	fs.Var(neverDurationFlag{&w.PingInterval}, "ping-interval", "ping a connection silent this long (off, or any negative value such as -1: never)")
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
	fs.Var(intSizeFlag{&w.MaxByteRate, true}, "max-byte-rate", "bytes per second per connection, 1008 past it (0: 4M; negative: no cap)")
	fs.IntVar(&o.channels.MaxSubscriptions, "max-subs", 64, "channel subscriptions per connection")
	fs.IntVar(&o.channels.MaxChannelLen, "max-channel-len", 128, "longest channel name, bytes")
	fs.IntVar(&o.history.size, "history-size", handler.DefaultHistorySize,
		"publications each channel keeps for recovery on reconnect and the history op (0: none; per prefix: the config file's channels: section)")
	o.history.bytes = handler.DefaultHistoryBytes
	fs.Var(sizeFlag{&o.history.bytes}, "history-bytes", "framed bytes each channel's history keeps at most, oldest dropped first")
	fs.DurationVar(&o.history.ttl, "history-ttl", handler.DefaultHistoryTTL, "how long a channel keeps a publication in its history")
	fs.IntVar(&o.channels.MaxHistoryChannels, "history-channels", handler.DefaultMaxHistoryChannels,
		"most channels with a history in this process's memory; past it, new ones keep none until others expire")
	o.channels.MaxHistoryBytes = handler.DefaultMaxHistoryBytes
	fs.Var(sizeFlag{&o.channels.MaxHistoryBytes}, "history-memory", "framed bytes all in-memory histories keep together; past it, the oldest go first")
	fs.BoolVar(&o.history.presence, "presence", true, "the presence and presence_stats ops on every channel (per prefix: channels:)")
	fs.BoolVar(&o.history.joinLeave, "join-leave", true, "join and leave pushes to the subscribers that ask for them (per prefix: channels:)")
	fs.StringVar(&o.historyStore, "history-store", "memory", "where histories live: memory (lost on restart), or file "+
		"(NATS JetStream file storage: kept across restarts; needs -history-dir without -nats)")
	fs.StringVar(&o.historyDir, "history-dir", "", "directory of the embedded NATS's JetStream, for -history-store file")
	fs.StringVar(&o.admin, "admin", admin.DefaultAddr, "admin listener (API, /metrics, health), host:port; \"\" or off: none. "+
		"With -workers, worker i listens on this port + 1 + i, the supervisor on none")
	fs.StringVar(&o.apiKey, "api-key", "", "bearer key for POST /api/publish on -admin, at least 16 bytes; empty: publishing disabled "+
		"(prefer WSGATE_API_KEY: ps shows flags)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on -admin")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "graceful shutdown deadline")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&w.WarnInterval, "log-warn-interval", wsconn.DefaultWarnInterval,
		"least time between two warnings of one kind (slow consumers, rate limits, TLS failures, ...); the rest are counted")
	fs.StringVar(&t.jwtSecret, "jwt-secret", "", "HMAC secret of JWTs, at least 32 bytes (prefer the environment or -jwt-secret-file: ps shows flags)")
	fs.StringVar(&t.jwt.SecretFile, "jwt-secret-file", "", "file holding the HMAC secret of JWTs")
	fs.Var(listFlag{&t.jwt.PublicKeyFiles}, "jwt-public-key", "PEM files of the RSA, ECDSA or Ed25519 public keys of JWTs, comma-separated")
	fs.StringVar(&t.jwt.Issuer, "jwt-issuer", "", "iss claim every JWT must have")
	fs.StringVar(&t.jwt.Audience, "jwt-audience", "", "aud value every JWT must have")
	return fs
}

// finishFlags derives what the flags imply and checks the combinations
// that cannot work.
func finishFlags(o options, jwtCfg auth.Config, jwtSecret string) (options, error) {
	w := &o.ws
	rules, err := channelRules(&o)
	if err != nil {
		return o, err
	}
	switch {
	case o.historyStore != "memory" && o.historyStore != "file":
		return o, fmt.Errorf("invalid -history-store %q%s: want memory or file", o.historyStore, o.where("history-store"))
	case o.historyStore == "file" && o.historyDir == "" && len(o.nats) == 0:
		return o, fmt.Errorf("-history-store file needs -history-dir (or -nats, whose servers keep the files)")
	case o.historyDir != "" && o.historyStore != "file":
		return o, fmt.Errorf("-history-dir is for -history-store file")
	}
	o.channels.Rules = rules
	if o.origins != "" {
		w.AllowedOrigins = strings.Split(o.origins, ",")
	}
	if err := checkAdminFlags(&o); err != nil {
		return o, err
	}
	if err := checkNumbers(&o); err != nil {
		return o, err
	}
	if _, err := newLogger(io.Discard, o.logLevel, "text"); err != nil {
		return o, fmt.Errorf("%w%s", err, o.where("log-level"))
	}
	if _, err := newLogger(io.Discard, "info", o.logFormat); err != nil {
		return o, fmt.Errorf("%w%s", err, o.where("log-format"))
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

// where names a setting's source for an error message: "" for the command
// line and the default, " (WSGATE_…)" or " (in FILE)" otherwise.
func (o *options) where(name string) string {
	switch o.sources[name] {
	case fromEnv:
		return " (" + envName(name) + ")"
	case fromFile:
		return " (in " + o.configFile + ")"
	}
	return ""
}

// origin names a setting's source for an error message as where does,
// but a file's with the line: "" for the command line and the default,
// " (WSGATE_…)" or " (FILE:LINE)" otherwise.
func (o *options) origin(name string) string {
	if o.sources[name] == fromFile {
		return fmt.Sprintf(" (%s:%d)", o.configFile, o.fileLines[name])
	}
	return o.where(name)
}

func usage(fs *flag.FlagSet) {
	fmt.Fprintf(os.Stderr, "usage: wsgate [flags]\n\nflags (environment variable in brackets; the -config file's key is the flag's name):\n")
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if cliOnly[f.Name] && f.Name != "config" {
			env = "command line only"
		}
		fmt.Fprintf(os.Stderr, "  -%s [%s]\n    \t%s (default %q)\n", f.Name, env, f.Usage, f.DefValue)
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
	return formatSize(*f.v)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err == nil {
		*f.v = n
	}
	return err
}

// partialFlag is sizeFlag where a negative value (such as -1) means "no
// cap", stored as -1.
type partialFlag struct{ v *int64 }

func (f partialFlag) String() string { return sizeFlag(f).String() }

func (f partialFlag) Set(s string) error {
	if t, ok := strings.CutPrefix(strings.TrimSpace(s), "-"); ok {
		if _, err := parseSize(t); err != nil {
			return err
		}
		*f.v = -1
		return nil
	}
	return sizeFlag(f).Set(s)
}

// intSizeFlag is sizeFlag for an int field. With negative set, a value
// below zero (such as -1) is accepted and stored as -1: "no cap".
type intSizeFlag struct {
	v        *int
	negative bool
}

func (f intSizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	return formatSize(int64(*f.v))
}

func (f intSizeFlag) Set(s string) error {
	if t, ok := strings.CutPrefix(strings.TrimSpace(s), "-"); ok && f.negative {
		if _, err := parseSize(t); err != nil {
			return err
		}
		*f.v = -1
		return nil
	}
	n, err := parseSize(s)
	if err == nil && n > 1<<31-1 {
		err = errors.New("too large")
	}
	if err == nil {
		*f.v = int(n)
	}
	return err
}

// neverDurationFlag parses a duration where a negative one means "never":
// besides what time.ParseDuration reads, "off", "never" and a bare
// negative number ("-1") are stored as -1ns. It prints as "off" then, which
// reads back the same.
type neverDurationFlag struct{ v *time.Duration }

func (f neverDurationFlag) String() string {
	switch {
	case f.v == nil:
		return "0s"
	case *f.v < 0:
		return "off"
	}
	return f.v.String()
}

func (f neverDurationFlag) Set(s string) error {
	t := strings.TrimSpace(s)
	if t == "off" || t == "never" {
		*f.v = -1
		return nil
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil && n < 0 {
		*f.v = -1
		return nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return fmt.Errorf("bad duration %q: want 30s, 5m, ..., or off (-1) for never", s)
	}
	if d < 0 {
		d = -1
	}
	*f.v = d
	return nil
}

// formatSize writes n as parseSize reads it: with the largest suffix that
// divides it exactly (4194304 is "4M").
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
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

// maxWorkers is the most worker processes a supervisor runs (prefork's
// limit).
const maxWorkers = 4096

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
	if err != nil || n < 1 || n > maxWorkers {
		return fmt.Errorf("want a number from 1 to %d, or auto", maxWorkers)
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
