package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/metricsrouter/router/agent"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/consul/api"

	"github.com/metricsrouter/router/registry"
)

func init() {
	registry.AddCommand(registry.Command{
		Name:    "keys",
		Summary: "list|create|regen|delete gateway API keys in Consul or a key file (pgw-key)",
		Run:     runKeys,
	})
}

const keysUsage = `Usage: router keys [flags] list [names|all] | create NAME | regen NAME | delete NAME

Manages the API keys of the HTTPS batch gateway (inputs.https_batch), like
Polymur's pgw-key. New keys are 32 hex characters from crypto/rand (128 bits),
printed once.

  list [names]   the key names, one per line, sorted
  list all       "name: key" per line
  create NAME    register NAME with a new key (fails if NAME exists)
  regen NAME     give NAME a new key (the old one stops working)
  delete NAME    remove NAME and its key

NAME: letters, digits, '.', '_' and '-' (not starting or ending with '.').
The store is -file PATH, else the keystore table of -config FILE, else Consul
(-consul, -token, -prefix; these override what -config says).
Exit status: 0 done, 1 failed, 2 usage error.

Flags:
`

// Command errors.
var (
	errExists   = errors.New("already exists")
	errNotFound = errors.New("no such key name")
	errRaced    = errors.New("changed by someone else meanwhile; try again")
)

// commandTimeout bounds one `router keys` run against Consul.
const commandTimeout = 30 * time.Second

// runKeys is `router keys`.
func runKeys(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("router keys", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, keysUsage)
		flags.PrintDefaults()
	}
	consulAddr := flags.String("consul", "", "Consul HTTP API address (default $CONSUL_HTTP_ADDR, else "+DefaultAddress+")")
	token := flags.String("token", "", "Consul ACL token (default $CONSUL_HTTP_TOKEN)")
	prefix := flags.String("prefix", "", "Consul KV prefix of the keys (default "+DefaultPrefix+")")
	file := flags.String("file", "", "key file (*.toml or *.json) instead of Consul; written back atomically in its format")
	config := flags.String("config", "", "gateway configuration: use the keystore table of its [[inputs.https_batch]]")
	id := flags.String("id", "", "with -config: the id of the [[inputs.https_batch]] to use when there are several")

	// flags may come before or after the command words
	var words []string
	rest := args
	for {
		if err := flags.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		rest = flags.Args()
		if len(rest) == 0 {
			break
		}
		words = append(words, rest[0])
		rest = rest[1:]
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "router keys: "+format+" (see router keys -h)\n", a...)
		return 2
	}
	if len(words) == 0 {
		return usageErr("missing command: list, create, regen or delete")
	}
	cmd, cmdArgs := words[0], words[1:]
	switch cmd {
	case "list":
		if len(cmdArgs) > 1 || len(cmdArgs) == 1 && cmdArgs[0] != "names" && cmdArgs[0] != "all" {
			return usageErr("usage: list [names|all]")
		}
	case "create", "regen", "delete":
		if len(cmdArgs) != 1 {
			return usageErr("usage: %s NAME", cmd)
		}
		if err := validName(cmdArgs[0]); err != nil {
			return usageErr("%v", err)
		}
	default:
		return usageErr("unknown command %q: want list, create, regen or delete", cmd)
	}
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["file"] && (set["config"] || set["consul"] || set["token"] || set["prefix"]) {
		return usageErr("-file cannot be combined with -config, -consul, -token or -prefix")
	}
	if set["id"] && !set["config"] {
		return usageErr("-id needs -config")
	}

	var cfg Config
	switch {
	case *file != "":
		cfg = Config{Type: TypeFile, Path: *file}
	case *config != "":
		c, err := keystoreOf(*config, *id)
		if err != nil {
			fmt.Fprintln(stderr, "router keys:", err)
			return 1
		}
		cfg = c
		if cfg.Type == TypeConsul {
			if *consulAddr != "" {
				cfg.Address = *consulAddr
			}
			if *token != "" {
				cfg.Token = *token
			}
			if *prefix != "" {
				cfg.Prefix = *prefix
			}
		} else if set["consul"] || set["token"] || set["prefix"] {
			return usageErr("-consul, -token and -prefix apply to a consul keystore; %s has type = %q", *config, cfg.Type)
		}
	default:
		cfg = Config{Type: TypeConsul, Address: *consulAddr, Token: *token, Prefix: *prefix}
	}
	if err := cfg.normalize(os.LookupEnv); err != nil {
		fmt.Fprintln(stderr, "router keys:", err)
		return 1
	}
	a, err := newAdmin(cfg, *config)
	if err != nil {
		fmt.Fprintln(stderr, "router keys:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := runAdmin(ctx, a, cmd, cmdArgs, stdout); err != nil {
		fmt.Fprintf(stderr, "router keys: %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func runAdmin(ctx context.Context, a admin, cmd string, args []string, stdout io.Writer) error {
	defer a.close()
	switch cmd {
	case "list":
		pairs, err := a.list(ctx)
		if err != nil {
			return err
		}
		all := len(args) == 1 && args[0] == "all"
		var b strings.Builder
		for _, p := range pairs {
			if all {
				fmt.Fprintf(&b, "%s: %s\n", p.name, p.key)
			} else {
				fmt.Fprintln(&b, p.name)
			}
		}
		_, err = io.WriteString(stdout, b.String())
		return err
	case "create", "regen": // a new key, for a new name or an existing one
		store, done := a.create, "Successfully registered %[1]s with key %[2]s\n"
		if cmd == "regen" {
			store, done = a.update, "Successfully regenerated key for %[1]s: %[2]s\n"
		}
		key := NewKey()
		if err := store(ctx, args[0], key); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		_, err := fmt.Fprintf(stdout, done, args[0], key)
		return err
	default: // delete
		if err := a.remove(ctx, args[0]); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		_, err := fmt.Fprintf(stdout, "Successfully deleted %s\n", args[0])
		return err
	}
}

// NewKey returns a new API key: 32 lowercase hex characters (128 bits) from
// crypto/rand.
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b[:])
}

