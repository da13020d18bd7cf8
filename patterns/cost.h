// A static bound on what one pattern keeps per key: how many partial
// matches (runs) can be live at once and about how many bytes they hold,
// from the automaton (loops, branch points), the contiguity of its edges and
// its window -- or "unbounded" and why. `cepheus check --cost` prints it and
// `cepheus check` warns about unbounded patterns. docs/operations.md
// ("Cost bounds") explains the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "patterns/compiled.h"

namespace cepheus::patterns {

struct CostOptions {
  // Events per second of one key (for the bound's n: the key's events in
  // one WITHIN window).
  double key_rate = 1.0;
  // When > 0: the key's events in one window, instead of key_rate x WITHIN.
  int64_t events_in_window = 0;
  // The run-time cap (limits.max_runs_per_key): more runs are cut, counted.
  size_t max_runs_per_key = 10000;
};

struct CostBound {
  bool bounded = false;
  // Unbounded: why (which stage and what to add). Bounded: what drives it.
  std::string reason;
  // The bound on runs per key as a formula in n (e.g. "n", "n^2", "2^n",
  // "3": independent of n).
  std::string formula;
  int64_t n = 0;           // the key's events in one window (bounded, windowed only)
  double runs = 0;         // the formula at n (may exceed the cap)
  double capped_runs = 0;  // min(runs, max_runs_per_key)
  double bytes = 0;        // state per key at capped_runs, estimated
  double run_bytes = 0, node_bytes = 0, row_bytes = 0;  // the per-item sizes used
};

CostBound BoundCost(const CompiledPattern& pattern, const CostOptions& options = {});

// The estimated bytes of one run with a full path (the run, its aggregate
// words, a buffer node per stage): what limits.<pattern>.max_state_bytes is
// divided by to give that pattern's run cap per key.
double RunStateBytes(const CompiledPattern& pattern);

// One paragraph for `check --cost`.
std::string FormatCost(const CompiledPattern& pattern, const CostBound& bound,
                       const CostOptions& options);

}  // namespace cepheus::patterns
