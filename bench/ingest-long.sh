#!/usr/bin/env bash
# bench/ingest-long.sh: streaming ingest, honestly measured (issue 10, "Benchmarks"): a
# `seqctl broker --partitions P` is pre-filled by seqfeed with the producer then stopped,
# and a fresh seqd consumes the whole log; events applied per second are printed every
# 10 s (with the block cache's usage, so that a rate falling as the data outgrows the
# caches shows), until the log is consumed. Then the anchor a team would use instead:
# Redis LPUSH + LTRIM of the same number of events, random users among the same users,
# pipelined (redis-cli --pipe), as a ratio. After each consumption: seqd's CPU per thread
# group, the time its threads waited for a CPU while runnable (a shared machine), and the
# broker's CPU over the same window (is the harness the limit?).
#   bench/ingest-long.sh [--users N] [--fill-s S] [--partitions P] [--cache-mb M]
#                        [--compare-history] [--seqd-arg ARG]... [--baseline SEQD]
#                        [--run LABEL=SEQD]... [--no-anchor] [--result FILE]
# --seqd-arg: one more argument for each seqd started (repeat it), e.g. to compare settings.
# --baseline "SEQD [ARG]...": before and after in one run: the same log is consumed first
# by the seqd binary SEQD with the ARGs (e.g. a Release build of main, or this tree's with
# --write-lanes 1), then by this tree's, and the two rates and CPU per event are printed
# side by side with their ratio.
# --run "LABEL=SEQD [ARG]..." (repeat it): one consumption of the same log per --run, in the
# order given, each by a fresh seqd in its own data dir (so LABELs differ), e.g. A, B, A, B
# to alternate two builds or settings, or several settings of one build through `env
# VAR=... SEQD`; at the end one line per run: rate, CPU per event and the compaction and
# flush threads' CPU, each against the first run's. Replaces --baseline.
# --no-anchor: no Redis anchor (it takes a minute or two on a 10M+ event log).
# --result FILE: the last run's figures and the anchor's as key=value words on one line
# (events, partitions, applied, rate, us_per_event, redis_rate), for bench/run's table.
# --compare-history (issue 13, "Numbers"): the same pre-filled log is consumed twice, by a
# fresh seqd with --history-ms 0 (no apply times kept for as-of reads) and by one with the
# default (7 days), one after the other, and the two rates and CPU per event are printed
# side by side with their ratio.
# Defaults: 1M users, 60 s of producing (~5M events on 2 cores), 64 partitions (the mock
# cluster bounds each partition's log), 512 MiB cache. Needs bench/run's build
# (bench/out/build/seqd, bench/out/bin/seqfeed) or builds them; everything on 127.0.0.1.
# Never run in CI: it measures the machine.
set -euo pipefail

