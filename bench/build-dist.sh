#!/usr/bin/env bash
# bench/build-dist.sh: a distributed batch build and a cluster load, shown (issue 11,
# item 4 and "Numbers"; bench/NOTES.md, "Distributed build and cluster load").
#
# 1. Builds: one data set (bench/gen, USERS x 100 events, written as 4 pre-partitioned
#    shares by murmur2: gen --partitions 8 --only-partitions) is built into ONE batch of
#    8 parts (`seqctl build --partitions 8`) by 1, 2 and 4 builder processes running at
#    once, each `--only-partitions` its share, all into one directory: once with every
#    builder reading the whole input (a job whose input is not split beforehand) and once
#    with each reading only its share (pre-partitioned input). Per run: wall time, events/s
#    in total and per builder, and the ratio to one builder. Then one builder each from
#    delimited protobuf, Avro (snappy, as Spark writes) and JSON Lines: events/s.
#    Honesty check: the builders' "events" summed equal the data set's.
# 2. Loads the 2-builder batch (all parts, one LoadBatch) into a single standalone node,
#    then into a three-node cluster (n1, n2 in group g1, n3 in group g2, one `seqctl broker`,
#    one shared batch root) through n1. A reader per node polls a user that node holds
#    (seqload --fixed-user --track-gen) and the node's /status is polled: each node's
#    switch-over is the first answer carrying the new generation, in ms after the call
#    started. Load wall time = until the call returned and every node switched. Prints
#    cluster / single (bar <= 1.5x); when the load did not reach every node (cluster-wide
#    loads missing or failing), it says so and names the nodes instead of a ratio.
#
#   bench/build-dist.sh [--quick] [--users N] [--no-cluster] [--load-only] [--perf DIR]
# --load-only: only the batch that is loaded is built (the 2-builder one; no build table):
# for comparing loads, e.g. two seqd builds one after the other (SEQD_BUILD=DIR, see
# bench/cluster-lib.sh). --perf DIR: `perf record -g` of every node during each load
# (DIR/load-single.data, DIR/load-cluster.data; `perf report -i FILE --sort comm,dso,sym`).
# Defaults: 1,000,000 users x 100 events (the bench's 10x batch), Avro and JSONL 1/10 of
# it; --quick: 20,000 users (a smoke run, ~1-2 minutes; its numbers are not results).
# SETTLE_S (default 20; --quick 0): seconds each load waits, after `sync`, before its call,
# so that the single node and the cluster start from the same memory state (see load_at).
# Builds seqd (Release) and the tools into bench/out like bench/run (an existing
# bench/out/build is reused). Loopback only. Never run in CI: it measures the machine.
set -euo pipefail

QUICK=0; USERS=""; CLUSTER=1; LOAD_ONLY=0; PERF_DIR=""; SETTLE_DEFAULT=20
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --users) USERS=$2; shift 2 ;;
    --no-cluster) CLUSTER=0; shift ;;
    --load-only) LOAD_ONLY=1; shift ;;
    --perf) PERF_DIR=$(realpath -m "$2"); mkdir -p "$PERF_DIR"; shift 2 ;;
    *) echo "usage: bench/build-dist.sh [--quick] [--users N] [--no-cluster] [--load-only] [--perf DIR]" >&2; exit 2 ;;
  esac
done
. "$(dirname "$0")/cluster-lib.sh"
cl_init build-dist
if [ $QUICK = 1 ]; then
  USERS=${USERS:-20000}; AVRO_USERS=$((USERS / 2)); JSONL_USERS=$((USERS / 10)); DEADLINE_S=15; SETTLE_DEFAULT=0
else
  USERS=${USERS:-1000000}; AVRO_USERS=$((USERS / 10)); JSONL_USERS=$((USERS / 10)); DEADLINE_S=120
fi
SETTLE_S=${SETTLE_S:-$SETTLE_DEFAULT}
EVENTS=100; P=8
SHARES=(0-1 2-3 4-5 6-7)   # the 4 pre-partitioned input files
GEN=$(date +%s%3N)
BMS=3600000
END=$(( ($(date +%s%3N) - 86400000) / BMS * BMS ))   # history before the freshness horizon
START=$(( END - 4 * BMS ))
TABLE=$OUT/build-dist.md
KIND=$([ $QUICK = 1 ] && echo "SMOKE (--quick, shared machine): not a result" || echo "full")

