#!/usr/bin/env python3
"""sockq.py PID OUT PORT... - the kernel memory a system under test holds in
its input sockets, next to its RSS.

Every 100 ms, until process PID exits, sums the receive queues of the
sockets bound to 127.0.0.1 on the given local ports: /proc/net/udp's
rx_queue (the datagrams' buffer memory, what net.core.rmem_default
bounds) and /proc/net/tcp's rx_queue of connected sockets (bytes received
and not yet read; listening sockets are skipped). Appends the peak, in
bytes, to OUT as one line. bench/run.sh starts it in a session of its own,
so that its CPU is not counted as the system's.
"""
import os
import sys
import time


def queued(ports):
    total = 0
    for path in ("/proc/net/tcp", "/proc/net/udp"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, queues = fields[1], fields[3], fields[4]
                    if path.endswith("tcp") and state == "0A":  # LISTEN
                        continue
                    if int(local.rsplit(":", 1)[1], 16) in ports:
                        total += int(queues.split(":")[1], 16)
        except OSError:
            pass
    return total


def main():
    pid, out = int(sys.argv[1]), sys.argv[2]
    ports = {int(p) for p in sys.argv[3:] if p}
    peak = 0
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            pass
        peak = max(peak, queued(ports))
        time.sleep(0.1)
    with open(out, "a") as f:
        f.write(f"{peak}\n")


if __name__ == "__main__":
    main()
