#!/usr/bin/env bash
# bench/tail.sh: where the read tail at half of the peak comes from (issue 10, "Read p99 at
# half of peak < 1 ms"). On the data set a full bench/run left in bench/out (1M users), one
# seqd per configuration: warmed with every user once and the random-user mix, then seqload's open loop at RATE
# for D seconds; prints p50/p99/p999 and, over the same window, the CPU seqd's threads used
# and the time they were runnable but waited for a CPU (/proc/PID/task/*/schedstat): a
# tail that is the scheduler's (more runnable threads than cores) shows as wait, a tail
# that is seqd's own does not.
#   bench/tail.sh [--rate R] [-D SECS] [--seqd BIN] [--only NAME]   (defaults: 92000/s, 10 s,
#   bench's build, every configuration; NAME: default, repinned, pinned or one)
# Configurations: default (threads = cores, nothing pinned; as bench/run); repinned (seqd
# started on both cores, then every thread moved to core 1, seqload on core 0; as bench/run's
# taskset row); pinned-at-start (seqd started under taskset -c 1: one worker, its affinity;
# seqload on core 0); one-worker (--threads 1, nothing pinned). Never run in CI.
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd); OUT=${BENCH_OUT:-$B/out}   # BENCH_OUT: another tree's bench/out
RATE=92000; DUR=10; SEQD=$OUT/build/seqd; WARM=15; ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    -D) DUR=$2; shift 2 ;;
    --seqd) SEQD=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: bench/tail.sh [--rate R] [-D SECS] [--seqd BIN] [--only default|repinned|pinned|one]" >&2; exit 2 ;;
  esac
done
SEQCTL=$(dirname "$SEQD")/seqctl
LOAD=$OUT/bin/seqload
[ -d "$OUT/data/seqd" ] || { echo "bench/tail.sh: run bench/run first (needs bench/out/data/seqd)" >&2; exit 1; }
T=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
"$SEQCTL" broker --partitions 8 >"$T/broker.out" 2>/dev/null & PIDS+=($!)
for _ in $(seq 100); do grep -q brokers= "$T/broker.out" && break; sleep 0.1; done
BROKERS=$(sed -n 's/.*brokers=\([^ ]*\).*/\1/p' "$T/broker.out")
[ -n "$BROKERS" ] || { echo "bench/tail.sh: seqctl broker did not start" >&2; exit 1; }
RAW=${TAIL_RAW:-/tmp/bench-tail.raw}   # seqload's own lines, one per configuration
: >"$RAW"
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
# sum over seqd's threads of schedstat's run and wait ns
sched() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{r += $1; w += $2} END {printf "%.0f %.0f", r, w}'; }

# record-cache misses so far (reads that went to RocksDB), and bytes seqd read from the disk
misses() { curl -s "http://$1/metrics" | awk '$1 == "seqd_record_cache_misses_total" {printf "%.0f", $2}'; }
ioread() { awk '$1 == "read_bytes:" {print $2}' /proc/"$1"/io; }

one() { # NAME LABEL SEQD_PREFIX LOAD_PREFIX REPIN SEQD_ARGS...
  [ -z "$ONLY" ] || [ "$ONLY" = "$1" ] || return 0
  local label=$2 sp=$3 lp=$4 repin=$5; shift 5
  # shellcheck disable=SC2086
  $sp "$SEQD" --definition "$B/definition.json" --data-dir "$OUT/data/seqd" --grpc-listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --brokers "$BROKERS" --batch-root "$OUT/data/batch" --cache-mb 6144 "$@" \
    >"$T/seqd.out" 2>"$T/seqd.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do grep -q "seqd ready" "$T/seqd.out" 2>/dev/null && break; sleep 0.1; done
  local g a; g=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$T/seqd.out"); a=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$T/seqd.out")
  [ -n "$g" ] || { echo "bench/tail.sh: seqd did not start: $(tail -3 "$T/seqd.err")" >&2; exit 1; }
  local workers; workers=$(cat /proc/$pid/task/*/comm 2>/dev/null | grep -c '^seqd-grpc' || true)
  [ "$workers" = 0 ] && workers="? (unnamed)"
  # every user once (bench/run's warm_cache), then the random-user mix
  "$LOAD" --target "$g" --users 1000000 -c 16 -m 32 -D 900 --warmup 0 --sweep 1 >/dev/null
  "$LOAD" --target "$g" --users 1000000 -c 16 -m 32 -D "$WARM" --warmup 0 >/dev/null
  [ "$repin" = 1 ] && taskset -a -pc 1 "$pid" >/dev/null
  local s0 s1 o m0 m1 io0 io1
  s0=$(sched $pid); m0=$(misses "$a"); io0=$(ioread $pid)
  # shellcheck disable=SC2086
  o=$($lp "$LOAD" --target "$g" --users 1000000 -c 16 -m 32 --rps "$RATE" -D "$DUR")
  s1=$(sched $pid); m1=$(misses "$a"); io1=$(ioread $pid)
  echo "$label: $o" >>"$RAW"
  kill $pid; wait $pid 2>/dev/null || true
  read -r r0 w0 <<<"$s0"; read -r r1 w1 <<<"$s1"
  printf '| %s | %s | %s / %s / %s | %s | %.0f | %.0f | %s | %s |\n' "$label" "$workers" "$(kv p50_us "$o")" \
    "$(kv p99_us "$o")" "$(kv p999_us "$o")" "$(kv errors "$o")" \
    "$(echo "($r1 - $r0) / 1000000" | bc -l)" "$(echo "($w1 - $w0) / 1000000" | bc -l)" \
    "$((m1 - m0))" "$(( (io1 - io0) / 1048576 ))"
}

echo "bench/tail.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), seqd $SEQD"
echo "open loop at $RATE/s for $DUR s, seqload -c 16 -m 32, random users of 1M, after ${WARM} s of closed-loop warm-up"
echo
echo "| configuration | gRPC workers | p50 / p99 / p999 µs | errors | seqd CPU ms | seqd runnable, waiting for a CPU, ms | record-cache misses | MiB read from disk |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
one default "default: threads = cores, nothing pinned" "" "" 0
one repinned "repinned: started on both cores, moved to core 1; seqload on core 0" "" "taskset -c 0" 1
one pinned "pinned at start: taskset -c 1 seqd; seqload on core 0" "taskset -c 1" "taskset -c 0" 0
one one "one worker (--threads 1), nothing pinned" "" "" 0 --threads 1
