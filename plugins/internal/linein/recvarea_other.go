//go:build !unix

package linein

// recvArea returns size bytes for the receive slots (see the unix version).
func recvArea(size int) (area []byte, free func()) { return make([]byte, size), func() {} }
