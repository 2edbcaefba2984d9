# bench/cluster-lib.sh: what the cluster benchmarks share (sourced by bench/build-dist.sh
# and bench/cluster.sh, never run alone): the Release build and the tools in bench/out as
# bench/run makes them, a `seqctl broker` and seqd nodes on loopback, the cluster map
# (who holds which partition), users of a node's partitions, CPU ticks and metrics.
# Every process started here is stopped on exit. Not part of CI.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/bench
OUT=$B/out
BIN=$OUT/bin
CLK=$(getconf CLK_TCK)
PIDS=()
declare -A NODE_PID NODE_GRPC NODE_ADMIN

log() { echo "[$BENCH_NAME $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
cl_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cl_cleanup EXIT
bg() { "$@" & PIDS+=($!); }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }       # utime+stime, all threads
# runq_wait_ms PID: time its threads were runnable but waited for a CPU (schedstat), in ms
runq_wait_ms() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%d\n", w / 1e6}'; }
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }          # value of key $1 in a key=value line
now_us() { echo $(( $(date +%s%N) / 1000 )); }
# metric ADMIN NAME: the sum of a Prometheus metric's samples (labels summed over)
metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1==m || index($1, m"{")==1 {s+=$2} END {printf "%.0f\n", s}'; }

# cl_init NAME: log and data directories (emptied), the Release build and the tools.
# A build already in bench/out/build is reused (bench/run's; remove it to rebuild);
# SEQD_BUILD=DIR takes seqd and seqctl from DIR instead (another branch's build, say).
cl_init() {
  BENCH_NAME=$1
  LOG=$OUT/log/$1; DATA=$OUT/data/$1
  rm -rf "$DATA"; mkdir -p "$BIN" "$LOG" "$DATA"
  if [ -n "${SEQD_BUILD:-}" ]; then
    SEQD=$SEQD_BUILD/seqd; SEQCTL=$SEQD_BUILD/seqctl
    [ -x "$SEQD" ] && [ -x "$SEQCTL" ] || die "no seqd and seqctl in SEQD_BUILD=$SEQD_BUILD"
  elif [ ! -x "$OUT/build/seqd" ] || [ ! -x "$OUT/build/seqctl" ]; then
    log "building seqd (Release) in bench/out/build"
    cmake -S "$ROOT" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release >"$LOG/cmake.log"
    make -C "$OUT/build" -j2 seqd seqctl >"$LOG/make.log" || die "build failed: see $LOG/make.log"
  fi
  local cf=(-O2 -Wall -Wextra -Werror)
  cc "${cf[@]}" -I"$ROOT/engine" -o "$BIN/gen" "$B/gen.c" "$ROOT/engine/partition.c" $(pkg-config --libs avro-c)
  cc "${cf[@]}" -o "$BIN/seqload" "$B/seqload.c" "$B/h2c.c" -lnghttp2
  cc "${cf[@]}" -o "$BIN/seqfeed" "$B/seqfeed.c" "$B/h2c.c" -lnghttp2 -lrdkafka
  [ -n "${SEQD_BUILD:-}" ] || { SEQD=$OUT/build/seqd; SEQCTL=$OUT/build/seqctl; }
  command -v h2load >/dev/null || die "h2load missing (scripts/install-deps.sh --bench)"
}

# cl_broker PARTITIONS: a fresh `seqctl broker`; sets BROKERS and BROKER_PID
cl_broker() {
  local f=$LOG/broker-$(date +%s%N).out
  bg "$SEQCTL" broker --partitions "$1" >"$f" 2>&1
  BROKER_PID=$!
  for _ in $(seq 100); do grep -q '^brokers=' "$f" && break; sleep 0.1; done
  BROKERS=$(sed -n 's/^brokers=//p' "$f")
  [ -n "$BROKERS" ] || die "seqctl broker did not start: $(cat "$f")"
}

# cl_node NAME GROUP [SEQD ARGS...]: a seqd on loopback, data in $DATA/NAME, the batch
# root $DATA/batch shared by every node (the contract's shared mount). GROUP "-" makes a
# standalone node (no --group/--instance-id: it holds every partition).
cl_node() {
  local n=$1 g=$2 ga=()
  shift 2
  [ "$g" = - ] || ga=(--group "$g" --instance-id "$n")
  mkdir -p "$DATA/batch"
  bg "$SEQD" --definition "$B/definition.json" --data-dir "$DATA/$n" --brokers "$BROKERS" \
    "${ga[@]}" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --batch-root "$DATA/batch" \
    "$@" >"$LOG/$n.out" 2>"$LOG/$n.err"
  NODE_PID[$n]=$!
}

# cl_ready NAME...: waits for each node's "seqd ready" line; sets NODE_GRPC and NODE_ADMIN
cl_ready() {
  local n
  for n in "$@"; do
    for _ in $(seq 600); do
      grep -q '^seqd ready' "$LOG/$n.out" 2>/dev/null && break
      kill -0 "${NODE_PID[$n]}" 2>/dev/null || die "node $n died: $(tail -5 "$LOG/$n.err")"
      sleep 0.1
    done
    NODE_GRPC[$n]=$(sed -n 's/^seqd ready grpc=\([^ ]*\).*/\1/p' "$LOG/$n.out")
    NODE_ADMIN[$n]=$(sed -n 's/^seqd ready .*admin=\([^ ]*\).*/\1/p' "$LOG/$n.out")
    [ -n "${NODE_GRPC[$n]}" ] || die "node $n did not start: $(tail -5 "$LOG/$n.err")"
  done
}

