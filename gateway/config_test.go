package gateway

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/wsconn"
)

// Settings: flags, environment, the config file, -print-config, and the
// checks made before anything starts.

// envOf is a fake os.LookupEnv: the variables of env are set.
func envOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{"WSGATE_MAX_CONNS": "100", "WSGATE_ADDR": ":9000", "WSGATE_NATS": "nats://a:1,nats://b:2"}
	getenv := envOf(env)
	tests := []struct {
		name    string
		args    []string
		check   func(options) error
		wantErr string
	}{
		{name: "env fills what flags leave", args: nil, check: func(o options) error {
			if o.ws.MaxConns != 100 || o.ws.Addr != ":9000" || len(o.nats) != 2 {
				return fmt.Errorf("got max-conns %d addr %q nats %v", o.ws.MaxConns, o.ws.Addr, o.nats)
			}
			return nil
		}},
		{name: "flag beats env", args: []string{"-max-conns", "7"}, check: func(o options) error {
			if o.ws.MaxConns != 7 {
				return fmt.Errorf("got max-conns %d, want 7", o.ws.MaxConns)
			}
			return nil
		}},
		{name: "sizes", args: []string{"-max-message", "2M", "-max-queue", "64KiB"}, check: func(o options) error {
			if o.ws.MaxMessageSize != 2<<20 || o.ws.MaxQueueBytes != 64<<10 {
				return fmt.Errorf("got %d and %d", o.ws.MaxMessageSize, o.ws.MaxQueueBytes)
			}
			return nil
		}},
		{name: "workers auto", args: []string{"-workers", "auto"}, check: func(o options) error {
			if o.workers != 0 {
				return fmt.Errorf("got workers %d, want 0 (auto)", o.workers)
			}
			return nil
		}},
		{name: "negative byte rate: no cap", args: []string{"-max-byte-rate", "-1"}, check: func(o options) error {
			if o.ws.MaxByteRate != -1 {
				return fmt.Errorf("got max-byte-rate %d, want -1", o.ws.MaxByteRate)
			}
			return nil
		}},
		{name: "byte rate with suffix", args: []string{"-max-byte-rate", "16M"}, check: func(o options) error {
			if o.ws.MaxByteRate != 16<<20 {
				return fmt.Errorf("got max-byte-rate %d, want 16M", o.ws.MaxByteRate)
			}
			return nil
		}},
		{name: "bad size", args: []string{"-max-message", "lots"}, wantErr: "bad size"},
		{name: "negative size where none is allowed", args: []string{"-max-queue", "-1"}, wantErr: "bad size"},
		{name: "bad negative byte rate", args: []string{"-max-byte-rate", "-x"}, wantErr: "bad size"},
		{name: "bad workers", args: []string{"-workers", "0"}, wantErr: "want a number from 1 to 4096"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.check(o); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Process-level tests: the real binary, as a supervisor of workers.

// writeConfig writes a config file into a fresh directory and returns its
// path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wsgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFile: each setting comes from the highest source that has it,
// command line > environment > config file > default, and every problem
// with the file is one error naming the file, the line and the key.
func TestConfigFile(t *testing.T) {
	const file = `# settings
max-conns: 50000
addr: ":7000"
ping-interval: 45s
max-queue: 8M
origins: "https://a.example,https://b.example"
reuse-port: true
`
	type want struct {
		maxConns     int
		addr         string
		pingInterval time.Duration
		maxQueue     int
		origins      []string
		reusePort    bool
		pongTimeout  time.Duration
		sources      map[string]source
	}
	fromFileOnly := want{50000, ":7000", 45 * time.Second, 8 << 20, []string{"https://a.example", "https://b.example"}, true,
		wsconn.DefaultPongTimeout,
		map[string]source{"max-conns": fromFile, "addr": fromFile, "ping-interval": fromFile, "pong-timeout": fromDefault}}
	tests := []struct {
		name    string
		file    string // "": no file written
		args    []string
		env     map[string]string
		want    *want
		wantErr string // with "FILE" for the file's path
	}{
		{name: "file over defaults", file: file, want: &fromFileOnly},
		{name: "file named by WSGATE_CONFIG", file: file, env: map[string]string{"WSGATE_CONFIG": "FILE"}, want: &fromFileOnly},
		{name: "flag > env > file > default", file: file,
			args: []string{"-max-conns", "7"},
			env:  map[string]string{"WSGATE_MAX_CONNS": "100", "WSGATE_ADDR": ":9000"},
			want: &want{7, ":9000", 45 * time.Second, 8 << 20, []string{"https://a.example", "https://b.example"}, true,
				wsconn.DefaultPongTimeout,
				map[string]source{"max-conns": fromFlag, "addr": fromEnv, "ping-interval": fromFile, "pong-timeout": fromDefault}}},
		{name: "bool flag over file", file: file, args: []string{"-reuse-port=false"},
			want: &want{50000, ":7000", 45 * time.Second, 8 << 20, []string{"https://a.example", "https://b.example"}, false,
				wsconn.DefaultPongTimeout, map[string]source{"reuse-port": fromFlag}}},
		{name: "-config on the command line wins over WSGATE_CONFIG", file: file,
			env: map[string]string{"WSGATE_CONFIG": "/nonexistent/wsgate.yaml"}, want: &fromFileOnly},
		{name: "empty file", file: "# nothing yet\n", want: &want{0, ":8080", wsconn.DefaultPingInterval, 0, nil, false,
			wsconn.DefaultPongTimeout, map[string]source{"max-conns": fromDefault}}},

		{name: "unknown key", file: "max-conns: 1\nmax-con: 2\n", wantErr: `FILE:2: unknown key "max-con"`},
		{name: "key spelt as env", file: "max_conns: 2\n", wantErr: `FILE:1: unknown key "max_conns" (did you mean "max-conns"?)`},
		{name: "bad int", file: "max-conns: lots\n", wantErr: `FILE:1: invalid value "lots" for max-conns`},
		{name: "bad size", file: "\nmax-queue: 4Q\n", wantErr: `FILE:2: invalid value "4Q" for max-queue: bad size`},
		{name: "bad duration", file: "ping-interval: 30\n", wantErr: `FILE:1: invalid value "30" for ping-interval`},
		{name: "bad value under a flag is still an error", file: "max-conns: lots\n", args: []string{"-max-conns", "1"},
			wantErr: `FILE:1: invalid value "lots" for max-conns`},
		{name: "list", file: "origins: [a, b]\n", wantErr: "FILE:1: origins: want a single value"},
		{name: "null", file: "max-conns:\n", wantErr: "FILE:1: max-conns: no value"},
		{name: "twice", file: "max-conns: 1\nmax-conns: 2\n", wantErr: `FILE:2: key "max-conns" given twice`},
		{name: "not a mapping", file: "- max-conns\n", wantErr: "FILE:1: want a mapping"},
		{name: "not YAML", file: "max-conns: [\n", wantErr: "FILE:1: invalid YAML: did not find expected node content"},
		{name: "config in config", file: "config: other.yaml\n", wantErr: `FILE:1: "config" cannot be set in a config file`},
		{name: "semantic check names the file", file: "api-key: short\n", wantErr: "-api-key (in FILE) is 5 bytes"},
		{name: "missing file", args: []string{"-config", "/nonexistent/wsgate.yaml"},
			wantErr: "failed to read the config file (-config): open /nonexistent/wsgate.yaml: no such file or directory"},
		{name: "missing file from env", env: map[string]string{"WSGATE_CONFIG": "/nonexistent/wsgate.yaml"},
			wantErr: "failed to read the config file (WSGATE_CONFIG): open /nonexistent/wsgate.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, args := "", tt.args
			if tt.file != "" {
				path = writeConfig(t, tt.file)
				if tt.env["WSGATE_CONFIG"] != "FILE" {
					args = append([]string{"-config", path}, args...)
				}
			}
			getenv := func(k string) (string, bool) {
				v, ok := tt.env[k]
				return strings.ReplaceAll(v, "FILE", path), ok
			}
			o, err := parseFlags(args, getenv)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "FILE", path)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got error %v, want one containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			got := want{o.ws.MaxConns, o.ws.Addr, o.ws.PingInterval, o.ws.MaxQueueBytes, o.ws.AllowedOrigins, o.ws.ReusePort,
				o.ws.PongTimeout, nil}
			if fmt.Sprint(got.maxConns, got.addr, got.pingInterval, got.maxQueue, got.origins, got.reusePort, got.pongTimeout) !=
				fmt.Sprint(w.maxConns, w.addr, w.pingInterval, w.maxQueue, w.origins, w.reusePort, w.pongTimeout) {
				t.Errorf("got %+v, want %+v", got, *w)
			}
			for name, src := range w.sources {
				if o.sources[name] != src {
					t.Errorf("source of %s: got %q, want %q", name, o.sources[name], src)
				}
			}
		})
	}
}

