#!/usr/bin/env bash
# Cluster benchmark (issue 14): server CPU per GetSequence, direct vs forwarded, both
# nodes counted. Starts `seqctl broker` and two nodes of one group on loopback (each
# holds half the partitions), loads sample events, then runs the same h2load command at
# node A twice: for a user A holds (direct) and for a user B holds (A forwards to B over
# h2c). Prints req/s and CPU µs per call (A + B) of both, and their ratio (bar: <= 2x).
# Not part of CI; numbers mean something only on a quiet machine (README, Benchmarks).
# Usage: bench/cluster.sh [REQUESTS]   (default 200000; build dir $SEQD_BUILD or build-release)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
B=${SEQD_BUILD:-build-release}
if [ -z "${SEQD_BUILD:-}" ]; then
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-release -j"$(nproc)" --target seqd seqctl >/dev/null
fi
dir=$(mktemp -d /tmp/seqd-bench-cluster.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
"$B/seqctl" broker --partitions 8 >"$dir/broker" 2>&1 & pids+=($!)
until grep -q brokers= "$dir/broker"; do sleep 0.1; done
brokers=$(sed -n 's/^brokers=//p' "$dir/broker")
for n in a b; do
  "$B/seqd" --definition examples/definition.json --data-dir "$dir/$n" --brokers "$brokers" \
    --group g --instance-id "$n" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --threads 1 >"$dir/$n.log" 2>&1 & pids+=($!)
done
for n in a b; do until grep -q '^seqd ready' "$dir/$n.log"; do sleep 0.1; done; done
pid_a=${pids[1]} pid_b=${pids[2]}
grpc_a=$(sed -n 's/^seqd ready grpc=\([^ ]*\).*/\1/p' "$dir/a.log")
admin_a=$(sed -n 's/^seqd ready .*admin=\([^ ]*\).*/\1/p' "$dir/a.log")
"$B/seqctl" --admin "$admin_a" produce --sample 100000 --users 1000 >/dev/null
# wait for the map (both nodes, 4 partitions each), then pick a user of each node
read -r user_a user_b < <(/usr/bin/python3 - "$admin_a" <<'PY'
import json, sys, time, urllib.request
sys.path.insert(0, "clients/python")
from seqd_client.partition import partition_of_user
for _ in range(600):
    m = json.load(urllib.request.urlopen("http://%s/cluster" % sys.argv[1]))
    n = {x["id"]: x for x in m["nodes"]}
    if set(n) == {"a", "b"} and all(x["partitions"] == x["caught_up"] and x["partitions"] for x in n.values()):
        break
    time.sleep(0.1)
ua = next(u for u in range(1, 1001) if partition_of_user(u, 8) in n["a"]["partitions"])
ub = next(u for u in range(1, 1001) if partition_of_user(u, 8) in n["b"]["partitions"])
print(ua, ub)
PY
)
req() { # USER FILE: a framed GetSequenceRequest (user, "engagements", max_events 100)
  /usr/bin/python3 - "$1" "$2" <<'PY'
import struct, sys
u = int(sys.argv[1]); name = b"engagements"
def varint(v):
    out = b""
    while v >= 0x80: out += bytes([(v & 0x7f) | 0x80]); v >>= 7
    return out + bytes([v])
msg = b"\x08" + varint(u) + b"\x12" + varint(len(name)) + name + b"\x18" + varint(100)
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
PY
}
req "$user_a" "$dir/direct.bin"
req "$user_b" "$dir/fwd.bin"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # NAME FILE
  local a0 b0 a1 b1 o rps
  a0=$(ticks "$pid_a"); b0=$(ticks "$pid_b")
  o=$(h2load -n "$N" -c 4 -m 16 -H 'content-type: application/grpc' -H 'te: trailers' \
      -d "$2" "http://$grpc_a/seqd.v1.SequenceService/GetSequence" 2>&1)
  a1=$(ticks "$pid_a"); b1=$(ticks "$pid_b")
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$o")
  grep -q "$N succeeded" <<<"$o" || { echo "h2load failed: $o" >&2; exit 1; }
  awk -v n="$N" -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v k="$(getconf CLK_TCK)" -v name="$1" -v rps="$rps" \
    'BEGIN{printf "%-9s %10.0f req/s  cpu A %6.2f us  B %6.2f us  total %6.2f us/call\n", name, rps, a/k*1e6/n, b/k*1e6/n, (a+b)/k*1e6/n}'
}
echo "users: direct $user_a (held by a), forwarded $user_b (held by b); $N calls each at a"
d=$(run direct "$dir/direct.bin"); echo "$d"
f=$(run forwarded "$dir/fwd.bin"); echo "$f"
awk -v d="$(awk '{print $NF}' <<<"${d% us/call}")" -v f="$(awk '{print $NF}' <<<"${f% us/call}")" \
  'BEGIN{printf "forwarded / direct server CPU: %.2fx (bar <= 2x)\n", f/d}'
