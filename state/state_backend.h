// StateBackend: keyed state addressed by (key group, namespace, key). A
// namespace separates kinds of state (a pattern's matchers, timers, ...).
// Entries of one key group can be scanned together, so state moves between
// workers by whole key groups when the parallelism changes. Two backends:
// in memory, and RocksDB on local disk (with cheap hard-linked snapshots).
// A backend is used by one thread at a time (each worker owns its own).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cepheus::state {

class StateBackend {
 public:
  virtual ~StateBackend() = default;
  virtual Status Put(int key_group, std::string_view ns, std::string_view key,
                     std::string_view value) = 0;
  // The value, or nullopt when absent.
  virtual Result<std::optional<std::string>> Get(int key_group, std::string_view ns,
                                                 std::string_view key) = 0;
  virtual Status Delete(int key_group, std::string_view ns, std::string_view key) = 0;
  // Visits every entry of `key_group`, ordered by (namespace, key).
  using Visitor =
      std::function<void(std::string_view ns, std::string_view key, std::string_view value)>;
  virtual Status ScanGroup(int key_group, const Visitor& visit) = 0;
  // Writes a consistent, openable copy of the whole state to `dir` (which
  // must not exist). RocksDB hard-links its table files, so a snapshot costs
  // about what changed since the last one.
  virtual Status Snapshot(const std::string& dir) = 0;
};

std::unique_ptr<StateBackend> MakeMemoryBackend();
// Opens (or creates) the RocksDB state in `dir`.
Result<std::unique_ptr<StateBackend>> OpenRocksDbBackend(const std::string& dir);

// The storage key (docs/formats.md): big-endian u16 key group, varint
// namespace length, namespace, key. Groups sort in numeric order.
std::string EncodeStateKey(int key_group, std::string_view ns, std::string_view key);
// Inverse of EncodeStateKey; false if `encoded` is not one.
bool DecodeStateKey(std::string_view encoded, int* key_group, std::string_view* ns,
                    std::string_view* key);

}  // namespace cepheus::state
