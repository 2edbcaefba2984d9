#!/usr/bin/env bash
# bench/cluster.sh: the cluster's read path and catch-up, measured (issue 14, "Benchmarks";
# bench/NOTES.md, "Cluster reads"). Ratios within one run; the load generator (seqload,
# bench/seqload.c) shares the machine.
#
# Data: USERS x 100 events through the batch path (one batch of 8 parts, loaded on every
# node). First a single standalone node (holds every partition), then `seqctl broker` and
# three nodes in ONE group g1 (n1, n2, n3: each holds about a third of the 8 partitions, so
# a batch of users spans all three). Server CPU = utime+stime of every seqd process from
# /proc/PID/stat over the window, divided by the calls (or users) served.
#  1. one node: random users, closed loop -> reads/s, CPU per read
#  2. direct vs forwarded GetSequence at n1: users n1 holds vs users it does not (n1
#     forwards them over h2c to their holder); CPU per call of all nodes (bar <= 2x);
#     closed loop (each at its peak), then both open loop at one fixed rate
#  3. reads/s of three nodes vs one: a client per node, (a) routed (each asks only for the
#     users its node holds: what the Python client does) and (b) unrouted (random users at
#     every node: two thirds forwarded). On one 2-core box this shows the cost, not the scale
#  4. BatchGetSequences of 50 random users (over the three nodes), a client per node, vs the
#     same users as 50 direct GetSequence calls (3a): users/s and CPU per user
#  5. catch-up: seqfeed produces a burst at 400k events/s (300k events with --quick, 400k
#     by default: the mock broker keeps ~75k events per partition, 8 here, and a larger
#     burst would be cut);
#     the group's ingest rate = events applied by n1-n3 / time from the burst's start to
#     the last event applied (the group consumes the backlog); then n4 joins g1, acquires some
#     partitions and fills them from the log: its catch-up rate = events it applied / time
#     from holding its first partition to all caught up; ratio to the ingest rate
# Prints a markdown table (also bench/out/cluster.md) for bench/RESULTS.md.
#
#   bench/cluster.sh [--quick] [--users N] [-D SECS] [--fwd-only] [--perf DIR] [--threads N]
# --fwd-only: only 2 (the three nodes, direct vs forwarded; no single node, no 3-5): the
# forwarding bench/NOTES.md "Session 6" measured. --perf DIR: `perf record -g` of each node
# during the closed-loop direct and forwarded windows, into DIR/{direct,fwd}-NODE.data
# (perf's own CPU is then in the figures: profile runs are not measurement runs).
# Defaults: 200,000 users, 10 s windows; --quick: 20,000 users, 3 s windows (a smoke run, ~2 minutes; its numbers are not results). Builds seqd (Release)
# and the tools into bench/out like bench/run. Loopback only. Never run in CI.
set -euo pipefail

QUICK=0; USERS=""; DUR=""; FWD_ONLY=0; PERF_DIR=""; NODE_ARGS=()
PERF_SYSCALLS=$(printf 'syscalls:sys_enter_%s,' sendto recvfrom writev readv write read epoll_wait epoll_ctl ioctl futex)
PERF_SYSCALLS=${PERF_SYSCALLS%,}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --fwd-only) FWD_ONLY=1; shift ;;
    --perf) PERF_DIR=$(realpath -m "$2"); mkdir -p "$PERF_DIR"; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    -D) DUR=$2; shift 2 ;;
    --threads) NODE_ARGS=(--threads "$2"); shift 2 ;;
    *) echo "usage: bench/cluster.sh [--quick] [--users N] [-D SECS] [--fwd-only] [--perf DIR] [--threads N]" >&2; exit 2 ;;
  esac
