#!/usr/bin/env bash
# The cost of metrics: `cepheus run` of seq_next W=1s (file to file,
# checkpoints off) with `metrics: off`, with the listener on and scraped every
# second, and scraped every 10 ms (a stress case), runs alternated, medians of
# R runs. Prints the wall seconds and events/s of each mode.
# Usage: bench/run_metrics.sh [N=3000000] [R=5] [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-3000000}"
runs="${2:-5}"
build="${3:-$root/build}"
. "$root/bench/events.sh"
work="$data/metrics"
mkdir -p "$work"
base="$root/bench/pipelines/seq_next_w1s.yaml"
sed 's|\.\./data/|../|g' "$base" > "$work/off.yaml"
echo "metrics: off" >> "$work/off.yaml"
sed 's|\.\./data/|../|g' "$base" > "$work/on.yaml"
echo 'metrics: { listen: "127.0.0.1:0" }' >> "$work/on.yaml"

run() {  # mode -> wall seconds
  local mode="$1" yaml="$work/off.yaml" every=""
  case "$mode" in on_1s) yaml="$work/on.yaml"; every=1 ;; on_10ms) yaml="$work/on.yaml"; every=0.01 ;; esac
  rm -f "$work/run.log"
  /usr/bin/time -f "%e" -o "$work/time.txt" "$build/app/cepheus" run --restart -p 1 "$yaml" \
    2> "$work/run.log" &
  local pid=$!
  if [ -n "$every" ]; then
    local port=""
    while kill -0 "$pid" 2>/dev/null; do
      [ -z "$port" ] && port=$(grep -o '127.0.0.1:[0-9]*/metrics' "$work/run.log" 2>/dev/null | head -1 | sed 's|127.0.0.1:||; s|/metrics||')
      [ -n "$port" ] && curl -s "http://127.0.0.1:$port/metrics" > /dev/null || true
      sleep "$every"
    done
  fi
  wait "$pid"
  cat "$work/time.txt"
}

declare -A times
for i in $(seq 1 "$runs"); do
  for mode in off on_1s on_10ms; do times[$mode]+="$(run "$mode") "; done
done
printf "%-8s %8s %11s   (runs: seconds)\n" mode wall_s events/s
for mode in off on_1s on_10ms; do
  med=$(echo "${times[$mode]}" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  printf "%-8s %8s %11.0f   (%s)\n" "$mode" "$med" "$(awk -v n="$n" -v t="$med" 'BEGIN { print n / t }')" "${times[$mode]}"
done
