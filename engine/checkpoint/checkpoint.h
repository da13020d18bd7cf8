// Checkpoints: what a completed snapshot of a running pipeline records, and
// where it lives on disk.
//
//   <state dir>/db/                       working state (RocksDB)
//   <state dir>/checkpoints/chk-000007/   one checkpoint:
//       state/                            snapshot of the working state
//       _metadata                         written last, atomically
//
// A checkpoint is complete exactly when its _metadata file exists and
// verifies (it ends with a hash of everything before it). The store keeps the
// newest N complete checkpoints and deletes older ones only after a newer one
// is complete. The metadata format is in docs/formats.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time_types.h"

namespace cepheus::engine {

struct CheckpointMetadata {
  uint64_t id = 0;
  int64_t created_ms = 0;  // wall clock
  // Written when the inputs ended and everything was emitted: the job is done.
  bool finished = false;
  int parallelism = 0;               // of the run that wrote it (informational)
  Watermark watermark;               // the watermark the workers had reached
  std::string reader_state;          // EventReader::SavePosition (binary)
  std::string state_backend;         // "rocksdb" | "memory"
  std::string state_location;        // snapshot directory, relative to the checkpoint
  std::string key_groups = "0-127";  // the key groups whose state is there
  // Layout of the workers' entries in the state (docs/formats.md "Worker
  // state"): 1 = matchers and pending events; 2 = also a timer entry per
  // stored key with a deadline. Decoded as 1 when the line is absent.
  int worker_state = 2;
  // Pattern name -> fingerprint (compiled NFA + stream schema + key).
  std::vector<std::pair<std::string, std::string>> patterns;
  // Keying index -> signature (stream, schema, key fields), for the sort buffer.
  std::vector<std::string> keyings;
  // Output slot (matches, late, dead_letter) -> the sink's commit record.
  std::vector<std::pair<std::string, std::string>> outputs;

  std::string Encode() const;
  static Result<CheckpointMetadata> Decode(std::string_view text, const std::string& path);
};

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string state_dir);

  const std::string& state_dir() const { return state_dir_; }
  std::string working_dir() const;  // <state dir>/db
  std::string DirOf(uint64_t id) const;
  // The snapshot directory of checkpoint `id`.
  std::string StateDirOf(uint64_t id) const { return DirOf(id) + "/state"; }

  struct Found {
    CheckpointMetadata metadata;
    std::string dir;
  };
  // The newest checkpoint whose metadata verifies and whose state directory
  // exists. Each newer one that is damaged is skipped with a warning in the
  // log; if checkpoints exist but none is usable, that is an error (a job
  // never starts silently from empty state). nullopt: there are none.
  Result<std::optional<Found>> FindLatest() const;
  // Every checkpoint that passes the same checks, newest first (a restore
  // whose state then fails to open falls back to the next). Same errors.
  Result<std::vector<Found>> Usable() const;
  // An id above every checkpoint directory present (complete or not).
  uint64_t NextId() const;
  // Makes checkpoint `meta.id` complete: writes its _metadata atomically.
  Status Complete(const CheckpointMetadata& meta) const;
  // Deletes complete checkpoints beyond the newest `retain`, and incomplete
  // ones older than the newest complete one. The metadata goes first, so a
  // deletion cut short leaves an incomplete checkpoint, never a complete one
  // with missing files. An error names the first checkpoint that could not
  // be deleted (the others are still tried).
  Status Retain(int retain) const;
  // Deletes checkpoint directories newer than `id` (left by a crash during a
  // snapshot, or damaged ones that a restore skipped).
  Status DeleteNewerThan(uint64_t id) const;
  // Deletes every checkpoint (a fresh start after a finished run).
  Status DeleteAll() const;

 private:
  std::vector<uint64_t> Ids() const;  // every chk-* directory, ascending
  std::string state_dir_;
};

// Fingerprint of a pattern as compiled: a changed condition, window or
// schema gives a different fingerprint.
std::string Fingerprint(std::string_view text);

}  // namespace cepheus::engine
