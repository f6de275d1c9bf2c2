#!/usr/bin/env bash
# bench/w7-conf.sh IN_PORT SINK1_PORT SINK2_PORT - the carbon-c-relay
# configuration of workload w7 on standard output: every line of the
# harness's w2 (bench.metric.path.<i>, 100k names) feeds one aggregate of
# 10,000 groups (the name without its last digit) computing sum, count,
# average and percentile95, and goes on to a carbon_ch cluster of the two
# sinks. The buckets (60 s, expiring after 120 s) do not expire during a
# run: what is measured is taking every line into the buckets and relaying
# it. The router runs the same file through `router convert carbon-c-relay`.
set -euo pipefail
in=$1 s1=$2 s2=$3
cat <<CONF
listen type linemode 127.0.0.1:$in proto tcp ;
cluster caches carbon_ch 127.0.0.1:$s1=a 127.0.0.1:$s2=b ;
aggregate ^bench\\.metric\\.path\\.([0-9]+)[0-9]\$
  every 60 seconds expire after 120 seconds
  compute sum write to agg.\\1.sum
  compute count write to agg.\\1.count
  compute average write to agg.\\1.avg
  compute percentile95 write to agg.\\1.p95
  ;
match * send to caches stop ;
CONF
