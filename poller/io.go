package poller

import (
	"errors"
	"io"
)

// Read reads from d's socket without blocking. It returns ErrWouldBlock
// when nothing is buffered, io.EOF when the peer closed its side, and the
// socket error otherwise (ECONNRESET, ...). Only the worker that owns the
// Desc may call it (one reader at a time).
func (d *Desc) Read(p []byte) (int, error) {
	n, err := readFd(int(d.fd), p)
	switch {
	case err != nil:
		return 0, err
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes to d's socket without blocking and returns how much the
// socket took. It returns ErrWouldBlock when the socket took nothing
// because its send buffer is full. The owner serialises writers.
func (d *Desc) Write(p []byte) (int, error) {
	return writeFd(int(d.fd), p)
}

// ShutdownWrite sends FIN (shutdown(2) SHUT_WR), keeping the read side
// open, as a server does after its close frame (RFC 6455 section 7.1.1).
func (d *Desc) ShutdownWrite() error { return shutdownWrite(int(d.fd)) }

// Unacknowledged returns how many bytes written to d's socket its peer's
// TCP stack has not acknowledged yet, sent or still waiting to be
// (SIOCOUTQ): 0 means the peer's kernel has taken everything written.
func (d *Desc) Unacknowledged() (int, error) { return unackedFd(int(d.fd)) }

// IsWouldBlock reports whether err means "try again when ready".
func IsWouldBlock(err error) bool { return errors.Is(err, ErrWouldBlock) }

// CloseFd closes a descriptor that was never registered, such as one
// accepted while shutting down.
func CloseFd(fd int) { _ = closeFd(fd) }
