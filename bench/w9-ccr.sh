#!/usr/bin/env bash
# bench/w9-ccr.sh: a carbon-c-relay pair for bench w9 (w1 over a relay-to-relay
# link). A listens on BENCH_IN_PORT and forwards to B over the link with
# "transport $L" (plain or gzip); B broadcasts to the two sinks. CCR is the
# build with transports (../shared/tools/build-carbon-c-relay.sh); both get
# -q 2000000, as the w1 peer does.
set -euo pipefail
W=$BENCH_WORKDIR
cat >"$W/b.conf" <<CONF
listen
    type linemode transport $L
        127.0.0.1:$BENCH_AUX_PORT1 proto tcp
    ;
cluster sinks
    forward
        127.0.0.1:$BENCH_SINK1_PORT
        127.0.0.1:$BENCH_SINK2_PORT
    ;
match * send to sinks stop;
CONF
cat >"$W/a.conf" <<CONF
listen
    type linemode
        127.0.0.1:$BENCH_IN_PORT proto tcp
    ;
cluster link
    forward
        127.0.0.1:$BENCH_AUX_PORT1 transport $L
    ;
match * send to link stop;
CONF
"$CCR" -f "$W/b.conf" -q 2000000 &
"$BENCH" waitport -addr "127.0.0.1:$BENCH_AUX_PORT1"
exec "$CCR" -f "$W/a.conf" -q 2000000
