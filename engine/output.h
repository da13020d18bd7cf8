// Output: where the engine writes records (JSON lines): matches, late events,
// dead letters. Implementations live in sinks/. Write() may be called from
// several worker threads; implementations serialize internally.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cepheus::engine {

class Output {
 public:
  virtual ~Output() = default;
  // `lines` holds zero or more complete records, each ending in '\n'.
  virtual Status Write(std::string_view lines) = 0;
  virtual Status Flush() = 0;
  // The job completed: makes what was written final. Batch jobs call it once
  // at their successful end; an output that stages its file (backtest files,
  // written atomically) renames it into place here, so a killed or failed job
  // never leaves a plausible-looking partial result. Default: Flush().
  virtual Status Finish() { return Flush(); }

  // Exactly-once outputs (files in a checkpointed run) stage what they are
  // given and make it visible only when the checkpoint covering it completes.
  // The default methods are those of an at-least-once output (stdout).
  //
  // During a checkpoint, with every writer paused: closes what was written
  // since the previous checkpoint into a pending part and returns the record
  // that Commit and Recover need (kept in the checkpoint's metadata).
  virtual Result<std::string> PrepareCommit(uint64_t /*checkpoint_id*/) { return std::string(); }
  // After the checkpoint's metadata is written: makes that part visible.
  virtual Status Commit(const std::string& /*record*/) { return Status::Ok(); }
  // Before anything is written: returns the output to what checkpoint
  // `record` committed (finishing a commit that a crash interrupted, dropping
  // anything later). An empty record means a fresh start.
  virtual Status Recover(const std::string& /*record*/) { return Status::Ok(); }
};

}  // namespace cepheus::engine
