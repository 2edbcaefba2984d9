#!/usr/bin/env bash
# bench/ingest-long.sh: streaming ingest, honestly measured (issue 10, "Benchmarks"): a
# `seqctl broker --partitions P` is pre-filled by seqfeed with the producer then stopped,
# and a fresh seqd consumes the whole log; events applied per second are printed every
# 10 s (with the block cache's usage, so that a rate falling as the data outgrows the
# caches shows), until the log is consumed. Then the anchor a team would use instead:
# Redis LPUSH + LTRIM of the same number of events, random users among the same users,
# pipelined (redis-cli --pipe), as a ratio.
#   bench/ingest-long.sh [--users N] [--fill-s S] [--partitions P] [--cache-mb M]
#                        [--compare-history]
# --compare-history (issue 13, "Numbers"): the same pre-filled log is consumed twice, by a
# fresh seqd with --history-ms 0 (no apply times kept for as-of reads) and by one with the
# default (7 days), one after the other, and the two rates and CPU per event are printed
# side by side with their ratio.
# Defaults: 1M users, 60 s of producing (~5M events on 2 cores), 64 partitions (the mock
# cluster bounds each partition's log), 512 MiB cache. Needs bench/run's build
# (bench/out/build/seqd, bench/out/bin/seqfeed) or builds them; everything on 127.0.0.1.
# Never run in CI: it measures the machine.
set -euo pipefail

USERS=1000000; FILL_S=60; PARTS=64; CACHE_MB=512; HISTORIES=(default)
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS=$2; shift 2 ;;
    --fill-s) FILL_S=$2; shift 2 ;;
    --partitions) PARTS=$2; shift 2 ;;
    --cache-mb) CACHE_MB=$2; shift 2 ;;
    --compare-history) HISTORIES=(0 default); shift ;;
    *) echo "usage: bench/ingest-long.sh [--users N] [--fill-s S] [--partitions P] [--cache-mb M] [--compare-history]" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/bench; OUT=$B/out; BIN=$OUT/bin; LOG=$OUT/log/ingest-long; DATA=$OUT/data/ingest-long
