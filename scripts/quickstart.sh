#!/usr/bin/env bash
# One command from a fresh Debian bookworm machine to a running sample pipeline:
# installs missing packages, builds (Release), validates and runs samples/fraud.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh" "$root/build" Release
cd "$root"
./build/app/cepheus check samples/fraud/pipeline.yaml
./build/app/cepheus run --restart samples/fraud/pipeline.yaml
