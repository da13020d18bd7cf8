// The limits a compiled pattern must stay within, shared by the compiler
// (which refuses a pattern beyond them, with a message) and the runtime
// (whose per-run bitsets and fixed arrays are sized by them).
#pragma once

#include <cstddef>

namespace cepheus::patterns {

// Ways on from one NFA state: a run keeps one "still open" bit per edge in a
// 64-bit word, and the matcher collects fired edges in fixed arrays.
inline constexpr size_t kMaxEdgesPerState = 64;
// Ways to complete from one state (absence guards included): a 32-bit word.
inline constexpr size_t kMaxFinalsPerState = 32;
// Greedy or reluctant quantifiers per pattern: one bit each in edge masks.
inline constexpr size_t kMaxPreferenceQuantifiers = 64;
// NFA states of one pattern after counted repetitions are unrolled.
inline constexpr int kMaxStates = 4096;
// The largest count a quantifier may name (`a{n,m}`).
inline constexpr int kMaxRepeat = 1000;

}  // namespace cepheus::patterns
