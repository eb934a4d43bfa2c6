package agent

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerGone reports whether the other end of c has closed the connection
// completely, not only its sending half: after a full close Linux sets
// POLLHUP on a Unix socket, after shutdown(SHUT_WR) only POLLRDHUP.
func peerGone(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	if err := rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(p, 0); err == nil && n == 1 {
			gone = p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		}
	}); err != nil {
		return true
	}
	return gone
}

const canSeeHangup = true
