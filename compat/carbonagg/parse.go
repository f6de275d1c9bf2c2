package carbonagg

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/metricsrouter/router/registry"
)

// Pos is a line of the rules file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", comment(p.File), p.Line) }

// Error is a problem with one line of the rules file. Unsupported means
// that carbon accepts and runs the line and the router cannot express it;
// otherwise carbon refuses the file, or fails on every metric the rule
// matches.
type Error struct {
	Pos
	Msg         string
	Unsupported bool
	// atRun: carbon loads the rule and fails on every metric it matches.
	atRun bool
}

// IsUnsupported implements registry.ConvertError.
func (e *Error) IsUnsupported() bool { return e.Unsupported }

func (e *Error) Error() string {
	if e.Line <= 0 {
		return comment(e.File) + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Rule is one line of aggregation-rules.conf,
//
//	output_template (frequency) = method input_pattern
//
// and its translation.
type Rule struct {
	Pos
	Text      string // the line, without surrounding white space
	Output    string // output_template
	Frequency int64  // seconds
	Method    string // carbon's: sum, avg, min, max, count, p50 ... p999
	Input     string // input_pattern

	// Match is the input pattern as an anchored POSIX extended regular
	// expression, one group per field, in order.
	Match string
	// Fields are the fields' names, group 1 first.
	Fields []string
	// WriteTo is the output template with the fields as back references.
	WriteTo string
	// Compute is the router's compute type for Method.
	Compute string
	// Notes are remarks for the rule's comment in the output.
	Notes []string
}

// methods maps carbon's aggregation methods (AGGREGATION_METHODS in
// carbon/aggregator/rules.py) to the router's compute types; "" is a method
// the router has no equivalent for.
var methods = map[string]string{
	"sum":   "sum",
	"avg":   "average",
	"min":   "min",
	"max":   "max",
	"count": "count",
	"p50":   "median",
	"p75":   "percentile75",
	"p80":   "percentile80",
	"p90":   "percentile90",
	"p95":   "percentile95",
	"p99":   "percentile99",
	"p999":  "",
}

// isSpace is Python's str.isspace, which str.strip and str.split use:
// Unicode white space plus the separators \x1c..\x1f.
func isSpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// lines splits text as Python's text files do (universal newlines: "\n",
// "\r\n" and "\r" end a line).
func lines(text string) []string {
	var out []string
	for len(text) > 0 {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i])
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	return out
}

// Parse reads an aggregation-rules.conf as carbon's RuleManager does
// (read_rules, parse_definition, AggregationRule): a line that is blank or
// starts with '#' once stripped is skipped; any other line is a rule.
// Every line's problem is returned, in file order.
func Parse(file, text string) ([]*Rule, []*Error) {
	if !utf8.ValidString(text) {
		return nil, []*Error{{Pos: Pos{File: file}, Msg: "not UTF-8 text (carbon reads the file as UTF-8)"}}
	}
	var rules []*Rule
	var errs []*Error
	for n, line := range lines(text) {
		line = strings.TrimFunc(line, isSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseRule(Pos{File: file, Line: n + 1}, line)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errs
}

// parseRule parses and translates one rule line, in the order carbon
// reads it: the split and the frequency's int() (parse_definition), the
// method and the regular expression (AggregationRule), then what fails
// only when a metric matches. A line carbon refuses is reported as such,
// else one carbon fails on, else what the router cannot express.
func parseRule(at Pos, line string) (*Rule, *Error) {
	left, right, ok := strings.Cut(line, "=")
	lf, rf := strings.FieldsFunc(left, isSpace), strings.FieldsFunc(right, isSpace)
	if !ok || len(lf) != 2 || len(rf) != 2 {
		return nil, &Error{Pos: at, Msg: "want output_template (frequency) = method input_pattern"}
	}
	r := &Rule{Pos: at, Text: line, Output: lf[0], Method: rf[0], Input: rf[1]}
	var iss issues
	freq, ferr := pyInt(strings.TrimRight(strings.TrimLeft(lf[1], "("), ")"))
	if ferr != nil && !ferr.unsupported {
		return nil, iss.err(at, "frequency "+lf[1], ferr)
	}
	iss.add("frequency "+lf[1], ferr)
	compute, known := methods[r.Method]
	if !known {
		return nil, iss.err(at, "method "+r.Method, refuse("not one of carbon's: sum, avg, min, max, count, p50, p75, p80, p90, p95, p99, p999"))
	}
	r.Match, r.Fields, r.Notes = translateInput(r.Input, &iss)
	if ferr == nil && freq < 1 {
		iss.add("frequency "+lf[1], refuseRun("carbon fails on every metric the rule matches (it needs at least 1 second)"))
	}
	r.Frequency = freq
	if compute == "" {
		iss.add("method "+r.Method, unsupported("not supported by router: its percentiles are whole numbers from 1 to 99"))
	}
	r.Compute = compute
	if len(r.Fields) > 9 {
		iss.add("input pattern "+r.Input, unsupported("%d fields; the router's expressions have at most 9 groups", len(r.Fields)))
	}
	r.WriteTo = translateOutput(r.Output, r.Fields, &iss)
	if w := iss.worst(); w != nil {
		return nil, &Error{Pos: at, Msg: w.msg, Unsupported: w.unsupported, atRun: w.atRun}
	}
	if pct, isP := strings.CutPrefix(r.Method, "p"); isP {
		// the values 1, 2, 3, 4: carbon's rank p x 3 interpolated, the
		// router's k-th value with k = int(p x 4 + 0.9)
		p, _ := strconv.Atoi(pct)
		carbon := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%d.%02d", (100+3*p)/100, (100+3*p)%100), "0"), ".")
		r.Notes = append(r.Notes, fmt.Sprintf("%s: carbon interpolates between the nearest values, %s takes the nearest rank (carbon-c-relay's): %s against %d for 1, 2, 3, 4",
			r.Method, r.Compute, carbon, (4*p+90)/100))
	}
	return r, nil
}

// issue is a translation problem; unsupported and atRun as in Error.
type issue struct {
	msg         string
	unsupported bool
	atRun       bool
}

// refuse: carbon refuses the rule; refuseRun: carbon fails on every metric
// the rule matches; unsupported: the router cannot express it.
func refuse(format string, a ...any) *issue { return &issue{msg: fmt.Sprintf(format, a...)} }
func refuseRun(format string, a ...any) *issue {
	return &issue{msg: fmt.Sprintf(format, a...), atRun: true}
}
func unsupported(format string, a ...any) *issue {
	return &issue{msg: fmt.Sprintf(format, a...), unsupported: true}
}

// issues keeps the first issue of each kind of a rule.
type issues struct{ refused, atRun, unsupported *issue }

// add records is (nil: none) about what ("input pattern a.b").
func (s *issues) add(what string, is *issue) {
	if is == nil {
		return
	}
	is = &issue{msg: what + ": " + is.msg, unsupported: is.unsupported, atRun: is.atRun}
	switch {
	case is.unsupported:
		if s.unsupported == nil {
			s.unsupported = is
		}
	case is.atRun:
		if s.atRun == nil {
			s.atRun = is
		}
	case s.refused == nil:
		s.refused = is
	}
}

// worst is the issue that decides: carbon refuses, else fails, else the
// router cannot express.
func (s *issues) worst() *issue {
	switch {
	case s.refused != nil:
		return s.refused
	case s.atRun != nil:
		return s.atRun
	}
	return s.unsupported
}

// err is the Error of a rule stopped by is.
func (s *issues) err(at Pos, what string, is *issue) *Error {
	s.add(what, is)
	w := s.worst()
	return &Error{Pos: at, Msg: w.msg, Unsupported: w.unsupported, atRun: w.atRun}
}

// pyInt is Python's int() on a string: an optional sign, then decimal
// digits, single underscores allowed between them.
func pyInt(s string) (int64, *issue) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	if t == "" || t[0] == '_' || t[len(t)-1] == '_' || strings.Contains(t, "__") {
		return 0, refuse("not a number")
	}
	var n int64
	for _, r := range t {
		switch {
		case r == '_':
			continue
		case r >= '0' && r <= '9':
			n = n*10 + int64(r-'0')
			if n > 1e12 {
				return 0, unsupported("more seconds than the router's durations hold")
			}
		case unicode.IsDigit(r):
			return 0, unsupported("digits other than 0-9 are not supported by router")
		default:
			return 0, refuse("not a number")
		}
	}
	if strings.HasPrefix(s, "-") {
		n = -n
	}
	return n, nil
}

// isIdentifier is Python's str.isidentifier, which a group name
// (?P<name>...) must satisfy.
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r) || unicode.Is(unicode.Nl, r):
		case i > 0 && (unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc, unicode.Pc)):
		default:
			return false
		}
	}
	return true
}

