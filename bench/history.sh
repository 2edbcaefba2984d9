#!/usr/bin/env bash
# bench/history.sh: what history and provenance cost a read (issue 13, "Numbers"): server
# CPU per GetSequence with include_provenance, and as of a past time, against the same
# read without, in one run. The data has both paths in it, so that the merge does real
# work: USERS users x 100 batch events (one generation, the 4 hourly buckets before the
# freshness horizon, through seqctl build and load) and stream events at "now" for the
# same users (seqfeed, FEED_S seconds, then stopped). The variants are measured
# interleaved, ROUNDS rounds of DUR seconds each (the random-user mix of bench/seqload.c),
# CPU = utime+stime of seqd over each window / requests; ratios of the sums.
#   bench/history.sh [--users N] [--rounds R] [-D SECS] [--feed-s S]
# Bars: provenance <= 1.2x, as-of <= 2x the plain read. Needs bench/run's build
# (bench/out/build, bench/out/bin) or builds it; everything on 127.0.0.1.
# Never run in CI: it measures the machine.
set -euo pipefail

USERS=100000; ROUNDS=3; DUR=5; FEED_S=20; C=16; M=32
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -D) DUR=$2; shift 2 ;;
    --feed-s) FEED_S=$2; shift 2 ;;
    *) echo "usage: bench/history.sh [--users N] [--rounds R] [-D SECS] [--feed-s S]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/cluster-lib.sh
. "$(dirname "$0")/cluster-lib.sh"  # build, tools, broker, node, log/die, ticks, metric
cl_init history
mkdir -p "$DATA/batch"

bms=3600000; now=$(date +%s%3N)
END=$(( (now - 86400000) / bms * bms )); START=$(( END - 4 * bms ))
log "generating $USERS users x 100 events, building generation 1"
"$BIN/gen" --format pb --users "$USERS" --events 100 --end-ms "$END" --span-ms 10800000 --out "$DATA/ev.pb"
"$SEQCTL" build --definition "$B/definition.json" --sequence engagements --start-ms "$START" \
  --end-ms "$END" --generation 1 --out "$DATA/batch/g1" --format pb "$DATA/ev.pb" >"$LOG/build.out" 2>&1 ||
  die "build failed: $(tail -3 "$LOG/build.out")"
rm -f "$DATA/ev.pb"

cl_broker 8
cl_node seqd - --cache-mb 1024
cl_ready seqd
SEQD_PID=${NODE_PID[seqd]}; G=${NODE_GRPC[seqd]}; A=${NODE_ADMIN[seqd]}
"$SEQCTL" --server "$G" --admin "$A" load --sequence engagements --start-ms "$START" --end-ms "$END" \
  --generation 1 "$DATA"/batch/g1/*.sst >"$LOG/load.out" || die "load failed: $(cat "$LOG/load.out")"
sleep 1
T_LOADED=$(date +%s%3N) # as of here: the batch only
log "stream events for the same users: seqfeed --rps 20000 -D $FEED_S"
"$BIN/seqfeed" --brokers "$BROKERS" --users "$USERS" --rps 20000 -D "$FEED_S" >"$LOG/feed.out"
T_MID=$(( T_LOADED + FEED_S * 500 )) # as of here: about half of the stream events applied
for _ in $(seq 600); do
  lag=$(metric "$A" seqd_consumer_lag_messages)
  [ "$lag" = 0 ] && break; sleep 0.1
done
sleep 1

log "warming: ${DUR}s of each variant"
# as-of variants: T in the middle of the stream's apply times (exact answers need the
# apply times and the coverage history), and T between the load and the first stream event
VARIANTS=(plain provenance as-of-mid-stream as-of-batch-only)
args_of() {
  case $1 in
    plain) ;;
    provenance) echo --provenance 1 ;;
    as-of-mid-stream) echo --as-of-ago $(( $(date +%s%3N) - T_MID )) ;;
    as-of-batch-only) echo --as-of-ago $(( $(date +%s%3N) - T_LOADED )) ;;
  esac
}
declare -A TICKS REQS
for v in "${VARIANTS[@]}"; do
  # shellcheck disable=SC2046
  o=$("$BIN/seqload" --target "$G" --users "$USERS" -c $C -m $M -D "$DUR" --warmup 0 $(args_of "$v")) ||
    die "seqload ($v) failed: $o"
  TICKS[$v]=0; REQS[$v]=0
done
for r in $(seq "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    c0=$(ticks "$SEQD_PID")
    # shellcheck disable=SC2046
    o=$("$BIN/seqload" --target "$G" --users "$USERS" -c $C -m $M -D "$DUR" --warmup 0 $(args_of "$v")) ||
      die "seqload ($v) failed: $o"
    c1=$(ticks "$SEQD_PID")
    [ "$(kv errors "$o")" = 0 ] || die "seqload ($v): $o"
    TICKS[$v]=$(( ${TICKS[$v]} + c1 - c0 )); REQS[$v]=$(( ${REQS[$v]} + $(kv requests "$o") ))
    log "round $r $v: $(kv rps "$o") req/s"
  done
done
us() { awk -v t="${TICKS[$1]}" -v n="${REQS[$1]}" -v k="$CLK" 'BEGIN {printf "%.2f", t / k * 1e6 / n}'; }
echo "| read ($USERS users, batch + stream, $ROUNDS x ${DUR}s interleaved) | seqd CPU µs/call | vs plain | bar |"
echo "| --- | --- | --- | --- |"
base=$(us plain)
for v in "${VARIANTS[@]}"; do
  u=$(us "$v")
  bar=""; case $v in provenance) bar="<= 1.2x" ;; as-of-*) bar="<= 2x" ;; esac
  echo "| $v | $u | $(awk -v a="$u" -v b="$base" 'BEGIN {printf "%.2fx", a / b}') | $bar |"
done
