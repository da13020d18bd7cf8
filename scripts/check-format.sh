#!/usr/bin/env bash
# Fails when a C++ file differs from what clang-format (config in .clang-format) makes of it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mapfile -t files < <(git ls-files -- '*.h' '*.cc' 2>/dev/null || find . -name '*.h' -o -name '*.cc')
bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "check-format: $f is not clang-formatted (run: clang-format -i $f)" >&2
    bad=1
  fi
done
exit $bad
