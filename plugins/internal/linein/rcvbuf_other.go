//go:build !linux

package linein

import "net"

// forceReceiveBuffer: only Linux has SO_RCVBUFFORCE.
func forceReceiveBuffer(*net.UDPConn, int) {}
