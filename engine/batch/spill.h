// Spilling sorted partitions to disk when a backtest's events outgrow its
// memory budget, and reading them back for the merge. Spill files live in a
// private directory that holds a lock while its backtest lives and is
// removed at the end; directories of killed backtests (their lock free) are
// removed when the next backtest starts in the same base directory.
//
// A spill file is a sequence of sections (one per partition of a run), a
// section a sequence of entries: the key hash (8 bytes) then the row's own
// spill encoding (Row::AppendEncoded, docs/formats.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/batch/partition.h"

namespace cepheus::state {
class DirLock;
}

namespace cepheus::engine::batch {

class SpillStore {
 public:
  // `base`: where the private directory is made (empty: the system temp
  // dir). Removes stale directories of killed backtests there.
  explicit SpillStore(const std::string& base);
  ~SpillStore();  // removes the directory
  SpillStore(const SpillStore&) = delete;
  SpillStore& operator=(const SpillStore&) = delete;

  // Sorts every partition of `parts` in memory, writes them as one new run
  // and leaves only their sections in memory. Thread-safe.
  Status WriteRun(PartSet& parts);
  const std::string& file(int run) const { return files_[static_cast<size_t>(run)]; }
  uint64_t spilled_bytes() const { return bytes_; }
  int runs() const { return static_cast<int>(files_.size()); }

 private:
  std::filesystem::path base_, dir_;
  std::unique_ptr<state::DirLock> lock_;
  std::mutex mu_;
  std::vector<std::string> files_;  // guarded by mu_ while reading
  uint64_t bytes_ = 0;              // guarded by mu_
};

// Reads one spilled section back, entry by entry.
class SectionReader {
 public:
  SectionReader(const std::string& file, uint64_t offset, uint64_t length);
  // Next entry, or false at the end. A damaged spill file is an error.
  Result<bool> Next(Entry* e);

 private:
  // Makes at least `n` bytes available from pos_; false at the end.
  Result<bool> Fill(size_t n);
  std::ifstream in_;
  uint64_t remaining_;
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace cepheus::engine::batch
