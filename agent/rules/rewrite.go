package rules

// expand appends to dst the rewrite of name: the part before the match, the
// replacement with its back references filled in, the part after the match.
// loc holds n match positions (see pattern.match).
//
// The replacement language is carbon-c-relay's: \N (N = 1..9, or more digits
// read as one number) inserts group N, \g{N} or \gN likewise (so that digits
// may follow: \g{1}00); directly after the backslash '_' lower-cases the
// group, '^' upper-cases it, and '.' (alone or after '_' / '^') turns its dots
// into underscores. A back reference to a group that does not exist or did
// not take part inserts nothing; a backslash before anything else is
// dropped. The quirks are c-relay's, on purpose: a case flag carries over to
// a reference that follows directly (\_1\2 lower-cases both), and "\\"
// produces nothing.
func expand(dst, name []byte, repl string, loc []int, n int) []byte {
	dst = append(dst, name[:loc[0]]...)
	const (
		retain = iota
		lower
		upper
	)
	var (
		escape = 0 // 0 none, 1 after '\', 2 reading digits
		ref    = 0
		rcase  = retain
		dots   = false
		gmatch = 0 // 1 after \g, 2 after \g{
	)
	insert := func() {
		if ref <= 0 || 2*ref+1 >= n || loc[2*ref] < 0 {
			return
		}
		for _, c := range name[loc[2*ref]:loc[2*ref+1]] {
			switch {
			case dots && c == '.':
				c = '_'
			case rcase == lower && c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case rcase == upper && c >= 'a' && c <= 'z':
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
		}
	}
	for i := 0; i <= len(repl); i++ {
		c := byte(0) // the terminator, as in C: it ends a pending reference
		if i < len(repl) {
			c = repl[i]
		}
		if c == '\\' && escape == 0 {
			escape, rcase, dots = 1, retain, false
			continue
		}
		switch {
		case escape == 1 && rcase == retain && !dots && c == '_':
			rcase = lower
		case escape == 1 && rcase == retain && !dots && c == '^':
			rcase = upper
		case escape == 1 && c == '.':
			dots = true
		case escape != 0 && c >= '0' && c <= '9':
			escape = 2
			ref = ref*10 + int(c-'0')
		case escape != 0 && ref == 0 && c == 'g':
			gmatch = 1
		case escape != 0 && ref == 0 && gmatch == 1 && c == '{':
			gmatch = 2
		default:
			if escape != 0 {
				insert()
				ref = 0
			}
			if gmatch == 2 && c == '}' {
				escape, rcase, dots, gmatch = 0, retain, false, 0
			} else if c != '\\' {
				escape, rcase, dots, gmatch = 0, retain, false, 0
				if i < len(repl) {
					dst = append(dst, c)
				}
			}
		}
	}
	return append(dst, name[loc[1]:]...)
}
