package crelay_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricsrouter/router/compat/crelay"
	"github.com/metricsrouter/router/registry"
)

// convert writes text to dir/relay.conf and runs the command on it.
func convert(t *testing.T, dir, text string, args ...string) (int, string, string) {
	t.Helper()
	file := filepath.Join(dir, "relay.conf")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := crelay.Run(registry.Default, append(args, file), &out, &errb)
	return code, out.String(), strings.ReplaceAll(errb.String(), file, "relay.conf")
}

const cl = "cluster a forward 127.0.0.1;\n"

// TestUnsupported: what carbon-c-relay accepts and the router cannot
// express yet fails with exit status 2, every construct named with its
// file and line, and nothing on standard output.
func TestUnsupported(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, conf string
		want       []string
	}{
		{"aggregate to blackhole", cl + "aggregate ^a\\.(.*) every 10 seconds expire after 20 seconds compute sum write to b.\\1 send to blackhole;\n",
			[]string{"relay.conf:2: aggregate ... send to blackhole is not supported by router yet"}},
		{"aggregate feeding itself", cl + "aggregate ^a\\.(.*) every 10 seconds expire after 20 seconds compute sum write to a.\\1_sum;\n",
			[]string{"relay.conf:2: aggregate ^a\\.(.*) is not supported by router yet (aggregate: a produced metric (a.x_sum"}},
		{"transport over udp", cl + "cluster b forward 127.0.0.1:2004 proto udp transport gzip;\n",
			[]string{"relay.conf:2: cluster b: transport gzip over proto udp is not supported by router"}},
		{"ssl over udp", "cluster b forward\n  127.0.0.1:2004 proto udp transport plain ssl\n  127.0.0.1:2005 proto udp transport lz4 ssl;\n",
			[]string{"relay.conf:2: cluster b: transport plain ssl over proto udp", "relay.conf:3: cluster b: transport lz4 ssl over proto udp"}},
		{"mtls (carbon-c-relay 3.8)", "cluster b forward 127.0.0.1:2004 transport plain mtls c.pem k.pem;\n",
			[]string{"relay.conf:1: cluster b: member mtls: carbon-c-relay 3.7 has no mtls clause (3.8 has) and reads mtls and the words after it as more servers"}},
		{"useall with a name", "cluster a forward useall relay.example.com:2003;\n",
			[]string{"relay.conf:1: cluster a: useall (a destination per address relay.example.com resolves to) is not supported by router yet"}},
		{"syslog", "cluster a forward 127.0.0.1 type syslog;\n",
			[]string{"relay.conf:1: cluster a: type syslog is not supported by router yet"}},
		{"reset counters", cl + "statistics\n  reset counters after interval;\n",
			[]string{"relay.conf:3: statistics reset counters after interval is not supported by router yet"}},
		{"prefix upper case", cl + "statistics prefix with x.\\^2;\n",
			[]string{`relay.conf:2: statistics prefix with x.\^2: the upper-cased host name (\^2) is not supported by router yet`}},
		{"prefix domain", cl + "statistics prefix with x.\\3;\n",
			[]string{`relay.conf:2: statistics prefix with x.\3: \3 (the domain) is read past`}},
		{"prefix {host}", cl + "statistics prefix with \"x.{host}\";\n",
			[]string{`relay.conf:2: statistics prefix with x.{host}: the prefix holds {host}`}},
		{"no cluster", "match * send to blackhole;\n",
			[]string{"relay.conf: a configuration without clusters is not supported by router"}},
		{"member twice", "cluster a carbon_ch 127.0.0.1:2003 127.0.0.1:2003;\n",
			[]string{"relay.conf:1: cluster a: 127.0.0.1:2003 is listed twice"}},
		{"short ipv4 in a hash", "cluster a carbon_ch 127.1:2003 127.0.0.2;\n",
			[]string{"relay.conf:1: cluster a: 127.1: carbon-c-relay hashes the address as written"}},
		{"not UTF-8", cl + "match \"\xff\" send to a;\n",
			[]string{"relay.conf:2: expression \"\\xff\" is not valid UTF-8"}},
		{"a regex the router refuses", cl + "match (a)\\1 send to a;\n",
			[]string{`relay.conf:2: match (a)\1 is not supported by router yet (`}},
		{"several at once", "cluster a forward 127.0.0.1 type syslog;\naggregate ^a every 1 seconds expire after 2 seconds compute sum write to b send to blackhole;\nmatch ^b send to a;\ncluster c forward 127.0.0.1:2004 proto udp transport gzip;\n",
			[]string{"relay.conf:1: cluster a: type syslog", "relay.conf:2: aggregate", "relay.conf:4: cluster c: transport gzip over proto udp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := convert(t, dir, c.conf)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errs)
			}
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if len(lines) != len(c.want) {
				t.Fatalf("%d errors, want %d:\n%s", len(lines), len(c.want), errs)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(lines[i], "router convert: "+w) {
					t.Errorf("error %d:\n got %s\nwant %s", i, lines[i], w)
				}
			}
		})
	}
}

