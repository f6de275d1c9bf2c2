package crelay

// checkERE reports whether glibc's regcomp(pattern, REG_EXTENDED) accepts
// pattern in the C locale (carbon-c-relay never calls setlocale), and
// returns regerror's message when it does not. It follows glibc's parser
// (posix/regcomp.c) for RE_SYNTAX_POSIX_EXTENDED: context-independent
// anchors and operators, an operator without an operand is an error, an
// unmatched ')' is an ordinary character, "{" must start a valid interval,
// back references \1..\9 must name a group closed before them, the GNU
// escapes \w \W \s \S \b \B \< \> \` \' are operators, any other escaped
// character is itself; in brackets, character classes, one-character
// equivalence classes and collating symbols, and non-empty ranges.
// It also returns the number of groups.
func checkERE(pattern string) (nsub int, msg string) {
	p := &ere{s: pattern}
	p.fetch()
	p.regExp(0)
	if p.err != "" {
		return 0, p.err
	}
	return p.nsub, ""
}

// glibc's messages (regerror).
const (
	errBadRpt   = "Invalid preceding regular expression"
	errEEscape  = "Trailing backslash"
	errESubReg  = "Invalid back reference"
	errEParen   = "Unmatched ( or \\("
	errEBrace   = "Unmatched \\{"
	errBadBR    = "Invalid content of \\{\\}"
	errERange   = "Invalid range end"
	errESize    = "Regular expression too big"
	errEBrack   = "Unmatched [, [^, [:, [., or [="
	errECtype   = "Invalid character class name"
	errECollate = "Invalid collation character"
)

type ereTok uint8

const (
	eEnd ereTok = iota
	eChar
	eBackslash // a backslash at the end
	eBackRef
	eAnchor // ^ $ and the GNU anchors
	eClass  // \w \W \s \S
	ePeriod
	eAlt
	eStar
	ePlus
	eQuestion
	eOpenDup
	eCloseDup
	eOpenGroup
	eCloseGroup
	eOpenBracket
)

type ere struct {
	s         string
	i         int // next byte
	tok       ereTok
	c         byte // the character of eChar; the index of eBackRef
	nsub      int
	completed uint32 // groups 1..9 closed so far (bit n-1)
	err       string
}

const reDupMax = 0x7fff

// fetch reads the next token outside brackets.
func (p *ere) fetch() {
	if p.i >= len(p.s) {
		p.tok = eEnd
		return
	}
	c := p.s[p.i]
	p.i++
	p.c = c
	if c == '\\' {
		if p.i >= len(p.s) {
			p.tok = eBackslash
			return
		}
		c2 := p.s[p.i]
		p.i++
		p.c = c2
		switch {
		case c2 >= '1' && c2 <= '9':
			p.tok, p.c = eBackRef, c2-'1'
		case c2 == '<' || c2 == '>' || c2 == 'b' || c2 == 'B' || c2 == '`' || c2 == '\'':
			p.tok = eAnchor
		case c2 == 'w' || c2 == 'W' || c2 == 's' || c2 == 'S':
			p.tok = eClass
		default:
			p.tok = eChar
		}
		return
	}
	p.tok = ereOperators[c]
	if p.tok == eEnd {
		p.tok = eChar
	}
}

// ereOperators is the token of each unescaped operator character; the
// others (eEnd here) are eChar.
var ereOperators = [256]ereTok{
	'|': eAlt, '*': eStar, '+': ePlus, '?': eQuestion,
	'{': eOpenDup, '}': eCloseDup, '(': eOpenGroup, ')': eCloseGroup,
	'[': eOpenBracket, '.': ePeriod, '^': eAnchor, '$': eAnchor,
}

func (p *ere) fail(msg string) {
	if p.err == "" {
		p.err = msg
	}
}

// regExp is parse_reg_exp: branches separated by '|'.
func (p *ere) regExp(nest int) {
	stop := func() bool { return p.tok == eAlt || p.tok == eEnd || (nest != 0 && p.tok == eCloseGroup) }
	if !stop() {
		p.branch(nest)
	}
	for p.err == "" && p.tok == eAlt {
		p.fetch()
		if !stop() {
			p.branch(nest)
		}
	}
}

