package registry

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Command is a `router NAME args...` subcommand a plugin package provides
// (e.g. `router keys` for API keys), so that the core binary does not depend
// on what the command needs.
type Command struct {
	Name    string
	Summary string // one line for `router -h`
	Run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

	// converters are the formats of the "convert" command (AddConverter).
	converters map[string]Converter
}

// AddCommand registers a subcommand; it panics on a bad or duplicate name.
func (r *Registry) AddCommand(c Command) {
	if !validName(strings.ReplaceAll(c.Name, "-", "_")) || c.Run == nil {
		panic(fmt.Sprintf("registry: bad command %q", c.Name))
	}
	if r.commands == nil {
		r.commands = map[string]Command{}
	}
	if _, dup := r.commands[c.Name]; dup {
		panic(fmt.Sprintf("registry: command %q registered twice", c.Name))
	}
	r.commands[c.Name] = c
}

// LookupCommand returns the subcommand name.
func (r *Registry) LookupCommand(name string) (Command, bool) {
	c, ok := r.commands[name]
	return c, ok
}

// Commands returns the subcommands sorted by name.
func (r *Registry) Commands() []Command {
	out := make([]Command, 0, len(r.commands))
	for _, c := range r.commands {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddCommand registers a subcommand with Default; call it only from init().
func AddCommand(c Command) { Default.AddCommand(c) }

// Converter turns another program's configuration into router TOML:
// `router convert NAME args...` runs Run with the arguments after NAME.
type Converter struct {
	Name    string
	Summary string // one line for `router convert -h`, e.g. "[-ms] FILE.json"
	Run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// ParseConverterArgs parses a converter's flags and requires one FILE
// argument. When ok is false the converter returns code: 0 after -h, 2 on a
// usage error (reported on the flag set's output).
func ParseConverterArgs(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// convertCommand is the name of the command that dispatches to converters.
const convertCommand = "convert"

// AddConverter registers a configuration format of `router convert`; the
// first one registers the convert command itself. It panics on a bad or
// duplicate name or a nil run.
func (r *Registry) AddConverter(name, summary string, run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int) {
	if !validName(strings.ReplaceAll(name, "-", "_")) || run == nil {
		panic(fmt.Sprintf("registry: bad converter %q", name))
	}
	c, ok := r.commands[convertCommand]
	if !ok {
		r.AddCommand(Command{Name: convertCommand, Run: r.runConvert, converters: map[string]Converter{}})
		c = r.commands[convertCommand]
	}
	if c.converters == nil {
		panic("registry: command convert was registered without AddConverter")
	}
	if _, dup := c.converters[name]; dup {
		panic(fmt.Sprintf("registry: converter %q registered twice", name))
	}
	c.converters[name] = Converter{Name: name, Summary: summary, Run: run}
	names := make([]string, 0, len(c.converters))
	for _, cv := range r.Converters() {
		names = append(names, cv.Name)
	}
	c.Summary = "convert " + strings.Join(names, "|") + " FILE: print the equivalent router TOML"
	r.commands[convertCommand] = c
}

// Converters returns the formats of `router convert`, sorted by name.
func (r *Registry) Converters() []Converter {
	c := r.commands[convertCommand]
	out := make([]Converter, 0, len(c.converters))
	for _, cv := range c.converters {
		out = append(out, cv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddConverter registers a format of `router convert` with Default; call it
// only from init().
func AddConverter(name, summary string, run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int) {
	Default.AddConverter(name, summary, run)
}

// convertUsage lists the formats.
func (r *Registry) convertUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: router convert FORMAT [options] FILE")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Prints the router configuration (TOML) equivalent to another program's")
	fmt.Fprintln(w, "configuration file. Formats:")
	fmt.Fprintln(w)
	for _, cv := range r.Converters() {
		fmt.Fprintf(w, "  router convert %s %s\n", cv.Name, cv.Summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "router convert FORMAT -h describes one.")
}

// runConvert dispatches `router convert FORMAT args...` on FORMAT.
func (r *Registry) runConvert(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		r.convertUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		r.convertUsage(stdout)
		return 0
	}
	cv, ok := r.commands[convertCommand].converters[args[0]]
	if !ok {
		r.convertUsage(stderr)
		names := make([]string, 0)
		for _, c := range r.Converters() {
			names = append(names, c.Name)
		}
		fmt.Fprintf(stderr, "\nrouter convert: unknown format %q (this binary converts: %s)\n", args[0], strings.Join(names, ", "))
		return 2
	}
	return cv.Run(ctx, args[1:], stdin, stdout, stderr)
}

// QuoteTOML quotes s as a TOML basic string for a converter's output. "${"
// is written "\u0024{" so that the loader's ${VAR} expansion leaves it
// alone.
func QuoteTOML(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		case r == '$' && strings.HasPrefix(s[i+1:], "{"):
			b.WriteString(`\u0024`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// QuoteTOMLLiteral quotes an expression for a converter's output: a TOML
// literal string when it can be one (no single quote, no control
// character, no "${"), so that it reads as written, else QuoteTOML.
func QuoteTOMLLiteral(s string) string {
	if strings.ContainsRune(s, '\'') || strings.Contains(s, "${") || strings.IndexFunc(s, func(r rune) bool {
		return (r < 0x20 && r != '\t') || r == 0x7f
	}) >= 0 {
		return QuoteTOML(s)
	}
	return "'" + s + "'"
}

// ConvertError is what a converter reports about its input.
type ConvertError interface {
	error
	// IsUnsupported: a construct the router cannot express yet (exit
	// status 2), rather than an input the original refuses (1).
	IsUnsupported() bool
}

// ReportConvertErrors writes each error as "router convert: ERR" and
// returns the exit status: 2 when every error is a construct not supported
// yet, 1 when the input itself is wrong.
func ReportConvertErrors[E ConvertError](w io.Writer, errs []E) int {
	code := 2
	for _, e := range errs {
		fmt.Fprintf(w, "router convert: %v\n", e)
		if !e.IsUnsupported() {
			code = 1
		}
	}
	return code
}

// TOMLComment keeps s on one comment line of a converted file: valid UTF-8,
// control characters and Unicode line separators replaced by spaces.
func TOMLComment(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}

// FormatDuration writes d as a TOML duration the router reads, without zero
// units ("10s", "1m", "1h30m", "250ms").
func FormatDuration(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, z) {
			s = s[:len(s)-len(z)+1]
		}
	}
	return s
}