# ---------------------------------------------------------------- data
log "generating $USERS users x $EVENTS events as ${#SHARES[@]} shares (pb), Avro $AVRO_USERS, JSONL $JSONL_USERS users"
for s in "${SHARES[@]}"; do
  "$BIN/gen" --format pb --users "$USERS" --events $EVENTS --end-ms "$END" --span-ms 10800000 \
    --partitions $P --only-partitions "$s" --out "$DATA/in-$s.pb"
done
if [ $LOAD_ONLY = 0 ]; then
  "$BIN/gen" --format avro --codec snappy --users "$AVRO_USERS" --events $EVENTS --end-ms "$END" \
    --span-ms 10800000 --out "$DATA/in.avro"
  "$BIN/gen" --format jsonl --users "$JSONL_USERS" --events $EVENTS --end-ms "$END" \
    --span-ms 10800000 --out "$DATA/in.jsonl"
fi
ALL_PB=()
for s in "${SHARES[@]}"; do ALL_PB+=("$DATA/in-$s.pb"); done

# ---------------------------------------------------------------- builds
# build NAME FORMAT WANT_EVENTS BUILDER...: one batch in $DATA/batch/NAME, a builder per
# argument "LIST=FILE[,FILE...]" (its --only-partitions and its input), all at once.
# Sets WALL_NS; dies unless the builders' events add up to WANT_EVENTS.
build() {
  local name=$1 fmt=$2 want=$3 out=$DATA/batch/$1 t0 t1 spec pids=() i=0 got=0 e files
  shift 3
  rm -rf "$out"; mkdir -p "$DATA/batch"
  t0=$(date +%s%N)
  for spec in "$@"; do
    IFS=, read -r -a files <<<"${spec#*=}"
    "$SEQCTL" build --definition "$B/definition.json" --sequence engagements --start-ms "$START" \
      --end-ms "$END" --generation "$GEN" --out "$out" --format "$fmt" --partitions $P \
      --only-partitions "${spec%%=*}" "${files[@]}" >"$LOG/build-$name-$i.out" 2>&1 &
    pids+=($!); i=$((i + 1))
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || die "build $name failed: $(tail -3 "$LOG/build-$name-$i.out")"
  done
  t1=$(date +%s%N)
  WALL_NS=$((t1 - t0))
  for i in "${!pids[@]}"; do
    e=$(grep '^{' "$LOG/build-$name-$i.out" | tail -1 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
    got=$((got + e))
  done
  [ "$got" = "$want" ] || die "build $name: the builders wrote $got events, the data set has $want"
}

ROWS=()
BASE_RATE=0
# timed LABEL NAME FORMAT INPUT_KIND WANT BUILDER...: build and add a table row
timed() {
  local label=$1 name=$2 fmt=$3 kind=$4 want=$5 n rate per ratio
  shift 5
  n=$#
  build "$name" "$fmt" "$want" "$@"
  rate=$(( want * 1000000000 / WALL_NS )); per=$(( rate / n ))
  if [ "$fmt" = pb ] && [ "$n" = 1 ]; then BASE_RATE=$rate; fi
  ratio=$(awk -v r="$rate" -v b="$BASE_RATE" 'BEGIN{printf "%.2f", b ? r / b : 0}')
  [ "$fmt" = pb ] || ratio="-"
  ROWS+=("$(md_row "$label" "$fmt" "$n" "$kind" "$want" "$(awk -v w="$WALL_NS" 'BEGIN{printf "%.2f", w/1e9}')" "$rate" "$per" "$ratio")")
  log "build $label: $n builder(s), $(awk -v w="$WALL_NS" 'BEGIN{printf "%.2f", w/1e9}') s, $rate events/s ($per per builder)"
  eval "RATE_${name//-/_}=$rate"
  [ "$name" = pb-split2 ] || rm -rf "$DATA/batch/$name"   # only the loaded batch is kept
}

PB_EVENTS=$((USERS * EVENTS))
all=$(IFS=,; echo "${ALL_PB[*]}")
log "building one batch of $P parts with 1, 2 and 4 builders"
[ $LOAD_ONLY = 1 ] || timed "1 builder" pb-1 pb "whole" $PB_EVENTS "0-7=$all"
[ $LOAD_ONLY = 1 ] || timed "2 builders, whole input each" pb-shared2 pb "whole" $PB_EVENTS "0-3=$all" "4-7=$all"
[ $LOAD_ONLY = 1 ] || timed "4 builders, whole input each" pb-shared4 pb "whole" $PB_EVENTS "0-1=$all" "2-3=$all" "4-5=$all" "6-7=$all"
timed "2 builders, own share each" pb-split2 pb "pre-partitioned" $PB_EVENTS \
  "0-3=$DATA/in-0-1.pb,$DATA/in-2-3.pb" "4-7=$DATA/in-4-5.pb,$DATA/in-6-7.pb"
[ $LOAD_ONLY = 1 ] || timed "4 builders, own share each" pb-split4 pb "pre-partitioned" $PB_EVENTS \
  "0-1=$DATA/in-0-1.pb" "2-3=$DATA/in-2-3.pb" "4-5=$DATA/in-4-5.pb" "6-7=$DATA/in-6-7.pb"
[ $LOAD_ONLY = 1 ] || timed "1 builder, Avro (snappy)" avro-1 avro "whole" $((AVRO_USERS * EVENTS)) "0-7=$DATA/in.avro"
[ $LOAD_ONLY = 1 ] || timed "1 builder, JSON Lines" jsonl-1 jsonl "whole" $((JSONL_USERS * EVENTS)) "0-7=$DATA/in.jsonl"
rm -rf "$DATA"/in*
LOAD_DIR=$DATA/batch/pb-split2
mapfile -t SSTS < <(ls "$LOAD_DIR"/partition-*/*.sst)

# ---------------------------------------------------------------- loads
# reader NODE USER: a slow reader at NODE for USER (open loop, 500/s), until stopped
reader() {
  bg "$BIN/seqload" --target "${NODE_GRPC[$1]}" --fixed-user "$2" -c 1 -m 4 --rps 500 \
    -D 36000 --warmup 0 --track-gen 1 >"$LOG/reader-$1.out" 2>"$LOG/reader-$1.err"
  READER_PID[$1]=$!
}
declare -A READER_PID SEEN SWITCH_MS STATUS_GEN NODE_CPU0 NODE_RQ0 NODE_WB0 NODE_USE
# write_bytes PID: bytes the process caused to be written to storage so far (/proc/PID/io)
write_bytes() { awk '$1 == "write_bytes:" {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }

# cpu_ms NODES...: user + system CPU of the nodes' processes so far, in ms (every thread,
# RocksDB's compactions included): a load's CPU, unlike its wall time, does not depend on
# what else the shared machine runs (bench/NOTES.md).
cpu_ms() {
  local n t=0 ticks
  for n in "$@"; do
    ticks=$(awk '{print $14 + $15}' "/proc/${NODE_PID[$n]}/stat" 2>/dev/null || echo 0)
    t=$((t + ticks))
  done
  echo $((t * 1000 / $(getconf CLK_TCK)))
}

# load_at NODE NODES...: LoadBatch of every part through NODE while each of NODES has a
# reader; waits (DEADLINE_S) until every node's /status shows the generation. Sets
# LOAD_RC, LOAD_OUT, CALL_MS, LOAD_CPU_MS (the nodes' CPU from the call until all showed
# it) and LOAD_CPU10_MS (until 10 s later: the compactions the load started), and per node
# SEEN (the reader's newest generation), SWITCH_MS (ms after the call started; "-" when
# never) and STATUS_GEN.
load_at() {
  local via=$1 n t0 t1 done_all
  shift
  for n in "$@"; do reader "$n" "${READ_USER[$n]}"; done
  sleep 1
  # Both loads start from the same memory state: SETTLE_S seconds after the last large
  # free (the inputs removed before the single node's load, its data dir before the
  # cluster's). On this VM freed memory goes back to the host (virtio-balloon free page
  # reporting, ~2 s after the free), and the first touch of such a page costs ~3 µs
  # (2.6 GB written into a new page cache: 7.9 s of sys; into just-freed pages: 0.7 s).
  # Without the wait the single node staged into the inputs' just-freed pages, the
  # cluster (started ~25 s later) into returned ones: 2.4 s against 4.3 s for the same
  # copy (bench/NOTES.md, "Session 9 — cluster load").
  sync; sleep "$SETTLE_S"
  local perf_pid=""
  if [ -n "$PERF_DIR" ]; then
    perf record -q -g -o "$PERF_DIR/load-$([ "$via" = single ] && echo single || echo cluster).data" \
      -p "$(for n in "$@"; do printf '%s,' "${NODE_PID[$n]}"; done | sed 's/,$//')" \
      >"$LOG/perf-$via.out" 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  local c0; c0=$(cpu_ms "$@")
  for n in "$@"; do
    NODE_CPU0[$n]=$(cpu_ms "$n"); NODE_RQ0[$n]=$(runq_wait_ms "${NODE_PID[$n]}")
    NODE_WB0[$n]=$(write_bytes "${NODE_PID[$n]}")
  done
  t0=$(now_us)
  LOAD_T0_MS=$((t0 / 1000))
  set +e
  LOAD_OUT=$("$SEQCTL" --server "${NODE_GRPC[$via]}" --admin "${NODE_ADMIN[$via]}" load \
    --sequence engagements --start-ms "$START" --end-ms "$END" --generation "$GEN" "${SSTS[@]}" 2>&1)
  LOAD_RC=$?
  set -e
  t1=$(now_us)
  CALL_MS=$(( (t1 - t0) / 1000 ))
  local until=$(( $(date +%s) + DEADLINE_S ))
  while [ "$(date +%s)" -lt $until ]; do
    done_all=1
    for n in "$@"; do [ "$(status_gen "${NODE_ADMIN[$n]}" engagements)" = "$GEN" ] || done_all=0; done
    [ $done_all = 1 ] && break
    sleep 0.1
  done
  LOAD_CPU_MS=$(( $(cpu_ms "$@") - c0 ))
  for n in "$@"; do
    NODE_USE[$n]="CPU $(( $(cpu_ms "$n") - NODE_CPU0[$n] )) ms, waited for a core $(( $(runq_wait_ms "${NODE_PID[$n]}") - NODE_RQ0[$n] )) ms, wrote $(( ($(write_bytes "${NODE_PID[$n]}") - NODE_WB0[$n]) / 1000000 )) MB"
  done
  sleep 0.5
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  sleep 9.5  # (the readers poll on; a few % of a core)
  LOAD_CPU10_MS=$(( $(cpu_ms "$@") - c0 ))
  for n in "$@"; do
    stop "${READER_PID[$n]}"
    local o at
    o=$(tail -1 "$LOG/reader-$n.out")
    SEEN[$n]=$(kv gen_last "$o"); at=$(kv switch_unix_us "$o")
    if [ "${SEEN[$n]}" = "$GEN" ] && [ "${at:-0}" != 0 ]; then
      SWITCH_MS[$n]=$(awk -v a="$at" -v t="$t0" 'BEGIN{printf "%.1f", (a - t) / 1000}')
    else
      SWITCH_MS[$n]="-"
    fi
    STATUS_GEN[$n]=$(status_gen "${NODE_ADMIN[$n]}" engagements)
  done
  cmd_line="seqctl --server NODE load --sequence engagements --start-ms $START --end-ms $END --generation $GEN $LOAD_DIR/partition-*/*.sst  # ${#SSTS[@]} files"
}

# timeline NODE...: where the load's time went, from each node's log lines (server/loads.c
# log_timeline and the receiver's, server/service.c for a single node), in ms after the
# call started (LOAD_T0_MS); one line per node, printed and added to TIMELINE.
TIMELINE=()
timeline() {
  local n line
  for n in "$@"; do
    line=$(/usr/bin/python3 - "$LOAD_T0_MS" "$n" "$LOG/$n.err" <<'PY'
import re, sys
t0, name, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = []
for l in open(path, errors="replace"):
    m = re.search(r"(load|dry run|loads): timeline .*\((?:call|written) at (\d+) ms\): (.*)", l)
    if not m or int(m.group(2)) < t0 - 60000:
        continue
    base = int(m.group(2)) - t0
    # every "+N" is ms after the line's base: shift it to ms after the bench's call
    steps = re.sub(r"\+(\d+)", lambda x: "+%d" % (base + int(x.group(1))), m.group(3))
    who = "receiver" if m.group(1) != "loads" else "applies"
    out.append("%s %s: %s" % (name, who, steps))
print("; ".join(out) if out else "%s: no timeline in its log" % name)
PY
)
    line="$line (from the call until every node switched: ${NODE_USE[$n]}; waits of threads that ended are not counted)"
    log "timeline: $line"
    TIMELINE+=("$line")
  done
}

# wall_ms NODES...: until the call returned and every node's reader had switched
wall_ms() {
  local w=$CALL_MS n s
  for n in "$@"; do
    s=${SWITCH_MS[$n]}
    [ "$s" = - ] && continue
    w=$(awk -v w="$w" -v s="$s" 'BEGIN{if (s + 0 > w + 0) print s; else print w}')
  done
  echo "$w"
}

declare -A READ_USER
log "single node: standalone seqd, LoadBatch of the ${#SSTS[@]} files of the 2-builder batch"
cl_broker $P
cl_node single -
cl_ready single
READ_USER[single]=1
load_at single single
[ "$LOAD_RC" = 0 ] && [ "${SEEN[single]}" = "$GEN" ] || die "single-node load failed (rc $LOAD_RC): $LOAD_OUT"
SINGLE_WALL=$(wall_ms single)
timeline single
SINGLE_CPU=$LOAD_CPU_MS; SINGLE_CPU10=$LOAD_CPU10_MS
LOAD_ROWS=("$(md_row "single node" "call ${CALL_MS} ms, exit 0" "${SWITCH_MS[single]} ms" "$SINGLE_WALL" "$LOAD_CPU_MS / $LOAD_CPU10_MS")")
log "single node: call $CALL_MS ms, switch-over at ${SWITCH_MS[single]} ms: $LOAD_OUT"
stop "${NODE_PID[single]}"; stop "$BROKER_PID"; rm -rf "$DATA/single"

CLUSTER_NOTE=""
RATIO="-"
if [ $CLUSTER = 1 ]; then
  log "cluster: seqctl broker, n1 n2 (group g1), n3 (group g2), one batch root"
  cl_broker $P
  cl_node n1 g1; cl_node n2 g1; cl_node n3 g2
  cl_ready n1 n2 n3
  cl_wait_settled "${NODE_ADMIN[n1]}" n1 n2 n3
  for n in n1 n2 n3; do
    users_of "$USERS" $P "$(cl_held "${NODE_ADMIN[n1]}" $n)" "$LOG/users-$n.txt"
    READ_USER[$n]=$(head -1 "$LOG/users-$n.txt")
    log "$n holds partitions $(cl_held "${NODE_ADMIN[n1]}" $n); its reader polls user ${READ_USER[$n]}"
  done
  load_at n1 n1 n2 n3
  missing=()
  for n in n1 n2 n3; do
    [ "${SEEN[$n]}" = "$GEN" ] && [ "${STATUS_GEN[$n]}" = "$GEN" ] || missing+=("$n")
    LOAD_ROWS+=("$(md_row "cluster: $n" "" "${SWITCH_MS[$n]} ms" "" "")")
  done
  CLUSTER_WALL=$(wall_ms n1 n2 n3)
  timeline n1 n2 n3
  LOAD_ROWS+=("$(md_row "cluster (via n1)" "call ${CALL_MS} ms, exit $LOAD_RC" "" "$CLUSTER_WALL" "$LOAD_CPU_MS / $LOAD_CPU10_MS")")
  log "cluster: call $CALL_MS ms (exit $LOAD_RC): $LOAD_OUT"
  if [ ${#missing[@]} -gt 0 ]; then
    CLUSTER_NOTE="THE LOAD DID NOT REACH EVERY NODE: ${missing[*]} never showed generation $GEN within ${DEADLINE_S} s (readers saw: $(for n in n1 n2 n3; do printf '%s=%s ' $n "${SEEN[$n]:-?}"; done); /status: $(for n in n1 n2 n3; do printf '%s=%s ' $n "${STATUS_GEN[$n]}"; done)). The call answered (exit $LOAD_RC): $LOAD_OUT. Cluster-wide loads (<topic>.seqd-loads, PRODUCT.md \"Batches in a cluster\") are missing or failing; no ratio."
  else
    RATIO=$(awk -v c="$CLUSTER_WALL" -v s="$SINGLE_WALL" 'BEGIN{if (s > 0) printf "%.2f", c / s; else print "-"}')
    [ "$LOAD_RC" = 0 ] || CLUSTER_NOTE="every node switched, but the call failed (exit $LOAD_RC): $LOAD_OUT"
  fi
fi

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b ? a / b : 0}'; }
{
  echo "## Distributed build and cluster load ($KIND)"
  echo
  echo "bench/build-dist.sh$([ $QUICK = 1 ] && echo " --quick"), $(date -u '+%Y-%m-%d %H:%M UTC'), nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Data: $USERS users x $EVENTS events (pb), one batch of $P parts; Avro $AVRO_USERS users, JSONL $JSONL_USERS users."
  echo
  echo "| build | format | builders | input per builder | events | wall s | events/s total | events/s per builder | vs 1 builder |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  if [ $LOAD_ONLY = 0 ]; then
    echo "- 2 builders vs 1: $(ratio "$RATE_pb_split2" "$RATE_pb_1")x with pre-partitioned input, $(ratio "$RATE_pb_shared2" "$RATE_pb_1")x with the whole input each (bar >= 1.6x on 2 cores)"
    echo "- per builder, Avro / protobuf: $(ratio "$RATE_avro_1" "$RATE_pb_1"), JSON Lines / protobuf: $(ratio "$RATE_jsonl_1" "$RATE_pb_1") (bar: Avro >= 1M events/s per builder)"
  fi
  echo
  echo "LoadBatch of the 2-builder batch ($((USERS * EVENTS)) events, ${#SSTS[@]} files; switch-over = the first answer of the node's reader carrying the new generation, ms after the call started; wall = until the call returned and every node switched; each call made ${SETTLE_S} s after a \`sync\`, so that both loads start from the same memory state):"
  echo
  echo "| load | call | switch-over | wall ms | CPU ms: until switched / +10 s |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${LOAD_ROWS[@]}"
  echo
  echo "Timeline (each node's log: ms after the call started; staged = time reading, hashing and copying the files within the verification):"
  echo
  printf -- '- %s\n' "${TIMELINE[@]}"
  echo
  if [ $CLUSTER = 1 ]; then
    echo "- cluster / single-node load wall time: ${RATIO}x (bar <= 1.5x)"
    echo "- cluster / single-node CPU (every node's, from the call): $(ratio "$LOAD_CPU_MS" "$SINGLE_CPU")x until every node switched, $(ratio "$LOAD_CPU10_MS" "$SINGLE_CPU10")x until 10 s later"
    [ -z "$CLUSTER_NOTE" ] || echo "- **$CLUSTER_NOTE**"
  fi
  echo
  echo "Commands: \`seqctl build --definition bench/definition.json --sequence engagements --start-ms $START --end-ms $END --generation GEN --out DIR --format F --partitions $P --only-partitions LIST INPUT...\` per builder, all at once; \`$cmd_line\`; readers \`seqload --fixed-user U --rps 500 --track-gen 1\`."
} >"$TABLE"
cat "$TABLE"
log "table written to bench/out/build-dist.md (paste into bench/RESULTS.md)"
