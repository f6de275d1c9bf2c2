/* histogram: bins with 'inf', first match wins */
{
  graphiteHost: "127.0.0.1"
, backends: [ "./backends/graphite", "./backends/console" ]
, percentThreshold: 95
, histogram: [
    { metric: 'render', bins: [ 0.01, 0.1, 1, 10, 'inf'] },
    { metric: "api.", bins: [50, 100, 150, 200, "inf"] },
    { "metric": "db", "bins": [1e3, 5e3] },
  ]
}