// translateInput turns an input pattern into an anchored POSIX extended
// regular expression, as carbon's AggregationRule.build_regex builds a
// Python one: the pattern is split at '.', and each part is
//
//   - with "<<" and ">>" in it: the text before the first "<<", a group
//     named by what lies up to the first ">>" matching one character or
//     more, dots included (Python's .+?), the text after;
//   - else with a '<' before a '>': the text before the first '<', a group
//     named by what lies up to the first '>' matching one character or
//     more, dots excluded ([^.]+?), the text after (a second <name> in a
//     part is text);
//   - else "*": [^.]+;
//   - else the part with every '*' replaced by [^.]*.
//
// The parts are joined by \. and the whole is matched from the start of
// the name to its end. Nothing is escaped: the text around fields and
// globs is Python regular expression syntax (carbon's example uses \d{2}).
// translatePiece says which of it is converted.
//
// A field is lazy in Python and greedy in POSIX, so the groups are the same
// only where a name splits into them one way: the text next to a field
// must have a fixed length, and a pattern may have one <<field>>.
func translateInput(pat string, iss *issues) (re string, fields []string, notes []string) {
	add := func(is *issue) { iss.add("input pattern "+pat, is) }
	var b strings.Builder
	b.WriteByte('^')
	seen := map[string]bool{}
	multi := 0
	field := func(name string) {
		switch {
		case name == "":
			add(refuse("a field without a name (carbon refuses the rule)"))
		case !isIdentifier(name):
			add(refuse("field name %q is not an identifier (carbon refuses the rule)", name))
		case seen[name]:
			add(refuse("field <%s> twice (carbon refuses the rule)", name))
		}
		seen[name] = true
		fields = append(fields, name)
	}
	parts := strings.Split(pat, ".")
	depth := 0 // of parentheses, which Python's re must find balanced
	for k, part := range parts {
		if k > 0 {
			b.WriteString(`\.`)
		}
		rest := strings.Join(parts[k+1:], ".")
		i, j := strings.Index(part, "<<"), strings.Index(part, ">>")
		if i >= 0 && j >= 0 {
			name := ""
			if j > i+2 {
				name = part[i+2 : j]
			}
			field(name)
			if multi++; multi == 2 {
				add(unsupported("two <<fields>>: carbon gives the first the fewest parts it can, the router the most"))
			}
			pre := translatePiece(part[:i], false, k == 0, part[i:]+"."+rest, &depth, add)
			post := ""
			if j+2 <= len(part) && j > i {
				post = translatePiece(part[j+2:], false, false, rest, &depth, add)
			}
			b.WriteString(pre + "(.+)" + post)
			continue
		}
		i, j = strings.IndexByte(part, '<'), strings.IndexByte(part, '>')
		switch {
		case i >= 0 && j > i:
			field(part[i+1 : j])
			pre := translatePiece(part[:i], false, k == 0, part[i:]+"."+rest, &depth, add)
			post := translatePiece(part[j+1:], false, false, rest, &depth, add)
			if a := strings.IndexByte(part[j+1:], '<'); a >= 0 && strings.IndexByte(part[j+1+a:], '>') > 0 {
				notes = append(notes, fmt.Sprintf("carbon reads one <field> per part: %q after <%s> is text", part[j+1:], part[i+1:j]))
			}
			b.WriteString(pre + "([^.]+)" + post)
		case part == "*":
			b.WriteString("[^.]+")
		default:
			b.WriteString(translatePiece(part, true, k == 0, rest, &depth, add))
		}
	}
	if depth > 0 {
		add(refuse("a '(' without its ')' (carbon refuses the rule)"))
	}
	b.WriteByte('$')
	return b.String(), fields, notes
}