// TestRefused: what carbon-c-relay refuses (or accepts and then crashes
// on) fails with exit status 1 and its file and line.
func TestRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, conf, want string }{
		{"syntax", "cluster a\n  forward\n  ;\n", "relay.conf:3: syntax error, unexpected ';', expecting string"},
		{"keyword in the wrong place", cl + "match * send to a stop stop;\n", "relay.conf:2: syntax error, unexpected 'stop', expecting ';'"},
		{"missing semicolon at the end", cl + "match * send to a\n", "relay.conf:3: syntax error, unexpected end of file, expecting ';'"},
		{"comment without newline", cl + "# the end", "relay.conf:2: syntax error, unexpected character \"#\""},
		{"unknown cluster", cl + "match *\n  send to b;\n", "relay.conf:3: unknown cluster"},
		{"cluster defined later", "match * send to a;\n" + cl, "relay.conf:1: unknown cluster"},
		{"bad regex", cl + "\nmatch a( send to a;\n", "relay.conf:3: invalid expression 'a(': Unmatched ( or \\("},
		{"bad validate", cl + "match * validate [z-a] else drop;\n", "relay.conf:2: invalid expression '[z-a]': Invalid range end"},
		{"bad port", "cluster a forward 127.0.0.1:99999;\n", "relay.conf:1: invalid port number '99999'"},
		{"no bracket", "cluster a forward [::1;\n", "relay.conf:1: expected ']'"},
		{"replication", "cluster a carbon_ch replication 3 127.0.0.1 127.0.0.2;\n", "relay.conf:1: invalid cluster 'a': replication count (3) is larger than the number of servers (2)"},
		{"same name", cl + cl, "relay.conf:2: cluster with the same name already defined"},
		{"shared any_of", cl + "cluster b any_of 127.0.0.1 127.0.0.2;\n", "relay.conf:2: cannot share server 127.0.0.1:2003 with any_of/failover cluster 'b'"},
		{"instance", "cluster a carbon_ch 127.0.0.1=x;\ncluster b carbon_ch 127.0.0.1=y;\n", "relay.conf:2: cannot set instance 'y' for server 127.0.0.1:2003: server was previously defined with instance 'x'"},
		{"duplicate listener", "listen type linemode 2003 proto tcp\n  127.0.0.1:2003 proto tcp;\n" + cl, "relay.conf:2: duplicate listener 127.0.0.1 with 0.0.0.0 for port 2003"},
		{"udp with ssl", "listen type linemode transport plain ssl x.pem 2003 proto udp;\n" + cl, "relay.conf:1: cannot use UDP transport for compressed/encrypted stream"},
		{"udp with gzip", "listen type linemode transport gzip 2003 proto tcp 2004 proto udp;\n" + cl, "relay.conf:1: cannot use UDP transport for compressed/encrypted stream"},
		{"listen mtls (carbon-c-relay 3.8)", "listen type linemode transport plain mtls c.pem 2003 proto tcp;\n" + cl, "relay.conf:1: syntax error, unexpected character \"c\", expecting 'proto'"},
		{"ssl without its certificate", "listen type linemode transport plain ssl 2003 proto tcp;\n" + cl, "relay.conf:1: syntax error"},
		{"statistics twice", cl + "statistics send to a;\nsend statistics to a;\n", "relay.conf:3: duplicate 'statistics send to' not allowed"},
		{"interval", cl + "statistics submit every 0 seconds;\n", "relay.conf:2: interval must be > 0"},
		{"aggregate expire", cl + "aggregate ^a every 10 seconds expire after 10 seconds compute sum write to b;\n", "relay.conf:2: expire must be greater than interval"},
		{"unterminated string", cl + "match \"abc\n send to a;\n", "relay.conf:2: unterminated string"},
		{"empty string", cl + "match \"\" send to a;\n", "relay.conf:2: empty string"},
		{"string too large", cl + "match \"" + strings.Repeat("x", 1024) + "\" send to a;\n", "relay.conf:2: string too large"},
		{"match without send", cl + "match ^a;\n", "relay.conf:2: match without send to or validate: carbon-c-relay accepts it but crashes"},
		{"rewrite star", cl + "rewrite \"*\" into b;\n", "relay.conf:2: rewrite \"*\": carbon-c-relay accepts it but crashes"},
		{"member without host", "cluster a forward :2003;\n", "relay.conf:1: cluster a: member ':2003' has no host: carbon-c-relay crashes on it"},
		{"empty host", "cluster a forward \"[]:2003\";\n", "relay.conf:1: cluster a: member '[]' has an empty host"},
		{"include missing", cl + "include " + filepath.Join(dir, "missing.conf") + ";\n", "relay.conf:2: unable to stat file '" + filepath.Join(dir, "missing.conf") + "': no such file or directory"},
		{"include glob matches nothing", cl + "include " + filepath.Join(dir, "none-*.conf") + ";\n", "relay.conf:2: pattern '" + filepath.Join(dir, "none-*.conf") + "' did not match any files"},
		{"include a directory", cl + "include " + dir + ";\n", "relay.conf:2: cannot open non-regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := convert(t, dir, c.conf)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errs)
			}
			if !strings.HasPrefix(errs, "router convert: "+c.want) {
				t.Errorf("\n got %s\nwant %s", errs, c.want)
			}
		})
	}
}
