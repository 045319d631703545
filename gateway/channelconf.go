package gateway

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate/handler"
)

// The channel options: -history-size, -history-bytes and -history-ttl give
// every channel's, and the config file's nested channels: section gives
// those of the channels whose names start with a prefix:
//
//	channels:
//	  "news.":            # the channels whose names start with "news."
//	    history-size: 1000
//	    history-ttl: 1h
//	  "typing.":
//	    history-size: 0   # no history: nothing worth recovering
//	    join-leave: false
//
// The longest matching prefix wins. A key a prefix leaves out is the
// top-level setting's, so "news." above keeps -history-bytes.

// channelKeys are the keys of a prefix in the channels: section, in the
// order -print-config writes them.
var channelKeys = []string{"history-size", "history-bytes", "history-ttl", "presence", "join-leave"}

// historyFlags are the top-level channel options: the rule of the empty
// prefix, which matches every channel.
type historyFlags struct {
	size      int
	bytes     int64
	ttl       time.Duration
	presence  bool
	joinLeave bool
}

// prefixRule is one prefix of the channels: section as the file gives it:
// a nil field inherits the top-level setting.
type prefixRule struct {
	prefix    string
	line      int // the prefix's line in the config file
	size      *int
	bytes     *int64
	ttl       *time.Duration
	presence  *bool
	joinLeave *bool
}

// parseChannels reads the channels: section v of file: a mapping of
// prefixes to mappings of channelKeys. Errors name the file, line and key.
func parseChannels(file string, v *yaml.Node) ([]prefixRule, error) {
	if v.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: channels: want a mapping of channel-name prefixes to their settings "+
			"(\"news.\": {history-size: 1000})", file, v.Line)
	}
	var out []prefixRule
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, body := v.Content[i], v.Content[i+1]
		if body.Kind == yaml.AliasNode {
			body = body.Alias
		}
		at := fmt.Sprintf("%s:%d", file, k.Line)
		switch {
		case k.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("%s: channels: a key must be a channel-name prefix", at)
		case k.Value == "":
			return nil, fmt.Errorf("%s: channels: the empty prefix is every channel's: set history-size, history-bytes "+
				"and history-ttl at the top level", at)
		case seen[k.Value] != 0:
			return nil, fmt.Errorf("%s: channels: prefix %q given twice (first on line %d)", at, k.Value, seen[k.Value])
		case body.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("%s: channels: %q: want a mapping of settings (history-size: 1000)", at, k.Value)
		}
		seen[k.Value] = k.Line
		r, err := parsePrefixRule(file, k.Value, body)
		if err != nil {
			return nil, err
		}
		r.line = k.Line
		out = append(out, r)
	}
	return out, nil
}

// parsePrefixRule reads the settings of one prefix.
func parsePrefixRule(file, prefix string, m *yaml.Node) (prefixRule, error) {
	r := prefixRule{prefix: prefix}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		at := fmt.Sprintf("%s:%d: channels: %q", file, k.Line, prefix)
		switch {
		case k.Kind != yaml.ScalarNode || !slices.Contains(channelKeys, k.Value):
			return r, fmt.Errorf("%s: unknown key %q: want %s", at, k.Value, strings.Join(channelKeys, ", "))
		case seen[k.Value] != 0:
			return r, fmt.Errorf("%s: key %q given twice (first on line %d)", at, k.Value, seen[k.Value])
		case v.Kind != yaml.ScalarNode || v.Tag == "!!null":
			return r, fmt.Errorf("%s: %s: want a single value", at, k.Value)
		}
		seen[k.Value] = k.Line
		var err error
		switch k.Value {
		case "history-size":
			var n int
			if n, err = strconv.Atoi(v.Value); err == nil {
				r.size = &n
			}
		case "history-bytes":
			var n int64
			if n, err = parseSize(v.Value); err == nil {
				r.bytes = &n
			}
		case "history-ttl":
			var d time.Duration
			if d, err = time.ParseDuration(v.Value); err == nil {
				r.ttl = &d
			}
		case "presence", "join-leave":
			var on bool
			if on, err = strconv.ParseBool(v.Value); err == nil {
				if k.Value == "presence" {
					r.presence = &on
				} else {
					r.joinLeave = &on
				}
			}
		}
		if err != nil {
			return r, fmt.Errorf("%s: invalid value %q for %s", at, v.Value, k.Value)
		}
	}
	return r, nil
}

