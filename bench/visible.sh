#!/usr/bin/env bash
# bench/visible.sh: produce-to-visible on its own (bench/run's row; PRODUCT.md: p99 below
# 100 ms at 50k events/s), before and after in one run: for each variant a fresh
# `seqctl broker --partitions 8` and a fresh seqd (as bench/run starts them), then seqfeed
# at --rps R events/s for D seconds with a probe event every 5 ms that a poller reads
# back (GetSequence, one in flight); the probes' p50/p99 from produce to visible, and the
# CPU of seqd and of the broker during the feed (with seqd's wait for a CPU).
#   bench/visible.sh [--rps R] [-D S] [--users N] [--baseline "SEQD [ARG]..."] [--seqd-arg ARG]...
# --baseline: first the seqd binary SEQD with the ARGs (a Release build of main, or this
# tree's with other settings), then this tree's (bench/out/build/seqd) with the
# --seqd-args. Defaults: 50000 events/s, 10 s, 100k users. Never run in CI.
set -euo pipefail
source "$(dirname "$0")/cluster-lib.sh"

RPS=50000; DUR=10; USERS=100000; BASELINE=; EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rps) RPS=$2; shift 2 ;;
    -D) DUR=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --baseline) BASELINE=$2; shift 2 ;;
    --seqd-arg) EXTRA+=("$2"); shift 2 ;;
    *) echo "usage: bench/visible.sh [--rps R] [-D S] [--users N] [--baseline \"SEQD [ARG]...\"] [--seqd-arg ARG]..." >&2; exit 2 ;;
  esac
done
cl_init visible

# variant LABEL SEQD [ARG]...: one measurement on a fresh broker and seqd
variant() {
  local label=$1 seqd=$2 o
  shift 2
  cl_broker 8
  local SEQD=$seqd
  cl_node "$label" - --cache-mb 1024 "$@"
  cl_ready "$label"
  log "$label: $seqd $*: seqfeed --rps $RPS -D $DUR --users $USERS --probe-target" \
      "(load average $(cut -d' ' -f1-3 /proc/loadavg))"
  # the consumer's lag (messages fetched-known but not applied) every 0.5 s while the
  # feed runs: a lag near 0 with slow probes puts the delay before Kafka or in the reads
  local lagf=$LOG/lag-$label
  ( while :; do metric "${NODE_ADMIN[$label]}" seqd_consumer_lag_messages; sleep 0.5; done ) >"$lagf" 2>/dev/null &
  local sampler=$!
  # CPU of seqd and of the broker during the feed (the mock broker's Fetch handling took
  # ~90 % of a core with linger 2: bench/NOTES.md, "Session 7 (lead)"), and how long seqd's
  # threads were runnable but waited for a CPU (the machine's other processes)
  local spid=${NODE_PID[$label]} c0 c1 b0 b1 w0 w1 t0 t1
  c0=$(ticks "$spid"); b0=$(ticks "$BROKER_PID"); w0=$(runq_wait_ms "$spid"); t0=$(now_us)
  o=$("$BIN/seqfeed" --brokers "$BROKERS" --users "$USERS" --rps "$RPS" -D "$DUR" ${SEQFEED_LINGER:+--linger-ms $SEQFEED_LINGER} \
      --probe-target "${NODE_GRPC[$label]}")
  c1=$(ticks "$spid"); b1=$(ticks "$BROKER_PID"); w1=$(runq_wait_ms "$spid"); t1=$(now_us)
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  log "$label: CPU during the feed (% of one core): seqd $(( (c1 - c0) * 100000000 / CLK / (t1 - t0) )), broker" \
      "$(( (b1 - b0) * 100000000 / CLK / (t1 - t0) )); seqd's threads waited $(( w1 - w0 )) ms for a CPU" \
      "in the $(( (t1 - t0) / 1000 )) ms"
  log "$label: p50 $(kv p50_ms "$o") ms, p99 $(kv p99_ms "$o") ms, probes visible" \
      "$(kv visible "$o")/$(kv probes "$o"); consumer lag while feeding: median" \
      "$(sort -n "$lagf" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'), max $(sort -n "$lagf" | tail -1)" \
      "messages ($o)"
  stop "${NODE_PID[$label]}"
  stop "$BROKER_PID"
}
if [ -n "$BASELINE" ]; then
  read -ra base <<<"$BASELINE"
  variant baseline "${base[@]}"
fi
variant this "$OUT/build/seqd" "${EXTRA[@]}"
