#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to the product working: installs what is
# missing, builds (Release, ./build-release), starts seqd with examples/definition.json
# on the default ports (data in ./seqd-data, embedded Kafka), produces 2000 sample
# events, waits until they are visible, and shows a sequence and the server status.
#
# Then, on a terminal, seqd stays in the foreground until Ctrl-C. With --demo, or when
# stdin is not a terminal (CI, pipes), it stops seqd and exits 0 instead.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=0
case "${1:-}" in
  "") [ -t 0 ] || demo=1 ;;
  --demo) demo=1 ;;
  *) echo "usage: scripts/run.sh [--demo]" >&2; exit 2 ;;
esac

bash scripts/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target seqd seqctl
seqd=build-release/seqd
seqctl=build-release/seqctl
log=seqd.log

"$seqd" --definition examples/definition.json --data-dir ./seqd-data >"$log" 2>&1 &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

for _ in $(seq 1 300); do
  grep -q '^seqd ready' "$log" && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "seqd failed to start (ports 50051/8080 in use?):" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
grep '^seqd ready' "$log" || { echo "seqd did not get ready; see $log" >&2; exit 1; }

echo "== seqctl produce --sample 2000 --users 100"
"$seqctl" produce --sample 2000 --users 100
# user 1 gets 20 of the 2000 sample events (users 1..100); some views may be filtered
for _ in $(seq 1 300); do
  [ "$("$seqctl" get 1 engagements --json | grep -o '"time_ms"' | wc -l)" -ge 10 ] && break
  sleep 0.1
done
echo "== seqctl get 1 engagements"
"$seqctl" get 1 engagements
echo "== seqctl status"
"$seqctl" status

if [ "$demo" = 1 ]; then
  echo "== demo done: stopping seqd"
  exit 0 # the EXIT trap stops seqd
fi
echo "== seqd is running (log: $log); try: $seqctl get 2 engagements. Ctrl-C stops it."
wait "$pid"
