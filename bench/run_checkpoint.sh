#!/usr/bin/env bash
# Checkpoint cost with millions of live partial matches: KEYS keys get ROUNDS
# (default 4) `A` events each (every one starts a run of `a -> b WITHIN 1 HOUR` that waits
# for a `B`), written into a FIFO that stays open, so the job keeps running and
# checkpoints every 5 s. Then 1000 `B` events complete the runs of 1000 keys (a
# small change), and the job is stopped with SIGTERM. For each checkpoint it
# prints the duration (from the log), the size of the snapshot, and the bytes
# that are new in it (files not hard-linked from the previous checkpoint: the
# cost of an incremental checkpoint), and how long the workers were paused:
# writing back the keys that changed since the previous checkpoint, then
# taking the image of the state (the rest of a checkpoint runs while they go on).
# Usage: bench/run_checkpoint.sh [KEYS=250000] [ROUNDS=4] [build-dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keys="${1:-250000}"
rounds="${2:-4}"
build="${3:-$root/build}"
dir="$root/bench/data/ckpt"
rm -rf "$dir"
mkdir -p "$dir"
awk -v k="$keys" -v n="$rounds" 'BEGIN { t = 1790000000000
  for (r = 0; r < n; r++) for (i = 0; i < k; i++)
    printf "{\"key\":\"k%d\",\"type\":\"A\",\"price\":%d,\"ts\":%.0f}\n", i, r, t++ }' > "$dir/part1.jsonl"
awk -v k="$keys" -v n="$rounds" 'BEGIN { t = 1790000000000 + n * k
  for (i = 0; i < 1000; i++)
    printf "{\"key\":\"k%d\",\"type\":\"B\",\"price\":9,\"ts\":%.0f}\n", i * 7, t++ }' > "$dir/part2.jsonl"
cat > "$dir/pipeline.yaml" <<'YAML'
streams:
  events:
    source: { type: file, path: in.fifo, format: jsonl }
    schema: { key: string, type: string, price: double, ts: timestamp }
    key: key
    event_time: { field: ts, max_out_of_orderness: 0s, idle_timeout: 1h }
patterns:
  - inline: |
      PATTERN waiting FROM events
      MATCH a -> b WITHIN 1 HOUR
      DEFINE a AS type = 'A', b AS type = 'B'
      EMIT key, a.price AS a_price
outputs:
  matches: { type: file, path: out/matches.jsonl }
state: { backend: rocksdb, dir: state }
checkpoint: { interval: 5s, retain: 100 }
YAML
mkfifo "$dir/in.fifo"
/usr/bin/time -f "%e %M" -o "$dir/time.txt" "$build/app/cepheus" run --restart -p 2 "$dir/pipeline.yaml" 2> "$dir/log.txt" &
pid=$!
exec 3> "$dir/in.fifo"
cat "$dir/part1.jsonl" >&3
sleep 16
before=$(ls -d "$dir"/state/checkpoints/chk-* | wc -l)
cat "$dir/part2.jsonl" >&3
sleep 11
kill -TERM "$(pgrep -P "$pid" cepheus || echo "$pid")" 2>/dev/null || true
exec 3>&-
wait "$pid" || true
read -r wall kb < "$dir/time.txt"
echo "keys $keys, live runs $((keys * rounds)) before the change; wall $wall s; peak RSS $((kb / 1024)) MB"
echo "checkpoints 1..$before were taken before the 1000 B events, later ones after"
printf "%-6s %9s %9s %12s %9s %9s %9s\n" id ms paused_ms writeback_ms image_ms size_MB new_MB
prev=""
for c in $(ls -d "$dir"/state/checkpoints/chk-* | sort); do
  id=$((10#${c##*chk-}))
  line=$(grep "checkpoint $id complete" "$dir/log.txt" || true)
  ms=$(echo "$line" | sed -n 's/.*complete in \([0-9]*\) ms.*/\1/p')
  paused=$(echo "$line" | sed -n 's/.*paused \([0-9]*\) ms.*/\1/p')
  wb=$(echo "$line" | sed -n 's/.* \([0-9]*\) ms writing back.*/\1/p')
  img=$(echo "$line" | sed -n 's/.* \([0-9]*\) ms taking the image.*/\1/p')
  size=$(find "$c/state" -type f -printf "%s\n" | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')
  if [ -n "$prev" ]; then
    new=$(awk 'NR == FNR { seen[$1] = 1; next } !($1 in seen) { s += $2 } END { printf "%.2f", s / 1048576 }' \
      <(find "$prev/state" -type f -printf "%i %s\n") <(find "$c/state" -type f -printf "%i %s\n"))
  else
    new="$size"
  fi
  printf "%-6s %9s %9s %12s %9s %9s %9s\n" "$id" "$ms" "$paused" "$wb" "$img" "$size" "$new"
  prev="$c"
done