done
. "$(dirname "$0")/cluster-lib.sh"
cl_init cluster
if [ $QUICK = 1 ]; then USERS=${USERS:-20000}; DUR=${DUR:-3}; FEED_S=0.75
else USERS=${USERS:-200000}; DUR=${DUR:-10}; FEED_S=1; fi
FEED_RPS=400000   # events/s of the burst: FEED_S x FEED_RPS stays under the mock's bound
P=8; C=4; M=16
FIXED_RPS=$([ $QUICK = 1 ] && echo 10000 || echo 30000)   # both at one rate, well under either peak
KIND=$([ $QUICK = 1 ] && echo "SMOKE (--quick, shared machine): not a result" || echo "full")
TABLE=$OUT/cluster.md
GEN=$(date +%s%3N)
BMS=3600000
END=$(( ($(date +%s%3N) - 86400000) / BMS * BMS ))
START=$(( END - 4 * BMS ))
declare -A HELD
ROWS=()
row() { ROWS+=("$(md_row "$@")"); }
per() { awk -v t="$1" -v n="$2" -v k="$CLK" 'BEGIN{printf "%.2f", n ? t / k * 1e6 / n : 0}'; }  # TICKS N -> µs
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b ? a / b : 0}'; }
all_ticks() { local t=0 n; for n in "$@"; do t=$((t + $(ticks "${NODE_PID[$n]}"))); done; echo $t; }

log "data: $USERS users x 100 events, one batch of $P parts"
batch_data "$USERS" "$GEN" "$START" "$END"
seq 1 "$USERS" >"$LOG/users-all.txt"

