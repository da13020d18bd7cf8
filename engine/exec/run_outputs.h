// The sinks a job writes to, shared by `run` (runner.h) and `backtest`
// (backtest.h). Borrowed: the app owns them and keeps them alive.
#pragma once

#include "io/sink.h"

namespace cepheus::engine {

struct RunOutputs {
  io::Sink* matches = nullptr;
  io::Sink* late = nullptr;
  io::Sink* dead_letter = nullptr;
  // Optional: a record each time the watermark sent to the workers advances.
  io::Sink* watermarks = nullptr;
};

}  // namespace cepheus::engine