// branch is parse_branch: expressions up to '|', the end or a group's ')'.
func (p *ere) branch(nest int) {
	p.expression(nest)
	for p.err == "" && p.tok != eAlt && p.tok != eEnd && (nest == 0 || p.tok != eCloseGroup) {
		p.expression(nest)
	}
}

// expression is parse_expression: an atom and its repetitions.
func (p *ere) expression(nest int) {
	if p.err != "" {
		return
	}
	switch p.tok {
	case eChar, ePeriod, eClass, eCloseDup:
	case eCloseGroup:
		// RE_UNMATCHED_RIGHT_PAREN_ORD: an ordinary character
	case eOpenGroup:
		p.group(nest)
		if p.err != "" {
			return
		}
	case eOpenBracket:
		p.bracket()
		if p.err != "" {
			return
		}
	case eBackRef:
		if p.completed&(1<<p.c) == 0 {
			p.fail(errESubReg)
			return
		}
	case eOpenDup, eStar, ePlus, eQuestion:
		p.fail(errBadRpt) // RE_CONTEXT_INVALID_OPS
		return
	case eAnchor:
		// an anchor takes no repetition: the next expression starts here
		p.fetch()
		return
	case eAlt, eEnd:
		return
	case eBackslash:
		p.fail(errEEscape)
		return
	}
	p.fetch()
	for p.err == "" && (p.tok == eStar || p.tok == ePlus || p.tok == eQuestion || p.tok == eOpenDup) {
		p.dup()
	}
}

// group is parse_sub_exp.
func (p *ere) group(nest int) {
	cur := p.nsub
	p.nsub++
	p.fetch()
	if p.tok != eCloseGroup {
		p.regExp(nest + 1)
		if p.err != "" {
			return
		}
		if p.tok != eCloseGroup {
			p.fail(errEParen)
			return
		}
	}
	if cur <= 8 {
		p.completed |= 1 << cur
	}
}

// fetchNumber is fetch_number: -1 no digits, -2 invalid.
func (p *ere) fetchNumber() int {
	num := -1
	for {
		p.fetch()
		if p.tok == eEnd {
			return -2
		}
		if p.tok == eCloseDup || p.c == ',' {
			return num
		}
		switch {
		case p.tok != eChar || p.c < '0' || p.c > '9' || num == -2:
			num = -2
		case num == -1:
			num = int(p.c - '0')
		default:
			num = min(reDupMax+1, num*10+int(p.c-'0'))
		}
	}
}

// dup is parse_dup_op.
func (p *ere) dup() {
	if p.tok == eOpenDup {
		end := 0
		start := p.fetchNumber()
		if start == -1 {
			if p.tok == eChar && p.c == ',' {
				start = 0 // {,m} is {0,m}
			} else {
				p.fail(errBadBR)
				return
			}
		}
		if start != -2 {
			switch {
			case p.tok == eCloseDup:
				end = start
			case p.tok == eChar && p.c == ',':
				end = p.fetchNumber()
			default:
				end = -2
			}
		}
		if start == -2 || end == -2 {
			if p.tok == eEnd {
				p.fail(errEBrace)
			} else {
				p.fail(errBadBR)
			}
			return
		}
		if (end != -1 && start > end) || p.tok != eCloseDup {
			p.fail(errBadBR)
			return
		}
		lim := end
		if end == -1 {
			lim = start
		}
		if lim > reDupMax {
			p.fail(errESize)
			return
		}
	}
	p.fetch()
}

// Bracket tokens (peek_token_bracket).
type brTok uint8

const (
	bEnd brTok = iota
	bChar
	bRange // -
	bClose // ]
	bNot   // ^
	bOpenColl
	bOpenEquiv
	bOpenClass
)

// peekBracket returns the token at p.i and its length.
func (p *ere) peekBracket() (brTok, byte, int) {
	if p.i >= len(p.s) {
		return bEnd, 0, 0
	}
	c := p.s[p.i]
	if c == '[' && p.i+1 < len(p.s) {
		c2 := p.s[p.i+1]
		if t := brOpeners[c2]; t != bEnd {
			return t, c2, 2
		}
	}
	if t := brSpecials[c]; t != bEnd {
		return t, c, 1
	}
	return bChar, c, 1
}

