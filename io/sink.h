// io: the interfaces between the engine and its connectors. A sink is where
// the engine writes records (io/record.h: kind, key, time, JSON payload):
// matches, late events, dead letters, watermarks. Implementations live in sinks/ and depend on this
// header only, never on the engine; the app wires concrete sinks in.
// Write() may be called from several worker threads; implementations
// serialize internally.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "io/record.h"

namespace cepheus::io {

// The kinds of sink a pipeline can name (outputs.<name>.type).
enum class SinkKind { kStdout, kStderr, kFile, kKafka };

// "stdout", "stderr", "file", "kafka".
std::string_view SinkKindName(SinkKind kind);
std::optional<SinkKind> ParseSinkKind(std::string_view name);

// A Kafka output: one message per record (value: the JSON payload, key:
// the partition key, timestamp: the record's event time, headers: kind,
// pattern or stream name, match id).
struct KafkaSinkSpec {
  std::map<std::string, std::string> properties;  // librdkafka settings, bootstrap.servers included
  std::string topic;
  enum class Delivery { kExactlyOnce, kAtLeastOnce } delivery = Delivery::kExactlyOnce;
};

// One configured sink: its kind and, for files, the resolved path.
struct SinkConfig {
  SinkKind kind = SinkKind::kStdout;
  std::string path;
  KafkaSinkSpec kafka;  // kKafka
  bool is_file() const { return kind == SinkKind::kFile; }
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Zero or more records (io/record.h). A line sink writes batch.lines(); a
  // message sink sends one message per record, with its key and time.
  virtual Status Write(const RecordBatch& batch) = 0;
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
  // The process was asked to stop: an output that waits (e.g. retrying a
  // commit against a cluster that is down) gives up soon with an error.
  // Called from a signal handler: async-signal-safe (set an atomic flag).
  virtual void Interrupt() {}
};

inline std::string_view SinkKindName(SinkKind kind) {
  switch (kind) {
    case SinkKind::kStdout:
      return "stdout";
    case SinkKind::kStderr:
      return "stderr";
    case SinkKind::kFile:
      return "file";
    case SinkKind::kKafka:
      return "kafka";
  }
  return "?";
}

inline std::optional<SinkKind> ParseSinkKind(std::string_view name) {
  for (SinkKind k : {SinkKind::kStdout, SinkKind::kStderr, SinkKind::kFile, SinkKind::kKafka})
    if (SinkKindName(k) == name) return k;
  return std::nullopt;
}

}  // namespace cepheus::io
