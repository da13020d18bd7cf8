// CompiledPipeline: a validated pipeline config with its patterns compiled
// against the declared stream schemas, and the routing table that says which
// patterns see which stream under which partition key. Immutable once built;
// shared read-only by the reader and the workers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/plan/pipeline_config.h"
#include "patterns/compiled.h"

namespace cepheus::engine {

// One way to partition a stream: events of `stream` are keyed by `fields`
// and fed to `patterns` (indexes into CompiledPipeline::patterns).
struct Keying {
  int stream = 0;
  std::vector<int> fields;
  std::vector<int> patterns;
};

struct CompiledPipeline {
  PipelineConfig config;
  std::unique_ptr<patterns::StreamCatalog> catalog;  // stable address: patterns point into it
  std::vector<std::shared_ptr<const patterns::CompiledPattern>> patterns;
  std::vector<Keying> keyings;
  // Per pattern: the index of its output in config.routed_outputs, or -1
  // for `matches`.
  std::vector<int> pattern_output;
  // Per pattern: its cap on live runs per key (limits.max_runs_per_key, or
  // its own budget in limits.<pattern>, whichever is lower).
  std::vector<size_t> pattern_run_cap;
  std::string warnings;  // rendered pattern warnings
};

// Reads and compiles every pattern of `config`. Errors carry file:line:col,
// the source line and a caret; all errors of all files are reported.
Result<CompiledPipeline> CompilePipeline(PipelineConfig config);

}  // namespace cepheus::engine
