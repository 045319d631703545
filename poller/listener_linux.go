//go:build linux

package poller

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// listenTCP creates a non-blocking listening socket without the Go
// runtime's poller, so accepted descriptors stay ours alone.
func listenTCP(addr string, reusePort bool, backlog int) (int, *net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, nil, err
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	ip := ta.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() == nil:
		sa = &unix.SockaddrInet6{Port: ta.Port} // dual-stack ::
	case ip.To4() != nil:
		family = unix.AF_INET
		a := &unix.SockaddrInet4{Port: ta.Port}
		copy(a.Addr[:], ip.To4())
		sa = a
	default:
		a := &unix.SockaddrInet6{Port: ta.Port}
		copy(a.Addr[:], ip.To16())
		sa = a
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil && family == unix.AF_INET6 && ip == nil {
		// No IPv6 on this host: listen on 0.0.0.0.
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, nil, err
	}
	if err := setupListener(fd, family, sa, reusePort, backlog); err != nil {
		_ = unix.Close(fd)
		return -1, nil, err
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		_ = unix.Close(fd)
		return -1, nil, err
	}
	ap := sockaddrToAddrPort(bound)
	return fd, net.TCPAddrFromAddrPort(ap), nil
}

func setupListener(fd, family int, sa unix.Sockaddr, reusePort bool, backlog int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if family == unix.AF_INET6 {
		if a, ok := sa.(*unix.SockaddrInet6); ok && a.Addr == [16]byte{} {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	return unix.Listen(fd, backlog)
}

// acceptFd accepts one connection: non-blocking, close-on-exec, Nagle off.
func acceptFd(lfd int) (int, netip.AddrPort, error) {
	for {
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			// Small frames go out at once; the write path already
			// coalesces what it can into one write.
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			return fd, sockaddrToAddrPort(sa), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return -1, netip.AddrPort{}, ErrWouldBlock
		default:
			return -1, netip.AddrPort{}, err
		}
	}
}

// temporaryAcceptErr reports errors that concern only the connection being
// accepted, after which the next accept can go on at once.
func temporaryAcceptErr(err error) bool {
	switch err {
	case unix.ECONNABORTED, unix.EPROTO, unix.EPERM, unix.ENETDOWN, unix.ENOPROTOOPT,
		unix.EHOSTDOWN, unix.ENONET, unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH:
		return true
	}
	return false
}

func sockaddrToAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}
