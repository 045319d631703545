package gateway

import (
	"errors"
	"slices"
	"strings"
	"testing"
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
// -print-config: the same error, wrapping ErrBadConfig, or none.
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
				case !errors.Is(err, ErrBadConfig):
					t.Fatalf("error %q does not wrap ErrBadConfig", err)
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
