// The sinks a job writes to, shared by `run` (runner.h) and `backtest`
// (backtest.h). Borrowed: the app owns them and keeps them alive.
#pragma once

#include <vector>

#include "io/sink.h"

namespace cepheus::engine {

struct RunOutputs {
  io::Sink* matches = nullptr;
  io::Sink* late = nullptr;
  io::Sink* dead_letter = nullptr;
  // Optional: a record each time the watermark sent to the workers advances.
  io::Sink* watermarks = nullptr;
  // Outputs of their own for some patterns, like the pipeline's
  // config.routed_outputs (CompiledPipeline::pattern_output says whose).
  // `run` routes to them; `backtest` writes every match to `matches`.
  std::vector<io::Sink*> routed = {};
};

}  // namespace cepheus::engine
