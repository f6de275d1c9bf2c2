package registry

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Command is a `router NAME args...` subcommand a plugin package provides
// (e.g. `router keys` for API keys), so that the core binary does not depend
// on what the command needs.
type Command struct {
	Name    string
	Summary string // one line for `router -h`
	Run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
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
