#!/usr/bin/env bash
# Configures and builds Cepheus. Usage: scripts/build.sh [build-dir] [build-type]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-$root/build}"
build_type="${2:-Release}"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" \
  -DCEPHEUS_BUILD_BENCH="${CEPHEUS_BUILD_BENCH:-ON}" -DCEPHEUS_WERROR="${CEPHEUS_WERROR:-OFF}" \
  "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