// maxHistorySize is the largest history-size: handler's bound.
const maxHistorySize = 1 << 20

// channelRules are the handler rules the channel options come to: the
// empty prefix from the top-level settings, then each prefix of the file
// with what it leaves out inherited. Values out of range are errors naming
// their source.
func channelRules(o *options) ([]handler.ChannelRule, error) {
	check := func(size int, bytes int64, ttl time.Duration, where func(string) string) error {
		switch {
		case size < 0 || size > maxHistorySize:
			return fmt.Errorf("invalid -history-size %d%s: want 0 (no history) to %d publications", size, where("history-size"), maxHistorySize)
		case bytes < 0 || bytes > 1<<31-1:
			return fmt.Errorf("invalid -history-bytes %s%s: want 0 (%s) to 2G", formatSize(bytes), where("history-bytes"),
				formatSize(handler.DefaultHistoryBytes))
		case ttl < 0:
			return fmt.Errorf("invalid -history-ttl %v%s: want a positive duration, or 0 for %v", ttl, where("history-ttl"),
				handler.DefaultHistoryTTL)
		}
		return nil
	}
	h := o.history
	if err := check(h.size, h.bytes, h.ttl, o.where); err != nil {
		return nil, err
	}
	rules := []handler.ChannelRule{{ChannelOptions: handler.ChannelOptions{
		HistorySize: h.size, HistoryBytes: int(h.bytes), HistoryTTL: h.ttl, Presence: h.presence, JoinLeave: h.joinLeave}}}
	for _, r := range o.prefixRules {
		size, bytes, ttl, presence, joinLeave := h.size, h.bytes, h.ttl, h.presence, h.joinLeave
		if r.presence != nil {
			presence = *r.presence
		}
		if r.joinLeave != nil {
			joinLeave = *r.joinLeave
		}
		if r.size != nil {
			size = *r.size
		}
		if r.bytes != nil {
			bytes = *r.bytes
		}
		if r.ttl != nil {
			ttl = *r.ttl
		}
		where := func(string) string { return fmt.Sprintf(" (%s:%d, channels: %q)", o.configFile, r.line, r.prefix) }
		if err := check(size, bytes, ttl, where); err != nil {
			return nil, err
		}
		rules = append(rules, handler.ChannelRule{Prefix: r.prefix, ChannelOptions: handler.ChannelOptions{
			HistorySize: size, HistoryBytes: int(bytes), HistoryTTL: ttl, Presence: presence, JoinLeave: joinLeave}})
	}
	return rules, nil
}

// formatChannels writes the channels: section as -print-config shows it,
// "" without one: each prefix with the keys the file gave it.
func formatChannels(rs []prefixRule) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("channels:  # file\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "  %s:\n", yamlScalar(r.prefix))
		if r.size != nil {
			fmt.Fprintf(&b, "    history-size: %d\n", *r.size)
		}
		if r.bytes != nil {
			fmt.Fprintf(&b, "    history-bytes: %s\n", yamlScalar(formatSize(*r.bytes)))
		}
		if r.ttl != nil {
			fmt.Fprintf(&b, "    history-ttl: %s\n", yamlScalar(r.ttl.String()))
		}
		if r.presence != nil {
			fmt.Fprintf(&b, "    presence: %t\n", *r.presence)
		}
		if r.joinLeave != nil {
			fmt.Fprintf(&b, "    join-leave: %t\n", *r.joinLeave)
		}
		if r.size == nil && r.bytes == nil && r.ttl == nil && r.presence == nil && r.joinLeave == nil {
			fmt.Fprintf(&b, "    {}\n")
		}
	}
	return b.String()
}
