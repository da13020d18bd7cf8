#!/usr/bin/env bash
# Kafka benchmark: the generated workload produced to a mock topic with 8
# partitions (cepheus-mock-kafka, a separate process that shares the two
# cores), then `cepheus run` of seq_next W=1s reading it (stop_at_end) with 1
# and 2 workers, beside the file source on the same events; and the alerts
# to a Kafka topic (at least once) beside a file output. Prints events/s and
# peak RSS. Usage: bench/run_kafka.sh [N=500000] [build-dir]
# librdkafka's mock cluster keeps only about 5 MB per partition (it trims its
# log beyond that: of 2M messages in 8 partitions, 588,297 were kept), so N
# stays at what 8 partitions hold; the script checks that every event was read.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-500000}"
build="${2:-$root/build}"
. "$root/bench/events.sh"
work="$data/kafka"
rm -rf "$work" && mkdir -p "$work"

# The mock cluster lives while its stdin is open.
mkfifo "$work/ctl"
sleep 100000 > "$work/ctl" &
holder=$!
t0=$(date +%s.%N)
"$build/app/cepheus-mock-kafka" --topic events:8 --topic alerts:8 --produce "$data/events.jsonl" \
  --into events --key-field key < "$work/ctl" > "$work/boot.txt" 2> "$work/mock.err" &
mock=$!
trap 'kill $holder $mock 2>/dev/null || true' EXIT
until grep -q bootstrap= "$work/boot.txt" 2>/dev/null; do
  kill -0 $mock 2>/dev/null || { cat "$work/mock.err"; exit 1; }
  sleep 0.2
done
boot=$(sed 's/bootstrap=//' "$work/boot.txt")
echo "produced $n events to 8 partitions in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2

pipeline() {  # name source matches [checkpoint settings]
  local ck="${4:-}"
  [ -n "$ck" ] || ck="{ enabled: false }"
  cat > "$work/$1.yaml" <<YAML
streams:
  events:
    source: $2
    schema: { key: string, type: string, price: double, ts: timestamp }
    key: key
    event_time: { field: ts, max_out_of_orderness: 0s }
patterns:
  - inline: |
      PATTERN seq_abc FROM events
      MATCH a -> b -> c WITHIN 1 SECONDS
      DEFINE a AS type = 'A', b AS type = 'B' AND price > a.price, c AS type = 'C'
      EMIT key, a.price AS a_price, b.price AS b_price
outputs:
  matches: $3
checkpoint: $ck
state: { dir: state-$1 }
YAML
}
file_src="{ type: file, path: ../events.jsonl }"
kafka_src="{ type: kafka, brokers: \"$boot\", topic: events, stop_at_end: true }"
file_out="{ type: file, path: matches.jsonl }"
kafka_out="{ type: kafka, brokers: \"$boot\", topic: alerts, delivery: at_least_once }"
pipeline file_to_file "$file_src" "$file_out"
pipeline kafka_to_file "$kafka_src" "$file_out"
pipeline file_to_kafka "$file_src" "$kafka_out"
# The cost of exactly once: checkpoints every 100 ms (several transactions
# in these short runs), at least once vs
# transactions (and a file output with the same checkpoints beside them).
ckpt="{ interval: 100ms }"
kafka_eos="{ type: kafka, brokers: \"$boot\", topic: alerts }"
pipeline file_to_file_ckpt "$file_src" "$file_out" "$ckpt"
pipeline kafka_alo_ckpt "$file_src" "$kafka_out" "$ckpt"
pipeline kafka_eos_ckpt "$file_src" "$kafka_eos" "$ckpt"

printf "%-16s %7s %11s %7s %7s %8s\n" pipeline workers events/s wall_s cpu_s peak_MB
for p in file_to_file kafka_to_file file_to_kafka file_to_file_ckpt kafka_alo_ckpt kafka_eos_ckpt; do
  for w in 1 2; do
    case "$p" in file_to_file | kafka_to_file) ;; *) [ "$w" = 2 ] && continue ;; esac
    /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" "$build/app/cepheus" run --restart -p "$w" \
      "$work/$p.yaml" 2>"$work/$p.$w.log"
    read -r wall user sys kb < "$work/time.txt"
    rate=$(awk -v n="$n" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    printf "%-16s %7s %11s %7s %7s %8s\n" "$p" "$w" "$rate" "$wall" "$cpu" "$((kb / 1024))"
    grep -q " $n records, $n events" "$work/$p.$w.log" ||
      { echo "error: $p -p $w did not read all $n events:" >&2; tail -n 1 "$work/$p.$w.log" >&2; exit 1; }
  done
done
