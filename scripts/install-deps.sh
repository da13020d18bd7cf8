#!/usr/bin/env bash
# Installs the Debian packages Cepheus builds against. Idempotent: does nothing
# when everything is present, so it is cheap to call before every build.
set -euo pipefail
packages=(
  build-essential cmake pkg-config ccache clang-format clang libclang-rt-14-dev python3
  libboost-dev libsimdjson-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev
  libre2-dev librocksdb-dev librdkafka-dev libzstd-dev zlib1g-dev libjemalloc-dev libabsl-dev time
  prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
