package crelay

import (
	"fmt"
	"math"
)

// The scanner reproduces carbon-c-relay 3.7.3's flex scanner (conffile.l):
// the same start conditions, the same rules in the same order, and flex's
// choice among them (the longest match; on a tie, the rule written first).
// Keywords are keywords only in the start conditions that list them, so
// "match" is a word inside a cluster definition, and "clusterfoo" is the
// keyword cluster followed by the name foo, as in carbon-c-relay.

// tok is a token kind, as the grammar (conffile.y) names them.
type tok uint8

const (
	tEOF tok = iota
	tCluster
	tForward
	tAnyOf
	tFailover
	tUseall
	tCarbonCh
	tFnv1aCh
	tJumpFnv1aCh
	tReplication
	tDynamic
	tFile
	tIP
	tProto
	tUDP
	tTCP
	tType
	tLinemode
	tSyslog
	tTransport
	tPlain
	tGzip
	tLz4
	tSnappy
	tSSL
	tEquals
	tMatch
	tStar
	tValidate
	tElse
	tLog
	tDrop
	tRoute
	tUsing
	tSend
	tTo
	tBlackhole
	tStop
	tRewrite
	tInto
	tAggregate
	tEvery
	tSeconds
	tExpire
	tAfter
	tTimestamp
	tAt
	tStart
	tMiddle
	tEnd
	tOf
	tBucket
	tCompute
	tSum
	tCount
	tMax
	tMin
	tAverage
	tMedian
	tPercentile
	tVariance
	tStddev
	tWrite
	tStatistics
	tSubmit
	tReset
	tCounters
	tInterval
	tPrefix
	tWith
	tListen
	tUnix
	tInclude
	tString
	tInt
	tSemicolon
	tUnexpected
	numToks
)

var tokNames = [numToks]string{
	tEOF: "end of file", tCluster: "cluster", tForward: "forward", tAnyOf: "any_of", tFailover: "failover",
	tUseall: "useall", tCarbonCh: "carbon_ch", tFnv1aCh: "fnv1a_ch", tJumpFnv1aCh: "jump_fnv1a_ch",
	tReplication: "replication", tDynamic: "dynamic", tFile: "file", tIP: "ip", tProto: "proto", tUDP: "udp",
	tTCP: "tcp", tType: "type", tLinemode: "linemode", tSyslog: "syslog", tTransport: "transport",
	tPlain: "plain", tGzip: "gzip", tLz4: "lz4", tSnappy: "snappy", tSSL: "ssl", tEquals: "=",
	tMatch: "match", tStar: "*", tValidate: "validate", tElse: "else", tLog: "log", tDrop: "drop",
	tRoute: "route", tUsing: "using", tSend: "send", tTo: "to", tBlackhole: "blackhole", tStop: "stop",
	tRewrite: "rewrite", tInto: "into", tAggregate: "aggregate", tEvery: "every", tSeconds: "seconds",
	tExpire: "expire", tAfter: "after", tTimestamp: "timestamp", tAt: "at", tStart: "start",
	tMiddle: "middle", tEnd: "end", tOf: "of", tBucket: "bucket", tCompute: "compute", tSum: "sum",
	tCount: "count", tMax: "max", tMin: "min", tAverage: "average", tMedian: "median",
	tPercentile: "percentile", tVariance: "variance", tStddev: "stddev", tWrite: "write",
	tStatistics: "statistics", tSubmit: "submit", tReset: "reset", tCounters: "counters",
	tInterval: "interval", tPrefix: "prefix", tWith: "with", tListen: "listen", tUnix: "unix",
	tInclude: "include", tString: "string", tInt: "integer", tSemicolon: ";", tUnexpected: "unexpected",
}

func (t tok) String() string { return tokNames[t] }

// token is one token: its kind, text (strings: the value), integer value
// (tInt, tPercentile) and line (1-based).
type token struct {
	kind tok
	text string
	ival int
	line int
}