# clients TAG NODES... : one seqload per listed "NODE:USERFILE[:EXTRA ARGS]" spec at once,
# closed loop for DUR s; sets REQS (calls summed), RPS (summed) and TICKS (CPU of NODES_CPU)
clients() {
  local tag=$1 spec i=0 pids=() t0 t1 o n f extra w0
  shift
  local perfs=()
  if [ -n "$PERF_DIR" ] && { [ "$tag" = direct ] || [ "$tag" = fwd ]; }; then
    for n in "${NODES_CPU[@]}"; do
      # shellcheck disable=SC2086
      perf record -q ${PERF_CG:--g} -p "${NODE_PID[$n]}" -o "$PERF_DIR/$tag-$n.data" -- sleep "$DUR" >/dev/null 2>&1 &
      perfs+=($!)
      perf stat -x, -o "$PERF_DIR/$tag-$n.syscalls" -e "$PERF_SYSCALLS" -p "${NODE_PID[$n]}" -- sleep "$DUR" >/dev/null 2>&1 &
      perfs+=($!)
    done
  fi
  t0=$(all_ticks "${NODES_CPU[@]}"); w0=$(date +%s%N)
  for spec in "$@"; do
    IFS=: read -r n f extra <<<"$spec"
    # shellcheck disable=SC2086
    "$BIN/seqload" --target "${NODE_GRPC[$n]}" --user-file "$f" -c $C -m $M -D "$DUR" --warmup 0 \
      $extra >"$LOG/$tag-$i.out" 2>&1 &
    pids+=($!); i=$((i + 1))
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || die "seqload $tag failed: $(cat "$LOG/$tag-$i.out")"; done
  t1=$(all_ticks "${NODES_CPU[@]}")
  for i in "${perfs[@]}"; do wait "$i" || true; done
  [ ${#perfs[@]} = 0 ] || grep -h '^requests\|requests=' "$LOG/$tag"-*.out >"$PERF_DIR/$tag.requests" || true
  TICKS=$((t1 - t0)); REQS=0; RPS=0; WALL_S=$(awk -v a="$w0" -v b="$(date +%s%N)" 'BEGIN{print (b - a) / 1e9}')
  for i in "${!pids[@]}"; do
    o=$(cat "$LOG/$tag-$i.out")
    [ "$(kv errors "$o")" = 0 ] || die "seqload $tag: errors: $o"
    REQS=$((REQS + $(kv requests "$o"))); RPS=$((RPS + $(kv rps "$o")))
  done
}

seqload_warm() { "$BIN/seqload" --target "${NODE_GRPC[$1]}" --users "$USERS" -c $C -m $M -D 1 --warmup 0 >/dev/null; }
# ---------------------------------------------------------------- 1. one node
if [ $FWD_ONLY = 0 ]; then
log "one standalone node"
cl_broker $P
cl_node solo -
cl_ready solo
load_everywhere "$GEN" "$START" "$END" solo
NODES_CPU=(solo)
seqload_warm solo
clients one solo:"$LOG/users-all.txt"
ONE_RPS=$RPS; ONE_CPU=$(per $TICKS $REQS)
row "1 node: GetSequence, random users" "$RPS" "$ONE_CPU" "" ""
stop "${NODE_PID[solo]}"; stop "$BROKER_PID"
fi

# ---------------------------------------------------------------- the cluster
log "three nodes in group g1"
cl_broker $P
cl_node n1 g1 "${NODE_ARGS[@]}"; cl_node n2 g1 "${NODE_ARGS[@]}"; cl_node n3 g1 "${NODE_ARGS[@]}"
cl_ready n1 n2 n3
cl_wait_settled "${NODE_ADMIN[n1]}" n1 n2 n3
load_everywhere "$GEN" "$START" "$END" n1 n2 n3
NODES_CPU=(n1 n2 n3)
for n in n1 n2 n3; do
  HELD[$n]=$(cl_held "${NODE_ADMIN[n1]}" $n)
  users_of "$USERS" $P "${HELD[$n]}" "$LOG/users-$n.txt"
  log "$n holds partitions ${HELD[$n]} ($(wc -l <"$LOG/users-$n.txt") users)"
done
users_of "$USERS" $P "${HELD[n2]},${HELD[n3]}" "$LOG/users-not-n1.txt"
for n in n1 n2 n3; do seqload_warm $n; done

log "2. direct vs forwarded GetSequence at n1"
clients direct n1:"$LOG/users-n1.txt"
D_RPS=$RPS; D_CPU=$(per $TICKS $REQS)
row "GetSequence at n1, users n1 holds (direct)" "$RPS" "$D_CPU" "" ""
clients fwd n1:"$LOG/users-not-n1.txt"
F_RPS=$RPS; F_CPU=$(per $TICKS $REQS)
FWD=$(metric "${NODE_ADMIN[n1]}" seqd_forwarded_total)
row "GetSequence at n1, users n2/n3 hold (forwarded)" "$RPS" "$F_CPU" "$(ratio "$F_CPU" "$D_CPU") (bar <= 2)" "n1 forwarded $FWD calls in all"

# the same two at one fixed rate (open loop): closed loops run the forwarded calls at a
# fraction of the direct rate, and fewer calls per wakeup cost more CPU each
# At a fixed rate the nodes' idle work (consumers, map, heartbeats) is a large part of
# the window: it is measured first (no calls, same window) and taken off both.
i0=$(all_ticks n1 n2 n3); sleep "$DUR"; IDLE_TPS=$(awk -v t=$(( $(all_ticks n1 n2 n3) - i0 )) -v d="$DUR" 'BEGIN{print t / d}')
net() { awk -v t="$TICKS" -v i="$IDLE_TPS" -v w="$WALL_S" 'BEGIN{n = t - i * w; if (n < 0) n = 0; print n}'; }
clients direct-fixed n1:"$LOG/users-n1.txt":"--rps $FIXED_RPS"
DX_CPU=$(per "$(net)" $REQS)
row "GetSequence at n1, direct, open loop at $FIXED_RPS/s" "$RPS" "$DX_CPU above idle ($(per $TICKS $REQS) with it)" "" ""
clients fwd-fixed n1:"$LOG/users-not-n1.txt":"--rps $FIXED_RPS"
FX_CPU=$(per "$(net)" $REQS)
row "GetSequence at n1, forwarded, open loop at $FIXED_RPS/s" "$RPS" "$FX_CPU above idle ($(per $TICKS $REQS) with it)" "$(ratio "$FX_CPU" "$DX_CPU") (bar <= 2)" "idle: $(awk -v t="$IDLE_TPS" -v k="$CLK" 'BEGIN{printf "%.0f", t / k * 1000}') ms CPU/s, 3 nodes"

if [ $FWD_ONLY = 1 ]; then
  {
    echo "## Forwarded vs direct GetSequence ($KIND, --fwd-only)"
    echo
    echo "bench/cluster.sh$([ $QUICK = 1 ] && echo " --quick") --fwd-only, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), seqd $SEQD."
    echo "Data: $USERS users x 100 events (batch path), $P partitions; three nodes in one group (n1: ${HELD[n1]}, n2: ${HELD[n2]}, n3: ${HELD[n3]}); seqload -c $C -m $M, ${DUR} s windows; CPU = utime+stime of every seqd over the window / calls (µs)."
    echo
    echo "| figure | per second | server CPU µs/call (all nodes) | ratio | note |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "- forwarded / direct server CPU per GetSequence: $(ratio "$F_CPU" "$D_CPU")x closed loop, $(ratio "$FX_CPU" "$DX_CPU")x both at $FIXED_RPS/s (bar <= 2x)"
  } >"$OUT/cluster-fwd.md"
  cat "$OUT/cluster-fwd.md"
  log "table written to bench/out/cluster-fwd.md"
  exit 0
fi

log "3. three nodes vs one"
clients routed n1:"$LOG/users-n1.txt" n2:"$LOG/users-n2.txt" n3:"$LOG/users-n3.txt"
R_RPS=$RPS; R_CPU=$(per $TICKS $REQS)
row "3 nodes, a client per node, routed (direct)" "$RPS" "$R_CPU" "$(ratio "$RPS" "$ONE_RPS") of 1 node" "2 cores for 3 nodes + 3 clients"
clients unrouted n1:"$LOG/users-all.txt" n2:"$LOG/users-all.txt" n3:"$LOG/users-all.txt"
row "3 nodes, a client per node, random users (2/3 forwarded)" "$RPS" "$(per $TICKS $REQS)" "$(ratio "$RPS" "$ONE_RPS") of 1 node" ""

log "4. BatchGetSequences of 50 users vs 50 direct calls"
clients batch n1:"$LOG/users-all.txt":"--batch 50" n2:"$LOG/users-all.txt":"--batch 50" n3:"$LOG/users-all.txt":"--batch 50"
B_UPS=$((RPS * 50)); B_CPU=$(per $TICKS $((REQS * 50)))
row "BatchGetSequences of 50 (over 3 nodes), a client per node: users/s" "$B_UPS" "$B_CPU per user" \
  "$(ratio "$B_UPS" "$R_RPS") users/s, $(ratio "$B_CPU" "$R_CPU") CPU/user of 50 direct calls (3 nodes routed)" "$RPS batches/s"

# ---------------------------------------------------------------- 5. catch-up
log "5. ingest: a burst of seqfeed ($FEED_RPS/s for ${FEED_S} s), until n1-n3 have consumed it"
applied() { local t=0 n; for n in "$@"; do t=$((t + $(metric "${NODE_ADMIN[$n]}" seqd_events_applied_total))); done; echo $t; }
lag() { local t=0 n; for n in "$@"; do t=$((t + $(metric "${NODE_ADMIN[$n]}" seqd_consumer_lag_messages))); done; echo $t; }
a0=$(applied n1 n2 n3); t0=$(date +%s%N)
FEED=$("$BIN/seqfeed" --brokers "$BROKERS" --users "$USERS" --rps $FEED_RPS -D "$FEED_S")
log "fed: $FEED"
PRODUCED=$(kv produced "$FEED")
# consumed: lag 0 and nothing applied for two polls in a row (the mock broker keeps a
# bounded log per partition, ~75k events: a larger burst is cut, so the count applied,
# not the count produced, is what the group ingested)
prev=$a0; t1=$t0; still=0; until_s=$(( $(date +%s) + 120 ))
while [ "$(date +%s)" -lt $until_s ]; do
  kill -0 "$BROKER_PID" 2>/dev/null || die "seqctl broker died during the feed (pid $BROKER_PID)"
  a1=$(applied n1 n2 n3); now=$(date +%s%N)
  if [ "$a1" != "$prev" ]; then t1=$now; still=0; else still=$((still + 1)); fi
  prev=$a1
  [ "$a1" -gt "$a0" ] && [ $still -ge 2 ] && [ "$(lag n1 n2 n3)" = 0 ] && break
  sleep 0.2
done
[ "$a1" -gt "$a0" ] || die "nothing of the burst was applied within 120 s"
a1=$prev
INGEST=$(( (a1 - a0) * 1000000000 / (t1 - t0) ))
# events on another partition than their user's are re-produced and consumed twice: a
# producer without murmur2 would measure that path, not ingest (bench/NOTES.md, session 5)
MISROUTED=0
for n in n1 n2 n3; do MISROUTED=$((MISROUTED + $(metric "${NODE_ADMIN[$n]}" seqd_events_misrouted_total))); done
[ "$MISROUTED" = 0 ] || log "warning: $MISROUTED events misrouted: the ingest figure includes re-produced copies"
row "ingest, group g1 (3 nodes): events applied/s, burst start to last applied" "$INGEST" "" "" "$PRODUCED produced at $(kv rate "$FEED")/s; $((a1 - a0)) applied; $MISROUTED misrouted"

log "n4 joins g1 and fills what it acquires from the log"
cl_node n4 g1
cl_ready n4
# poll n4: the first moment it holds a partition, and the moment all it holds are caught up
n4_state() {
  curl -s "http://${NODE_ADMIN[n4]}/status" | /usr/bin/python3 -c '
import json, sys
p = json.load(sys.stdin)["stream"]["partitions"]
held = [x for x in p if x["held"]]
print(len(held), sum(1 for x in held if x["caught_up"]))' 2>/dev/null || echo "0 0"
}
T_HELD=""; T_DONE=""; until_s=$(( $(date +%s) + 90 ))
while [ "$(date +%s)" -lt $until_s ]; do
  read -r h c <<<"$(n4_state)"
  now=$(date +%s%N)
  [ -z "$T_HELD" ] && [ "$h" -gt 0 ] && T_HELD=$now
  if [ -n "$T_HELD" ] && [ "$h" -gt 0 ] && [ "$c" = "$h" ]; then T_DONE=$now; break; fi
  sleep 0.05
done
[ -n "$T_DONE" ] || die "n4 did not catch up within 90 s: $(curl -s "http://${NODE_ADMIN[n4]}/status")"
N4_APPLIED=$(metric "${NODE_ADMIN[n4]}" seqd_events_applied_total)
N4_HELD=$(curl -s "http://${NODE_ADMIN[n4]}/status" | /usr/bin/python3 -c '
import json, sys
print(",".join(str(x["partition"]) for x in json.load(sys.stdin)["stream"]["partitions"] if x["held"]))')
CATCH_MS=$(( (T_DONE - T_HELD) / 1000000 ))
CATCH=$(( N4_APPLIED * 1000000000 / (T_DONE - T_HELD > 0 ? T_DONE - T_HELD : 1) ))
row "catch-up: n4 acquires partitions $N4_HELD, fills them from the log" "$CATCH" "" \
  "$(ratio "$CATCH" "$INGEST") of the group's ingest rate" "$N4_APPLIED events in $CATCH_MS ms (50 ms polls)"

# ---------------------------------------------------------------- report
{
  echo "## Cluster reads and catch-up ($KIND)"
  echo
  echo "bench/cluster.sh$([ $QUICK = 1 ] && echo " --quick"), $(date -u '+%Y-%m-%d %H:%M UTC'), nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Data: $USERS users x 100 events (batch path), $P partitions; three nodes in one group (n1: ${HELD[n1]}, n2: ${HELD[n2]}, n3: ${HELD[n3]}); seqload -c $C -m $M, closed loop, ${DUR} s windows; CPU = utime+stime of every seqd over the window / calls (µs)."
  echo
  echo "| figure | per second | server CPU µs/call (all nodes) | ratio | note |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "- forwarded / direct server CPU per GetSequence: $(ratio "$F_CPU" "$D_CPU")x closed loop, $(ratio "$FX_CPU" "$DX_CPU")x both at $FIXED_RPS/s (bar <= 2x)"
  echo "- three nodes / one node, reads/s: $(ratio "$R_RPS" "$ONE_RPS")x routed (one 2-core box: the cost, not the scale)"
  echo "- BatchGetSequences of 50 / 50 direct calls: $(ratio "$B_UPS" "$R_RPS")x users/s, $(ratio "$B_CPU" "$R_CPU")x CPU per user"
  echo "- catch-up of an acquired partition / ingest: $(ratio "$CATCH" "$INGEST")x"
  [ -z "${LOAD_NOTE:-}" ] || echo "- setup: $LOAD_NOTE"
  echo
  echo "Commands: \`seqload --target NODE --user-file USERS -c $C -m $M -D $DUR [--batch 50]\` (USERS: the ids a node holds, by murmur2, or all); \`seqfeed --brokers B --users $USERS --rps $FEED_RPS -D $FEED_S\`; n4: \`seqd --group g1 --instance-id n4 ...\`, polled on /status every 50 ms."
} >"$TABLE"
cat "$TABLE"
log "table written to bench/out/cluster.md (paste into bench/RESULTS.md)"
