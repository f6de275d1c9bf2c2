// reads.js writes reads.json: what Etsy statsd reads from each write listed
// in lines.txt (hex, one per line; `go test -run TestToStatsDSeparators
// -peers` lists them). Each write goes to an Etsy statsd of its own (its
// stats.js, unchanged, with backend.js reporting flushes) in one UDP
// datagram, followed in that datagram by a sentinel line, as the router's
// output packs lines. Etsy's own "statsd.*" metrics are left out; its bad
// lines are counted.
//
//   npm install --prefix /tmp/etsy statsd@0.9.0
//   node testdata/etsy/reads.js /tmp/etsy/node_modules/statsd
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const dgram = require('dgram');
const { spawn } = require('child_process');

const statsdDir = process.argv[2];
if (!statsdDir) {
  console.error('usage: node reads.js <statsd 0.9.0 directory>');
  process.exit(2);
}
const SENTINEL = 'peers.sentinel';
const PROBE = 'peers.probe';

// read sends the write (hex) to a fresh Etsy statsd on port and resolves
// with what it read.
function read(hex, port) {
  return new Promise((resolve, reject) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etsy-'));
    const conf = path.join(dir, 'config.js');
    fs.writeFileSync(conf, JSON.stringify({
      port: port, address: '127.0.0.1', mgmt_port: port + 1, mgmt_address: '127.0.0.1',
      flushInterval: 50, backends: [path.join(__dirname, 'backend.js')],
    }));
    const p = spawn(process.execPath, [path.join(statsdDir, 'stats.js'), conf], { stdio: ['ignore', 'pipe', 'ignore'] });
    const sock = dgram.createSocket('udp4');
    const acc = { counters: {}, gauges: {}, timers: {}, bad_lines: 0 };
    let probed = false, sent = false, out = '';
    const send = (buf) => sock.send(buf, port, '127.0.0.1');
    const probe = setInterval(() => send(Buffer.from(PROBE + ':1|c')), 100);
    let done = false;
    const timeout = setTimeout(() => { p.kill(); reject(new Error('no answer for ' + hex)); }, 20000);
    p.on('exit', () => {
      if (!done) { // it could not listen (port taken): try another
        clearTimeout(timeout);
        clearInterval(probe);
        sock.close();
        resolve(null);
      }
    });
    p.stdout.on('data', (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (!line.startsWith('FLUSH ')) continue;
        const m = JSON.parse(line.slice(6));
        if (!probed) {
          if (m.counters[PROBE] > 0) {
            probed = true;
            clearInterval(probe);
          }
          continue;
        }
        if (!sent) {
          if (m.counters[PROBE] > 0) continue; // a late probe
          sent = true;
          send(Buffer.concat([Buffer.from(hex, 'hex'), Buffer.from(SENTINEL + ':1|c')]));
          continue;
        }
        for (const k in m.counters) {
          if (k === 'statsd.bad_lines_seen') acc.bad_lines += m.counters[k];
          if (k.startsWith('statsd.') || k === SENTINEL || k === PROBE || m.counters[k] === 0) continue;
          acc.counters[k] = (acc.counters[k] || 0) + m.counters[k];
        }
        for (const k in m.gauges) {
          if (!k.startsWith('statsd.')) acc.gauges[k] = m.gauges[k];
        }
        for (const k in m.timers) {
          if (m.timers[k].length > 0) acc.timers[k] = (acc.timers[k] || []).concat(m.timers[k]);
        }
        if (m.counters[SENTINEL] > 0) {
          done = true;
          clearTimeout(timeout);
          sock.close();
          p.kill();
          fs.rmSync(dir, { recursive: true });
          resolve(acc);
        }
      }
    });
  });
}

(async () => {
  const lines = fs.readFileSync(path.join(__dirname, 'lines.txt'), 'utf8').split('\n').filter(Boolean);
  const reads = {};
  let port = 30000 + (process.pid % 10000) * 2;
  for (const hex of lines) {
    for (let r = null; r === null; port += 2) {
      r = await read(hex, port);
      reads[hex] = r;
    }
  }
  const sorted = {};
  for (const k of Object.keys(reads).sort()) sorted[k] = reads[k];
  fs.writeFileSync(path.join(__dirname, 'reads.json'), JSON.stringify(sorted, null, 1) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
