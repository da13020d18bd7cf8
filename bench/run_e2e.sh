#!/usr/bin/env bash
# End-to-end benchmark: `cepheus run` over a generated JSONL file, for each
# pipeline in bench/pipelines, with 1 and 2 workers. Prints events/s and peak
# RSS. Usage: bench/run_e2e.sh [N=10000000] [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-10000000}"
build="${2:-$root/build}"
. "$root/bench/events.sh"
printf "%-18s %7s %11s %7s %7s %13s %8s\n" pipeline workers events/s wall_s cpu_s events/cpu_s peak_MB
for p in "$root"/bench/pipelines/*.yaml; do
  for w in 1 2; do
    /usr/bin/time -f "%e %U %S %M" -o "$data/time.txt" "$build/app/cepheus" run --restart -p "$w" "$p" 2>/dev/null
    read -r wall user sys kb < "$data/time.txt"
    rate=$(awk -v n="$n" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    per_cpu=$(awk -v n="$n" -v c="$cpu" 'BEGIN { printf "%.0f", n / c }')
    printf "%-18s %7s %11s %7s %7s %13s %8s\n" "$(basename "$p" .yaml)" "$w" "$rate" "$wall" "$cpu" "$per_cpu" "$((kb / 1024))"
  done
done
