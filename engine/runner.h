// PipelineRunner: runs a compiled pipeline over its sources until every input
// ends (or Stop() is called): reads and decodes records, judges lateness
// against the watermark, routes events by key group to the workers, and
// reports dead letters and late events. The reader runs on the calling
// thread; workers on their own. Stop() may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/clock.h"
#include "engine/event_reader.h"
#include "engine/output.h"
#include "engine/pipeline.h"
#include "metrics/counters.h"

namespace cepheus::engine {

struct RunOptions {
  int parallelism = 1;
  const Clock* clock = nullptr;          // default: the system clock
  metrics::Registry* metrics = nullptr;  // optional
  // How long the reader waits for an unbounded input before it re-checks
  // the clock (and idle watermarks).
  int poll_ms = 100;
};

struct RunSummary {
  ReaderCounts reader;  // records, events, dead letters, late
  uint64_t matches = 0;
  uint64_t timeouts = 0;
  uint64_t runs_dropped = 0;
  bool stopped = false;  // ended by Stop(), not by the end of input
};

struct RunOutputs {
  Output* matches = nullptr;
  Output* late = nullptr;
  Output* dead_letter = nullptr;
};

class PipelineRunner {
 public:
  PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs, RunOptions options);
  Result<RunSummary> Run();
  void Stop() { stop_.store(true); }

 private:
  const CompiledPipeline& pipeline_;
  RunOutputs outputs_;
  RunOptions options_;
  std::atomic<bool> stop_{false};
};

}  // namespace cepheus::engine