// ereSpecial are the characters a POSIX extended regular expression
// escapes to match them literally.
const ereSpecial = `.[]()*+?{}|^$\`

// pyEscapes are the letters after '\' that Python's re knows (in a str
// pattern); any other ASCII letter is an error.
const pyEscapes = "abBdDfnrsStvwWZAxuUN"

// translatePiece translates the text of a part around its field (glob
// false) or a part without a field (glob true: '*' is carbon's glob,
// [^.]*), which carbon hands to Python's re as it is. Converted: characters
// that are literal in Python, \ before punctuation, \d (as [0-9]: the
// router's names are bytes, Python's \d also takes other scripts' digits),
// bracket expressions [...] without negation, escapes or '*', and, without
// a field in the part, the quantifiers ?, +, {m}, {m,}, {m,n} and {,n}.
// Next to a field only {m} is converted, so the field's length follows
// from the part's. The rest (^, $, |, groups, other escapes, negated
// brackets, lazy quantifiers...) is unsupported; what Python's re refuses
// in it (a bad escape, range, group name or repeat, unbalanced
// parentheses) is found as far as the converter reads it. first: the piece
// starts carbon's expression; rest: the pattern after the piece; depth:
// the open parentheses.
func translatePiece(s string, glob, first bool, rest string, depth *int, add func(*issue)) string {
	var b strings.Builder
	// atom: the last element may take a quantifier; quantified: it is a
	// quantifier (or a glob, [^.]* in carbon's expression).
	atom, quantified := false, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '*' && glob {
			b.WriteString("[^.]*")
			atom, quantified = false, true
			i++
			continue
		}
		switch r {
		case '\\':
			if i+1 >= len(s) {
				add(unsupported(`a '\' at the end of a part`))
				return b.String()
			}
			c, n := utf8.DecodeRuneInString(s[i+1:])
			switch {
			case c == 'd':
				b.WriteString("[0-9]")
			case c == '*' && glob:
				add(unsupported(`\* (carbon replaces the '*' with [^.]* there too)`))
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
				if strings.ContainsRune(pyEscapes, c) {
					add(unsupported(`the regular expression escape \%c (carbon hands the pattern to Python's re)`, c))
				} else {
					add(refuse(`bad escape \%c (carbon refuses the rule)`, c))
				}
			case c >= '0' && c <= '9':
				add(unsupported(`the regular expression escape \%c (carbon hands the pattern to Python's re)`, c))
			default: // punctuation, or a character outside ASCII: itself
				writeLiteral(&b, c)
			}
			atom, quantified = true, false
			i += 1 + n
			continue
		case '[':
			end, class, is := bracket(s[i:], glob, rest)
			add(is)
			if end < 0 {
				return b.String()
			}
			b.WriteString(class)
			atom, quantified = true, false
			i += end
			continue
		case '?', '+', '{', '*':
			lo, hi, n, isQ := quantifier(s[i:])
			if !isQ { // '{' that is not a quantifier is text in Python
				writeLiteral(&b, r)
				atom, quantified = true, false
				i++
				continue
			}
			q := s[i : i+n]
			switch {
			case quantified && (r == '?' || r == '+'):
				add(unsupported("%q after a quantifier or glob (lazy or possessive)", q))
			case quantified:
				add(refuse("%q after a quantifier or glob: multiple repeat (carbon refuses the rule)", q))
			case !atom && first && i == 0:
				add(refuse("%q with nothing to repeat (carbon refuses the rule)", q))
			case !atom:
				add(unsupported("%q at the start of a part (it repeats what comes before in carbon's expression)", q))
			case hi >= 0 && hi < lo:
				add(refuse("%q: min repeat greater than max repeat (carbon refuses the rule)", q))
			case !glob && hi != lo:
				add(unsupported("%q next to a field (carbon's field takes the shortest match, the router's the longest)", q))
			case lo > 1000 || hi > 1000:
				add(unsupported("%q: the router repeats at most 1000 times", q))
			case lo == 0 && hi == 1:
				b.WriteByte('?')
			case lo == 1 && hi < 0:
				b.WriteByte('+')
			case hi < 0:
				fmt.Fprintf(&b, "{%d,}", lo)
			case hi == lo:
				fmt.Fprintf(&b, "{%d}", lo)
			default:
				fmt.Fprintf(&b, "{%d,%d}", lo, hi)
			}
			atom, quantified = false, true
			i += n
			continue
		case '(':
			*depth++
			add(unsupported("'(' (carbon hands the pattern to Python's re, where it is a group)"))
		case ')':
			if *depth == 0 {
				add(refuse("a ')' without its '(' (carbon refuses the rule)"))
			} else {
				*depth--
			}
			add(unsupported("')' (carbon hands the pattern to Python's re, where it ends a group)"))
		case '^', '$', '|':
			add(unsupported("%q (carbon hands the pattern to Python's re, where it is not text)", r))
		default:
			writeLiteral(&b, r)
		}
		atom, quantified = r != '(' && r != '|' && r != '^' && r != '$', false
		i += size
	}
	return b.String()
}

