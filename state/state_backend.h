// StateBackend: keyed state addressed by (key group, namespace, key). A
// namespace separates kinds of state (a pattern's matchers, timers, ...).
// Entries of one key group can be scanned together, so state moves between
// workers by whole key groups when the parallelism changes. Two backends:
// in memory, and RocksDB on local disk (with cheap hard-linked snapshots).
// One backend is shared by all workers of a process: every method may be
// called from several threads at once (each worker touches only the key
// groups it owns).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/varint.h"

namespace cepheus::state {

// Writes collected to be applied together (RocksDB: one WriteBatch), which
// is much cheaper than one call per entry when a worker writes back many keys.
class StateWriteBatch {
 public:
  void Put(int key_group, std::string_view ns, std::string_view key, std::string_view value);
  void Delete(int key_group, std::string_view ns, std::string_view key);
  size_t count() const { return count_; }
  size_t bytes() const { return data_.size(); }
  void Clear() {
    data_.clear();
    count_ = 0;
  }
  // Visits the writes in order: (is_delete, encoded state key, value).
  template <typename F>
  void ForEach(F&& f) const;

 private:
  std::string data_;  // per write: kind byte, varint key length, key, varint value length, value
  size_t count_ = 0;
};

// A consistent image of the whole state, taken while no worker writes (the
// synchronous part of a checkpoint, cheap: RocksDB lists its live files and
// pins them), and written out later while the workers go on (the
// asynchronous part: links, copies, fsyncs). WriteTo may run on another
// thread than the one that took the image, concurrently with writes to the
// backend; the backend must outlive it.
class PendingSnapshot {
 public:
  virtual ~PendingSnapshot() = default;
  // Writes the image to `dir` (which must not exist), durably; at most once.
  virtual Status WriteTo(const std::string& dir) = 0;
};

class StateBackend {
 public:
  virtual ~StateBackend() = default;
  virtual Status Put(int key_group, std::string_view ns, std::string_view key,
                     std::string_view value) = 0;
  // The value, or nullopt when absent.
  virtual Result<std::optional<std::string>> Get(int key_group, std::string_view ns,
                                                 std::string_view key) = 0;
  virtual Status Delete(int key_group, std::string_view ns, std::string_view key) = 0;
  // Applies every write of `batch` (then clears it).
  virtual Status Write(StateWriteBatch& batch) = 0;
  // Visits every entry of `key_group`, ordered by (namespace, key).
  using Visitor =
      std::function<void(std::string_view ns, std::string_view key, std::string_view value)>;
  virtual Status ScanGroup(int key_group, const Visitor& visit) = 0;
  // Visits the entries of (`key_group`, `ns`) whose key is >= `from`, in key
  // order, while `visit` returns true. The cost is one seek plus the entries
  // visited, whatever else the group holds (timers are scanned this way).
  using RangeVisitor = std::function<bool(std::string_view key, std::string_view value)>;
  virtual Status ScanNamespace(int key_group, std::string_view ns, std::string_view from,
                               const RangeVisitor& visit) = 0;
  // Deletes every entry of (`key_group`, `ns`).
  virtual Status DeleteNamespace(int key_group, std::string_view ns) = 0;
  // About how many bytes the state takes (RocksDB: live table data plus
  // memtables; memory: keys and values). For metrics; thread-safe.
  virtual uint64_t ApproximateBytes() const = 0;
  // Takes an image of the state as it is now (see PendingSnapshot). Writes
  // that start after this returns are not in it. RocksDB pins its live
  // table files and notes how much of its log and manifest belong to the
  // image, without flushing; memory serializes its map.
  virtual Result<std::unique_ptr<PendingSnapshot>> BeginSnapshot() = 0;
  // BeginSnapshot and WriteTo at once: a consistent, openable copy of the
  // whole state in `dir` (which must not exist). RocksDB hard-links its
  // table files, so a snapshot costs about what changed since the last one.
  Status Snapshot(const std::string& dir);
};

std::unique_ptr<StateBackend> MakeMemoryBackend();
// Opens (or creates) the RocksDB state in `dir`; with `verify_checksums`,
// reads every table file and refuses the state if any block is damaged.
Result<std::unique_ptr<StateBackend>> OpenRocksDbBackend(const std::string& dir,
                                                         bool verify_checksums = false);
// Replaces every hard link in snapshot `dir` by a copy of its own, so that
// the snapshot shares no file with the working state or other snapshots
// (checkpoint.copy_files: real redundancy against a damaged file).
Status UnshareSnapshotFiles(const std::string& dir);

template <typename F>
void StateWriteBatch::ForEach(F&& f) const {
  std::string_view in(data_);
  while (!in.empty()) {
    const bool del = in.front() == 'D';
    in.remove_prefix(1);
    uint64_t kl = 0, vl = 0;
    GetVarint(&in, &kl);
    const std::string_view key = in.substr(0, kl);
    in.remove_prefix(key.size());
    GetVarint(&in, &vl);
    const std::string_view value = in.substr(0, vl);
    in.remove_prefix(value.size());
    f(del, key, value);
  }
}

// Writes `data` to `path` atomically and durably: a temporary file, fsync,
// rename, fsync of the directory.
Status WriteFileDurably(const std::string& path, std::string_view data);
Status SyncDirectory(const std::string& dir);

enum class BackendKind { kMemory, kRocksDb };
// "memory" / "rocksdb": the name in pipeline files and checkpoint metadata.
inline const char* BackendKindName(BackendKind k) {
  return k == BackendKind::kMemory ? "memory" : "rocksdb";
}
inline std::optional<BackendKind> ParseBackendKind(std::string_view name) {
  if (name == "memory") return BackendKind::kMemory;
  if (name == "rocksdb") return BackendKind::kRocksDb;
  return std::nullopt;
}
// The working state of a job. With an empty `snapshot_dir` it starts empty
// (whatever was in `working_dir` is deleted); otherwise it starts as a copy of
// that snapshot, which is left untouched (RocksDB table files are hard-linked,
// the rest copied), and whose checksums are verified first (a damaged
// snapshot is refused with Corruption). The memory backend keeps nothing in
// `working_dir`.
Result<std::unique_ptr<StateBackend>> OpenWorkingState(BackendKind kind,
                                                       const std::string& working_dir,
                                                       const std::string& snapshot_dir);

// The storage key (docs/formats.md): big-endian u16 key group, varint
// namespace length, namespace, key. Groups sort in numeric order.
std::string EncodeStateKey(int key_group, std::string_view ns, std::string_view key);
// Inverse of EncodeStateKey; false if `encoded` is not one.
bool DecodeStateKey(std::string_view encoded, int* key_group, std::string_view* ns,
                    std::string_view* key);

}  // namespace cepheus::state
