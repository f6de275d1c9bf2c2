/* No graphiteHost ("dry" mode): flushes are computed and discarded. Keys
   that have no effect with these values are converted without a remark. */
{
  port: 8200,
  address: "127.0.0.1",
  debug: false,
  dumpMessages: false,
  automaticConfigReload: false,
  keyNameSanitize: true,
  healthStatus: "up",
  calculatedTimerMetrics: [],
  gaugesMaxTTL: 1,
}