// writeLiteral writes r so that an extended regular expression matches it.
func writeLiteral(b *strings.Builder, r rune) {
	if r < utf8.RuneSelf && strings.IndexByte(ereSpecial, byte(r)) >= 0 {
		b.WriteByte('\\')
	}
	b.WriteRune(r)
}

// quantifier reads a quantifier at the start of s as Python's sre_parse
// does: ?, +, *, or {m}, {m,}, {,n}, {m,n}, {,} (a '{' in any other form
// is text). hi < 0 is no upper bound; n is its length.
func quantifier(s string) (lo, hi, n int, ok bool) {
	switch s[0] {
	case '?':
		return 0, 1, 1, true
	case '+':
		return 1, -1, 1, true
	case '*':
		return 0, -1, 1, true
	case '{':
	default:
		return 0, 0, 0, false
	}
	if strings.HasPrefix(s, "{}") {
		return 0, 0, 0, false
	}
	i := 1
	digits := func() string {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[j:i]
	}
	los := digits()
	his := los
	if i < len(s) && s[i] == ',' {
		i++
		his = digits()
	}
	if i >= len(s) || s[i] != '}' {
		return 0, 0, 0, false
	}
	lo, hi = 0, -1
	if los != "" {
		lo = atoiSat(los)
	}
	if his != "" {
		hi = atoiSat(his)
	}
	return lo, hi, i + 1, true
}

