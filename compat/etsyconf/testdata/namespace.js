// graphite: the non-legacy namespace, with prefixes and a suffix
{
  graphiteHost: 'graphite.example.com',
  flushInterval: 60000,
  percentThreshold: [90, 99.9, -10],
  prefixStats: "statsd-a",
  flush_counts: false,
  graphite: {
    legacyNamespace: false,
    globalPrefix: "app",
    prefixCounter: "",
    prefixTimer: 'timing',
    prefixGauge: "g",
    prefixSet: "uniques",
    globalSuffix: "web01",
  },
}
