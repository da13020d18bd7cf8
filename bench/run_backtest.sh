#!/usr/bin/env bash
# Backtest benchmark: skip-till-next SEQ(A,B,C) W=10s over a generated 10M-event
# history. Compares backtest with 1 and 2 workers, with and without a small
# memory budget (spilling), and `cepheus run` on the same file.
# Usage: bench/run_backtest.sh [N=10000000] [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-10000000}"
build="${2:-$root/build}"
. "$root/bench/events.sh"
p="$root/bench/pipelines/seq_next_w10s.yaml"
measure() {  # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %U %S %M" -o "$data/time.txt" "$@" 2>/dev/null >/dev/null
  read -r wall user sys kb < "$data/time.txt"
  printf "%-34s %11s %7s %7s %8s\n" "$label" "$(awk -v n="$n" -v t="$wall" 'BEGIN{printf "%.0f", n/t}')" \
    "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')" "$((kb / 1024))"
}
printf "%-34s %11s %7s %7s %8s\n" mode events/s wall_s cpu_s peak_MB
measure "run -p 1" "$build/app/cepheus" run --restart -p 1 "$p"
measure "run -p 2" "$build/app/cepheus" run --restart -p 2 "$p"
measure "backtest -p 1" "$build/app/cepheus" backtest -p 1 "$p" -o "$data/out/bt.jsonl"
measure "backtest -p 2" "$build/app/cepheus" backtest -p 2 "$p" -o "$data/out/bt.jsonl"
measure "backtest -p 2 --as-live" "$build/app/cepheus" backtest -p 2 --as-live "$p" -o "$data/out/bt.jsonl"
measure "backtest -p 2 --memory-budget 64MB" "$build/app/cepheus" backtest -p 2 --memory-budget 64MB "$p" -o "$data/out/bt.jsonl"
