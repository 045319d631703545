package admin

import "errors"

// Errors returned by this package.
var (
	// ErrInvalidConfig is wrapped by New when a Config field is missing or
	// out of range; the message names the field.
	ErrInvalidConfig = errors.New("admin: invalid config")
	// ErrStarted is returned by Start on a Server already started.
	ErrStarted = errors.New("admin: server already started")
	// ErrServerClosed is returned by Start after Shutdown.
	ErrServerClosed = errors.New("admin: server closed")
)
