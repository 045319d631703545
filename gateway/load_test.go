package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/poller"
	"github.com/wsgate/wsgate/wsconn"
)

// loadCase is a configuration given to Load, and the one-line error it
// must give: FILE in args, env and wantErr stands for the config file's
// path.
type loadCase struct {
	name    string
	args    []string
	env     []string
	file    string // the -config file's contents; "": none
	wantErr string // "": accepted
}

// runLoadCases checks every case with Load, as a start and with
// -print-config: the same error, wrapping ErrInvalidConfig, or none.
func runLoadCases(t *testing.T, tests []loadCase) {
	t.Helper()
	for _, tt := range tests {
		for _, print := range []bool{false, true} {
			name := tt.name
			if print {
				name += ", -print-config"
			}
			t.Run(name, func(t *testing.T) {
				path := ""
				if tt.file != "" {
					path = writeConfig(t, tt.file)
				}
				subst := func(s []string) []string {
					out := slices.Clone(s)
					for i := range out {
						out[i] = strings.ReplaceAll(out[i], "FILE", path)
					}
					return out
				}
				args := subst(tt.args)
				if path != "" {
					args = append([]string{"-config", path}, args...)
				}
				if print {
					args = append(args, "-print-config")
				}
				_, err := Load(args, subst(tt.env))
				want := strings.ReplaceAll(tt.wantErr, "FILE", path)
				switch {
				case want == "" && err != nil:
					t.Fatalf("got error %q, want none", err)
				case want == "":
				case err == nil:
					t.Fatalf("got no error, want %q", want)
				case err.Error() != want:
					t.Fatalf("got error %q,\n want %q", err, want)
				case !errors.Is(err, ErrInvalidConfig):
					t.Fatalf("error %q does not wrap ErrInvalidConfig", err)
				}
			})
		}
	}
}

// TestLoadListenersOverlap: two listeners on one address are refused
// before anything starts, naming both settings and their sources.
func TestLoadListenersOverlap(t *testing.T) {
	runLoadCases(t, []loadCase{
		{name: "addr is admin", args: []string{"-addr", ":8081", "-admin", ":8081"},
			wantErr: `-addr ":8081" and -admin ":8081" are one address: give each listener its own port`},
		{name: "wildcard addr over the default admin", args: []string{"-addr", ":8081"},
			wantErr: `-addr ":8081" and -admin "127.0.0.1:8081" are one address: give each listener its own port`},
		{name: "from the file and the environment", file: "# listeners\naddr: \"localhost:9000\"\n",
			env:     []string{"WSGATE_ADMIN=127.0.0.1:9000"},
			wantErr: `-addr "localhost:9000" (FILE:2) and -admin "127.0.0.1:9000" (WSGATE_ADMIN) are one address: give each listener its own port`},
		{name: "IPv6 wildcard", args: []string{"-addr", "[::]:9000", "-admin", "127.0.0.1:9000"},
			wantErr: `-addr "[::]:9000" and -admin "127.0.0.1:9000" are one address: give each listener its own port`},
		{name: "a worker's admin port", args: []string{"-workers", "2", "-admin", "127.0.0.1:9000", "-addr", "127.0.0.1:9002"},
			wantErr: `-addr "127.0.0.1:9002" is worker 1's admin address, the -admin port + 1 + 1 (-admin "127.0.0.1:9000"): give each listener its own port`},
		{name: "in a worker, the supervisor's admin address", args: []string{"-addr", "127.0.0.1:9001"},
			env:     []string{"WSGATE_WORKER_ID=0", "WSGATE_WORKER_ADMIN=127.0.0.1:9001"},
			wantErr: `-addr "127.0.0.1:9001" and WSGATE_WORKER_ADMIN "127.0.0.1:9001" are one address: give each listener its own port`},
		{name: "other hosts", args: []string{"-addr", "127.0.0.1:9000", "-admin", "127.0.0.2:9000"}},
		{name: "free ports", args: []string{"-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0"}},
		{name: "no admin", args: []string{"-addr", ":8081", "-admin", "off"}},
		{name: "the supervisor serves no admin", args: []string{"-workers", "2", "-admin", "127.0.0.1:9000", "-addr", "127.0.0.1:9000"}},
	})
}

