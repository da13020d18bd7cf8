// Sinks: where output records go. stdout/stderr write through a buffer
// (at-least-once: a crash can lose or, on restart, repeat records); file
// sinks append JSON lines to a file, creating its directory. Each sink
// serializes concurrent writers with a mutex.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "engine/output.h"
#include "engine/pipeline_config.h"

namespace cepheus::sinks {

Result<std::unique_ptr<engine::Output>> MakeOutput(const engine::OutputConfig& config);

// An output that keeps everything in memory (tests, benchmarks).
class MemoryOutput final : public engine::Output {
 public:
  Status Write(std::string_view lines) override;
  Status Flush() override { return Status::Ok(); }
  std::string contents() const;

 private:
  mutable std::mutex mu_;
  std::string data_;  // guarded by mu_
};

}  // namespace cepheus::sinks