// describe names the token in a syntax error.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tString:
		return fmt.Sprintf("string %q", t.text)
	case tInt:
		return fmt.Sprintf("integer %s", t.text)
	case tUnexpected:
		return fmt.Sprintf("character %q", t.text)
	case tSemicolon:
		return "';'"
	}
	return "'" + t.kind.String() + "'"
}

// Start conditions.
type cond uint8

const (
	sInitial cond = iota
	sCl
	sMa
	sRe
	sAg
	sSe
	sSt
	sLi
	sQu
	sIdcl
	sIdma
	sIdag
	sIdin
	sIdli
	numConds
)

// action says what a rule does besides returning its token: the start
// condition it begins (keep: none) and the identstate it sets (keep: none).
const keep = cond(255)

// rule is one scanner rule.
type rule struct {
	conds []cond // nil: every condition (<*>)
	match func(s []byte) int
	kind  tok // token returned; tEOF: none (whitespace, comments)
	begin cond
	ident cond
	// special actions
	fn ruleFn
}

type ruleFn uint8

const (
	fnNone         ruleFn = iota
	fnQuoteOpen           // "  -> start a quoted string
	fnQuoteClose          // "  in qu
	fnQuoteNewline        // \n in qu: unterminated
	fnQuoteEscape         // \. in qu
	fnQuoteText           // text in qu
	fnInt                 // [0-9]+
	fnIdent               // identifier
	fnPercentile          // percentile[0-9]*
	fnSemicolon           // ; -> INITIAL
	fnUnexpected          // .
)

func lit(w string) func([]byte) int {
	return func(s []byte) int {
		if len(s) >= len(w) && string(s[:len(w)]) == w {
			return len(w)
		}
		return -1
	}
}

// isIDChr is conffile.l's IDCHR: [a-zA-Z0-9[\](){}|\\^?*$&%<>:/,._+-].
var isIDChr = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range []byte(`[](){}|\^?*$&%<>:/,._+-`) {
		t[c] = true
	}
	return t
}()

// matchIdent matches {IDCHR}+(\\[ ]{IDCHR}+)* at its longest.
func matchIdent(s []byte) int {
	n := 0
	for n < len(s) && isIDChr[s[n]] {
		n++
	}
	if n == 0 {
		return -1
	}
	// The longest match: a run of IDCHR (a backslash is one) whose last
	// byte is a backslash, preceded by at least one IDCHR of the run,
	// continues the word with a space and the next run.
	seg, best := 0, n
	for best-seg >= 2 && s[best-1] == '\\' && best < len(s) && s[best] == ' ' {
		m := best + 1
		for m < len(s) && isIDChr[s[m]] {
			m++
		}
		if m == best+1 {
			break
		}
		seg, best = best+1, m
	}
	return best
}