// TestLoadYAMLSyntax: a syntax error in the config file names the file
// and the line, without the yaml package's prefix.
func TestLoadYAMLSyntax(t *testing.T) {
	runLoadCases(t, []loadCase{
		{name: "first line", file: "a: b: c\n",
			wantErr: "FILE:1: invalid YAML: mapping values are not allowed in this context"},
		{name: "later line", file: "max-conns: 100\n# then\na: b: c\n",
			wantErr: "FILE:3: invalid YAML: mapping values are not allowed in this context"},
		{name: "a tab", file: "\t- x\n",
			wantErr: "FILE:1: invalid YAML: found character that cannot start any token"},
		{name: "unclosed quote", file: "origins: 'x\n",
			wantErr: "FILE:2: invalid YAML: found unexpected end of stream"},
	})
}

// TestLoadMaxConns: a connection cap past the descriptor limit names its
// setting and source; the limit is wsconn's default (which wsconn.Validate
// checks too), not a few more.
func TestLoadMaxConns(t *testing.T) {
	per := wsconn.DefaultMaxConns()
	limit := poller.DescriptorLimit()
	past := func(setting, from string, n int) string {
		return fmt.Sprintf("invalid %s %d%s: want at most %d, the descriptor limit %d - 128 (raise ulimit -n, or use -workers)",
			setting, n, from, per, limit)
	}
	runLoadCases(t, []loadCase{
		{name: "flag", args: []string{"-max-conns", "99999999"}, wantErr: past("-max-conns", "", 99999999)},
		{name: "file", file: "max-conns: 99999999\n", wantErr: past("-max-conns", " (FILE:1)", 99999999)},
		{name: "env", env: []string{"WSGATE_MAX_CONNS=99999999"}, wantErr: past("-max-conns", " (WSGATE_MAX_CONNS)", 99999999)},
		{name: "one past", args: []string{"-max-conns", strconv.Itoa(per + 1)}, wantErr: past("-max-conns", "", per+1)},
		{name: "at the limit", args: []string{"-max-conns", strconv.Itoa(per)}},
		{name: "a worker's share", env: []string{"WSGATE_WORKER_ID=1", "WSGATE_WORKER_MAX_CONNS=999999999"},
			wantErr: past("WSGATE_WORKER_MAX_CONNS", " (the share of -max-conns from the supervisor)", 999999999)},
		{name: "too few workers, from the file", file: fmt.Sprintf("workers: 2\nmax-conns: %d\n", 2*per+1),
			wantErr: fmt.Sprintf("-max-conns %d (FILE:2): 2 workers hold at most %d (%d each: the descriptor limit - 128); "+
				"raise -workers, or use auto", 2*per+1, 2*per, per)},
		{name: "a supervisor's total", args: []string{"-workers", "3", "-max-conns", strconv.Itoa(2 * per)}},
	})
}

// TestPrintConfigWorkersAuto: -print-config shows the count -workers auto
// comes to, marked "(auto)", and a count as given.
func TestPrintConfigWorkersAuto(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string // the workers line, without the padding
	}{
		{"auto", []string{"-workers", "auto"}, nil, fmt.Sprintf("workers: %d # flag (auto)", autoWorkers(0))},
		{"auto for max-conns", []string{"-workers", "auto", "-max-conns", "1000000"}, nil,
			fmt.Sprintf("workers: %d # flag (auto)", autoWorkers(1000000))},
		{"auto from env", nil, []string{"WSGATE_WORKERS=auto"},
			fmt.Sprintf("workers: %d # env WSGATE_WORKERS (auto)", autoWorkers(0))},
		{"a count", []string{"-workers", "3"}, nil, "workers: 3 # flag"},
		{"default", nil, nil, "workers: 1 # default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(append(tt.args, "-print-config", "-admin", "off"), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			cfg.Stdout = &out
			if err := Run(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			var got string
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(line, "workers:") {
					got = strings.Join(strings.Fields(line), " ")
				}
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
