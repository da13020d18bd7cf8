#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for SECONDS
# (default 30) from a seed corpus made of the repository's own patterns,
# samples and pipelines. Fails if any target finds a crash, a hang or a
# sanitizer report; the reproducer is left in build-fuzz/findings/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (long runs: docs/testing.md)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_patterns fuzz_decoders fuzz_config fuzz_state)
build="$root/build-fuzz"
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Fuzz \
  -DCEPHEUS_WERROR="${CEPHEUS_WERROR:-OFF}" "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

# Seed corpora from the repository (refreshed every run; libFuzzer adds to them).
mkdir -p "$build/corpus" "$build/findings"
for t in "${targets[@]}"; do mkdir -p "$build/corpus/$t"; done
for f in "$root"/samples/*/*.cep; do cp "$f" "$build/corpus/fuzz_patterns/$(basename "$f")"; done
for f in "$root"/tests/golden/*/*.test; do
  # the pattern section of a golden scenario
  awk '/^pattern:/{p=1;next} /^[a-z_]+:$/{p=0} p' "$f" > "$build/corpus/fuzz_patterns/golden-$(basename "$f" .test)"
done
for f in "$root"/samples/*/pipeline.yaml; do cp "$f" "$build/corpus/fuzz_config/$(basename "$(dirname "$f")").yaml"; done
for f in "$root"/samples/*/*.jsonl; do
  { printf '\x00'; head -c 2000 "$f"; } > "$build/corpus/fuzz_decoders/json-$(basename "$(dirname "$f")")-$(basename "$f")"
done
for f in "$root"/samples/*/*.csv; do
  { printf '\x01'; head -c 2000 "$f"; } > "$build/corpus/fuzz_decoders/csv-$(basename "$f")"
done
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s" >&2
  (cd "$build/findings" && "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 \
     -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 "$build/corpus/$t" 2>"$build/$t.log") || {
    tail -n 60 "$build/$t.log" >&2
    echo "fuzz: $t failed; reproducer in $build/findings" >&2
    exit 1
  }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build/$t.log" | tr '\n' ' ' >&2
  echo >&2
done
