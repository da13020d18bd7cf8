#!/usr/bin/env bash
# Durable-state benchmark on the core workload (seq_next W=10s, N events over
# 1000 keys): `cepheus run` without state, with the memory backend and with the
# RocksDB backend (10 s checkpoints; also 1 s), and RocksDB with a 100-key
# cache (nearly every event misses the cache: its key is read from and later
# written back to RocksDB). Prints events/s, wall/CPU seconds,
# peak RSS and checkpoints taken. Usage: bench/run_state.sh [N=10000000] [build-dir]
# (MODES="none rocksdb" runs only those modes.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-10000000}"
build="${2:-$root/build}"
. "$root/bench/events.sh"
base="$root/bench/pipelines/seq_next_w10s.yaml"
variant() {  # name, extra YAML
  local y="$data/state_$1.yaml"
  grep -v '^checkpoint:' "$base" | sed -e 's#\.\./data/events\.jsonl#events.jsonl#' \
    -e 's#\.\./data/out/#out/#' > "$y"
  printf '%s\n' "$2" >> "$y"
  rm -rf "$data/state_$1"
  echo "$y"
}
printf "%-22s %11s %7s %7s %8s %6s\n" mode events/s wall_s cpu_s peak_MB ckpts
for mode in ${MODES:-none memory rocksdb rocksdb_1s rocksdb_cache100}; do
  case "$mode" in
    none) y=$(variant none "checkpoint: { enabled: false }") ;;
    memory) y=$(variant memory "state: { backend: memory, dir: state_memory }
checkpoint: { interval: 10s }") ;;
    rocksdb) y=$(variant rocksdb "state: { backend: rocksdb, dir: state_rocksdb }
checkpoint: { interval: 10s }") ;;
    rocksdb_1s) y=$(variant rocksdb_1s "state: { backend: rocksdb, dir: state_rocksdb_1s }
checkpoint: { interval: 1s }") ;;
    rocksdb_cache100) y=$(variant rocksdb_cache100 "state: { backend: rocksdb, dir: state_rocksdb_cache100, cache_keys: 100 }
checkpoint: { interval: 10s }") ;;
  esac
  /usr/bin/time -f "%e %U %S %M" -o "$data/time.txt" "$build/app/cepheus" run --restart -p 1 "$y" 2> "$data/state_$mode.log"
  read -r wall user sys kb < "$data/time.txt"
  rate=$(awk -v n="$n" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  ck=$(grep -c "checkpoint .* complete" "$data/state_$mode.log" || true)
  printf "%-22s %11s %7s %7s %8s %6s\n" "$mode" "$rate" "$wall" "$cpu" "$((kb / 1024))" "$ck"
done
