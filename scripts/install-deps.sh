#!/usr/bin/env bash
# Installs the Debian 12 packages seqd needs to build, run and test. Idempotent:
# packages already present are skipped, so a second run does nothing.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds the benchmark anchors)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libevent-dev libnghttp2-dev libprotobuf-c-dev
      protobuf-c-compiler librocksdb-dev librdkafka-dev libjansson-dev libavro-dev libxxhash-dev nghttp2-client
      python3-grpcio python3-protobuf python3-h2 python3-confluent-kafka python3-pytest python3-avro
      python3-snappy protobuf-compiler-grpc prometheus clang libclang-rt-14-dev curl procps chromium
      python3-numpy)
if [ "${1:-}" = "--bench" ]; then pkgs+=(h2o redis-server libgrpc++-dev libprotobuf-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
