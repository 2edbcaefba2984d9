#!/usr/bin/env bash
# bench/measure-read.sh SEQD_BIN LABEL: server CPU per GetSequence of the hot user on the
# data set a full bench/run left in bench/out (1M users), 3 windows of h2load -c 16 -m 32
# -t 1 -D 5; MIX=1 adds 2 windows of the random-user mix (seqload; USERS= the data set's
# user count, 1M by default). For A/B runs of
# read-path changes (bench/NOTES.md); bench/run remains the source of RESULTS.md.
set -u
BIN=$1; LABEL=$2
B=$(cd "$(dirname "$0")" && pwd); OUT=$B/out
SEQCTL=${SEQCTL:-$(dirname "$BIN")/seqctl}
T=${TMPDIR:-/tmp}
$SEQCTL broker --partitions 8 > $T/broker.out 2>/dev/null & BP=$!
for i in $(seq 50); do grep -q brokers= $T/broker.out && break; sleep 0.1; done
BROKERS=$(sed -n 's/.*brokers=\([^ ]*\).*/\1/p' $T/broker.out)
$BIN --definition $B/definition.json --data-dir $OUT/data/seqd --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --brokers $BROKERS --batch-root $OUT/data/batch --cache-mb ${CACHE_MB:-6144} > $T/seqd.out 2>$T/seqd.err & SP=$!
for i in $(seq 300); do grep -q "seqd ready" $T/seqd.out 2>/dev/null && break; sleep 0.1; done
G=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' $T/seqd.out)
cpu() { awk '{print $14+$15}' /proc/$SP/stat; }
URL=http://$G/seqd.v1.SequenceService/GetSequence
h2load -c 16 -m 32 -t 1 -D 3 -H 'content-type: application/grpc' -H 'te: trailers' -d $OUT/req.bin $URL >/dev/null 2>&1
for rep in 1 2 3; do
  c0=$(cpu); out=$(h2load -c 16 -m 32 -t 1 -D 5 -H 'content-type: application/grpc' -H 'te: trailers' -d $OUT/req.bin $URL 2>&1); c1=$(cpu)
  n=$(echo "$out" | sed -n 's/.* \([0-9]*\) succeeded.*/\1/p'); rps=$(echo "$out" | sed -n 's/finished in .*, \([0-9.]*\) req\/s.*/\1/p')
  echo "$LABEL hot rep$rep: $rps req/s, $(echo "($c1-$c0)*10000/$n" | bc -l | cut -c1-6) us/req"
done
if [ -n "${MIX:-}" ]; then
  $OUT/bin/seqload --target $G --users ${USERS:-1000000} -c 16 -m 32 -D 5 >/dev/null 2>&1
  for rep in 1 2; do
    c0=$(cpu); out=$($OUT/bin/seqload --target $G --users ${USERS:-1000000} -c 16 -m 32 -D 5 2>&1); c1=$(cpu)
    echo "$LABEL mix rep$rep: $(echo "$out" | tr '\n' ' ' | cut -c1-200) cpu_ticks=$((c1-c0))"
  done
fi
kill $SP; wait $SP 2>/dev/null; kill $BP; wait $BP 2>/dev/null
