// Package all imports every built-in plugin, and the built-in commands of
// compat/ (router polymur-proxy, router polymur-gateway). A custom binary
// imports it next to its own plugins:
//
//	import (
//		"github.com/metricsrouter/router/agent"
//		_ "github.com/metricsrouter/router/plugins/all"
//		_ "example.com/acme/router-kafka"
//	)
//
//	func main() { agent.Main() }
package all

import (
	_ "github.com/metricsrouter/router/compat/carbonagg"
	_ "github.com/metricsrouter/router/compat/crelay"
	_ "github.com/metricsrouter/router/compat/etsyconf"
	_ "github.com/metricsrouter/router/compat/polymur"
	_ "github.com/metricsrouter/router/plugins/aggregators/statsd"
	_ "github.com/metricsrouter/router/plugins/discovery/consul"
	_ "github.com/metricsrouter/router/plugins/inputs/graphite"
	_ "github.com/metricsrouter/router/plugins/inputs/http_json"
	_ "github.com/metricsrouter/router/plugins/inputs/https_batch"
	_ "github.com/metricsrouter/router/plugins/inputs/kafka"
	_ "github.com/metricsrouter/router/plugins/inputs/statsd"
	_ "github.com/metricsrouter/router/plugins/outputs/any_of"
	_ "github.com/metricsrouter/router/plugins/outputs/broadcast"
	_ "github.com/metricsrouter/router/plugins/outputs/consistent_hash"
	_ "github.com/metricsrouter/router/plugins/outputs/console"
	_ "github.com/metricsrouter/router/plugins/outputs/failover"
	_ "github.com/metricsrouter/router/plugins/outputs/file"
	_ "github.com/metricsrouter/router/plugins/outputs/graphite"
	_ "github.com/metricsrouter/router/plugins/outputs/http_json"
	_ "github.com/metricsrouter/router/plugins/outputs/https_batch"
	_ "github.com/metricsrouter/router/plugins/outputs/kafka"
	_ "github.com/metricsrouter/router/plugins/outputs/mirror"
	_ "github.com/metricsrouter/router/plugins/outputs/prometheus_remote_write"
	_ "github.com/metricsrouter/router/plugins/outputs/statsd"
	_ "github.com/metricsrouter/router/plugins/processors/prefix"
)