// TestPrintConfig: -print-config lists every setting with its source, hides
// secrets, and reads back as a config file into the same settings.
func TestPrintConfig(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef" // a JWT secret and an API key
	file := writeConfig(t, "max-conns: 50000\nping-interval: 1m30s\nmax-message: 2M\nlog-format: json\n")
	env := map[string]string{"WSGATE_ADDR": "127.0.0.1:9000", "WSGATE_JWT_SECRET": secret, "WSGATE_API_KEY": secret,
		"WSGATE_NATS": "nats://a:4222,nats://b:4222"}
	getenv := envOf(env)
	args := []string{"-config", file, "-print-config", "-max-conns", "7", "-origins", `https://a.example,"odd" \ one`,
		"-workers", "auto", "-max-queue", "12345", "-admin", "off"}
	o, err := parseFlags(args, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if !o.printConfig {
		t.Fatal("printConfig not set")
	}
	out := o.effective
	t.Logf("-print-config:\n%s", out)
	for _, want := range []string{
		`max-conns: 7 `, "# flag\n",
		`addr: "127.0.0.1:9000" `, "# env WSGATE_ADDR\n",
		`ping-interval: "1m30s" `, `max-message: "2M" `, `log-format: "json" `, "# file\n",
		`pong-timeout: "10s" `, "# default\n",
		`jwt-secret: "<redacted>" `, `api-key: "<redacted>" `,
		`origins: "https://a.example,\"odd\" \\ one" `,
		"# config file: " + file + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, secret) {
		t.Error("output shows a secret")
	}
	for _, hidden := range []string{"\nconfig:", "\nprint-config:"} {
		if strings.Contains(out, hidden) {
			t.Errorf("output lists %q, a command-line action", hidden)
		}
	}
	lines := strings.Count(out, "\n") - 2 // two header lines
	settings := 0
	newFlagSet(&flagTargets{}).VisitAll(func(f *flag.Flag) {
		if !cliOnly[f.Name] {
			settings++
		}
	})
	if lines != settings {
		t.Errorf("got %d settings printed, want all %d", lines, settings)
	}

	// Read back as the only source (secrets from the environment, as they
	// would be): the same settings.
	printed := writeConfig(t, out)
	secrets := envOf(map[string]string{"WSGATE_JWT_SECRET": secret, "WSGATE_API_KEY": secret})
	back, err := parseFlags([]string{"-config", printed}, secrets)
	if err != nil {
		t.Fatalf("reading the printed configuration back: %v", err)
	}
	for name, src := range back.sources {
		if want := fromFile; src != want && !secretFlags[name] && !cliOnly[name] {
			t.Errorf("read back, source of %s: got %q, want %q", name, src, want)
		}
	}
	// Compare everything the flags set, except what only the first run had.
	o.sources, back.sources = nil, nil
	o.fileLines, back.fileLines = nil, nil
	o.configFile, back.configFile = "", ""
	o.printConfig, o.effective = false, ""
	o.workers = autoWorkers(o.ws.MaxConns) // auto is printed as what it comes to
	if o.jwt == nil || back.jwt == nil {
		t.Fatalf("JWT settings: got %v, want %v", back.jwt, o.jwt)
	}
	jwt, backJWT := *o.jwt, *back.jwt
	o.jwt, back.jwt = nil, nil
	if got, want := fmt.Sprintf("%+v %+v", back, backJWT), fmt.Sprintf("%+v %+v", o, jwt); got != want {
		t.Errorf("read back:\n got %s\nwant %s", got, want)
	}

	// Read back without the secrets: "<redacted>" is no usable key.
	if _, err := parseFlags([]string{"-config", printed}, envOf(nil)); err == nil ||
		!strings.Contains(err.Error(), "-api-key (in "+printed+") is 10 bytes") {
		t.Errorf("read back without secrets: got %v, want the redacted API key refused", err)
	}
}

// TestSettingRanges: numbers out of their flag's range are one line naming
// the flag and its source; an explicit zero where zero would silently mean
// a non-zero default is refused.
func TestSettingRanges(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string // config file contents; "": none
		wantErr string // "": accepted; FILE is the file's path
	}{
		{name: "frame over message", args: []string{"-max-frame", "2M", "-max-message", "1M"},
			wantErr: "invalid -max-frame 2M: want at most -max-message (1M)"},
		{name: "frame over default message", args: []string{"-max-frame", "2M"},
			wantErr: "invalid -max-frame 2M: want at most -max-message (1M)"},
		{name: "frame up to message", args: []string{"-max-frame", "2M", "-max-message", "2M"}},
		{name: "negative pool", args: []string{"-pool", "-3"},
			wantErr: "invalid -pool -3: want a positive size, or 0 for max(16, 8*GOMAXPROCS)"},
		{name: "negative max-conns", args: []string{"-max-conns", "-1"},
			wantErr: "invalid -max-conns -1: want a positive cap, or 0 for the descriptor limit - 128"},
		{name: "zero max-conns-per-ip", args: []string{"-max-conns-per-ip", "0"},
			wantErr: "invalid -max-conns-per-ip 0: want a positive cap, or -1 for none"},
		{name: "zero max-conns-per-ip from env", env: map[string]string{"WSGATE_MAX_CONNS_PER_IP": "0"},
			wantErr: "invalid -max-conns-per-ip 0 (WSGATE_MAX_CONNS_PER_IP): want a positive cap, or -1 for none"},
		{name: "zero max-conns-per-ip from file", file: "max-conns-per-ip: 0\n",
			wantErr: "invalid -max-conns-per-ip 0 (in FILE): want a positive cap, or -1 for none"},
		{name: "no cap per ip", args: []string{"-max-conns-per-ip", "-1"}},
		{name: "zero accept-rate", args: []string{"-accept-rate", "0"},
			wantErr: "invalid -accept-rate 0: want a positive rate, or -1 for no cap"},
		{name: "zero max-msg-rate", args: []string{"-max-msg-rate", "0"},
			wantErr: "invalid -max-msg-rate 0: want a positive rate, or -1 for no cap"},
		{name: "zero max-subs", args: []string{"-max-subs", "0"}, wantErr: "invalid -max-subs 0: want a positive count"},
		{name: "negative max-subs", args: []string{"-max-subs", "-1"}, wantErr: "invalid -max-subs -1: want a positive count"},
		{name: "zero max-channel-len", args: []string{"-max-channel-len", "0"},
			wantErr: "invalid -max-channel-len 0: want a positive length in bytes"},
		{name: "zero handshake-timeout", args: []string{"-handshake-timeout", "0"},
			wantErr: "invalid -handshake-timeout 0s: want a positive duration"},
		{name: "zero pong-timeout", args: []string{"-pong-timeout", "0s"}, wantErr: "invalid -pong-timeout 0s: want a positive duration"},
		{name: "negative close-timeout", args: []string{"-close-timeout", "-1s"},
			wantErr: "invalid -close-timeout -1s: want a positive duration"},
		{name: "zero sweep-interval", args: []string{"-sweep-interval", "0"},
			wantErr: "invalid -sweep-interval 0s: want a positive duration"},
		{name: "zero ping-interval", args: []string{"-ping-interval", "0"},
			wantErr: "invalid -ping-interval 0s: want a positive duration, or off (-1) for never"},
		{name: "no pings", args: []string{"-ping-interval", "-1s"}},
		{name: "bad ping-interval", args: []string{"-ping-interval", "soon"},
			wantErr: `invalid value "soon" for flag -ping-interval: bad duration "soon": want 30s, 5m, ..., or off (-1) for never`},
		{name: "zero log-warn-interval", args: []string{"-log-warn-interval", "0"},
			wantErr: "invalid -log-warn-interval 0s: want a positive duration"},
		{name: "negative shutdown-timeout", args: []string{"-shutdown-timeout", "-1s"},
			wantErr: "invalid -shutdown-timeout -1s: want a positive duration, or 0 to close at once"},
		{name: "zero shutdown-timeout", args: []string{"-shutdown-timeout", "0"}},
		{name: "addr without port", args: []string{"-addr", "foo"}, wantErr: `invalid -addr "foo": want host:port`},
		{name: "admin port out of range", env: map[string]string{"WSGATE_ADMIN": "127.0.0.1:99999"},
			wantErr: `invalid -admin "127.0.0.1:99999" (WSGATE_ADMIN): want host:port, or off`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, path := tt.args, ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
				args = append([]string{"-config", path}, args...)
			}
			_, err := parseFlags(args, envOf(tt.env))
			want := strings.ReplaceAll(tt.wantErr, "FILE", path)
			switch {
			case want == "" && err != nil:
				t.Fatalf("got error %q, want none", err)
			case want != "" && (err == nil || err.Error() != want):
				t.Fatalf("got error %v, want %q", err, want)
			}
		})
	}
}

