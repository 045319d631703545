package handler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ChannelOptions are what a channel keeps besides its subscribers. They
// are chosen by the longest ChannelRule prefix that matches the channel's
// name, once, when the channel's history is created.
type ChannelOptions struct {
	// HistorySize is the most publications the channel keeps for
	// recovery and the history op. Zero keeps none: history is off, pushes
	// carry no offset, and a recovery is answered recovered:false with
	// reason history_off.
	HistorySize int
	// HistoryBytes caps the framed bytes the channel keeps; the oldest go
	// first. The newest publication is kept even when it alone is larger.
	// Zero means DefaultHistoryBytes.
	HistoryBytes int
	// HistoryTTL is how long a publication is kept. Zero means
	// DefaultHistoryTTL.
	HistoryTTL time.Duration
	// Presence turns on the presence and presence_stats ops for the
	// channel (off: they answer presence_off).
	Presence bool
	// JoinLeave lets subscribers ask for join and leave pushes
	// (subscribe with "join_leave":true); off, they get none.
	JoinLeave bool
}

// ChannelRule gives the options of the channels whose names start with
// Prefix. The empty prefix matches every channel.
type ChannelRule struct {
	Prefix string
	ChannelOptions
}

// Defaults of ChannelOptions and of the history limits of ChannelsConfig.
const (
	// DefaultHistorySize is the history size of DefaultChannelRules.
	DefaultHistorySize = 100
	// DefaultHistoryBytes is the byte cap of a history with none set.
	DefaultHistoryBytes = 1 << 20
	// DefaultHistoryTTL is the age limit of a history with none set.
	DefaultHistoryTTL = 5 * time.Minute
	// DefaultMaxReplay is the most publications one recovery replays.
	DefaultMaxReplay = 1000
	// DefaultMaxReplayBytes is the most framed bytes one recovery replays.
	DefaultMaxReplayBytes = 1 << 20
	// DefaultMaxHistoryLimit is the most publications one history request
	// returns.
	DefaultMaxHistoryLimit = 100
	// DefaultHistoryMetaTTL is how long a channel's epoch and last offset
	// outlive its last publication's TTL.
	DefaultHistoryMetaTTL = time.Hour
	// DefaultMaxStoreJobs is how many requests wait for a StoreBroker at
	// once.
	DefaultMaxStoreJobs = 16
	// DefaultMaxStoreQueue is how many more may queue behind them.
	DefaultMaxStoreQueue = 10000
	// DefaultMaxHistoryChannels is how many channels may keep a history
	// in memory.
	DefaultMaxHistoryChannels = 100000
	// DefaultMaxHistoryBytes is what all in-memory histories may keep
	// together.
	DefaultMaxHistoryBytes = 256 << 20
	// DefaultMaxPresence is the most clients one presence answer lists.
	DefaultMaxPresence = 1000
	// MaxClientInfo is the largest client info (the info query
	// parameter of the connection), in bytes.
	MaxClientInfo = 256

	maxHistorySize = 1 << 20
)

// DefaultChannelRules are the rules of a ChannelsConfig with nil Rules:
// every channel keeps its last DefaultHistorySize publications for
// DefaultHistoryTTL, enough for a chat room or a notification feed to
// recover a client that was away for a few minutes, and has presence and
// join and leave pushes.
func DefaultChannelRules() []ChannelRule {
	return []ChannelRule{{ChannelOptions: ChannelOptions{HistorySize: DefaultHistorySize, Presence: true, JoinLeave: true}}}
}

// withDefaults fills the zero fields of a rule with history on.
func (o ChannelOptions) withDefaults() ChannelOptions {
	if o.HistorySize == 0 {
		return ChannelOptions{Presence: o.Presence, JoinLeave: o.JoinLeave}
	}
	if o.HistoryBytes == 0 {
		o.HistoryBytes = DefaultHistoryBytes
	}
	if o.HistoryTTL == 0 {
		o.HistoryTTL = DefaultHistoryTTL
	}
	return o
}

// validate reports the first field out of range, naming the rule.
func (r ChannelRule) validate() error {
	o := r.ChannelOptions
	switch {
	case o.HistorySize < 0 || o.HistorySize > maxHistorySize:
		return fmt.Errorf("%w: rule %q: HistorySize is %d, must be 0 to %d", ErrInvalidConfig, r.Prefix, o.HistorySize, maxHistorySize)
	case o.HistoryBytes < 0:
		return fmt.Errorf("%w: rule %q: HistoryBytes is %d, must not be negative", ErrInvalidConfig, r.Prefix, o.HistoryBytes)
	case o.HistoryTTL < 0:
		return fmt.Errorf("%w: rule %q: HistoryTTL is %v, must not be negative", ErrInvalidConfig, r.Prefix, o.HistoryTTL)
	}
	return nil
}

// rules is the compiled ChannelsConfig.Rules: longest prefix first.
type rules []ChannelRule

// compileRules validates rs, fills their defaults and orders them for
// match. Two rules with one prefix are an error.
func compileRules(rs []ChannelRule) (rules, error) {
	if rs == nil {
		rs = DefaultChannelRules()
	}
	out := make(rules, 0, len(rs))
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		if err := r.validate(); err != nil {
			return nil, err
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("%w: two rules for prefix %q", ErrInvalidConfig, r.Prefix)
		}
		seen[r.Prefix] = true
		r.ChannelOptions = r.ChannelOptions.withDefaults()
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b ChannelRule) int { return cmp.Compare(len(b.Prefix), len(a.Prefix)) })
	return out, nil
}

// match returns the options of channel name: those of the longest
// matching prefix, or none (history off) when no rule matches.
func (rs rules) match(name string) ChannelOptions {
	for _, r := range rs {
		if strings.HasPrefix(name, r.Prefix) {
			return r.ChannelOptions
		}
	}
	return ChannelOptions{}
}