PIDS=()
log() { echo "[ingest $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
bg() { "$@" & PIDS+=($!); }
metric() { curl -s "http://$A/metrics" | awk -v m="$1" '$1==m {s+=$2} END {printf "%.0f\n", s}'; }

mkdir -p "$BIN" "$LOG"
rm -rf "$DATA"; mkdir -p "$DATA"
if [ ! -x "$OUT/build/seqd" ]; then
  log "building seqd (Release) in bench/out/build"
  cmake -S "$ROOT" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release >"$LOG/cmake.log"
  make -C "$OUT/build" -j2 seqd seqctl >"$LOG/make.log"
fi
[ -x "$BIN/seqfeed" ] || cc -O2 -Wall -Wextra -Werror -o "$BIN/seqfeed" "$B/seqfeed.c" "$B/h2c.c" -lnghttp2 -lrdkafka
SEQD=$OUT/build/seqd; SEQCTL=$OUT/build/seqctl

bg "$SEQCTL" broker --partitions "$PARTS" >"$LOG/broker.out" 2>"$LOG/broker.err"
for _ in $(seq 100); do grep -q brokers= "$LOG/broker.out" && break; sleep 0.1; done
BROKERS=$(sed -n 's/.*brokers=\([^ ]*\).*/\1/p' "$LOG/broker.out")
[ -n "$BROKERS" ] || die "seqctl broker did not start"

log "pre-filling the log: seqfeed --users $USERS -D $FILL_S (as fast as the producer goes)"
o=$("$BIN/seqfeed" --brokers "$BROKERS" --users "$USERS" -D "$FILL_S")
FILLED=$(tr ' ' '\n' <<<"$o" | sed -n 's/^produced=//p')
log "log holds ${FILLED:-?} events ($o)"

# consume H: a fresh seqd (its own data dir, --history-ms H unless "default") consumes the
# whole log with the producer idle; sets rate (events/s) and us_per_event
consume() {
  local h=$1 dir="$DATA/seqd-$1" hist=()
  [ "$h" = default ] || hist=(--history-ms "$h")
  log "a fresh seqd (history-ms $h) consumes it, the producer idle"
  bg "$SEQD" --definition "$B/definition.json" --data-dir "$dir" --grpc-listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --brokers "$BROKERS" --cache-mb "$CACHE_MB" "${hist[@]}" \
    >"$LOG/seqd-$h.out" 2>"$LOG/seqd-$h.err"
  local pid=$!
  for _ in $(seq 300); do grep -q "seqd ready" "$LOG/seqd-$h.out" 2>/dev/null && break; sleep 0.1; done
  A=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$LOG/seqd-$h.out")
  [ -n "$A" ] || die "seqd did not start (see $LOG/seqd-$h.err)"
  local t0 prev=0 tprev now a lag cache look start_applied total cpu_ms
  t0=$(date +%s%N); tprev=$t0; start_applied=$(metric seqd_events_applied_total)
  printf '%8s %12s %12s %10s %14s %12s\n' elapsed_s applied rate_per_s lag cache_used_mb id_lookups
  while :; do
    sleep 10
    now=$(date +%s%N); a=$(metric seqd_events_applied_total); lag=$(metric seqd_consumer_lag_messages)
    cache=$(metric seqd_rocksdb_block_cache_usage_bytes); look=$(metric seqd_stream_id_lookups_total)
    printf '%8d %12d %12d %10d %14d %12d\n' $(( (now - t0) / 1000000000 )) "$a" \
      $(( (a - prev) * 1000000000 / (now - tprev) )) "$lag" $(( cache >> 20 )) "$look"
    prev=$a; tprev=$now
    # lag counts only partitions whose end is known (from a fetch): caught_up says every
    # partition was consumed to its end
    [ "$lag" = 0 ] && [ "$a" -gt 0 ] && [ "$(metric seqd_consumer_caught_up)" = 1 ] && break
  done
  total=$(( $(date +%s%N) - t0 ))
  rate=$(( (prev - start_applied) * 1000000000 / total ))
  cpu_ms=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' "/proc/$pid/stat")
  us_per_event=$(awk -v c="$cpu_ms" -v n="$prev" 'BEGIN {printf "%.2f", n ? c * 1000 / n : 0}')
  log "seqd (history-ms $h): $prev events applied in $(( total / 1000000 )) ms: $rate events/s" \
      "over the whole log; seqd CPU $cpu_ms ms ($us_per_event µs/event, start included)"
  APPLIED=$prev
  local mis
  mis=$(metric seqd_events_misrouted_total)
  [ "$mis" = 0 ] || log "warning: $mis events were misrouted (re-produced and consumed twice): not plain ingest"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
declare -A RATE CPU
for h in "${HISTORIES[@]}"; do
  consume "$h"
  RATE[$h]=$rate; CPU[$h]=$us_per_event
done
if [ ${#HISTORIES[@]} -gt 1 ]; then
  log "history kept (default) vs --history-ms 0: rate ${RATE[default]} vs ${RATE[0]} events/s" \
      "(ratio $(awk -v a="${RATE[default]}" -v b="${RATE[0]}" 'BEGIN {printf "%.3f", a / b}')," \
      "bar >= 0.90); CPU ${CPU[default]} vs ${CPU[0]} µs/event" \
      "(ratio $(awk -v a="${CPU[default]}" -v b="${CPU[0]}" 'BEGIN {printf "%.3f", a / b}'))"
fi
prev=$APPLIED; rate=${RATE[default]}
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  RP=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  bg redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$LOG/redis.out" 2>&1
  for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
  n=$prev
  log "anchor: Redis LPUSH + LTRIM of $n events over $USERS users, pipelined (redis-cli --pipe)"
  # the same payload size as a stored event (time, item, type, id, one column): ~64 bytes
  /usr/bin/python3 - "$n" "$USERS" >"$LOG/redis.cmds" <<'EOF'
import random, sys
n, users = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
rnd = random.Random(1)
for i in range(n):
    k = b"u:%d" % rnd.randrange(1, users + 1)
    v = b"%d:%020d:click:%016x:1000.0" % (i, i, i)
    out.write(b"*3\r\n$5\r\nLPUSH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    out.write(b"*4\r\n$5\r\nLTRIM\r\n$%d\r\n%s\r\n$1\r\n0\r\n$3\r\n999\r\n" % (len(k), k))
EOF
  r0=$(date +%s%N)
  redis-cli -p "$RP" --pipe <"$LOG/redis.cmds" >"$LOG/redis-pipe.out"
  r1=$(date +%s%N)
  rrate=$(( n * 1000000000 / (r1 - r0) ))
  log "redis: $rrate events/s (LPUSH+LTRIM pairs/s); seqd/redis = $(awk -v a="$rate" -v b="$rrate" 'BEGIN {printf "%.2f", a / b}')"
else
  log "redis-server not installed: no anchor (scripts/install-deps.sh --bench installs it)"
fi
