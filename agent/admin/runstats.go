package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// runstats is Polymur's statistics port ([agent] runstats_addr): the command
// "stats" answers the Go runtime's memory statistics as indented JSON; any
// other line answers "Not a command: <line>". One command per connection.
func startRunstats(addr string, log zerolog.Logger) (*tcpService, error) {
	return startTCPService(addr, "runstats_addr", 64, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReaderSize(c, 512).ReadString('\n')
		if err != nil && line == "" {
			return
		}
		cmd := strings.TrimSpace(line)
		if cmd != "stats" {
			fmt.Fprintf(c, "Not a command: %s\n", cmd)
			return
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		out, _ := json.MarshalIndent(ms, "", "  ")
		c.Write(append(out, '\n'))
	}, log)
}
