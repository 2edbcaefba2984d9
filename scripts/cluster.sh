#!/usr/bin/env bash
# A seqd cluster on one machine, for demos and tests (README, "A cluster of nodes"): a
# `seqctl broker` (librdkafka's mock Kafka, 8 partitions) and three nodes on loopback in
# two replica groups: n1 and n2 in group g1 (they split the partitions), n3 in group g2
# (it holds them all). Produces sample events, waits until the map has settled, prints it
# (seqctl cluster) and reads one user through every node (n1 and n2 forward the users of
# each other's partitions) and with the Python routing client (clients/python).
#
# Then, on a terminal, the cluster stays up until Ctrl-C. With --demo, or when stdin is not
# a terminal, it stops everything and exits 0. Work files (data dirs, logs) go to
# ${SEQD_CLUSTER_DIR:-./seqd-cluster}. Build dir: $SEQD_BUILD or ./build-release (built).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=0
case "${1:-}" in
  "") [ -t 0 ] || demo=1 ;;
  --demo) demo=1 ;;
  *) echo "usage: scripts/cluster.sh [--demo]" >&2; exit 2 ;;
esac

if [ -z "${SEQD_BUILD:-}" ]; then
  bash scripts/install-deps.sh
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-release -j"$(nproc)" --target seqd seqctl
  SEQD_BUILD=build-release
fi
seqd=$SEQD_BUILD/seqd
seqctl=$SEQD_BUILD/seqctl
dir=${SEQD_CLUSTER_DIR:-./seqd-cluster}
mkdir -p "$dir"

pids=()
stop() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

wait_line() { # FILE PATTERN PID
  for _ in $(seq 1 600); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { echo "process $3 died:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; exit 1
}

"$seqctl" broker --partitions 8 >"$dir/broker.log" 2>&1 &
pids+=($!)
wait_line "$dir/broker.log" '^brokers=' "${pids[-1]}"
brokers=$(sed -n 's/^brokers=//p' "$dir/broker.log")
echo "== broker at $brokers"

for n in 1 2 3; do
  group=g1; [ "$n" = 3 ] && group=g2
  "$seqd" --definition examples/definition.json --data-dir "$dir/n$n" --brokers "$brokers" \
      --group "$group" --instance-id "n$n" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
      >"$dir/n$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2 3; do
  wait_line "$dir/n$n.log" '^seqd ready' "${pids[$n]}"
  grep '^seqd ready' "$dir/n$n.log" | sed "s/^/n$n: /"
done
admin1=$(sed -n 's/^seqd ready .*admin=\([^ ]*\).*/\1/p' "$dir/n1.log")

echo "== seqctl produce --sample 2000 --users 100"
"$seqctl" --admin "$admin1" produce --sample 2000 --users 100

# settled: three nodes, g1's two holding 8 partitions between them, nothing catching up
settled() {
  "$seqctl" --admin "$admin1" cluster --json | python3 -c '
import json, sys
m = json.load(sys.stdin)
nodes = {n["id"]: n for n in m["nodes"]}
ok = set(nodes) == {"n1", "n2", "n3"} and all(n["partitions"] == n["caught_up"] and n["ready"] for n in nodes.values())
ok = ok and sorted(nodes["n1"]["partitions"] + nodes["n2"]["partitions"]) == list(range(m["partitions"]))
sys.exit(0 if ok else 1)' 2>/dev/null
}
for _ in $(seq 1 600); do settled && break; sleep 0.1; done
echo "== seqctl cluster"
"$seqctl" --admin "$admin1" cluster
for n in 1 2 3; do
  grpc=$(sed -n 's/^seqd ready grpc=\([^ ]*\).*/\1/p' "$dir/n$n.log")
  echo "== user 1 through n$n ($grpc)"
  "$seqctl" --server "$grpc" --admin "$admin1" get 1 engagements --max 3
done

# the routing client goes straight to a holder of the user's partition (one hop)
seeds=$(for n in 1 2 3; do sed -n 's/^seqd ready grpc=\([^ ]*\).*/"\1"/p' "$dir/n$n.log"; done | paste -sd, -)
echo "== user 1 with the Python client: SeqdClient([$seeds])"
PYTHONPATH=clients/python /usr/bin/python3 - "[$seeds]" <<'EOF'  # Debian's python3-grpcio
import json, sys
from seqd_client import SeqdClient
c = SeqdClient(json.loads(sys.argv[1]), timeout=5.0)
rows = c.get_list(1, "engagements", max_events=3)
_, node = c.get_served(1, "engagements", max_events=3)
print("partition %d, holders %s: %d events, served_by %s"
      % (c.partition(1), " ".join(c.holders(1)), len(rows), node))
for row in rows:
    print("  ", row)
c.close()
EOF

if [ "$demo" = 1 ]; then
  echo "== demo done: stopping the cluster"
  exit 0
fi
echo "== the cluster is running (logs in $dir); Ctrl-C stops it. Seeds for SeqdClient: [$seeds]"
wait "${pids[0]}"
