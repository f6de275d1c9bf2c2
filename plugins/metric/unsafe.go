package metric

import "unsafe"

// unsafeString views b as a string without copying. The caller must not
// modify b while the string is in use; it is only used for strconv parsing.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// UnsafeString views b as a string without copying, for parsing with strconv
// on hot paths. The string must not outlive any later write to b.
func UnsafeString(b []byte) string { return unsafeString(b) }
