#!/usr/bin/python3
"""reads.py writes reads.json: what carbon's plaintext receiver reads from
each line listed in lines.txt (hex, one per line; `go test -run
TestFromStatsDSeparators -peers` lists them).

Each line goes, with its newline, through carbon 1.1.7's own code as
carbon-cache runs it: MetricLineReceiver.dataReceived (Twisted's
LineOnlyReceiver framing and carbon's lineReceived, which decodes, splits
and parses the line and filters NaN), then the cache's tag normalisation
(TaggedSeries.parse). Only the socket is replaced.

    apt-get install graphite-carbon     # carbon for /usr/bin/python3
    /usr/bin/python3 testdata/carbon/reads.py
"""
import json
import os
import sys

from carbon import events, protocols
from carbon.util import TaggedSeries

here = os.path.dirname(os.path.abspath(__file__))


class Transport:
    """The socket: records a dropped connection."""

    def __init__(self):
        self.lost = False
        self.disconnecting = False

    def loseConnection(self):
        self.lost = self.disconnecting = True


stored = []


def received(metric, datapoint):
    # carbon.cache.CacheFeedingProcessor.process: normalise, else keep the
    # name as it came and log the error
    try:
        stored.append(('stored', TaggedSeries.parse(metric).path, datapoint[1]))
    except Exception:
        stored.append(('bad tags', metric, datapoint[1]))


events.metricReceived.handlers = [received]  # only ours: the others need a running carbon


def read(line):
    del stored[:]
    r = protocols.MetricLineReceiver()
    r.transport = Transport()
    r.peerName = 'reads.py'
    try:
        r.dataReceived(line + b'\n')
    except UnicodeDecodeError:
        # raised out of dataReceived: Twisted drops the connection
        return {'read': 'connection dropped'}
    if r.transport.lost:
        return {'read': 'connection dropped'}
    if len(stored) > 1:
        return {'read': 'several metrics'}
    if not stored:
        try:
            fields = line.decode('utf-8').strip().split()
            if len(fields) == 3 and float(fields[1]) != float(fields[1]):
                return {'read': 'nan dropped'}
        except ValueError:
            pass
        return {'read': 'invalid line'}
    how, metric, value = stored[0]
    return {'read': how, 'metric': metric, 'value': value}


def main():
    reads = {}
    with open(os.path.join(here, 'lines.txt')) as f:
        for h in f.read().split():
            reads[h] = read(bytes.fromhex(h))
    with open(os.path.join(here, 'reads.json'), 'w') as f:
        json.dump(reads, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write('\n')


if __name__ == '__main__':
    sys.exit(main())
