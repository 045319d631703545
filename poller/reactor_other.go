//go:build !linux

package poller

import (
	"net"
	"net/netip"
)

func newReactor() (reactor, error) { return nil, ErrUnsupported }

func closeFd(int) error { return ErrUnsupported }

func readFd(int, []byte) (int, error) { return 0, ErrUnsupported }

func writeFd(int, []byte) (int, error) { return 0, ErrUnsupported }

func shutdownWrite(int) error { return ErrUnsupported }

func listenTCP(string, bool, int) (int, *net.TCPAddr, error) { return -1, nil, ErrUnsupported }

func acceptFd(int) (int, netip.AddrPort, error) { return -1, netip.AddrPort{}, ErrUnsupported }

func temporaryAcceptErr(error) bool { return false }

// DescriptorLimit returns a nominal limit on platforms without epoll.
func DescriptorLimit() int { return 1024 }
