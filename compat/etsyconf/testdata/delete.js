// deleteIdleStats with one of the four overridden, and gaugesMaxTTL
{
  graphiteHost: "127.0.0.1",
  deleteIdleStats: true,
  deleteGauges: false,
  deleteSets: 0,
  gaugesMaxTTL: 5,
  flushInterval: 5000,
}