USERS=1000000; FILL_S=60; PARTS=64; CACHE_MB=512; HISTORIES=(default); EXTRA=(); BASELINE=
RUNSPEC=(); ANCHOR=1; RESULT=
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS=$2; shift 2 ;;
    --fill-s) FILL_S=$2; shift 2 ;;
    --partitions) PARTS=$2; shift 2 ;;
    --cache-mb) CACHE_MB=$2; shift 2 ;;
    --compare-history) HISTORIES=(0 default); shift ;;
    --seqd-arg) EXTRA+=("$2"); shift 2 ;;
    --baseline) BASELINE=$2; shift 2 ;;
    --run) RUNSPEC+=("$2"); shift 2 ;;
    --no-anchor) ANCHOR=0; shift ;;
    --result) RESULT=$2; shift 2 ;;
    *) echo "usage: bench/ingest-long.sh [--users N] [--fill-s S] [--partitions P] [--cache-mb M] [--compare-history] [--seqd-arg ARG]... [--baseline SEQD] [--run LABEL=SEQD]... [--no-anchor] [--result FILE]" >&2; exit 2 ;;
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
# sched PID: "comm run_ns wait_ns" per thread (/proc/.../schedstat: time on a CPU, and time
# runnable but waiting for one, i.e. starved by other processes on a shared machine)
sched() { local t; for t in /proc/"$1"/task/*; do echo "$(cat "$t/comm") $(cat "$t/schedstat")"; done 2>/dev/null; }
sched_sum() { sched "$1" | awk '{r += $(NF-2); w += $(NF-1)} END {printf "%d %d\n", r / 1e6, w / 1e6}'; }
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
BROKER_PID=$!
for _ in $(seq 100); do grep -q brokers= "$LOG/broker.out" && break; sleep 0.1; done
BROKERS=$(sed -n 's/.*brokers=\([^ ]*\).*/\1/p' "$LOG/broker.out")
[ -n "$BROKERS" ] || die "seqctl broker did not start"

log "pre-filling the log: seqfeed --users $USERS -D $FILL_S (as fast as the producer goes)"
o=$("$BIN/seqfeed" --brokers "$BROKERS" --users "$USERS" -D "$FILL_S")
FILLED=$(tr ' ' '\n' <<<"$o" | sed -n 's/^produced=//p')
log "log holds ${FILLED:-?} events ($o)"

# consume LABEL BIN H: a fresh seqd BIN (its own data dir, --history-ms H unless "default")
# consumes the whole log with the producer idle; sets rate (events/s), us_per_event and
# consumer_us (the CPU of the threads that apply events, per event: seqd-consumer and the
# write lanes' seqd-laneI; 0 for a seqd older than the lanes, whose threads had no names). Checks every second whether the log is
# consumed, so that a short log is timed to within a second; prints every 10 s.
consume() {
  local label=$1 h=$3 dir="$DATA/seqd-$1" hist=() seqd
  read -ra seqd <<<"$2" # the binary, then arguments of this run only
  [ "$h" = default ] || hist=(--history-ms "$h")
  log "a fresh seqd ($label: ${seqd[*]}, history-ms $h) consumes it, the producer idle; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  bg "${seqd[@]}" --definition "$B/definition.json" --data-dir "$dir" --grpc-listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --brokers "$BROKERS" --cache-mb "$CACHE_MB" "${hist[@]}" "${EXTRA[@]}" \
    >"$LOG/seqd-$label.out" 2>"$LOG/seqd-$label.err"
  local pid=$!
  for _ in $(seq 300); do grep -q "seqd ready" "$LOG/seqd-$label.out" 2>/dev/null && break; sleep 0.1; done
  A=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$LOG/seqd-$label.out")
  [ -n "$A" ] || die "seqd did not start (see $LOG/seqd-$label.err)"
  local t0 prev=0 tprev now a lag cache look start_applied total cpu_ms tick=0 done=0
  t0=$(date +%s%N); tprev=$t0; start_applied=$(metric seqd_events_applied_total)
  local broker0; broker0=$(sched_sum "$BROKER_PID")
  printf '%8s %12s %12s %10s %14s %12s\n' elapsed_s applied rate_per_s lag cache_used_mb id_lookups
  while [ $done = 0 ]; do
    sleep 1; tick=$((tick + 1))
    a=$(metric seqd_events_applied_total); lag=$(metric seqd_consumer_lag_messages)
    # lag counts only partitions whose end is known (from a fetch): caught_up says every
    # partition was consumed to its end
    [ "$lag" = 0 ] && [ "$a" -gt 0 ] && [ "$(metric seqd_consumer_caught_up)" = 1 ] && done=1
    [ $done = 1 ] || [ $((tick % 10)) = 0 ] || continue
    now=$(date +%s%N)
    cache=$(metric seqd_rocksdb_block_cache_usage_bytes); look=$(metric seqd_stream_id_lookups_total)
    printf '%8d %12d %12d %10d %14d %12d\n' $(( (now - t0) / 1000000000 )) "$a" \
      $(( (a - prev) * 1000000000 / (now - tprev) )) "$lag" $(( cache >> 20 )) "$look"
    prev=$a; tprev=$now
  done
  total=$(( $(date +%s%N) - t0 ))
  rate=$(( (prev - start_applied) * 1000000000 / total ))
  cpu_ms=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' "/proc/$pid/stat")
  us_per_event=$(awk -v c="$cpu_ms" -v n="$prev" 'BEGIN {printf "%.2f", n ? c * 1000 / n : 0}')
  consumer_us=$(cat /proc/"$pid"/task/*/stat | awk -v hz="$(getconf CLK_TCK)" -v n="$prev" \
    '/\((seqd-consumer|seqd-lane[0-9]+)\)/ {c += $14 + $15} END {printf "%.2f", n ? c * 1000000 / hz / n : 0}')
  log "seqd ($label, history-ms $h): $prev events applied in $(( total / 1000000 )) ms: $rate events/s" \
      "over the whole log; seqd CPU $cpu_ms ms ($us_per_event µs/event, start included;" \
      "threads seqd-consumer + seqd-laneI: $consumer_us µs/event); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  APPLIED=$prev
  # where seqd's CPU went, per thread group, and whether the harness is the limit: the
  # broker's CPU (the mock's Fetch handling, rdk:mock) over the same window, and how long
  # the threads waited for a CPU while runnable (the other processes of the machine)
  local split broker1
  split=$(sched "$pid" | awk -v label="$label" -v out="$LOG/split-$label" '
    { g = "other"; n = $1
      if (n == "seqd-consumer") g = "consumer"; else if (n ~ /^seqd-lane/) g = "lanes"
      else if (n ~ /^rocksdb:high/) g = "flush"; else if (n ~ /^rocksdb:low/) g = "compaction"
      else if (n ~ /^rdk:/) g = "kafka"
      r[g] += $(NF-2) / 1e6; w[g] += $(NF-1) / 1e6 }
    END { split("consumer lanes flush compaction kafka other", o, " ")
          for (i = 1; i <= 6; i++) printf "%s %d ms (waited %d ms); ", o[i], r[o[i]], w[o[i]]
          printf "%d %d\n", r["compaction"], r["flush"] > out }')
  broker1=$(sched_sum "$BROKER_PID")
  log "seqd ($label) threads, CPU (and time runnable but waiting for a CPU): $split" \
      "the broker: $(( ${broker1% *} - ${broker0% *} )) ms CPU over the $(( total / 1000000 )) ms" \
      "(waited $(( ${broker1#* } - ${broker0#* } )) ms)"
  # what compaction left for later: a setting that compacts less may only defer the work
  log "seqd ($label) RocksDB at the end: $(grep -o 'lsm_state": \[[0-9, ]*\]' "$dir/LOG" | tail -1)," \
      "$(grep -c '"compaction_finished"' "$dir/LOG") compactions finished," \
      "$(grep -c '"flush_finished"' "$dir/LOG") flushes, SST files $(du -cm "$dir"/*.sst | tail -1 | cut -f1) MiB"
  local mis
  mis=$(metric seqd_events_misrouted_total)
  [ "$mis" = 0 ] || log "warning: $mis events were misrouted (re-produced and consumed twice): not plain ingest"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
# the runs: label, binary, history setting; the last one is "this" build's, the anchor's
RUNS=()
for h in "${HISTORIES[@]}"; do RUNS+=("$h|$SEQD|$h"); done
[ -z "$BASELINE" ] || RUNS=("baseline|$BASELINE|default" "this|$SEQD|default")
if [ ${#RUNSPEC[@]} -gt 0 ]; then
  RUNS=()
  for r in "${RUNSPEC[@]}"; do RUNS+=("${r%%=*}|${r#*=}|default"); done
fi
declare -A RATE CPU COMP FLUSH
for r in "${RUNS[@]}"; do
  IFS='|' read -r label bin h <<<"$r"
  consume "$label" "$bin" "$h"
  RATE[$label]=$rate; CPU[$label]=$us_per_event
  read -r COMP[$label] FLUSH[$label] <"$LOG/split-$label"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
if [ ${#HISTORIES[@]} -gt 1 ]; then
  log "history kept (default) vs --history-ms 0: rate ${RATE[default]} vs ${RATE[0]} events/s" \
      "(ratio $(ratio "${RATE[default]}" "${RATE[0]}"), bar >= 0.90); CPU ${CPU[default]} vs" \
      "${CPU[0]} µs/event (ratio $(ratio "${CPU[default]}" "${CPU[0]}"))"
fi
if [ -n "$BASELINE" ]; then
  log "this build vs the baseline: rate ${RATE[this]} vs ${RATE[baseline]} events/s" \
      "(ratio $(ratio "${RATE[this]}" "${RATE[baseline]}")); CPU ${CPU[this]} vs" \
      "${CPU[baseline]} µs/event (ratio $(ratio "${CPU[this]}" "${CPU[baseline]}"))"
fi
if [ ${#RUNSPEC[@]} -gt 0 ]; then
  first=${RUNSPEC[0]%%=*}
  for r in "${RUNSPEC[@]}"; do
    l=${r%%=*}
    log "run $l: ${RATE[$l]} events/s (x$(ratio "${RATE[$l]}" "${RATE[$first]}") of $first)," \
        "${CPU[$l]} µs/event (x$(ratio "${CPU[$l]}" "${CPU[$first]}")), compaction" \
        "${COMP[$l]} ms (x$(ratio "${COMP[$l]}" "$(( ${COMP[$first]} > 0 ? ${COMP[$first]} : 1 ))")), flush ${FLUSH[$l]} ms"
  done
fi
prev=$APPLIED; rate=$rate; rrate=0
if [ $ANCHOR = 0 ]; then
  log "no anchor (--no-anchor)"
elif command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
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
[ -z "$RESULT" ] || echo "events=${FILLED:-0} partitions=$PARTS applied=$prev rate=$rate" \
  "us_per_event=$us_per_event redis_rate=$rrate" >"$RESULT"