// atoiSat parses decimal digits, saturating at a value past every limit.
func atoiSat(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n > 1<<30 {
		return 1 << 30
	}
	return n
}

// bracket reads a bracket expression at the start of s: '[', members, ']'
// (a ']' first is a member, in Python as in POSIX). Converted when it has
// no negation (which would match '.'), no '\' or '[', no '*' in a part
// without a field (carbon replaces it there), only printable ASCII, and
// each '-' first, last or in a range in order. end is past the ']', or -1
// when the part has none: Python then reads on into the rest of carbon's
// expression, and refuses the rule when no ']' can come from there.
func bracket(s string, glob bool, rest string) (end int, class string, is *issue) {
	i := 1
	if i < len(s) && s[i] == '^' {
		is = unsupported("a negated bracket expression (it matches '.' too, so a part could span several)")
		i++
	}
	if i < len(s) && s[i] == ']' {
		i++
	}
	escaped := false
	for ; i < len(s) && s[i] != ']'; i++ {
		switch c := s[i]; {
		case is != nil:
			if c == '\\' {
				i++ // Python's escape in a set
			}
		case c == '\\' || c == '[':
			is, escaped = unsupported("%q in a bracket expression", c), c == '\\'
			if c == '\\' {
				i++
			}
		case c == '*' && glob:
			is = unsupported("'*' in a bracket expression (carbon replaces it with [^.]* there too)")
		case c < 0x20 || c >= 0x7f:
			is = unsupported("a bracket expression with a character outside printable ASCII")
		}
	}
	if i >= len(s) {
		if !strings.ContainsAny(rest, "]*<") && !strings.Contains(s, "*") {
			return -1, "", refuse("a '[' without its ']' (carbon refuses the rule)")
		}
		return -1, "", unsupported("a bracket expression that does not end in its part")
	}
	if escaped {
		return i + 1, "", is
	}
	m := s[1:i]
	for k := 0; k < len(m); k++ {
		switch {
		case k+2 < len(m) && m[k+1] == '-' && m[k] != '-' && m[k+2] != '-':
			if m[k] > m[k+2] {
				return i + 1, "", refuse("bad character range %s in a bracket expression (carbon refuses the rule)", m[k:k+3])
			}
			k += 2
		case m[k] == '-' && k != 0 && k != len(m)-1 && is == nil:
			is = unsupported("a bracket expression with a '-' that is neither first, last nor a range")
		}
	}
	return i + 1, s[:i+1], is
}

