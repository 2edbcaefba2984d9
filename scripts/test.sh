#!/usr/bin/env bash
# Installs what is missing, builds and runs every test (unit + integration) with ctest.
# Usage: scripts/test.sh              build dir ./build
#        scripts/test.sh --sanitize   build dir ./build-asan, -DSEQD_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
cmake_args=()
case "${1:-}" in
  "") ;;
  --sanitize)
    dir=build-asan
    cmake_args+=(-DSEQD_SANITIZE=address,undefined)
    # leaks are reported at exit of every binary; UBSan findings abort (no-recover build)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
    ;;
  *) echo "usage: scripts/test.sh [--sanitize]" >&2; exit 2 ;;
esac

echo "== installing missing packages"
bash scripts/install-deps.sh
echo "== configuring $dir ${cmake_args[*]:-}"
cmake -S . -B "$dir" "${cmake_args[@]}"
echo "== building $dir"
cmake --build "$dir" -j2
echo "== testing $dir"
cd "$dir"
ctest --output-on-failure
