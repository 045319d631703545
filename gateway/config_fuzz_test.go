package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzConfigFile feeds arbitrary bytes as the -config file. parseFlags
// must not panic and must refuse with one line; a file it takes, printed
// by -print-config and read back as a config file, must give the same
// settings (the printer writes what the reader reads).
func FuzzConfigFile(f *testing.F) {
	if seed, err := os.ReadFile("../deploy/wsgate.yaml"); err == nil {
		f.Add(seed)
	}
	for _, seed := range []string{
		"max-conns: 5000\nmax-message: 2M\n",
		"origins: \"https://a.example,https://b.example\"\nworkers: auto\n",
		"ping-interval: 10m\nmax-byte-rate: -1\ncompression: true\n",
		"addr: :9000\nadmin: off\nlog-format: json\n",
		"max-conns: [1, 2]\n",
		"max-conns: 1\nmax-conns: 2\n",
		"nope: 1\n",
		"- a\n- b\n",
		"max-message: 1e3\n",
		"origins: \"a\\nb\"\n",
		"api-key: \"0123456789abcdef0123\"\n",
		"history-size: 10\nchannels:\n  \"news.\": {history-size: 1000, history-ttl: 1h}\n  t.: {}\n",
		"channels:\n  a.:\n    history-bytes: 4M\n  b.: {history-size: 0}\n",
		"channels: [a]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	in, again := filepath.Join(dir, "in.yaml"), filepath.Join(dir, "again.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(in, data, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := parseFlags([]string{"-config", in, "-print-config"}, envOf(nil))
		if err != nil {
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line", msg)
			}
			return
		}
		if strings.Contains(o.effective, "<redacted>") {
			return // secrets are not printed, so they cannot round-trip
		}
		if err := os.WriteFile(again, []byte(o.effective), 0o600); err != nil {
			t.Fatal(err)
		}
		o2, err := parseFlags([]string{"-config", again, "-print-config"}, envOf(nil))
		if err != nil {
			t.Fatalf("the printed configuration does not read back: %v\n%s", err, o.effective)
		}
		if a, b := settings(o.effective), settings(o2.effective); !slices.Equal(a, b) {
			t.Fatalf("read back differently:\n%s\nthen:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	})
}

// settings are the "key: value" lines of -print-config's output, without
// comments.
func settings(printed string) []string {
	var out []string
	for _, line := range strings.Split(printed, "\n") {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if i := strings.Index(line, "  #"); i >= 0 {
			line = line[:i]
		}
		out = append(out, strings.TrimSpace(line))
	}
	return out
}
