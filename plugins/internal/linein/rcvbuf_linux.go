package linein

import (
	"net"
	"syscall"
)

// forceReceiveBuffer sets SO_RCVBUFFORCE, which ignores net.core.rmem_max
// but needs CAP_NET_ADMIN; without it the call fails and nothing changes.
func forceReceiveBuffer(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
	})
}