// brOpeners is the token of "[" followed by each character, brSpecials the
// token of each character alone; bEnd marks the others (bChar).
var (
	brOpeners  = [256]brTok{'.': bOpenColl, '=': bOpenEquiv, ':': bOpenClass}
	brSpecials = [256]brTok{'-': bRange, ']': bClose, '^': bNot}
)

// element kinds of a bracket expression
type brElem struct {
	kind byte // 'c' char, 's' collating symbol, 'e' equivalence class, 'k' character class
	ch   byte
	name string
}

// bracket is parse_bracket_exp, entered after '['.
func (p *ere) bracket() {
	t, _, n := p.peekBracket()
	if t == bNot {
		p.i += n
		t, _, n = p.peekBracket()
	}
	if t == bEnd {
		p.fail(errEBrack)
		return
	}
	if t == bClose {
		t = bChar // a first ']' is a character
	}
	first := true
	for {
		start, ok := p.bracketElem(t, n, first)
		if !ok {
			return
		}
		first = false
		t, _, n = p.peekBracket()
		isRange := false
		var t2 brTok
		var n2 int
		if start.kind != 'k' && start.kind != 'e' {
			if t == bEnd {
				p.fail(errEBrack)
				return
			}
			if t == bRange {
				p.i += n
				t2, _, n2 = p.peekBracket()
				if t2 == bEnd {
					p.fail(errEBrack)
					return
				}
				if t2 == bClose {
					p.i -= n // a '-' before the closing ']' is a character
					t = bChar
				} else {
					isRange = true
				}
			}
		}
		if isRange {
			end, ok := p.bracketElem(t2, n2, true)
			if !ok {
				return
			}
			t, _, n = p.peekBracket()
			if start.kind == 'k' || start.kind == 'e' || end.kind == 'k' || end.kind == 'e' {
				p.fail(errERange)
				return
			}
			if (start.kind == 's' && len(start.name) != 1) || (end.kind == 's' && len(end.name) != 1) {
				p.fail(errECollate)
				return
			}
			if start.ch > end.ch { // RE_NO_EMPTY_RANGES, C locale order
				p.fail(errERange)
				return
			}
		} else {
			switch start.kind {
			case 'e', 's':
				if len(start.name) != 1 {
					p.fail(errECollate)
					return
				}
			case 'k':
				switch start.name {
				case "alpha", "upper", "lower", "digit", "xdigit", "space", "print", "punct", "graph", "cntrl", "blank", "alnum":
				default:
					p.fail(errECtype)
					return
				}
			}
		}
		if t == bEnd {
			p.fail(errEBrack)
			return
		}
		if t == bClose {
			break
		}
	}
	p.i += n // the ']'
}

// bracketElem is parse_bracket_element for the token t of length n at p.i.
func (p *ere) bracketElem(t brTok, n int, acceptHyphen bool) (brElem, bool) {
	c := p.s[p.i]
	p.i += n
	switch t {
	case bOpenColl, bOpenEquiv, bOpenClass:
		return p.bracketSymbol(t)
	case bRange:
		if !acceptHyphen {
			if t2, _, _ := p.peekBracket(); t2 != bClose {
				p.fail(errERange)
				return brElem{}, false
			}
		}
	}
	return brElem{kind: 'c', ch: c}, true
}

// bracketSymbol is parse_bracket_symbol: the name up to ".]", "=]" or ":]".
func (p *ere) bracketSymbol(t brTok) (brElem, bool) {
	delim := byte('.')
	kind := byte('s')
	switch t {
	case bOpenEquiv:
		delim, kind = '=', 'e'
	case bOpenClass:
		delim, kind = ':', 'k'
	}
	if p.i >= len(p.s) {
		p.fail(errEBrack)
		return brElem{}, false
	}
	var name []byte
	for i := 0; ; i++ {
		if i >= 32 { // BRACKET_NAME_BUF_SIZE
			p.fail(errEBrack)
			return brElem{}, false
		}
		ch := p.s[p.i]
		p.i++
		if p.i >= len(p.s) {
			p.fail(errEBrack)
			return brElem{}, false
		}
		if ch == delim && p.s[p.i] == ']' {
			break
		}
		name = append(name, ch)
	}
	p.i++
	e := brElem{kind: kind, name: string(name)}
	if len(name) > 0 {
		e.ch = name[0]
	}
	return e, true
}
