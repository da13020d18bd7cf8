// Backtester: runs a pipeline's patterns over bounded history as a batch job
// with a blocking exchange. Phase 1 reads everything (EventReader), partitions
// events by (keying, key group), and sorts each partition by (key, event time,
// input position), spilling sorted runs to disk when the memory budget is
// exceeded. Phase 2 runs key groups on all workers: each key's events go
// straight through the same KeyMatcher as `run`, and the key ends with the
// watermark at +infinity. Output is written in key-group order, so it is the
// same bytes for any parallelism or memory budget.
//
// Modes: complete (default) counts every event in event-time order; as-live
// judges lateness exactly as a live `run` over the same input in the same
// order would, so its matches equal that run's.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/exec/run_outputs.h"
#include "engine/ingest/event_reader.h"
#include "engine/nfa/nfa_runtime.h"
#include "engine/plan/pipeline.h"
#include "io/sink.h"
#include "io/source.h"

namespace cepheus::engine {

struct BacktestProgress {
  uint64_t bytes_read = 0;
  uint64_t total_bytes = 0;  // 0 if unknown
  uint64_t events = 0;
  double seconds = 0;
  const char* phase = "read";  // "read", "match"
  uint64_t groups_done = 0, groups_total = 0;
};

struct BacktestOptions {
  // Opens the streams' sources, and their shares for parallel reading. Required.
  io::SourceProvider* sources = nullptr;
  int parallelism = 1;
  bool as_live = false;
  std::optional<EventTime> from, to;
  std::vector<std::vector<std::string>> files;  // per stream; empty: configured source
  // Bytes of buffered events before sorted runs are spilled to disk.
  size_t memory_budget = size_t{1} << 30;
  std::string spill_dir;  // default: a new directory under the system temp dir
  // Inputs at least this big may be split across reader threads (complete
  // mode; io::SourceProvider::OpenShares); smaller ones are read whole.
  uint64_t split_above = 8 << 20;
  // Tests only: keep these bits of each key hash, to force hash collisions.
  uint64_t hash_mask = ~uint64_t{0};
  // Called from the reading thread about every `progress_every` seconds.
  std::function<void(const BacktestProgress&)> on_progress;
  double progress_every = 1.0;
};

struct KeyCount {
  std::string pattern;
  std::string key;
  uint64_t matches = 0;
};

struct BacktestSummary {
  ReaderCounts reader;
  std::vector<StreamCounts> streams;
  std::vector<std::string> warnings;  // BadInputWarnings
  uint64_t matches = 0;
  uint64_t timeouts = 0;
  uint64_t runs_dropped = 0;
  MatcherStats matcher;  // all matcher counters (held matches and their wait)
  std::map<std::string, uint64_t> matches_per_pattern;
  std::map<std::string, uint64_t> timeouts_per_pattern;
  std::vector<KeyCount> top_keys;  // most matches first, at most 10
  uint64_t spilled_bytes = 0;
  int spill_runs = 0;
  double seconds = 0;
  double read_seconds = 0;  // phase 1: read, partition, spill
  std::string ToJson() const;
};

class Backtester {
 public:
  Backtester(const CompiledPipeline& pipeline, RunOutputs outputs, BacktestOptions options);
  Result<BacktestSummary> Run();

 private:
  const CompiledPipeline& pipeline_;
  RunOutputs outputs_;
  BacktestOptions options_;
};

// Default memory budget: a quarter of physical memory.
size_t DefaultMemoryBudget();

}  // namespace cepheus::engine