// validName checks a key name given to `router keys`.
func validName(name string) error {
	if name == "" {
		return errors.New("empty key name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("bad key name %q: use letters, digits, '.', '_' and '-'", name)
		}
	}
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return fmt.Errorf("bad key name %q: it must not start or end with '.'", name)
	}
	return nil
}

// keystoreOf reads the keystore table of the [[inputs.https_batch]] of a
// gateway configuration (with ${VAR} expanded as the router does); other
// tables and keys are ignored.
func keystoreOf(file, id string) (Config, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	text, err := agent.ExpandEnv(string(raw), os.LookupEnv)
	if err != nil {
		return Config{}, fmt.Errorf("%s:%w", file, err)
	}
	var doc struct {
		Inputs struct {
			HTTPSBatch []gatewayTable `toml:"https_batch"`
		} `toml:"inputs"`
	}
	if _, err := toml.Decode(text, &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("%s:%d: %s", file, pe.Position.Line, pe.Message)
		}
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	gws := doc.Inputs.HTTPSBatch
	if id != "" {
		gws = slices.DeleteFunc(gws, func(g gatewayTable) bool { return g.ID != id })
	}
	switch {
	case len(gws) == 0 && id != "":
		return Config{}, fmt.Errorf("%s: no [[inputs.https_batch]] with id = %q", file, id)
	case len(gws) == 0:
		return Config{}, fmt.Errorf("%s: no [[inputs.https_batch]] table", file)
	case len(gws) > 1:
		return Config{}, fmt.Errorf("%s: %d [[inputs.https_batch]] tables: choose one with -id", file, len(gws))
	case gws[0].Keystore == nil:
		return Config{}, fmt.Errorf("%s: [[inputs.https_batch]] has no [inputs.https_batch.keystore] table", file)
	}
	return *gws[0].Keystore, nil
}

// gatewayTable is what `router keys -config` reads of an [[inputs.https_batch]].
type gatewayTable struct {
	ID       string  `toml:"id"`
	Keystore *Config `toml:"keystore"`
}

// admin changes the keys of a store.
type admin interface {
	list(ctx context.Context) ([]pair, error) // sorted by name
	create(ctx context.Context, name, key string) error
	update(ctx context.Context, name, key string) error
	remove(ctx context.Context, name string) error
	close()
}

func newAdmin(cfg Config, configFile string) (admin, error) {
	switch cfg.Type {
	case TypeConsul:
		client, tr, err := newConsulClient(cfg.Address, cfg.Token)
		if err != nil {
			return nil, err
		}
		return &consulAdmin{kv: client.KV(), prefix: cfg.Prefix, addr: cfg.Address, closeIdle: tr.CloseIdleConnections}, nil
	case TypeFile:
		return &fileAdmin{path: cfg.Path}, nil
	default:
		var pairs []pair
		if cfg.DevMode {
			pairs = append(pairs, pair{DevName, DevKey})
		}
		for n, k := range cfg.Keys {
			pairs = append(pairs, pair{n, k})
		}
		slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.name, b.name) })
		return &staticAdmin{pairs: pairs, file: configFile}, nil
	}
}

// consulAdmin manages keys in Consul KV: <prefix><name> = <key>.
type consulAdmin struct {
	kv        *api.KV
	prefix    string
	addr      string
	closeIdle func()
}

func (c *consulAdmin) wrap(err error) error { return fmt.Errorf("consul %s: %w", c.addr, err) }

func (c *consulAdmin) list(ctx context.Context) ([]pair, error) {
	kvs, _, err := c.kv.List(c.prefix, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, c.wrap(err)
	}
	var out []pair
	for _, kv := range kvs {
		name := strings.TrimPrefix(kv.Key, c.prefix)
		if _, ok := validSourceName(name); ok {
			out = append(out, pair{name, strings.TrimSpace(string(kv.Value))})
		}
	}
	return out, nil // Consul lists keys sorted
}

