package crelay

import (
	"fmt"
	"strings"
)

// dump renders cfg as carbon-c-relay -t prints its parsed configuration
// (router_printconfig with PMODE_AGGR, the optimiser off), with hostname as
// carbon-c-relay's -H. Tests compare it with carbon-c-relay's own output.
func dump(cfg *Config, hostname string) string {
	var b strings.Builder
	f := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	// transport prints " transport <name> ssl<sslArg>" as far as it is not
	// the default.
	transport := func(name string, ssl bool, sslArg string) {
		if name != "plain" || ssl {
			f(" transport ")
			if name != "plain" {
				f("%s", name)
			}
			if ssl {
				f(" ssl%s", sslArg)
			}
		}
	}
	sendTo := func(list []string, nl bool) {
		f("    send to")
		if len(list) == 1 {
			f(" %s", quoteIdent(list[0]))
		} else {
			for _, d := range list {
				f("\n        %s", quoteIdent(d))
			}
		}
		if nl {
			f("\n")
		}
	}
	if len(cfg.Listeners) > 0 {
		f("listen\n")
		for i := 0; i < len(cfg.Listeners); {
			l := cfg.Listeners[i]
			f("    type linemode")
			transport(l.Transport, l.SSL, " "+quoteIdent(l.PEM))
			f("\n")
			for {
				r := cfg.Listeners[i]
				if r.Proto == "unix" {
					f("        %s proto unix\n", quoteIdent(r.Path))
				} else {
					host := r.Host
					if host != "" {
						host += ":"
					}
					f("        %s%d proto %s\n", host, r.Port, r.Proto)
				}
				i++
				if i == len(cfg.Listeners) || cfg.Listeners[i].Transport != r.Transport || cfg.Listeners[i].SSL != r.SSL {
					break
				}
			}
		}
		f("    ;\n\n")
	}
	st := cfg.Stats
	f("statistics\n    submit every %d seconds\n", st.Interval)
	if st.Reset {
		f("    reset counters after interval\n")
	}
	w := &writer{cfg: cfg, opt: ConvertOptions{Hostname: hostname}}
	pfx, _ := w.prefix()
	f("    prefix with %s\n", quoteIdent(pfx))
	if st.HasSend {
		sendTo(st.Dests, false)
		f("\n    stop\n")
	}
	f("    ;\n\n")
	for _, c := range cfg.Clusters {
		f("cluster %s\n", quoteIdent(c.Name))
		switch c.Type {
		case FileLog, FileLogIP:
			f("    file%s\n", map[bool]string{true: " ip", false: ""}[c.Type == FileLogIP])
			for _, m := range c.Members {
				f("        %s\n", quoteIdent(bracket(m.srv.ip)))
			}
		default:
			switch c.Type {
			case Forward, AnyOf, Failover:
				f("    %s\n", c.Type)
			default:
				f("    %s replication %d%s\n", c.Type, c.Replication, map[bool]string{true: " dynamic", false: ""}[c.Dynamic])
			}
			for _, m := range c.Members {
				s := m.srv
				f("        %s:%d", bracket(s.ip), s.port)
				if c.Type.Hashing() && s.hasInst {
					f("=%s", s.instance)
				}
				if s.proto == "udp" {
					f(" proto udp")
				}
				if s.syslog {
					f(" type syslog")
				}
				transport(s.transport, s.ssl, "")
				f("\n")
			}
		}
		f("    ;\n")
	}
	f("\n")
	for _, r := range cfg.Rules {
		exprs := func() {
			if len(r.Exprs) == 1 {
				f(" %s\n", quoteIdent(r.Exprs[0]))
				return
			}
			f("\n")
			for _, e := range r.Exprs {
				f("        %s\n", quoteIdent(e))
			}
		}
		switch r.Kind {
		case Aggregate:
			f("aggregate")
			exprs()
			f("    every %d seconds\n    expire after %d seconds\n    timestamp at %s of bucket\n", r.Every, r.Expire, r.Timestamp)
			for _, c := range r.Computes {
				t := c.Type
				if t == "percentile" {
					t = fmt.Sprintf("percentile%d", c.Pct)
				}
				f("    compute %s write to\n        %s\n", t, quoteIdent(c.Metric))
			}
			if r.HasSend {
				sendTo(r.Dests, true)
			}
			if r.Stop {
				f("    stop\n")
			}
			f("    ;\n")
		case Rewrite:
			f("rewrite %s\n    into %s\n    ;\n", quoteIdent(r.Exprs[0]), quoteIdent(r.Into))
		case Match:
			f("match")
			exprs()
			if r.Validate != "" {
				f("    validate %s else %s\n", quoteIdent(r.Validate), map[bool]string{true: "log", false: "drop"}[r.ElseLog])
			}
			if r.RouteUsing != "" {
				f("    route using %s\n", quoteIdent(r.RouteUsing))
			}
			if r.HasSend {
				sendTo(r.Dests, false)
				stop := ""
				if r.Stops {
					stop = "    stop\n"
				}
				f("\n%s    ;\n", stop)
			} else {
				f("    ;\n")
			}
		}
	}
	return b.String()
}

func bracket(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}
