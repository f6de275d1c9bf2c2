/* keys without an equivalent, and keys Etsy does not know */
{
  graphiteHost: "127.0.0.1",
  mgmt_port: 8126,
  mgmt_address: "127.0.0.1",
  debug: true,
  dumpMessages: false,
  keyFlush: { interval: 10000, percent: 10 },
  log: { backend: "syslog" },
  automaticConfigReload: false,
  keyNameSanitize: false,
  calculatedTimerMetrics: ["count", "median"],
  backends: ["./backends/graphite", "./backends/repeater"],
  repeater: [ { host: "10.0.0.1", port: 8125 } ],
  grafiteHost: "typo.example.com",
  graphite: { legacyNamespace: true, gobalPrefix: "x" },
  influxdb: { host: "127.0.0.1" },
}