func (c *consulAdmin) create(ctx context.Context, name, key string) error {
	// CAS with ModifyIndex 0 writes only if the key does not exist yet
	ok, _, err := c.kv.CAS(&api.KVPair{Key: c.prefix + name, Value: []byte(key)}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return c.wrap(err)
	}
	if !ok {
		return fmt.Errorf("%w (regen replaces its key)", errExists)
	}
	return nil
}

func (c *consulAdmin) get(ctx context.Context, name string) (*api.KVPair, error) {
	p, _, err := c.kv.Get(c.prefix+name, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, c.wrap(err)
	}
	if p == nil {
		return nil, fmt.Errorf("%w in %s at %s", errNotFound, c.prefix, c.addr)
	}
	return p, nil
}

func (c *consulAdmin) update(ctx context.Context, name, key string) error {
	p, err := c.get(ctx, name)
	if err != nil {
		return err
	}
	ok, _, err := c.kv.CAS(&api.KVPair{Key: p.Key, Value: []byte(key), ModifyIndex: p.ModifyIndex}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return c.wrap(err)
	}
	if !ok {
		return errRaced
	}
	return nil
}

func (c *consulAdmin) remove(ctx context.Context, name string) error {
	p, err := c.get(ctx, name)
	if err != nil {
		return err
	}
	ok, _, err := c.kv.DeleteCAS(&api.KVPair{Key: p.Key, ModifyIndex: p.ModifyIndex}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return c.wrap(err)
	}
	if !ok {
		return errRaced
	}
	return nil
}

func (c *consulAdmin) close() { c.closeIdle() }

// fileAdmin manages a TOML or JSON key file, written back atomically in its
// own format and mode (0600 for a new file).
type fileAdmin struct {
	path string
}

// read returns the parsed file and its mode; a missing file is empty when
// create is true.
func (f *fileAdmin) read(create bool) (*keysFile, os.FileMode, error) {
	format, err := formatOf(f.path)
	if err != nil {
		return nil, 0, err
	}
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) && create {
		kf := &keysFile{format: format}
		if format == formatTOML {
			kf.header = "# API keys of the HTTPS batch gateway (inputs.https_batch): name = \"key\".\n" +
				"# Managed with: router keys -file FILE list|create|regen|delete\n\n"
		}
		return kf, 0o600, nil
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, 0, err
	}
	kf, err := parseKeysFile(data, format)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", f.path, err)
	}
	if len(kf.skip) > 0 {
		return nil, 0, fmt.Errorf("%s: bad key name %q (%s): fix the file first", f.path, kf.skip[0].name, kf.skip[0].reason)
	}
	return kf, fi.Mode().Perm(), nil
}

func (f *fileAdmin) write(kf *keysFile, mode os.FileMode) error {
	slices.SortFunc(kf.pairs, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	data, err := kf.render()
	if err != nil {
		return err
	}
	return writeFileAtomic(f.path, data, mode)
}

func (f *fileAdmin) list(context.Context) ([]pair, error) {
	kf, _, err := f.read(false)
	if err != nil {
		return nil, err
	}
	for i := range kf.pairs {
		kf.pairs[i].key = strings.TrimSpace(kf.pairs[i].key)
	}
	return kf.pairs, nil
}

func (f *fileAdmin) create(_ context.Context, name, key string) error {
	kf, mode, err := f.read(true)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(kf.pairs, func(p pair) bool { return p.name == name }) {
		return fmt.Errorf("%w in %s (regen replaces its key)", errExists, f.path)
	}
	kf.pairs = append(kf.pairs, pair{name, key})
	return f.write(kf, mode)
}

func (f *fileAdmin) update(_ context.Context, name, key string) error {
	return f.edit(name, func(kf *keysFile, i int) { kf.pairs[i].key = key })
}

func (f *fileAdmin) remove(_ context.Context, name string) error {
	return f.edit(name, func(kf *keysFile, i int) { kf.pairs = slices.Delete(kf.pairs, i, i+1) })
}

// edit reads the file, changes the pair of name (at i; an error if there is
// none) and writes the file.
func (f *fileAdmin) edit(name string, change func(kf *keysFile, i int)) error {
	kf, mode, err := f.read(false)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(kf.pairs, func(p pair) bool { return p.name == name })
	if i < 0 {
		return fmt.Errorf("%w in %s", errNotFound, f.path)
	}
	change(kf, i)
	return f.write(kf, mode)
}

func (f *fileAdmin) close() {}

// staticAdmin lists the keys of a static keystore; they change only by
// editing the configuration.
type staticAdmin struct {
	pairs []pair
	file  string
}

func (s *staticAdmin) list(context.Context) ([]pair, error) { return s.pairs, nil }
func (s *staticAdmin) create(context.Context, string, string) error {
	return s.readOnly()
}
func (s *staticAdmin) update(context.Context, string, string) error { return s.readOnly() }
func (s *staticAdmin) remove(context.Context, string) error         { return s.readOnly() }
func (s *staticAdmin) close()                                       {}
func (s *staticAdmin) readOnly() error {
	return fmt.Errorf("the keystore of %s has type = \"static\": edit its keys table instead", s.file)
}
