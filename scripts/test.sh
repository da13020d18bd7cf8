#!/usr/bin/env bash
# One command from a fresh Debian bookworm machine to the whole test suite:
# installs missing packages, checks formatting, builds (Release: optimized,
# NDEBUG) and runs every test through CTest; then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer (assertions on, build type
# Sanitize) and runs the whole suite once more, with the long randomized tests
# scaled down (CEPHEUS_TEST_SCALE) because sanitized code runs several times
# slower. SANITIZE=0 skips the second pass (e.g. for a quick local run).
# Finally the libFuzzer targets run for FUZZ_SECONDS each (default 30; 0 skips).
# Compiler warnings are errors here (CEPHEUS_WERROR=OFF relaxes it).
# docs/testing.md describes all of it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Warnings are errors in every build of the suite (cmake/Warnings.cmake).
export CEPHEUS_WERROR="${CEPHEUS_WERROR:-ON}"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/check-format.sh"
bash "$root/scripts/build.sh" "$root/build" Release
logs="$root/build/test-logs"
mkdir -p "$logs"
(cd "$root/build" && ctest --output-on-failure -j"$(nproc)" --timeout 300 | tee "$logs/release.txt")
passed=$(sed -n 's/.* tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$logs/release.txt")
if [ "${SANITIZE:-1}" != "0" ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build ==" >&2
  CEPHEUS_BUILD_BENCH=OFF bash "$root/scripts/build.sh" "$root/build-sanitize" Sanitize
  cd "$root/build-sanitize"
  CEPHEUS_TEST_SCALE=0.15 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$(nproc)" --timeout 900 | tee "$logs/sanitize.txt"
  sanitized=$(sed -n 's/.* tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$logs/sanitize.txt")
  passed=$((${passed:-0} + ${sanitized:-0}))
fi
if [ "${FUZZ_SECONDS:-30}" != "0" ]; then
  echo "== fuzzing: ${FUZZ_SECONDS:-30}s per target ==" >&2
  bash "$root/scripts/fuzz.sh" "${FUZZ_SECONDS:-30}"
fi
# One closing line for both suites (the fuzzers' findings fail the script above).
echo "summary: ${passed:-0} passed, 0 failed"
