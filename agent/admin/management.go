package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/config"
)

// The management interface ([agent] management_addr) speaks both dialects
// operators of StatsD proxies script against: go-statsd-proxy's (ping, stats,
// memstats) and Etsy statsd's (help, config, health [up|down], status, quit).
// It is line based ('\n' or "\r\n"), many commands per connection, and a
// command the client does not end with a newline is answered as soon as it
// is whole (cmdReader, mgmtComplete); lines are bounded, idle connections
// are closed, and so are connections past a limit.
const (
	mgmtMaxLine  = 1024
	mgmtIdle     = 5 * time.Minute
	mgmtMaxConns = 64
)

// management serves management_addr for a router.
type management struct {
	r        Router
	ctl      *control
	draining *atomic.Bool // "health down"
	started  time.Time
	log      zerolog.Logger
}

func startManagement(addr string, m *management) (*tcpService, error) {
	return startTCPService(addr, "management_addr", mgmtMaxConns, m.serve, m.log)
}

func (m *management) serve(c net.Conn) {
	r := newCmdReader(c, mgmtMaxLine, mgmtComplete)
	w := bufio.NewWriter(c)
	authed := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(mgmtIdle))
		cmd, err := r.next()
		if errors.Is(err, errLineTooLong) {
			fmt.Fprintln(w, "ERROR line too long")
			w.Flush()
			return
		}
		if err != nil {
			return
		}
		ok := m.command(cmd, w, &authed, c.RemoteAddr().String())
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if w.Flush() != nil || !ok {
			return
		}
	}
}

// mgmtComplete reports whether a command the client has not ended with a
// newline is whole, so that it is answered at once, as proxy.js and
// go-statsd-proxy answer a bare "health" or "ping". It is not when the
// read may have cut it: a word that is the beginning of a command ("hea"),
// "health" followed by a blank or by the beginning of up or down, and
// "auth", whose token is never tried in halves (a wrong one closes the
// connection). Anything else is answered, ERROR included.
func mgmtComplete(line string) bool {
	f := strings.Fields(strings.ToLower(line))
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "auth":
		return false
	case "health":
		switch {
		case len(f) == 1:
			return !endsBlank(line)
		case len(f) == 2:
			return endsBlank(line) || !cutShort(f[1], "up", "down")
		}
		return true
	}
	return len(f) > 1 || endsBlank(line) ||
		!cutShort(f[0], "ping", "help", "quit", "auth", "health", "status", "stats", "memstats", "config")
}

// command answers one command; false means close the connection. With an
// api_token, "health up|down" (which moves load balancers' traffic) needs
// "auth TOKEN" first on the connection; *authed remembers it.
func (m *management) command(cmd string, w io.Writer, authed *bool, remote string) bool {
	f := strings.Fields(cmd)
	switch strings.ToLower(f[0]) {
	case "ping":
		fmt.Fprintln(w, "pong")
	case "help":
		fmt.Fprintln(w, "Commands: config, health, status, quit, ping, stats, memstats, auth")
	case "quit":
		return false
	case "auth":
		if len(f) != 2 || !m.ctl.tokenOK(f[1]) {
			m.ctl.refuse(remote, "bad token")
			fmt.Fprintln(w, "ERROR bad token")
			return false
		}
		*authed = true
		fmt.Fprintln(w, "OK")
	case "health":
		if len(f) > 1 {
			if m.ctl.hasToken && !*authed {
				m.ctl.refuse(remote, "no token")
				fmt.Fprintln(w, "ERROR a token is required: send \"auth TOKEN\" first")
				return true
			}
			switch strings.ToLower(f[1]) {
			case "up":
				m.draining.Store(false)
				m.log.Info().Msg("management: health up")
			case "down":
				m.draining.Store(true)
				m.log.Warn().Msg("management: health down (draining)")
			default:
				fmt.Fprintln(w, "ERROR")
				return true
			}
		}
		if m.draining.Load() {
			fmt.Fprintln(w, "health: down")
		} else {
			fmt.Fprintln(w, "health: up")
		}
	case "status":
		fmt.Fprintf(w, "uptime: %d\n", int(time.Since(m.started).Seconds()))
		outs := m.r.Outputs()
		var up, down []string
		for _, o := range outs {
			if o.Spec == "" {
				continue
			}
			if o.Healthy {
				up = append(up, o.Spec)
			} else {
				down = append(down, o.Spec)
			}
		}
		fmt.Fprintf(w, "nodes: %s\n", strings.Join(up, " "))
		fmt.Fprintf(w, "nodes_down: %s\n", strings.Join(down, " "))
		for _, o := range outs {
			fmt.Fprintf(w, "output %s: sent=%d dropped=%d queued=%d up=%t\n", o.ID, o.Sent, o.Dropped, o.Queued, o.Healthy)
		}
	case "stats":
		fmt.Fprintf(w, "time running in seconds: %d\n", int(time.Since(m.started).Seconds()))
		inputs := m.r.Inputs()
		var received uint64
		for _, in := range inputs {
			received += in.Received
		}
		fmt.Fprintf(w, "packets_received: %f\n", float64(received))
		for _, in := range inputs {
			fmt.Fprintf(w, "input %s received: %d\n", in.ID, in.Received)
		}
	case "memstats":
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for _, kv := range []struct {
			k string
			v uint64
		}{
			{"alloc", ms.Alloc}, {"total alloc", ms.TotalAlloc}, {"sys", ms.Sys}, {"lookups", ms.Lookups},
			{"mallocs", ms.Mallocs}, {"frees", ms.Frees}, {"heap alloc", ms.HeapAlloc}, {"heap sys", ms.HeapSys},
			{"heap idle", ms.HeapIdle}, {"heap in use", ms.HeapInuse}, {"heap released", ms.HeapReleased},
			{"heap objects", ms.HeapObjects},
		} {
			fmt.Fprintf(w, "%s: %d\n", kv.k, kv.v)
		}
	case "config":
		cfg := m.r.Config()
		fmt.Fprintf(w, "config: %s\n", cfg.File)
		for _, in := range cfg.Inputs {
			fmt.Fprintf(w, "inputs.%s: %s\n", in.Name, in.ID)
		}
		for _, p := range cfg.Processors {
			fmt.Fprintf(w, "processors.%s: %s\n", p.Name, p.ID)
		}
		for _, p := range cfg.Aggregators {
			fmt.Fprintf(w, "aggregators.%s: %s\n", p.Name, p.ID)
		}
		var walk func(in *config.Instance, depth int)
		walk = func(in *config.Instance, depth int) {
			fmt.Fprintf(w, "%soutputs.%s: %s %s\n", strings.Repeat("  ", depth), in.Name, in.ID, in.Spec())
			for _, t := range in.Targets {
				walk(t, depth+1)
			}
		}
		for _, o := range cfg.Outputs {
			walk(o, 0)
		}
	default:
		fmt.Fprintln(w, "ERROR")
	}
	return true
}
