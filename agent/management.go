package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"
)

// The management interface ([agent] management_addr) speaks both dialects
// operators of StatsD proxies script against: go-statsd-proxy's (ping, stats,
// memstats) and Etsy statsd's (help, config, health [up|down], status, quit).
// It is line based ('\n' or "\r\n"), many commands per connection; lines are
// bounded, idle connections are closed, and so are connections past a limit.
const (
	mgmtMaxLine  = 1024
	mgmtIdle     = 5 * time.Minute
	mgmtMaxConns = 64
)

func startManagement(addr string, a *Agent) (*tcpService, error) {
	return startTCPService(addr, "management_addr", mgmtMaxConns, a.serveManagement, a.log)
}

func (a *Agent) serveManagement(c net.Conn) {
	r := bufio.NewReaderSize(c, mgmtMaxLine)
	w := bufio.NewWriter(c)
	authed := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(mgmtIdle))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			fmt.Fprintln(w, "ERROR line too long")
			w.Flush()
			return
		}
		cmd := strings.TrimSpace(string(line))
		if cmd == "" {
			if err != nil {
				return
			}
			continue
		}
		if !a.managementCommand(cmd, w, &authed, c.RemoteAddr().String()) {
			w.Flush()
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if w.Flush() != nil || err != nil {
			return
		}
	}
}

// managementCommand answers one command; false means close the connection.
// With an api_token, "health up|down" (which moves load balancers' traffic)
// needs "auth TOKEN" first on the connection; *authed remembers it.
func (a *Agent) managementCommand(cmd string, w io.Writer, authed *bool, remote string) bool {
	f := strings.Fields(cmd)
	outs := a.outputs()
	a.mu.Lock()
	inputs, cfg := a.st.inputs, a.cfg
	a.mu.Unlock()
	switch strings.ToLower(f[0]) {
	case "ping":
		fmt.Fprintln(w, "pong")
	case "help":
		fmt.Fprintln(w, "Commands: config, health, status, quit, ping, stats, memstats, auth")
	case "quit":
		return false
	case "auth":
		if len(f) != 2 || a.ctl == nil || !a.ctl.tokenOK(f[1]) {
			if a.ctl != nil {
				a.ctl.refuse(remote, "bad token")
			}
			fmt.Fprintln(w, "ERROR bad token")
			return false
		}
		*authed = true
		fmt.Fprintln(w, "OK")
	case "health":
		if len(f) > 1 {
			if a.ctl != nil && a.ctl.hasToken && !*authed {
				a.ctl.refuse(remote, "no token")
				fmt.Fprintln(w, "ERROR a token is required: send \"auth TOKEN\" first")
				return true
			}
			switch strings.ToLower(f[1]) {
			case "up":
				a.draining.Store(false)
				a.log.Info().Msg("management: health up")
			case "down":
				a.draining.Store(true)
				a.log.Warn().Msg("management: health down (draining)")
			default:
				fmt.Fprintln(w, "ERROR")
				return true
			}
		}
		if a.draining.Load() {
			fmt.Fprintln(w, "health: down")
		} else {
			fmt.Fprintln(w, "health: up")
		}
	case "status":
		fmt.Fprintf(w, "uptime: %d\n", int(time.Since(a.started).Seconds()))
		var up, down []string
		for _, o := range outs {
			if o.r.Spec == "" {
				continue
			}
			if o.r.Healthy() {
				up = append(up, o.r.Spec)
			} else {
				down = append(down, o.r.Spec)
			}
		}
		fmt.Fprintf(w, "nodes: %s\n", strings.Join(up, " "))
		fmt.Fprintf(w, "nodes_down: %s\n", strings.Join(down, " "))
		for _, o := range outs {
			c := o.r.Counters()
			fmt.Fprintf(w, "output %s: sent=%d dropped=%d queued=%d up=%t\n", o.r.ID, c.Sent.Load(), c.Dropped.Load(), o.r.Len(), o.r.Healthy())
		}
	case "stats":
		fmt.Fprintf(w, "time running in seconds: %d\n", int(time.Since(a.started).Seconds()))
		var received uint64
		for _, ir := range inputs {
			received += ir.em.received.Load()
		}
		fmt.Fprintf(w, "packets_received: %f\n", float64(received))
		for _, id := range sortedKeys(inputs) {
			fmt.Fprintf(w, "input %s received: %d\n", id, inputs[id].em.received.Load())
		}
	case "memstats":
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		for _, kv := range []struct {
			k string
			v uint64
		}{
			{"alloc", m.Alloc}, {"total alloc", m.TotalAlloc}, {"sys", m.Sys}, {"lookups", m.Lookups},
			{"mallocs", m.Mallocs}, {"frees", m.Frees}, {"heap alloc", m.HeapAlloc}, {"heap sys", m.HeapSys},
			{"heap idle", m.HeapIdle}, {"heap in use", m.HeapInuse}, {"heap released", m.HeapReleased},
			{"heap objects", m.HeapObjects},
		} {
			fmt.Fprintf(w, "%s: %d\n", kv.k, kv.v)
		}
	case "config":
		fmt.Fprintf(w, "config: %s\n", cfg.File)
		for _, in := range cfg.Inputs {
			fmt.Fprintf(w, "inputs.%s: %s\n", in.Name, in.ID)
		}
		for _, p := range cfg.Processors {
			fmt.Fprintf(w, "processors.%s: %s\n", p.Name, p.ID)
		}
		var walk func(in *instance, depth int)
		walk = func(in *instance, depth int) {
			spec := in.Target.Spec
			if spec == "" {
				spec, _ = addressOf(in.Plugin)
			}
			fmt.Fprintf(w, "%soutputs.%s: %s %s\n", strings.Repeat("  ", depth), in.Name, in.ID, spec)
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
