#!/usr/bin/env bash
# bench/w6-conf.sh IN_PORT SINK1_PORT SINK2_PORT - the carbon-c-relay
# configuration of workload w6 on standard output: 1000 rules in front of a
# carbon_ch cluster of the two sinks. The router runs the same file through
# `router convert carbon-c-relay`.
#
#   100 rewrites     ^bench\.metric\.path\.(K)([0-9]{2})$ -> the same name
#                    (K = 100..199: exercises capture and rewrite)
#   300 regexes      250 anchored on a literal, 50 with an alternation
#   600 prefixes     ^bench\.metric\.path\.P (P = 500..1099), strncmp in c-relay
#   catch-all        match * send to caches stop
# Every match sends to the one cluster and stops, so each line reaches
# exactly one sink (the harness's w2 loss accounting).
set -euo pipefail
in=$1 s1=$2 s2=$3
cat <<CONF
listen type linemode 127.0.0.1:$in proto tcp ;
cluster caches carbon_ch 127.0.0.1:$s1=a 127.0.0.1:$s2=b ;
CONF
for k in $(seq 100 199); do
	echo "rewrite ^bench\\.metric\\.path\\.($k)([0-9]{2})\$ into bench.metric.path.\\1\\2 ;"
done
for r in $(seq 200 449); do
	echo "match ^bench\\.metric\\.path\\.($r)[0-9]*[13579]\$ send to caches stop ;"
done
for r in $(seq 450 499); do
	echo "match ^bench\\.metric\\.path\\.(${r}|${r}0)[0-9]*5\$ send to caches stop ;"
done
for p in $(seq 500 1099); do
	echo "match ^bench\\.metric\\.path\\.$p send to caches stop ;"
done
echo "match * send to caches stop ;"
