#!/usr/bin/env bash
# Event-to-alert latency of a live pipeline (FIFO in, stdout out, checkpoints
# off): p50/p99/max at fixed input rates. Needs python3.
# Usage: bench/run_latency.sh [SECONDS=10] [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-10}"
build="${2:-$root/build}"
for rate in 100 1000 5000; do
  python3 "$root/bench/latency/latency.py" "$build/app/cepheus" "$root/bench/data/latency" "$rate" "$seconds"
done
