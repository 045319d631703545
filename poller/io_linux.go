//go:build linux

package poller

import (
	"golang.org/x/sys/unix"
)

func readFd(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, ErrWouldBlock
		default:
			return 0, err
		}
	}
}

func writeFd(fd int, p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Write(fd, p[written:])
		switch err {
		case nil:
			written += n
		case unix.EINTR:
		case unix.EAGAIN:
			if written == 0 {
				return 0, ErrWouldBlock
			}
			return written, nil
		default:
			return written, err
		}
	}
	return written, nil
}

func shutdownWrite(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) }

func unackedFd(fd int) (int, error) { return unix.IoctlGetInt(fd, unix.SIOCOUTQ) }

// DescriptorLimit returns the process's open-files limit (the soft
// RLIMIT_NOFILE, which the Go runtime raises to the hard limit at start).
func DescriptorLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1 << 20
	}
	return int(rl.Cur)
}
