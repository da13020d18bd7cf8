#include <map>

#include "common/varint.h"
#include "state/state_backend.h"

namespace cepheus::state {

std::string EncodeStateKey(int key_group, std::string_view ns, std::string_view key) {
  std::string out;
  out.push_back(static_cast<char>((key_group >> 8) & 0xff));
  out.push_back(static_cast<char>(key_group & 0xff));
  PutVarint(&out, ns.size());
  out.append(ns);
  out.append(key);
  return out;
}

bool DecodeStateKey(std::string_view encoded, int* key_group, std::string_view* ns,
                    std::string_view* key) {
  if (encoded.size() < 3) return false;
  *key_group =
      (static_cast<unsigned char>(encoded[0]) << 8) | static_cast<unsigned char>(encoded[1]);
  encoded.remove_prefix(2);
  uint64_t len;
  if (!GetVarint(&encoded, &len) || len > encoded.size()) return false;
  *ns = encoded.substr(0, len);
  *key = encoded.substr(len);
  return true;
}

namespace {

// Memory backend: an ordered map of encoded keys (the same order as RocksDB).
class MemoryBackend final : public StateBackend {
 public:
  Status Put(int g, std::string_view ns, std::string_view key, std::string_view value) override {
    map_[EncodeStateKey(g, ns, key)] = std::string(value);
    return Status::Ok();
  }
  Result<std::optional<std::string>> Get(int g, std::string_view ns,
                                         std::string_view key) override {
    auto it = map_.find(EncodeStateKey(g, ns, key));
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Delete(int g, std::string_view ns, std::string_view key) override {
    map_.erase(EncodeStateKey(g, ns, key));
    return Status::Ok();
  }
  Status ScanGroup(int g, const Visitor& visit) override {
    const std::string lo = EncodeStateKey(g, "", "").substr(0, 2);
    for (auto it = map_.lower_bound(lo); it != map_.end(); ++it) {
      int group;
      std::string_view ns, key;
      if (!DecodeStateKey(it->first, &group, &ns, &key) || group != g) break;
      visit(ns, key, it->second);
    }
    return Status::Ok();
  }
  Status Snapshot(const std::string& dir) override {
    return Status::InvalidArgument("the memory state backend keeps no snapshots on disk (" + dir +
                                   ")");
  }

 private:
  std::map<std::string, std::string> map_;
};

}  // namespace

std::unique_ptr<StateBackend> MakeMemoryBackend() { return std::make_unique<MemoryBackend>(); }

}  // namespace cepheus::state
