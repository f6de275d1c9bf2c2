package admin

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// runstats is Polymur's statistics port ([agent] runstats_addr), in the
// shape of the runstats package Polymur vendors: the command "stats"
// answers
//
//	{"runtime-meminfo": {"Alloc": ..., <25 runtime.MemStats counters>},
//	 "service": {"start-time": RFC3339, "uptime-seconds": N}}
//
// indented by two spaces, then '\n'; any other command answers "Not a
// command: <it>". One command per connection, which then closes. "stats"
// is answered as soon as it arrives, newline or not, as the original
// answers its first read; another word waits for its newline (or the end
// of the connection) unless it cannot grow into "stats". started is the
// start-time reported.
func startRunstats(addr string, started time.Time, log zerolog.Logger) (*tcpService, error) {
	return startTCPService(addr, "runstats_addr", 64, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		cmd, err := newCmdReader(c, 512, func(line string) bool {
			return endsBlank(line) || !cutShort(strings.TrimSpace(line), "stats")
		}).next()
		if err != nil {
			return
		}
		if cmd != "stats" {
			fmt.Fprintf(c, "Not a command: %s\n", cmd)
			return
		}
		out, _ := json.MarshalIndent(runstatsAnswer(started, time.Now()), "", "  ")
		c.Write(append(out, '\n'))
	}, log)
}

// runstatsAnswer is the "stats" answer at now, for a router started then.
// Maps, so that encoding/json sorts the keys as the original's do.
func runstatsAnswer(started, now time.Time) map[string]map[string]any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := map[string]any{}
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"Alloc", ms.Alloc}, {"TotalAlloc", ms.TotalAlloc}, {"Sys", ms.Sys}, {"Lookups", ms.Lookups},
		{"Mallocs", ms.Mallocs}, {"Frees", ms.Frees}, {"HeapAlloc", ms.HeapAlloc}, {"HeapSys", ms.HeapSys},
		{"HeapIdle", ms.HeapIdle}, {"HeapInuse", ms.HeapInuse}, {"HeapReleased", ms.HeapReleased},
		{"HeapObjects", ms.HeapObjects}, {"StackInuse", ms.StackInuse}, {"StackSys", ms.StackSys},
		{"MSpanInuse", ms.MSpanInuse}, {"MSpanSys", ms.MSpanSys}, {"MCacheInuse", ms.MCacheInuse},
		{"MCacheSys", ms.MCacheSys}, {"BuckHashSys", ms.BuckHashSys}, {"GCSys", ms.GCSys},
		{"OtherSys", ms.OtherSys}, {"NextGC", ms.NextGC}, {"LastGC", ms.LastGC},
		{"PauseTotalNs", ms.PauseTotalNs}, {"NumGC", uint64(ms.NumGC)},
	} {
		mem[kv.k] = kv.v
	}
	return map[string]map[string]any{
		"runtime-meminfo": mem,
		"service": {
			"start-time":     started.Format(time.RFC3339),
			"uptime-seconds": int64(now.Sub(started).Seconds()),
		},
	}
}