func matchRun(set func(byte) bool) func([]byte) int {
	return func(s []byte) int {
		n := 0
		for n < len(s) && set(s[n]) {
			n++
		}
		if n == 0 {
			return -1
		}
		return n
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

var (
	cIdcl            = []cond{sIdcl}
	cCl              = []cond{sCl}
	cMa              = []cond{sMa}
	cAg              = []cond{sAg}
	cSt              = []cond{sSt}
	cLi              = []cond{sLi}
	cIdli            = []cond{sIdli}
	cIdma            = []cond{sIdma}
	cInitial         = []cond{sInitial}
	cStrings         = []cond{sIdcl, sIdma, sIdag, sIdin, sIdli}
	cQu              = []cond{sQu}
	allConds  []cond = nil
	lexRules  []rule // in conffile.l's order
	rulesByIn [numConds][]int
)

func kw(c []cond, w string, k tok, begin, ident cond) rule {
	return rule{conds: c, match: lit(w), kind: k, begin: begin, ident: ident}
}

func init() {
	k := keep
	lexRules = []rule{
		kw(cInitial, "cluster", tCluster, sIdcl, sCl),
		kw(cCl, "forward", tForward, sIdcl, sIdcl),
		kw(cCl, "any_of", tAnyOf, sIdcl, sIdcl),
		kw(cCl, "failover", tFailover, sIdcl, sIdcl),
		kw(cIdcl, "useall", tUseall, k, k),
		kw(cCl, "carbon_ch", tCarbonCh, sIdcl, sIdcl),
		kw(cCl, "fnv1a_ch", tFnv1aCh, sIdcl, sIdcl),
		kw(cCl, "jump_fnv1a_ch", tJumpFnv1aCh, sIdcl, sIdcl),
		kw(cIdcl, "replication", tReplication, k, k),
		kw(cIdcl, "dynamic", tDynamic, k, k),
		kw(cCl, "file", tFile, sIdcl, sIdcl),
		kw(cIdcl, "ip", tIP, k, k),
		kw(cIdcl, "proto", tProto, k, k),
		kw(cIdcl, "udp", tUDP, k, k),
		kw(cIdcl, "tcp", tTCP, k, k),
		kw(cIdcl, "type", tType, k, k),
		kw(cIdcl, "linemode", tLinemode, k, k),
		kw(cIdcl, "syslog", tSyslog, k, k),
		kw(cIdcl, "transport", tTransport, k, k),
		kw(cIdcl, "plain", tPlain, k, k),
		kw(cIdcl, "gzip", tGzip, k, k),
		kw(cIdcl, "lz4", tLz4, k, k),
		kw(cIdcl, "snappy", tSnappy, k, k),
		kw(cIdcl, "ssl", tSSL, k, k),
		kw(cIdcl, "=", tEquals, k, k),

		kw(cInitial, "match", tMatch, sIdma, sIdma),
		kw(cIdma, "*", tStar, k, k),
		kw(cIdma, "validate", tValidate, sIdma, sMa),
		kw(cMa, "else", tElse, k, k),
		kw(cMa, "log", tLog, k, k),
		kw(cMa, "drop", tDrop, k, k),
		kw([]cond{sMa, sIdma}, "route", tRoute, sMa, k),
		kw(cMa, "using", tUsing, sIdma, sMa),
		kw([]cond{sMa, sIdma}, "send", tSend, sMa, k),
		kw(cMa, "to", tTo, sIdcl, sIdcl),
		kw(cIdcl, "blackhole", tBlackhole, k, k),
		kw([]cond{sMa, sIdcl}, "stop", tStop, k, k),

		kw(cInitial, "rewrite", tRewrite, sIdma, sRe),
		kw([]cond{sRe}, "into", tInto, sIdma, sRe),

		kw(cInitial, "aggregate", tAggregate, sIdag, sIdag),
		kw([]cond{sIdag}, "every", tEvery, sAg, k),
		kw(cAg, "seconds", tSeconds, k, k),
		kw(cAg, "expire", tExpire, k, k),
		kw(cAg, "after", tAfter, k, k),
		kw(cAg, "timestamp", tTimestamp, k, k),
		kw(cAg, "at", tAt, k, k),
		kw(cAg, "start", tStart, k, k),
		kw(cAg, "middle", tMiddle, k, k),
		kw(cAg, "end", tEnd, k, k),
		kw(cAg, "of", tOf, k, k),
		kw(cAg, "bucket", tBucket, k, k),
		kw(cAg, "compute", tCompute, k, k),
		kw(cAg, "summary", tSum, k, k),
		kw(cAg, "sum", tSum, k, k),
		kw(cAg, "count", tCount, k, k),
		kw(cAg, "cnt", tCount, k, k),
		kw(cAg, "maximum", tMax, k, k),
		kw(cAg, "max", tMax, k, k),
		kw(cAg, "minimum", tMin, k, k),
		kw(cAg, "min", tMin, k, k),
		kw(cAg, "average", tAverage, k, k),
		kw(cAg, "avg", tAverage, k, k),
		kw(cAg, "median", tMedian, k, k),
		{conds: cAg, match: func(s []byte) int {
			n := lit("percentile")(s)
			if n < 0 {
				return -1
			}
			for n < len(s) && isDigit(s[n]) {
				n++
			}
			return n
		}, kind: tPercentile, begin: k, ident: k, fn: fnPercentile},
		kw(cAg, "variance", tVariance, k, k),
		kw(cAg, "stddev", tStddev, k, k),
		kw(cAg, "write", tWrite, k, k),
		kw(cAg, "to", tTo, sIdag, sAg),
		kw(cAg, "send", tSend, sMa, k),

		kw(cInitial, "send", tSend, sSe, k),
		kw([]cond{sSe}, "statistics", tStatistics, sMa, k),

		kw(cInitial, "statistics", tStatistics, sSt, k),
		kw(cSt, "submit", tSubmit, k, k),
		kw(cSt, "every", tEvery, k, k),
		kw(cSt, "seconds", tSeconds, k, k),
		kw(cSt, "reset", tReset, k, k),
		kw(cSt, "counters", tCounters, k, k),
		kw(cSt, "after", tAfter, k, k),
		kw(cSt, "interval", tInterval, k, k),
		kw(cSt, "prefix", tPrefix, k, k),
		kw(cSt, "with", tWith, sIdag, sSt),
		kw(cSt, "send", tSend, sMa, k),

		kw(cInitial, "listen", tListen, sLi, k),
		kw(cLi, "type", tType, k, k),
		kw(cLi, "linemode", tLinemode, sIdli, sLi),
		kw(cIdli, "transport", tTransport, k, k),
		kw(cIdli, "plain", tPlain, k, k),
		kw(cIdli, "gzip", tGzip, sIdli, sLi),
		kw(cIdli, "lz4", tLz4, sIdli, sLi),
		kw(cIdli, "snappy", tSnappy, sIdli, sLi),
		kw(cIdli, "ssl", tSSL, sIdli, sIdli),
		kw([]cond{sLi, sIdli}, "proto", tProto, sLi, k),
		kw(cLi, "udp", tUDP, sIdli, sLi),
		kw(cLi, "tcp", tTCP, sIdli, sLi),
		kw(cLi, "unix", tUnix, sIdli, sLi),

		kw(cInitial, "include", tInclude, sIdin, sInitial),

		{conds: cStrings, match: lit(`"`), begin: k, ident: k, fn: fnQuoteOpen},
		{conds: cQu, match: lit(`"`), begin: k, ident: k, fn: fnQuoteClose},
		{conds: cQu, match: lit("\n"), begin: k, ident: k, fn: fnQuoteNewline},
		{conds: cQu, match: func(s []byte) int {
			if len(s) >= 2 && s[0] == '\\' && s[1] != '\n' {
				return 2
			}
			return -1
		}, begin: k, ident: k, fn: fnQuoteEscape},
		{conds: cQu, match: matchRun(func(c byte) bool { return c != '\\' && c != '\n' && c != '"' }), begin: k, ident: k, fn: fnQuoteText},

		{conds: allConds, match: func(s []byte) int {
			if len(s) == 0 || s[0] != '#' {
				return -1
			}
			for i := 1; i < len(s); i++ {
				if s[i] == '\n' {
					return i + 1
				}
			}
			return -1 // flex's #.*\n needs the newline
		}, begin: k, ident: k},
		{conds: allConds, match: matchRun(func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }), begin: k, ident: k},
		{conds: allConds, match: matchRun(func(c byte) bool { return c == '\n' }), begin: k, ident: k},
		{conds: []cond{sIdcl, sAg, sSt}, match: matchRun(isDigit), kind: tInt, begin: k, ident: k, fn: fnInt},
		{conds: cStrings, match: matchIdent, kind: tString, begin: k, ident: k, fn: fnIdent},
		{conds: allConds, match: lit(";"), kind: tSemicolon, begin: sInitial, ident: k, fn: fnSemicolon},
		{conds: allConds, match: func(s []byte) int {
			if len(s) > 0 && s[0] != '\n' {
				return 1
			}
			return -1
		}, kind: tUnexpected, begin: k, ident: k, fn: fnUnexpected},
	}
	for i, r := range lexRules {
		if r.conds == nil {
			for c := range numConds {
				rulesByIn[c] = append(rulesByIn[c], i)
			}
			continue
		}
		for _, c := range r.conds {
			rulesByIn[c] = append(rulesByIn[c], i)
		}
	}
}

// lexer scans one file. identstate is a global in carbon-c-relay; every
// rule entering a condition that reads strings sets it first, so one per
// lexer behaves the same.
type lexer struct {
	src        []byte
	pos        int
	line       int // newlines consumed so far
	state      cond
	identstate cond
	// the quoted string being read
	buf       []byte
	quoteLine int
	err       *lexError
}

// lexError is an error of the scanner ("unterminated string"); the
// scanner then reports the end of the input, as yyterminate() does.
type lexError struct {
	line int
	msg  string
}

// maxString is carbon-c-relay's string buffer: a quoted string of 1024
// bytes or more is "string too large".
const maxString = 1024

func newLexer(src []byte) *lexer {
	// yy_scan_string: the text ends at the first NUL byte
	for i, c := range src {
		if c == 0 {
			src = src[:i]
			break
		}
	}
	return &lexer{src: src}
}

// atoi is C's atoi: strtol saturating to a 64-bit long, truncated to int.
func atoi(digits string) int {
	var v int64
	for i := 0; i < len(digits) && isDigit(digits[i]); i++ {
		d := int64(digits[i] - '0')
		if v > (math.MaxInt64-d)/10 {
			v = math.MaxInt64
			for ; i < len(digits) && isDigit(digits[i]); i++ {
			}
			break
		}
		v = v*10 + d
	}
	return int(int32(v))
}

// next returns the next token; after a scanner error it returns tEOF.
func (l *lexer) next() token {
	for {
		if l.err != nil {
			return token{kind: tEOF, line: l.line + 1}
		}
		rest := l.src[l.pos:]
		if len(rest) == 0 {
			if l.state == sQu {
				l.err = &lexError{line: l.quoteLine, msg: "unterminated string"}
			}
			return token{kind: tEOF, line: l.line + 1}
		}
		best, bestLen := -1, 0
		for _, i := range rulesByIn[l.state] {
			if n := lexRules[i].match(rest); n > bestLen {
				best, bestLen = i, n
			}
		}
		// some rule always matches: '.' or a newline rule
		r := &lexRules[best]
		text := rest[:bestLen]
		startLine := l.line + 1
		for _, c := range text {
			if c == '\n' {
				l.line++
			}
		}
		l.pos += bestLen
		if r.ident != keep {
			l.identstate = r.ident
		}
		if r.begin != keep {
			l.state = r.begin
		}
		switch r.fn {
		case fnNone:
			if r.kind == tEOF {
				continue // whitespace, comment
			}
			return token{kind: r.kind, text: string(text), line: startLine}
		case fnQuoteOpen:
			l.buf = l.buf[:0]
			l.quoteLine = startLine
			l.state = sQu
			continue
		case fnQuoteClose:
			if len(l.buf) == 0 {
				l.err = &lexError{line: l.quoteLine, msg: "empty string"}
				continue
			}
			l.state = l.identstate
			return token{kind: tString, text: string(l.buf), line: l.quoteLine}
		case fnQuoteNewline:
			l.err = &lexError{line: l.quoteLine, msg: "unterminated string"}
			continue
		case fnQuoteEscape:
			l.buf = append(l.buf, text[1])
			if len(l.buf) >= maxString {
				l.err = &lexError{line: l.quoteLine, msg: "string too large"}
			}
			continue
		case fnQuoteText:
			l.buf = append(l.buf, text...)
			if len(l.buf) >= maxString {
				l.err = &lexError{line: l.quoteLine, msg: "string too large"}
			}
			continue
		case fnInt:
			return token{kind: tInt, text: string(text), ival: atoi(string(text)), line: startLine}
		case fnPercentile:
			return token{kind: tPercentile, text: string(text), ival: atoi(string(text[len("percentile"):])), line: startLine}
		case fnIdent:
			l.state = l.identstate
			return token{kind: tString, text: string(text), line: startLine}
		case fnSemicolon, fnUnexpected:
			return token{kind: r.kind, text: string(text), line: startLine}
		}
	}
}
