// Command router is a metrics router: Graphite, StatsD and Polymur HTTPS
// batches in, consistent hashing, broadcast and more out. See README.md.
package main

import (
	"github.com/metricsrouter/router/agent"

	_ "github.com/metricsrouter/router/plugins/all"
)

func main() { agent.Main() }