// translateOutput turns an output template into a write_to. carbon's
// build_template replaces every '<' by "%(" and every '>' by ")s" and fills
// the result with Python's % operator and the fields: "%(name)s" is the
// field, "%%" a '%'. Fields become back references (\N, or \g{N} before a
// digit or from 10 on).
func translateOutput(out string, fields []string, iss *issues) string {
	add := func(is *issue) string { iss.add("output template "+out, is); return "" }
	t := strings.ReplaceAll(strings.ReplaceAll(out, "<", "%("), ">", ")s")
	index := map[string]int{}
	for i, f := range fields {
		index[f] = i + 1
	}
	type piece struct {
		lit byte
		ref int
	}
	var ps []piece
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch c {
		case '\\':
			add(unsupported(`a '\' (the router's write_to has no way to write one)`))
			continue
		case '%':
			if i+1 < len(t) && t[i+1] == '%' {
				ps = append(ps, piece{lit: '%'})
				i++
				continue
			}
			if i+1 >= len(t) || t[i+1] != '(' {
				// flags, width, precision and length, then the conversion
				j := i + 1
				for j < len(t) && strings.IndexByte("#0- +123456789*.hlL", t[j]) >= 0 {
					j++
				}
				if j < len(t) && strings.IndexByte("diouxXeEfFgGcrsa", t[j]) >= 0 {
					return add(unsupported("%q (a Python %% format; carbon fills the template with the %% operator)", t[i:j+1]))
				}
				return add(refuseRun("%q: carbon fails on every metric the rule matches (a bad %% format)", t[i:min(j+1, len(t))]))
			}
			// the key runs to the matching ')', counting nested parentheses
			depth, j := 1, i+2
			for ; j < len(t) && depth > 0; j++ {
				switch t[j] {
				case '(':
					depth++
				case ')':
					depth--
				}
			}
			if depth > 0 {
				return add(refuseRun("a '<' without its '>': carbon fails on every metric the rule matches (incomplete format key)"))
			}
			key := t[i+2 : j-1]
			n, ok := index[key]
			if inner, isRef := strings.CutPrefix(key, "%("); isRef && strings.HasSuffix(inner, ")s") && !ok {
				return add(refuseRun("<<%s>> in the output: carbon fills <%s> (and fails on every metric the rule matches)", inner[:len(inner)-2], inner[:len(inner)-2]))
			}
			if !ok {
				return add(refuseRun("<%s> is not a field of the input pattern: carbon fails on every metric the rule matches", key))
			}
			if j >= len(t) || t[j] != 's' {
				k := j
				for k < len(t) && strings.IndexByte("#0- +123456789*.hlL", t[k]) >= 0 {
					k++
				}
				if k < len(t) && strings.IndexByte("diouxXeEfFgGcrsa", t[k]) >= 0 {
					return add(unsupported("%q: a Python %% format other than a field", t[i:k+1]))
				}
				return add(refuseRun("%q: carbon fails on every metric the rule matches (a bad %% format)", t[i:min(k+1, len(t))]))
			}
			ps = append(ps, piece{ref: n})
			i = j
		default:
			ps = append(ps, piece{lit: c})
		}
	}
	var b strings.Builder
	for k, p := range ps {
		if p.ref == 0 {
			b.WriteByte(p.lit)
			continue
		}
		digit := k+1 < len(ps) && ps[k+1].ref == 0 && ps[k+1].lit >= '0' && ps[k+1].lit <= '9'
		if p.ref >= 10 || digit {
			fmt.Fprintf(&b, `\g{%d}`, p.ref)
		} else {
			fmt.Fprintf(&b, `\%d`, p.ref)
		}
	}
	return b.String()
}

// comment keeps s on one comment line.
func comment(s string) string { return registry.TOMLComment(s) }
