//go:build unix

package linein

import "syscall"

// recvArea returns size bytes for the receive slots, mapped outside the Go
// heap: the area is large (64 KiB per slot, so no datagram is ever cut) but
// mostly untouched, and as heap it would count in full towards the
// collector's goal and let the heap grow by as much again. Only the pages
// datagrams reach become resident. free unmaps it: nothing may use the area
// after.
func recvArea(size int) (area []byte, free func()) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, size), func() {}
	}
	return b, func() { _ = syscall.Munmap(b) }
}
