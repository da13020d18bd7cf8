# Sourced by the benchmark scripts: makes sure bench/data/events.jsonl holds
# the generated workload of $n events (regenerated only when N changes).
# Expects $root, $build and $n; sets $data.
data="$root/bench/data"
mkdir -p "$data/out"
if [ ! -f "$data/events.jsonl" ] || [ "$(cat "$data/events.n" 2>/dev/null)" != "$n" ]; then
  echo "generating $n events..." >&2
  "$build/bench/gen_events" "$n" > "$data/events.jsonl"
  echo "$n" > "$data/events.n"
fi
