// An Etsy statsd backend for reads.js: prints each flush as one JSON line.
'use strict';

exports.init = function (startupTime, config, events) {
  events.on('flush', function (timestamp, metrics) {
    const sets = {};
    for (const k in metrics.sets) {
      sets[k] = metrics.sets[k].values();
    }
    process.stdout.write('FLUSH ' + JSON.stringify({
      counters: metrics.counters, gauges: metrics.gauges, timers: metrics.timers, sets: sets,
    }) + '\n');
  });
  return true;
};
