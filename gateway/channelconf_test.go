package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/handler"
)

// TestChannelOptions: -history-* give every channel's options, the config
// file's channels: section a prefix's, inheriting what it leaves out; bad
// values are one line naming the file, line and prefix.
func TestChannelOptions(t *testing.T) {
	all := func(size int, bytes int, ttl time.Duration) handler.ChannelRule {
		return handler.ChannelRule{ChannelOptions: handler.ChannelOptions{HistorySize: size, HistoryBytes: bytes, HistoryTTL: ttl,
			Presence: true, JoinLeave: true}}
	}
	prefix := func(p string, size int, bytes int, ttl time.Duration) handler.ChannelRule {
		r := all(size, bytes, ttl)
		r.Prefix = p
		return r
	}
	def := all(handler.DefaultHistorySize, handler.DefaultHistoryBytes, handler.DefaultHistoryTTL)
	const section = `history-ttl: 10m
channels:
  "news.":
    history-size: 1000
    history-ttl: 1h
  typing.:
    history-size: 0
    join-leave: false
  "big.": {history-bytes: 8M}
  "same.": {}
`
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string
		want    []handler.ChannelRule
		wantErr string // FILE: the file's path
	}{
		{name: "defaults", want: []handler.ChannelRule{def}},
		{name: "flags", args: []string{"-history-size", "5", "-history-bytes", "64K", "-history-ttl", "30s"},
			want: []handler.ChannelRule{all(5, 64<<10, 30*time.Second)}},
		{name: "env", env: map[string]string{"WSGATE_HISTORY_SIZE": "0"},
			want: []handler.ChannelRule{all(0, handler.DefaultHistoryBytes, handler.DefaultHistoryTTL)}},
		{name: "prefixes inherit the top level", file: section, args: []string{"-history-size", "7"}, want: []handler.ChannelRule{
			all(7, handler.DefaultHistoryBytes, 10*time.Minute),
			prefix("news.", 1000, handler.DefaultHistoryBytes, time.Hour),
			func() handler.ChannelRule {
				r := prefix("typing.", 0, handler.DefaultHistoryBytes, 10*time.Minute)
				r.JoinLeave = false
				return r
			}(),
			prefix("big.", 7, 8<<20, 10*time.Minute),
			prefix("same.", 7, handler.DefaultHistoryBytes, 10*time.Minute),
		}},

		{name: "negative size", args: []string{"-history-size", "-1"},
			wantErr: "invalid -history-size -1: want 0 (no history) to 1048576 publications"},
		{name: "huge size from env", env: map[string]string{"WSGATE_HISTORY_SIZE": "2000000"},
			wantErr: "invalid -history-size 2000000 (WSGATE_HISTORY_SIZE): want 0 (no history) to 1048576 publications"},
		{name: "huge bytes", args: []string{"-history-bytes", "3G"}, wantErr: "invalid -history-bytes 3G: want 0 (1M) to 2G"},
		{name: "negative ttl", args: []string{"-history-ttl", "-1s"},
			wantErr: "invalid -history-ttl -1s: want a positive duration, or 0 for 5m0s"},
		{name: "bad prefix value", file: "channels:\n  a.:\n    history-size: -4\n",
			wantErr: `invalid -history-size -4 (FILE:2, channels: "a."): want 0 (no history) to 1048576 publications`},
		{name: "not a mapping", file: "channels: 5\n", wantErr: "FILE:1: channels: want a mapping of channel-name prefixes"},
		{name: "a list", file: "channels:\n  - a.\n", wantErr: "FILE:2: channels: want a mapping of channel-name prefixes"},
		{name: "empty prefix", file: "channels:\n  \"\": {history-size: 1}\n",
			wantErr: "FILE:2: channels: the empty prefix is every channel's"},
		{name: "prefix twice", file: "channels:\n  a.: {}\n  a.: {}\n", wantErr: `FILE:3: channels: prefix "a." given twice (first on line 2)`},
		{name: "section twice", file: "channels: {}\nmax-conns: 1\nchannels: {}\n",
			wantErr: `FILE:3: key "channels" given twice (first on line 1)`},
		{name: "prefix without settings", file: "channels:\n  a.:\n", wantErr: `FILE:2: channels: "a.": want a mapping of settings`},
		{name: "unknown key", file: "channels:\n  a.:\n    history-szie: 3\n",
			wantErr: `FILE:3: channels: "a.": unknown key "history-szie": want history-size, history-bytes, history-ttl, presence, join-leave`},
		{name: "bad presence", file: "channels:\n  a.: {presence: maybe}\n",
			wantErr: `FILE:2: channels: "a.": invalid value "maybe" for presence`},
		{name: "key twice", file: "channels:\n  a.:\n    history-size: 3\n    history-size: 4\n",
			wantErr: `FILE:4: channels: "a.": key "history-size" given twice (first on line 3)`},
		{name: "bad size", file: "channels:\n  a.: {history-size: many}\n",
			wantErr: `FILE:2: channels: "a.": invalid value "many" for history-size`},
		{name: "bad bytes", file: "channels:\n  a.: {history-bytes: 4Q}\n",
			wantErr: `FILE:2: channels: "a.": invalid value "4Q" for history-bytes`},
		{name: "bad ttl", file: "channels:\n  a.: {history-ttl: 30}\n",
			wantErr: `FILE:2: channels: "a.": invalid value "30" for history-ttl`},
		{name: "list value", file: "channels:\n  a.: {history-size: [1]}\n",
			wantErr: `FILE:2: channels: "a.": history-size: want a single value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, path := tt.args, ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
				args = append([]string{"-config", path}, args...)
			}
			o, err := parseFlags(args, envOf(tt.env))
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "FILE", path)
				if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("got error %v, want one line containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprintf("%+v", o.channels.Rules), fmt.Sprintf("%+v", tt.want); got != want {
				t.Errorf("rules:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestPrintChannels: -print-config writes the channels: section as the
// file gave it, and it reads back into the same rules.
func TestPrintChannels(t *testing.T) {
	file := writeConfig(t, "channels:\n  \"news.\": {history-size: 1000, history-ttl: 90m, presence: false}\n  \"123\": {history-bytes: 2M}\n  \"a b: #c\": {}\n")
	o, err := parseFlags([]string{"-config", file, "-print-config", "-history-size", "3"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("-print-config:\n%s", o.effective)
	for _, want := range []string{"history-size: 3 ", "\nchannels:  # file\n", "  \"news.\":\n    history-size: 1000\n    history-ttl: \"1h30m0s\"\n    presence: false\n",
		"  123:\n    history-bytes: \"2M\"\n", "  \"a b: #c\":\n    {}\n"} {
		if !strings.Contains(o.effective, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	back, err := parseFlags([]string{"-config", writeConfig(t, o.effective)}, envOf(nil))
	if err != nil {
		t.Fatalf("reading the printed configuration back: %v", err)
	}
	if got, want := fmt.Sprintf("%+v", back.channels.Rules), fmt.Sprintf("%+v", o.channels.Rules); got != want {
		t.Errorf("read back:\n got %s\nwant %s", got, want)
	}
}
