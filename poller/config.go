package poller

import (
	"fmt"
	"runtime"
)

// Config configures a Poller. The zero value works.
type Config struct {
	// Workers is the size of the worker pool: the most goroutines that
	// serve sockets at once, whatever the number of connections.
	// Default (zero): max(16, 8*GOMAXPROCS).
	Workers int
	// MaxRounds is how many times in a row one worker serves the same Desc
	// while events keep arriving for it before it puts the Desc back at the
	// end of the run queue, so one busy socket cannot hold a worker.
	// Default (zero): 4.
	MaxRounds int
}

func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = max(16, 8*runtime.GOMAXPROCS(0))
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = 4
	}
	return c
}

// Validate reports what New would refuse in c, wrapping ErrInvalidConfig.
func (c Config) Validate() error { return c.validate() }

func (c Config) validate() error {
	switch {
	case c.Workers < 0:
		return fmt.Errorf("%w: workers %d is negative", ErrInvalidConfig, c.Workers)
	case c.Workers > 1<<20:
		return fmt.Errorf("%w: workers %d is more than 1048576", ErrInvalidConfig, c.Workers)
	case c.MaxRounds < 0:
		return fmt.Errorf("%w: max rounds %d is negative", ErrInvalidConfig, c.MaxRounds)
	}
	return nil
}
