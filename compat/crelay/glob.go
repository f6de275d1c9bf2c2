package crelay

import (
	"os"
	"slices"
	"strings"
)

// glob is glibc's glob(pattern, 0, NULL, &g) as carbon-c-relay calls it:
// components with wildcards are matched against directory entries with
// fnmatch(FNM_PERIOD) (a leading '.' must be written), backslash escapes,
// and the matches are sorted bytewise (strcoll in the C locale). osPath
// maps a path to where it is read from.
func glob(pattern string, osPath func(string) string) ([]string, error) {
	parts := strings.Split(pattern, "/")
	prefixes := []string{""}
	if strings.HasPrefix(pattern, "/") {
		prefixes = []string{"/"}
		parts = parts[1:]
	}
	for i, comp := range parts {
		last := i == len(parts)-1
		if comp == "" {
			if !last {
				continue
			}
			// a trailing slash: only directories
			var dirs []string
			for _, p := range prefixes {
				if st, err := os.Stat(osPath(p)); err == nil && st.IsDir() {
					dirs = append(dirs, p+"/")
				}
			}
			prefixes = dirs
			break
		}
		var next []string
		if !hasMeta(comp) {
			name := unescape(comp)
			for _, p := range prefixes {
				next = append(next, join(p, name))
			}
			if last {
				var exist []string
				for _, p := range next {
					if _, err := os.Lstat(osPath(p)); err == nil {
						exist = append(exist, p)
					}
				}
				next = exist
			}
			prefixes = next
			continue
		}
		for _, p := range prefixes {
			dir := p
			if dir == "" {
				dir = "."
			}
			ents, err := os.ReadDir(osPath(dir))
			if err != nil {
				continue
			}
			for _, e := range ents {
				if !fnmatch(comp, e.Name()) {
					continue
				}
				full := join(p, e.Name())
				if !last {
					if st, err := os.Stat(osPath(full)); err != nil || !st.IsDir() {
						continue
					}
				}
				next = append(next, full)
			}
		}
		prefixes = next
	}
	slices.Sort(prefixes)
	return prefixes, nil
}

func join(dir, name string) string {
	switch {
	case dir == "":
		return name
	case strings.HasSuffix(dir, "/"):
		return dir + name
	}
	return dir + "/" + name
}

// hasMeta is glibc's __glob_pattern_p: an unescaped '*' or '?', or a '['
// with a ']' after it.
func hasMeta(s string) bool {
	open := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '?', '*':
			return true
		case '\\':
			if i+1 < len(s) {
				i++
			}
		case '[':
			open = true
		case ']':
			if open {
				return true
			}
		}
	}
	return false
}

// unescape removes the backslashes of a component without wildcards.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fnmatch is glibc's fnmatch(pattern, name, FNM_PERIOD) for one path
// component: *, ?, bracket expressions ([!...] and [^...] negate; character
// classes; ranges), backslash escapes; a leading '.' of name is matched
// only by a literal '.'. A '[' without its ']' is an ordinary character.
func fnmatch(pattern, name string) bool {
	return fnm(pattern, name, 0)
}

func fnm(p, n string, ni int) bool {
	pi := 0
	for pi < len(p) {
		c := p[pi]
		pi++
		leading := ni == 0
		switch c {
		case '?':
			if ni >= len(n) || (leading && n[ni] == '.') {
				return false
			}
			ni++
		case '*':
			if ni < len(n) && leading && n[ni] == '.' {
				return false
			}
			for pi < len(p) && (p[pi] == '*' || p[pi] == '?') {
				if p[pi] == '?' {
					if ni >= len(n) {
						return false
					}
					ni++
				}
				pi++
			}
			if pi == len(p) {
				return true
			}
			for k := ni; k <= len(n); k++ {
				if fnm(p[pi:], n, k) {
					return true
				}
			}
			return false
		case '[':
			if ni >= len(n) || (leading && n[ni] == '.') {
				return false
			}
			ok, width := bracketMatch(p[pi:], n[ni])
			if width < 0 {
				// not a bracket expression: '[' is itself
				if n[ni] != '[' {
					return false
				}
				ni++
				continue
			}
			if !ok {
				return false
			}
			pi += width
			ni++
		case '\\':
			if pi < len(p) {
				c = p[pi]
				pi++
			}
			fallthrough
		default:
			if ni >= len(n) || n[ni] != c {
				return false
			}
			ni++
		}
	}
	return ni == len(n)
}

// bracketMatch matches c against the bracket expression p (after '['); it
// returns the bytes of p used up to and including ']', or -1 when p has no
// closing ']'.
func bracketMatch(p string, c byte) (bool, int) {
	i := 0
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	matched := false
	first := true
	for {
		if i >= len(p) {
			return false, -1
		}
		ch := p[i]
		if ch == ']' && !first {
			i++
			break
		}
		first = false
		if ch == '[' && i+1 < len(p) && p[i+1] == ':' {
			end := strings.Index(p[i+2:], ":]")
			if end >= 0 {
				if classMatch(p[i+2:i+2+end], c) {
					matched = true
				}
				i += 2 + end + 2
				continue
			}
		}
		if ch == '\\' && i+1 < len(p) {
			i++
			ch = p[i]
		}
		lo := ch
		i++
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi := p[i+1]
			i += 2
			if hi == '\\' && i < len(p) {
				hi = p[i]
				i++
			}
			if lo <= c && c <= hi {
				matched = true
			}
			continue
		}
		if c == lo {
			matched = true
		}
	}
	return matched != neg, i
}

func classMatch(class string, c byte) bool {
	switch class {
	case "alpha":
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	case "upper":
		return c >= 'A' && c <= 'Z'
	case "lower":
		return c >= 'a' && c <= 'z'
	case "digit":
		return isDigit(c)
	case "xdigit":
		return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	case "alnum":
		return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	case "space":
		return c == ' ' || c >= '\t' && c <= '\r'
	case "blank":
		return c == ' ' || c == '\t'
	case "punct":
		return c > ' ' && c < 0x7f && !(isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
	case "print":
		return c >= ' ' && c < 0x7f
	case "graph":
		return c > ' ' && c < 0x7f
	case "cntrl":
		return c < ' ' || c == 0x7f
	}
	return false
}
