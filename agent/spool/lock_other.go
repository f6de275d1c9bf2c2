//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package spool

import "os"

// lockFile does nothing on systems without flock: there, two processes must
// not be given the same directory.
func lockFile(*os.File) error { return nil }
