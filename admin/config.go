package admin

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// DefaultAddr is the listen address when Config.Addr is empty: loopback
// only, one port above wsconn's default.
const DefaultAddr = "127.0.0.1:8081"

// MinAPIKeyLen is the shortest Config.APIKey accepted, in bytes.
const MinAPIKeyLen = 16

// Bounds of a publish request.
const (
	// MaxBodyBytes is the largest /api/publish body; past it, 413.
	MaxBodyBytes = 1 << 20
	// MaxBatch is the most messages in one /api/publish batch; past it,
	// 400 bad_batch.
	MaxBatch = 1000
)

// Broker is what the admin port needs of a broker (broker.NATS has it):
// whether it is connected, for /readyz, and its counters, for /api/stats
// and /metrics.
type Broker interface {
	// Connected reports whether the broker reaches the other processes now.
	Connected() bool
	// Stats returns the broker's counters.
	Stats() broker.Stats
}

// Config configures a Server. WS and Channels are required; the zero value
// of every other field works.
type Config struct {
	// Addr is the listen address, host:port. Empty means DefaultAddr,
	// "127.0.0.1:8081". Port 0 picks a free port; Server.Addr tells which.
	Addr string
	// APIKey is the key POST /api/publish and GET /api/history require,
	// sent as "Authorization: Bearer <APIKey>". Empty means both are
	// disabled: they answer 403. Otherwise it must be at least
	// MinAPIKeyLen (16) bytes.
	APIKey string
	// Pprof mounts net/http/pprof under /debug/pprof/, except cmdline (the
	// command line can hold secrets). False: not mounted.
	Pprof bool
	// Logger receives the server's few log records. Nil means none.
	Logger *slog.Logger
	// WarnInterval is the least time between two warnings about publishes
	// refused for their API key; the next warning says how many were left
	// out (every one is counted in wsgate_api_unauthorized_total). Zero
	// means wsconn.DefaultWarnInterval, 10 s, as for wsconn's warnings.
	// Negative is invalid.
	WarnInterval time.Duration
	// WS is the WebSocket server whose counters and pool are reported.
	// Required. It may be started after the admin Server; until it is,
	// /readyz answers 503.
	WS *wsconn.Server
	// Channels is the hub /api/publish publishes to, /api/history reads
	// and /api/channels lists. Required.
	Channels *handler.Channels
	// Broker, when set, is checked by /readyz and reported in /api/stats
	// and /metrics. Nil means this process runs alone (no NATS); the
	// broker_… metrics are then absent.
	Broker Broker
	// Latency, if set, adds its histograms to /metrics (see NewLatency).
	// Default: nil, no latency histograms.
	Latency *Latency
}

// withDefaults returns c with every zero field that has a default set.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.WarnInterval == 0 {
		c.WarnInterval = wsconn.DefaultWarnInterval
	}
	return c
}

// validate reports the first field missing or out of range, wrapping
// ErrInvalidConfig.
func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: Addr %q is not host:port: %v", ErrInvalidConfig, c.Addr, err)
	}
	switch {
	case c.WarnInterval < 0:
		return fmt.Errorf("%w: WarnInterval is %v, must not be negative", ErrInvalidConfig, c.WarnInterval)
	case c.APIKey != "" && len(c.APIKey) < MinAPIKeyLen:
		return fmt.Errorf("%w: APIKey is %d bytes, must be at least %d", ErrInvalidConfig, len(c.APIKey), MinAPIKeyLen)
	case c.WS == nil:
		return fmt.Errorf("%w: WS is required", ErrInvalidConfig)
	case c.Channels == nil:
		return fmt.Errorf("%w: Channels is required", ErrInvalidConfig)
	}
	return nil
}
