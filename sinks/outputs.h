// Sinks: where output records go. stdout/stderr and plain file sinks hand
// each batch to the operating system as it is written, so live records leave
// at once (at-least-once: after a crash, records since the last checkpoint
// are written again); file sinks write JSON lines to a file, creating its
// directory. In a checkpointed
// run (`exactly_once`) a file sink makes records visible only when the
// checkpoint covering them completes, and a restart neither loses nor repeats
// any (see io/sink.h). Each sink serializes concurrent writers.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/sink.h"

namespace cepheus::sinks {

// How a file output makes its records visible.
enum class FileMode {
  kPlain,        // written to the file as they come (truncated at start)
  kExactlyOnce,  // staged and published at checkpoints (checkpointed runs)
  kAtomic,       // written to a hidden temporary file, renamed into place by
                 // Finish() (batch jobs); without Finish() the file is removed
};

// Where an output sits in the pipeline (for outputs that keep state of
// their own: the exactly-once Kafka output spools under the state directory).
struct OutputContext {
  std::string name;               // matches, late, dead_letter, watermarks
  std::string state_dir;          // of a checkpointed run (FileMode::kExactlyOnce)
  std::string kafka_test_ledger;  // testing only (sinks/kafka_sink.h)
};

Result<std::unique_ptr<io::Sink>> MakeOutput(const io::SinkConfig& config,
                                             FileMode mode = FileMode::kPlain,
                                             const OutputContext& ctx = {});

// An output that keeps everything in memory (tests, benchmarks).
class MemoryOutput final : public io::Sink {
 public:
  Status Write(const io::RecordBatch& batch) override;
  Status Flush() override { return Status::Ok(); }
  // Every record's line, in order.
  std::string contents() const;
  // The records themselves.
  struct OwnedRecord {
    io::RecordKind kind;
    std::string key, name;
    int64_t time_ms;
    std::string payload;
  };
  std::vector<OwnedRecord> records() const;

 private:
  mutable std::mutex mu_;
  std::string data_;                  // guarded by mu_
  std::vector<OwnedRecord> records_;  // guarded by mu_
};

}  // namespace cepheus::sinks
