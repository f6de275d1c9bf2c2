// Command router-custom is the router with every built-in plugin plus this
// module's outputs.jsonl: a custom binary built with plain `go build`.
//
//	go build -o router-custom .
//	./router-custom -list-plugins
//	./router-custom -sample outputs.jsonl
package main

import (
	"github.com/metricsrouter/router/agent"

	_ "github.com/metricsrouter/router/plugins/all"

	_ "example.com/router-custom/plugins/outputs/jsonl"
)

func main() { agent.Main() }
