package main

import (
	"bytes"
	"cmp"
	"encoding/json"
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

	"go.yaml.in/yaml/v3"

	"wsgate/admin"
	"wsgate/auth"
	"wsgate/wsconn"
)

// A source is where a flag's value came from. Higher sources win:
// command line > environment > config file > built-in default.
type source string

const (
	fromDefault source = "default"
	fromFile    source = "file"
	fromEnv     source = "env"
	fromFlag    source = "flag"
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
	sources := map[string]source{}
	fs.VisitAll(func(f *flag.Flag) { sources[f.Name] = fromDefault })
	configFile, configFrom := cli.o.configFile, "-config"
	if !onCommandLine["config"] {
		configFile, _ = lookupEnv(envName("config"))
		configFrom = envName("config")
	}
	if configFile != "" {
		if err := applyConfigFile(fs, configFile, configFrom, sources); err != nil {
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
	o.configFile, o.sources = configFile, sources
	if o.printConfig {
		o.effective = formatConfig(fs, sources, configFile)
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
	fs.Var(intSizeFlag{v: &w.MaxQueueBytes}, "max-queue", "outbound queue per connection, bytes; 1008 past it (0: 4M)")
	fs.Var(intSizeFlag{v: &w.MaxHandshakeSize}, "max-handshake", "largest upgrade request, bytes; 431 past it (0: 8K)")
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
	fs.Var(intSizeFlag{&w.MaxByteRate, true}, "max-byte-rate", "bytes per second per connection, 1008 past it (0: 4M; negative: no cap)")
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
		{"ping-interval", w.PingInterval, false, true, "want a positive duration, or negative for never"},
		{"pong-timeout", w.PongTimeout, false, false, "want a positive duration"},
		{"close-timeout", w.CloseTimeout, false, false, "want a positive duration"},
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

// isHostPort reports whether addr is host:port with a valid port (a
// number up to 65535 or a service name), as a listener needs.
func isHostPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	return err == nil
}

// applyEnv sets every flag that has a WSGATE_* variable from it, and
// records the source. A variable set to "" counts: WSGATE_ORIGINS= clears
// the file's origins, WSGATE_MAX_CONNS= is an error. The command line,
// parsed after it, wins.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool), sources map[string]source) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || cliOnly[f.Name] && f.Name != "config" { // -config is WSGATE_CONFIG
			return
		}
		name := envName(f.Name)
		if v, ok := lookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, name, e)
			}
			sources[f.Name] = fromEnv
		}
	})
	return err
}

// applyConfigFile sets flags from a YAML file: a mapping of flag names
// (without the dash) to scalar values written as on the command line
// (max-conns: 50000, ping-interval: 30s, max-queue: 4M, origins: "a,b"),
// and records the source. from names what gave the file's name (-config
// or WSGATE_CONFIG), for the error when it cannot be read. Unknown keys,
// keys given twice, values that are not scalars and values the flag
// refuses are errors naming the file, line and key.
func applyConfigFile(fs *flag.FlagSet, file, from string, sources map[string]source) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("failed to read the config file (%s): %w", from, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, more yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil // empty, or comments only
	} else if err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: want one YAML document", file)
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: want a mapping of setting names to values (max-conns: 50000)", file, m.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		name := k.Value
		at := fmt.Sprintf("%s:%d", file, k.Line)
		f := fs.Lookup(name)
		switch {
		case k.Kind != yaml.ScalarNode:
			return fmt.Errorf("%s: a key must be a setting name", at)
		case f == nil:
			return fmt.Errorf("%s: unknown key %q%s", at, name, suggest(fs, name))
		case cliOnly[name]:
			return fmt.Errorf("%s: %q cannot be set in a config file", at, name)
		case seen[name] != 0:
			return fmt.Errorf("%s: key %q given twice (first on line %d)", at, name, seen[name])
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("%s: %s: want a single value (lists are comma-separated: \"a,b\")", at, name)
		case v.Tag == "!!null":
			return fmt.Errorf("%s: %s: no value (an empty string is \"\")", at, name)
		}
		seen[name] = k.Line
		if err := fs.Set(name, v.Value); err != nil {
			return fmt.Errorf("%s: invalid value %q for %s: %v", at, v.Value, name, err)
		}
		sources[name] = fromFile
	}
	return nil
}

// suggest returns ` (did you mean "x"?)` when name is a flag's name
// written with a dash in front or underscores, or "".
func suggest(fs *flag.FlagSet, name string) string {
	guess := strings.ReplaceAll(strings.ToLower(strings.TrimLeft(name, "-")), "_", "-")
	guess = strings.TrimPrefix(guess, "wsgate-")
	if guess != name && fs.Lookup(guess) != nil && !cliOnly[guess] {
		return fmt.Sprintf(" (did you mean %q?)", guess)
	}
	return ""
}

// formatConfig writes every setting in the config file's format, one per
// line, each with its source as a comment; secrets that are set read
// "<redacted>". Read back with -config, it gives the same values (the
// secrets aside).
func formatConfig(fs *flag.FlagSet, sources map[string]source, file string) string {
	var lines, comments []string
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if cliOnly[f.Name] {
			return
		}
		v := f.Value.String()
		if secretFlags[f.Name] && v != "" {
			v = "<redacted>"
		}
		line := f.Name + ": " + yamlScalar(v)
		comment := string(sources[f.Name])
		if sources[f.Name] == fromEnv {
			comment += " " + envName(f.Name)
		}
		if m := zeroMeans[f.Name]; m != "" && v == "0" {
			comment += " (0: " + m + ")"
		}
		lines, comments = append(lines, line), append(comments, comment)
		width = max(width, len(line))
	})
	var b strings.Builder
	b.WriteString("# wsgate effective configuration; each value's source: flag, env, file or default.\n")
	if file != "" {
		fmt.Fprintf(&b, "# config file: %s\n", file)
	}
	for i, line := range lines {
		fmt.Fprintf(&b, "%-*s  # %s\n", width, line, comments[i])
	}
	return b.String()
}

// yamlScalar writes v as a YAML scalar that reads back as v: integers and
// booleans plain, everything else double-quoted (a JSON string is a valid
// YAML double-quoted scalar).
func yamlScalar(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil || v == "true" || v == "false" {
		return v
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func envName(flagName string) string {
	return "WSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
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
