#!/usr/bin/env bash
# One command from a fresh Debian bookworm machine to the whole test suite:
# installs missing packages, builds (Release with assertions), checks formatting,
# runs every test through CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/check-format.sh"
bash "$root/scripts/build.sh" "$root/build" Release
cd "$root/build"
ctest --output-on-failure -j"$(nproc)" --timeout 300
