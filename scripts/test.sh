#!/usr/bin/env bash
# Installs what is missing, builds and runs every test (unit + integration) with ctest.
# Usage: scripts/test.sh              build dir ./build
#        scripts/test.sh --sanitize   build dir ./build-asan, -DSEQD_SANITIZE=address,undefined
#        scripts/test.sh --tsan       build dir ./build-tsan, -DSEQD_SANITIZE=thread: the unit
#                                     tests and the concurrency-heavy integration tests
#        scripts/test.sh --fuzz [S]   tests/fuzz/run S (default 30): every fuzz target S seconds
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
cmake_args=()
ctest_args=()
case "${1:-}" in
  "") ;;
  --sanitize)
    dir=build-asan
    cmake_args+=(-DSEQD_SANITIZE=address,undefined)
    # leaks are reported at exit of every binary; UBSan findings abort (no-recover build)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
    # RSS bounds mean nothing under ASan's shadow memory and quarantine: plain build only.
    ctest_args+=(-E '^integ\.test_memory_rss')
    ;;
  --tsan)
    dir=build-tsan
    cmake_args+=(-DSEQD_SANITIZE=thread)
    # Uninstrumented Debian libraries: see the reasons in scripts/tsan.supp.
    # history_size=4: tsan.supp ignores the interceptors RocksDB calls (called_from_lib),
    # its frees included, so a block RocksDB freed keeps the shadow of its threads' last
    # accesses; when our code reuses the address, freeing it "races" with that stale
    # access. Such a report is suppressed (race:rocksdb::) only if TSan can restore the
    # stale access's stack, which the default history (3) loses within one unit test
    # (test_store_batch_load's loads, once a dry run stopped copying files).
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$PWD/scripts/tsan.supp}"
    # The unit tests (the transport's workers + held calls finished from other threads,
    # the service's loads, the store under concurrent readers) and the concurrency-heavy
    # integration tests: ingest while reading, the write lanes, readers during batch loads, hostile and
    # many connections (spread over the workers: a socket handed from one to another), the consumer under broker outages, the console (admin thread)
    # reading every other module's state while they run, a cluster (forwarded calls on the
    # workers, the map's thread, a node SIGKILLed under reads; cluster-wide loads: the
    # loads thread applying while receivers wait on it; a partition caught up with a gap:
    # the consumer's log-start check while the admin and map threads report it). librdkafka starts its threads
    # with C11 thrd_create, which GCC 12's TSan does not intercept: this build links
    # tests/tools/thrd_shim.c into seqd and seqctl to route them through pthread_create.
    # RSS bounds are plain-build only.
    ctest_args+=(-R '^(unit\..*|integ\.test_(ingest|lanes|batch|hostile_h2|workers|faults_broker|ui|cluster|cluster_failover|cluster_loads|cluster_load_counts|cluster_gap))$')
    ;;
  --fuzz)
    bash scripts/install-deps.sh
    exec tests/fuzz/run "${2:-30}"
    ;;
  *) echo "usage: scripts/test.sh [--sanitize|--tsan|--fuzz [SECONDS]]" >&2; exit 2 ;;
esac

echo "== installing missing packages"
bash scripts/install-deps.sh
echo "== configuring $dir ${cmake_args[*]:-}"
cmake -S . -B "$dir" "${cmake_args[@]}"
echo "== building $dir"
cmake --build "$dir" -j2
echo "== testing $dir"
cd "$dir"
ctest --output-on-failure "${ctest_args[@]}"