# cl_map ADMIN: the cluster map (JSON) as that node sees it
cl_map() { curl -s "http://$1/cluster"; }

# cl_settled ADMIN NAME...: 0 once the map holds exactly these nodes, each ready and caught
# up on everything it holds, and each group's nodes hold every partition once
cl_settled() {
  local a=$1
  shift
  cl_map "$a" | /usr/bin/python3 -c '
import json, sys
want = set(sys.argv[1:])
m = json.load(sys.stdin)
nodes = {n["id"]: n for n in m["nodes"]}
ok = set(nodes) == want and all(n["ready"] and n["partitions"] == n["caught_up"] for n in nodes.values())
groups = {}
for n in nodes.values():
    groups.setdefault(n["group"], []).extend(n["partitions"])
ok = ok and all(sorted(p) == list(range(m["partitions"])) for p in groups.values())
sys.exit(0 if ok else 1)' "$@" 2>/dev/null
}

# cl_wait_settled ADMIN NAME...: cl_settled within 120 s, or die
cl_wait_settled() {
  for _ in $(seq 1200); do cl_settled "$@" && return 0; sleep 0.1; done
  die "the cluster did not settle: $(cl_map "$1")"
}

# cl_held ADMIN NAME: the partitions NAME holds, comma-separated
cl_held() {
  cl_map "$1" | /usr/bin/python3 -c '
import json, sys
m = json.load(sys.stdin)
print(",".join(str(p) for n in m["nodes"] if n["id"] == sys.argv[1] for p in n["partitions"]))' "$2"
}

# users_of USERS P HELD FILE: the ids 1..USERS whose partition (of P) is in HELD (a
# comma list), one per line into FILE, with the Python client's murmur2 (the same
# function as engine/partition.c, checked against the same vectors)
users_of() {
  /usr/bin/python3 - "$@" "$ROOT/clients/python" <<'PY'
import sys
sys.path.insert(0, sys.argv[5])
from seqd_client.partition import partition_of_user
users, p, held, out = int(sys.argv[1]), int(sys.argv[2]), {int(x) for x in sys.argv[3].split(",") if x}, sys.argv[4]
with open(out, "w") as f:
    for u in range(1, users + 1):
        if partition_of_user(u, p) in held:
            f.write("%d\n" % u)
PY
}

# status_gen ADMIN SEQUENCE: the node's committed batch generation of the sequence
status_gen() {
  curl -s "http://$1/status" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
print(next((q["batch_generation"] for q in s.get("sequences", []) if q["name"] == sys.argv[1]), 0))' "$2"
}

# md_row CELLS...: one markdown table row
md_row() { local IFS='|'; printf '| %s |\n' "$(sed 's/|/ | /g' <<<"$*")"; }

# batch_data USERS GEN START END: USERS x 100 events (bench/gen), built into one batch of 8
# parts in $DATA/batch/data; sets SSTS (its files)
batch_data() {
  mkdir -p "$DATA/batch"
  "$BIN/gen" --format pb --users "$1" --events 100 --end-ms "$4" --span-ms 10800000 --out "$DATA/in.pb"
  "$SEQCTL" build --definition "$B/definition.json" --sequence engagements --start-ms "$3" \
    --end-ms "$4" --generation "$2" --out "$DATA/batch/data" --format pb --partitions 8 \
    "$DATA/in.pb" >"$LOG/build.out" 2>&1 || die "build failed: $(tail -3 "$LOG/build.out")"
  rm -f "$DATA/in.pb"
  mapfile -t SSTS < <(ls "$DATA"/batch/data/partition-*/*.sst)
}

# load_everywhere GEN START END NODE...: LoadBatch of SSTS through the first node; a node
# that does not show GEN within 10 s (cluster-wide loads missing) gets the same call
# directly, and LOAD_NOTE says so
load_everywhere() {
  local gen=$1 s=$2 e=$3 n missing=()
  shift 3
  LOAD_NOTE=""
  "$SEQCTL" --server "${NODE_GRPC[$1]}" --admin "${NODE_ADMIN[$1]}" load --sequence engagements \
    --start-ms "$s" --end-ms "$e" --generation "$gen" "${SSTS[@]}" >"$LOG/load-$1.out" 2>&1 ||
    log "load through $1 answered: $(cat "$LOG/load-$1.out")"
  for n in "$@"; do
    for _ in $(seq 50); do [ "$(status_gen "${NODE_ADMIN[$n]}" engagements)" = "$gen" ] && break; sleep 0.2; done
    [ "$(status_gen "${NODE_ADMIN[$n]}" engagements)" = "$gen" ] && continue
    missing+=("$n")
    "$SEQCTL" --server "${NODE_GRPC[$n]}" --admin "${NODE_ADMIN[$n]}" load --sequence engagements \
      --start-ms "$s" --end-ms "$e" --generation "$gen" "${SSTS[@]}" >"$LOG/load-$n.out" 2>&1 ||
      die "load at $n failed: $(cat "$LOG/load-$n.out")"
  done
  if [ ${#missing[@]} -gt 0 ]; then
    LOAD_NOTE="the load through $1 did not reach ${missing[*]} (cluster-wide loads missing?): loaded there directly"
    log "$LOAD_NOTE"
  fi
}
