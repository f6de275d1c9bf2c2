package admin

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"testing"

	"github.com/metricsrouter/router/plugins/plugintest"
)

func TestRunstats(t *testing.T) {
	addr := plugintest.FreeAddr(t)
	rs, err := startRunstats(addr, plugintest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	ask := func(cmd string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, cmd+"\n")
		b, _ := io.ReadAll(bufio.NewReader(c))
		return string(b)
	}
	var ms map[string]any
	if err := json.Unmarshal([]byte(ask("stats")), &ms); err != nil || ms["HeapAlloc"] == nil {
		t.Fatalf("stats: %v %v", err, ms)
	}
	if got := ask("bogus"); got != "Not a command: bogus\n" {
		t.Fatalf("bogus: %q", got)
	}
}
