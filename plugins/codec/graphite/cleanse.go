package graphite

// Cleanser normalises Graphite lines as carbon-c-relay (3.7.3) does with
// every line it reads, before any rule sees it, so that a router taking
// over from it forwards the same bytes. It is what inputs.graphite does
// with cleanse = true; Parse then reads the cleansed line.
//
// Byte by byte (carbon-c-relay's dispatcher):
//
//   - Spaces, tabs and dots are separators; those at the start of the line
//     are dropped. The first space or tab ends the name: a '.' just before
//     it is dropped and it becomes one space. Any other separator is dropped
//     when it repeats the byte before it ("a..b" is "a.b", runs of blanks
//     are one space) or follows the end of the name, and a tab becomes a
//     space. This holds in the value and timestamp too: "1..5" is "1.5".
//   - Unless the allowed characters include ';', the first ';' starts the
//     tags: it ends the name as a space would (a separator just after it is
//     dropped), without the dot rule.
//   - In the name, a byte other than [A-Za-z0-9] and the allowed characters
//     becomes '_' (one per byte: a two-byte UTF-8 character gives "__").
//     After the name (tags, value, timestamp) every byte is kept.
//   - A NUL byte always becomes '_'.
//
// A line is dropped when nothing is left of it, when it has no name end
// (no blank, and no ';' starting tags), when the cleansed line with its
// '\n' is longer than the maximum input length, or when the name (up to the
// last name end seen: a ';' in the value moves it) is longer than the
// maximum metric length.
//
// carbon-c-relay ends a line at '\r' as at '\n': the caller splits lines at
// both, and Cleanse gets one without either.
//
// A Cleanser is read-only after NewCleanser: safe for concurrent use.
type Cleanser struct {
	class    [256]uint8 // each byte's class: cName, cSep, cSemi or cOther
	tags     bool       // ';' starts the tags
	maxInput int        // a cleansed line plus '\n' may have this many bytes
	maxName  int        // a name may have this many bytes
}

// Byte classes of a Cleanser.
const (
	cOther = iota // becomes '_' in a name; kept after it (but NUL)
	cName         // [A-Za-z0-9] and the allowed characters: kept
	cSep          // ' ', '\t', '.'
	cSemi         // ';' when it starts the tags
)

// DefaultAllowedChars is carbon-c-relay's default list of the characters
// allowed in a name besides [A-Za-z0-9] (its -c).
const DefaultAllowedChars = "-_:#"

// DefaultMaxInputLength is carbon-c-relay's default maximum input length (its
// -M, METRIC_BUFSIZ): the cleansed line with its '\n'.
const DefaultMaxInputLength = 32768

// Cleanse errors: constant values, like the parse errors.
var (
	// ErrCleansedEmpty: the line was only separators.
	ErrCleansedEmpty = cleanseError{"graphite: nothing left after cleansing (only blanks and dots)", false}
	// ErrNoSeparator: the line has no blank after its name (and no ';'
	// starting tags).
	ErrNoSeparator = cleanseError{"graphite: no blank after the name", false}
	// ErrInputTooLong: the cleansed line is longer than the maximum input length.
	ErrInputTooLong = cleanseError{"graphite: cleansed line longer than max_input_length", true}
	// ErrNameTooLong: the cleansed name is longer than the maximum metric length.
	ErrNameTooLong = cleanseError{"graphite: cleansed name longer than max_metric_length", true}
)

// cleanseError is a cleanse error; TooLong reports a length limit (inputs
// count those as lines too long).
type cleanseError struct {
	msg     string
	tooLong bool
}

func (e cleanseError) Error() string { return e.msg }

// TooLong reports whether the line was dropped for its length.
func (e cleanseError) TooLong() bool { return e.tooLong }

// NewCleanser returns a cleanser keeping [A-Za-z0-9] and the bytes of
// allowed in names, dropping lines whose cleansed form plus '\n' is longer
// than maxInput bytes, or whose name is longer than maxName bytes
// (carbon-c-relay's -c, -M and -m). maxInput <= 0 is
// DefaultMaxInputLength; maxName <= 0 is no limit of its own, as
// carbon-c-relay's default makes it the maximum input length.
func NewCleanser(allowed string, maxInput, maxName int) *Cleanser {
	c := &Cleanser{tags: true, maxInput: maxInput, maxName: maxName}
	if c.maxInput <= 0 {
		c.maxInput = DefaultMaxInputLength
	}
	if c.maxName <= 0 {
		c.maxName = c.maxInput
	}
	for b := byte('0'); b <= '9'; b++ {
		c.class[b] = cName
	}
	for b := byte('a'); b <= 'z'; b++ {
		c.class[b] = cName
		c.class[b-'a'+'A'] = cName
	}
	for i := 0; i < len(allowed); i++ {
		if allowed[i] == ';' {
			c.tags = false
		}
		if allowed[i] != 0 {
			c.class[allowed[i]] = cName
		}
	}
	// separators whatever allowed says, and ';' when it starts the tags
	c.class[' '], c.class['\t'], c.class['.'] = cSep, cSep, cSep
	if c.tags {
		c.class[';'] = cSemi
	}
	return c
}

// Cleanse rewrites line in place (the cleansed line is never longer) and
// returns it, a prefix of line; or, with an error, drops it, returning what
// the cleansing made of it so far (for a log). line holds no '\r' or '\n'.
// It does not allocate.
func (c *Cleanser) Cleanse(line []byte) ([]byte, error) {
	q := 0   // line[:q] is the cleansed line so far (q <= the byte read)
	fs := -1 // where the name ended (the space or ';' there), -1: not yet
	tags := c.tags
	for p := 0; p < len(line); p++ {
		b := line[p]
		switch c.class[b] {
		case cName:
			line[q] = b
			q++
		case cSep:
			if q == 0 {
				continue // no leading separators
			}
			if b == '\t' {
				b = ' '
			}
			if b == ' ' && fs < 0 {
				if line[q-1] == '.' {
					q-- // no trailing dot in the name
				}
				fs = q
				line[q] = ' '
				q++
			} else if line[q-1] != b && q-1 != fs {
				line[q] = b
				q++
			}
		case cSemi:
			if tags {
				tags = false
				fs = q
				line[q] = ';'
				q++
				break
			}
			fallthrough // not allowed: ';' would be in allowed otherwise
		default:
			if b == 0 || fs < 0 {
				b = '_'
			}
			line[q] = b
			q++
		}
	}
	out := line[:q:q]
	switch {
	case q == 0:
		return out, ErrCleansedEmpty
	case fs < 0:
		return out, ErrNoSeparator
	case q > c.maxInput-1:
		return out, ErrInputTooLong
	case fs > c.maxName:
		return out, ErrNameTooLong
	}
	return out, nil
}
