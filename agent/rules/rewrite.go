package rules

// WalkReplacement reads a replacement (a rewrite's into) in carbon-c-relay's
// language and calls lit for every byte it copies and ref for every group
// reference, in order.
//
// The language: \N (N = 1..9, or more digits read as one number) is group N;
// with gRefs (carbon-c-relay 3.8 and the router), \g{N} or \gN likewise, so
// that digits may follow (\g{1}00); directly after the backslash '_'
// lower-cases the group, '^' upper-cases it, and '.' (alone or after '_' /
// '^') turns its dots into underscores. A backslash before anything else is
// dropped. The quirks are carbon-c-relay's, on purpose: a case flag carries
// over to a reference that follows directly (\_1\2 lower-cases both), and
// "\\" produces nothing. Without gRefs (carbon-c-relay 3.7) a "g" after a
// backslash is copied as "g"; sawG reports one.
func WalkReplacement(repl string, gRefs bool, lit func(c byte), ref func(n int, lower, upper, dots bool)) (sawG bool) {
	const (
		retain = iota
		lower
		upper
	)
	var (
		escape = 0 // 0 none, 1 after '\', 2 reading digits
		n      = 0
		rcase  = retain
		dots   = false
		gmatch = 0 // 1 after \g, 2 after \g{
	)
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
			n = n*10 + int(c-'0')
		case gRefs && escape != 0 && n == 0 && c == 'g':
			gmatch = 1
		case gRefs && escape != 0 && n == 0 && gmatch == 1 && c == '{':
			gmatch = 2
		default:
			if escape != 0 {
				if n > 0 {
					ref(n, rcase == lower, rcase == upper, dots)
				} else if c == 'g' {
					sawG = true
				}
				n = 0
			}
			if gmatch == 2 && c == '}' {
				escape, rcase, dots, gmatch = 0, retain, false, 0
			} else if c != '\\' {
				escape, rcase, dots, gmatch = 0, retain, false, 0
				if i < len(repl) {
					lit(c)
				}
			}
		}
	}
	return sawG
}

// expand appends to dst the rewrite of name: the part before the match, the
// replacement with its back references filled in (WalkReplacement, \g
// included), the part after the match. loc holds n match positions (see
// pattern.match); a reference to a group that does not exist or did not
// take part inserts nothing.
func expand(dst, name []byte, repl string, loc []int, n int) []byte {
	dst = append(dst, name[:loc[0]]...)
	WalkReplacement(repl, true, func(c byte) { dst = append(dst, c) }, func(ref int, lower, upper, dots bool) {
		if 2*ref+1 >= n || loc[2*ref] < 0 {
			return
		}
		for _, c := range name[loc[2*ref]:loc[2*ref+1]] {
			switch {
			case dots && c == '.':
				c = '_'
			case lower && c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case upper && c >= 'a' && c <= 'z':
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
		}
	})
	return append(dst, name[loc[1]:]...)
}

// tmpl is a replacement read once (WalkReplacement, \g included): literal
// runs and group references, for expanding without reading it again.
type tmpl []tmplOp

type tmplOp struct {
	lit                string // a literal run, or "" for a reference
	ref                int
	lower, upper, dots bool
}

func compileTmpl(repl string) tmpl {
	var t tmpl
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			t = append(t, tmplOp{lit: string(lit)})
			lit = lit[:0]
		}
	}
	WalkReplacement(repl, true, func(c byte) { lit = append(lit, c) }, func(ref int, lower, upper, dots bool) {
		flush()
		t = append(t, tmplOp{ref: ref, lower: lower, upper: upper, dots: dots})
	})
	flush()
	return t
}

// expandT is expand with a compiled replacement.
func expandT(dst, name []byte, t tmpl, loc []int, n int) []byte {
	dst = append(dst, name[:loc[0]]...)
	for i := range t {
		op := &t[i]
		if op.lit != "" {
			dst = append(dst, op.lit...)
			continue
		}
		ref := op.ref
		if 2*ref+1 >= n || loc[2*ref] < 0 {
			continue
		}
		g := name[loc[2*ref]:loc[2*ref+1]]
		if !op.lower && !op.upper && !op.dots {
			dst = append(dst, g...)
			continue
		}
		for _, c := range g {
			switch {
			case op.dots && c == '.':
				c = '_'
			case op.lower && c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case op.upper && c >= 'a' && c <= 'z':
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
		}
	}
	return append(dst, name[loc[1]:]...)
}
