package poller

import "errors"

// Errors returned by this package.
var (
	// ErrUnsupported is returned by New on platforms without epoll.
	ErrUnsupported = errors.New("poller: unsupported platform: wsgate needs Linux epoll")
	// ErrClosed is returned by New registrations and Listen after Close.
	ErrClosed = errors.New("poller: closed")
	// ErrWouldBlock is returned by Desc.Read and Desc.Write when the socket
	// has nothing to read or no room to write (EAGAIN).
	ErrWouldBlock = errors.New("poller: operation would block")
	// ErrInvalidConfig wraps the reasons a Config or ListenConfig is invalid;
	// New, Config.Validate and Listen return it.
	ErrInvalidConfig = errors.New("poller: invalid config")
)