// TestNeverDuration: -ping-interval takes a duration, or "never" written
// any of the ways -h and the README say (issue 10: "-1" was a parse error).
func TestNeverDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"45s", 45 * time.Second},
		{"1m30s", 90 * time.Second},
		{"-1", -1},
		{"-5", -1},
		{"-1s", -1},
		{"-2m", -1},
		{"off", -1},
		{"never", -1},
		{" off ", -1},
	}
	for _, tt := range tests {
		for _, how := range []string{"flag", "env", "file"} {
			t.Run(how+" "+tt.in, func(t *testing.T) {
				var args []string
				env := map[string]string{}
				switch how {
				case "flag":
					args = []string{"-ping-interval", tt.in}
				case "env":
					env["WSGATE_PING_INTERVAL"] = tt.in
				case "file":
					args = []string{"-config", writeConfig(t, "ping-interval: \""+tt.in+"\"\n")}
				}
				o, err := parseFlags(args, envOf(env))
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if got := o.ws.PingInterval; got != tt.want {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			})
		}
	}
	// What -print-config prints for "never" reads back the same.
	o, err := parseFlags([]string{"-ping-interval", "-1", "-print-config"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.effective, `ping-interval: "off"`) {
		t.Fatalf("got %q, want ping-interval: \"off\" in it", o.effective)
	}
}

// TestEmptyEnv: a WSGATE_* variable that is set counts, even empty.
func TestEmptyEnv(t *testing.T) {
	file := writeConfig(t, "origins: \"https://a.example\"\nmax-conns: 50\n")
	tests := []struct {
		name    string
		env     map[string]string
		origins []string
		src     source
		wantErr string
	}{
		{name: "unset: the file's", env: nil, origins: []string{"https://a.example"}, src: fromFile},
		{name: "empty: clears the file's", env: map[string]string{"WSGATE_ORIGINS": ""}, origins: nil, src: fromEnv},
		{name: "empty number", env: map[string]string{"WSGATE_MAX_CONNS": ""},
			wantErr: `invalid value "" for WSGATE_MAX_CONNS: parse error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags([]string{"-config", file}, envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(o.ws.AllowedOrigins) != fmt.Sprint(tt.origins) || o.sources["origins"] != tt.src {
				t.Errorf("got origins %q from %s, want %q from %s", o.ws.AllowedOrigins, o.sources["origins"], tt.origins, tt.src)
			}
		})
	}
	// An empty WSGATE_CONFIG names no file.
	if o, err := parseFlags(nil, envOf(map[string]string{"WSGATE_CONFIG": ""})); err != nil || o.configFile != "" {
		t.Errorf("empty WSGATE_CONFIG: got file %q, error %v; want no file, no error", o.configFile, err)
	}
}

// TestCheckConfig: checkConfig refuses, in one line, what the server or the
// supervisor would refuse only while starting.
func TestCheckConfig(t *testing.T) {
	per := wsconn.DefaultMaxConns()
	tests := []struct {
		name       string
		args       []string
		wantErr    string // the whole message
		wantPrefix string // or its start, for messages of other packages
	}{
		{name: "defaults"},
		{name: "two workers", args: []string{"-workers", "2", "-max-conns", strconv.Itoa(2 * per)}},
		{name: "good NATS URLs", args: []string{"-nats", "nats://a:4222,tls://user:pw@b.example:4443"}},
		{name: "NATS URL without scheme", args: []string{"-nats", "foo"},
			wantErr: `invalid -nats URL "foo": want nats://host:port or tls://host:port`},
		{name: "NATS URL without port", args: []string{"-nats", "nats://a:1,nats://b"},
			wantErr: `invalid -nats URL "nats://b": want nats://host:port or tls://host:port`},
		{name: "NATS URL of another scheme", args: []string{"-nats", "http://a:1"},
			wantErr: `invalid -nats URL "http://a:1": want nats://host:port or tls://host:port`},
		{name: "missing certificate", args: []string{"-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"},
			wantErr: "failed to load TLS certificate /nonexistent/c.pem and key /nonexistent/k.pem: open /nonexistent/c.pem: no such file or directory"},
		{name: "short JWT secret", args: []string{"-jwt-secret", "short"}, wantPrefix: "auth: "},
		{name: "missing JWT key file", args: []string{"-jwt-public-key", "/nonexistent/jwt.pem"}, wantPrefix: "auth: "},
		{name: "queue below a message", args: []string{"-max-queue", "100"}, wantPrefix: "wsconn: invalid config: max queue bytes 100"},
		{name: "max-conns past the descriptor limit", args: []string{"-max-conns", strconv.Itoa(per + 100)},
			wantErr: fmt.Sprintf("invalid -max-conns %d: want at most %d, the descriptor limit %d - 128 (raise ulimit -n, or use -workers)",
				per+100, per, per+128)},
		{name: "workers too few for max-conns", args: []string{"-workers", "2", "-max-conns", strconv.Itoa(2*per + 1)},
			wantErr: fmt.Sprintf("-max-conns %d: 2 workers hold at most %d (%d each: the descriptor limit - 128); raise -workers, or use auto",
				2*per+1, 2*per, per)},
		{name: "auto past 4096 workers", args: []string{"-workers", "auto", "-max-conns", strconv.Itoa(4096 * per)},
			wantErr: fmt.Sprintf("-workers auto: -max-conns %d needs %d workers of %d connections, more than 4096",
				4096*per, autoWorkers(4096*per), per)},
		{name: "worker admin ports past 65535", args: []string{"-workers", "3", "-admin", "127.0.0.1:65534"},
			wantErr: "-admin port 65534: 3 workers need ports up to 65537, past 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, envOf(nil))
			if err != nil {
				t.Fatal(err)
			}
			err = checkConfig(o)
			switch {
			case tt.wantErr == "" && tt.wantPrefix == "":
				if err != nil {
					t.Fatalf("got error %q, want none", err)
				}
			case err == nil:
				t.Fatalf("got no error, want %q", tt.wantErr+tt.wantPrefix)
			case strings.Contains(err.Error(), "\n"):
				t.Fatalf("got a message of several lines: %q", err)
			case tt.wantErr != "" && err.Error() != tt.wantErr:
				t.Fatalf("got error %q, want %q", err, tt.wantErr)
			case !strings.HasPrefix(err.Error(), tt.wantPrefix):
				t.Fatalf("got error %q, want one starting %q", err, tt.wantPrefix)
			}
		})
	}
}

// TestBadConfigExits2: the binary, with -print-config, as a single server
// and as a supervisor, refuses a bad setting with one line on stderr and
// exit status 2, at once: nothing starts (no log line, no worker).
func TestBadConfigExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the wsgate binary")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // the line on stderr
	}{
		{"print-config, frame over message", []string{"-print-config", "-max-frame", "2M", "-max-message", "1M"},
			"wsgate: invalid -max-frame 2M: want at most -max-message (1M)"},
		{"print-config, bad NATS URL", []string{"-print-config", "-nats", "foo"},
			`wsgate: invalid -nats URL "foo": want nats://host:port or tls://host:port`},
		{"print-config, missing certificate", []string{"-print-config", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"},
			"wsgate: failed to load TLS certificate /nonexistent/c.pem and key /nonexistent/k.pem: open /nonexistent/c.pem: no such file or directory"},
		{"print-config, one address for two listeners", []string{"-print-config", "-addr", ":8081", "-admin", ":8081"},
			`wsgate: -addr ":8081" and -admin ":8081" are one address: give each listener its own port`},
		{"server, one address for two listeners", []string{"-addr", "127.0.0.1:8081", "-admin", "127.0.0.1:8081"},
			`wsgate: -addr "127.0.0.1:8081" and -admin "127.0.0.1:8081" are one address: give each listener its own port`},
		{"server, negative pool", []string{"-pool", "-3"},
			"wsgate: invalid -pool -3: want a positive size, or 0 for max(16, 8*GOMAXPROCS)"},
		{"server, zero cap", []string{"-max-conns-per-ip", "0"}, "wsgate: invalid -max-conns-per-ip 0: want a positive cap, or -1 for none"},
		{"supervisor, negative pool", []string{"-workers", "2", "-pool", "-3"},
			"wsgate: invalid -pool -3: want a positive size, or 0 for max(16, 8*GOMAXPROCS)"},
		{"supervisor, bad NATS URL", []string{"-workers", "2", "-nats", "nats://a"},
			`wsgate: invalid -nats URL "nats://a": want nats://host:port or tls://host:port`},
		{"supervisor, negative shutdown timeout", []string{"-workers", "2", "-shutdown-timeout", "-1s"},
			"wsgate: invalid -shutdown-timeout -1s: want a positive duration, or 0 to close at once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"-addr", "127.0.0.1:0", "-admin", "off"}, tt.args...)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("got exit status %d (%v), want 2", code, err)
			}
			if got := stderr.String(); got != tt.want+"\n" {
				t.Errorf("stderr: got %q, want the one line %q", got, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}
