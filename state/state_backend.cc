#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "common/hash.h"
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

namespace {
void PutStateKey(std::string* out, int key_group, std::string_view ns, std::string_view key) {
  std::string k = EncodeStateKey(key_group, ns, key);
  PutVarint(out, k.size());
  out->append(k);
}
}  // namespace

void StateWriteBatch::Put(int g, std::string_view ns, std::string_view key,
                          std::string_view value) {
  data_.push_back('P');
  PutStateKey(&data_, g, ns, key);
  PutVarint(&data_, value.size());
  data_.append(value);
  ++count_;
}

void StateWriteBatch::Delete(int g, std::string_view ns, std::string_view key) {
  data_.push_back('D');
  PutStateKey(&data_, g, ns, key);
  PutVarint(&data_, 0);
  ++count_;
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

namespace fs = std::filesystem;

constexpr std::string_view kMemorySnapshotFile = "state.bin";
constexpr std::string_view kMemorySnapshotMagic = "CEPHEUS-MEMSTATE-1\n";

// Memory backend: an ordered map of encoded keys (the same order as RocksDB),
// behind a mutex. A snapshot is one file: the entries as varint-length-
// prefixed keys and values, then a hash of all of it.
class MemoryBackend final : public StateBackend {
  class Image final : public PendingSnapshot {
   public:
    explicit Image(std::string data) : data_(std::move(data)) {}
    Status WriteTo(const std::string& dir) override {
      std::error_code ec;
      if (fs::exists(dir, ec)) return Status::IoError("snapshot directory '" + dir + "' exists");
      fs::create_directories(dir, ec);
      if (ec) return Status::IoError("cannot create '" + dir + "': " + ec.message());
      return WriteFileDurably((fs::path(dir) / kMemorySnapshotFile).string(), data_);
    }

   private:
    std::string data_;
  };

 public:
  uint64_t ApproximateBytes() const override {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t bytes = 0;
    for (const auto& [k, v] : map_) bytes += k.size() + v.size();
    return bytes;
  }
  Status Put(int g, std::string_view ns, std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> l(mu_);
    map_[EncodeStateKey(g, ns, key)] = std::string(value);
    return Status::Ok();
  }
  Result<std::optional<std::string>> Get(int g, std::string_view ns,
                                         std::string_view key) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(EncodeStateKey(g, ns, key));
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Delete(int g, std::string_view ns, std::string_view key) override {
    std::lock_guard<std::mutex> l(mu_);
    map_.erase(EncodeStateKey(g, ns, key));
    return Status::Ok();
  }
  Status Write(StateWriteBatch& batch) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      batch.ForEach([&](bool del, std::string_view k, std::string_view v) {
        if (del)
          map_.erase(std::string(k));
        else
          map_[std::string(k)] = std::string(v);
      });
    }
    batch.Clear();
    return Status::Ok();
  }
  Status ScanGroup(int g, const Visitor& visit) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string lo = EncodeStateKey(g, "", "").substr(0, 2);
    for (auto it = map_.lower_bound(lo); it != map_.end(); ++it) {
      int group;
      std::string_view ns, key;
      if (!DecodeStateKey(it->first, &group, &ns, &key) || group != g) break;
      visit(ns, key, it->second);
    }
    return Status::Ok();
  }
  Status DeleteNamespace(int g, std::string_view ns) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string prefix = EncodeStateKey(g, ns, "");
    auto it = map_.lower_bound(prefix);
    while (it != map_.end() && std::string_view(it->first).starts_with(prefix)) {
      int group;
      std::string_view ens, key;
      if (DecodeStateKey(it->first, &group, &ens, &key) && ens != ns) break;
      it = map_.erase(it);
    }
    return Status::Ok();
  }
  Status ScanNamespace(int g, std::string_view ns, std::string_view from,
                       const RangeVisitor& visit) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string prefix = EncodeStateKey(g, ns, "");
    for (auto it = map_.lower_bound(EncodeStateKey(g, ns, from));
         it != map_.end() && std::string_view(it->first).starts_with(prefix); ++it) {
      if (!visit(std::string_view(it->first).substr(prefix.size()), it->second)) break;
    }
    return Status::Ok();
  }
  // The image is the snapshot file's contents, serialized while the workers
  // wait (this backend is for small states; RocksDB is the one that scales).
  Result<std::unique_ptr<PendingSnapshot>> BeginSnapshot() override {
    std::string data(kMemorySnapshotMagic);
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [k, v] : map_) {
        PutVarint(&data, k.size());
        data += k;
        PutVarint(&data, v.size());
        data += v;
      }
    }
    const uint64_t h = StableHash(data);
    data.append(reinterpret_cast<const char*>(&h), 8);
    return std::unique_ptr<PendingSnapshot>(new Image(std::move(data)));
  }

  Status Load(const std::string& dir) {
    const std::string path = (fs::path(dir) / kMemorySnapshotFile).string();
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::NotFound("state snapshot '" + path + "' is missing");
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto corrupt = [&] { return Status::Corruption("state snapshot '" + path + "' is damaged"); };
    if (data.size() < kMemorySnapshotMagic.size() + 8 || !data.starts_with(kMemorySnapshotMagic))
      return corrupt();
    uint64_t h;
    std::memcpy(&h, data.data() + data.size() - 8, 8);
    data.resize(data.size() - 8);
    if (StableHash(data) != h) return corrupt();
    std::string_view rest(data);
    rest.remove_prefix(kMemorySnapshotMagic.size());
    while (!rest.empty()) {
      uint64_t kl, vl;
      if (!GetVarint(&rest, &kl) || kl > rest.size()) return corrupt();
      std::string k(rest.substr(0, kl));
      rest.remove_prefix(kl);
      if (!GetVarint(&rest, &vl) || vl > rest.size()) return corrupt();
      map_[std::move(k)] = std::string(rest.substr(0, vl));
      rest.remove_prefix(vl);
    }
    return Status::Ok();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> map_;  // guarded by mu_
};

}  // namespace

Status WriteFileDurably(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("cannot create '" + tmp + "': " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      return Status::IoError("writing '" + tmp + "': " + err);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return Status::IoError("syncing '" + tmp + "': " + std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::IoError("renaming '" + tmp + "': " + std::strerror(errno));
  return SyncDirectory(fs::path(path).parent_path().string());
}

Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Status::IoError("cannot open directory '" + dir + "': " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IoError("syncing directory '" + dir + "': " + std::strerror(errno));
  return Status::Ok();
}

Status StateBackend::Snapshot(const std::string& dir) {
  auto image = BeginSnapshot();
  if (!image.ok()) return image.status();
  return (*image)->WriteTo(dir);
}

std::unique_ptr<StateBackend> MakeMemoryBackend() { return std::make_unique<MemoryBackend>(); }

namespace {

// Copies a RocksDB snapshot into a fresh working directory: table files are
// immutable, so they are hard-linked (copied if linking fails, e.g. across
// file systems); MANIFEST, CURRENT, OPTIONS and logs are copied, because the
// working database will write to them.
Status CopySnapshot(const std::string& snapshot_dir, const std::string& working_dir) {
  std::error_code ec;
  fs::create_directories(working_dir, ec);
  if (ec) return Status::IoError("cannot create '" + working_dir + "': " + ec.message());
  for (const auto& e : fs::directory_iterator(snapshot_dir, ec)) {
    const fs::path dst = fs::path(working_dir) / e.path().filename();
    std::error_code ec2;
    if (e.path().extension() == ".sst") {
      fs::create_hard_link(e.path(), dst, ec2);
      if (!ec2) continue;
    }
    fs::copy_file(e.path(), dst, fs::copy_options::overwrite_existing, ec2);
    if (ec2)
      return Status::IoError("copying '" + e.path().string() + "' to '" + dst.string() +
                             "': " + ec2.message());
  }
  if (ec) return Status::IoError("reading snapshot '" + snapshot_dir + "': " + ec.message());
  return Status::Ok();
}

}  // namespace

Status UnshareSnapshotFiles(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) || fs::hard_link_count(e.path(), ec) <= 1) continue;
    const fs::path tmp = e.path().string() + ".copy";
    std::error_code ec2;
    fs::copy_file(e.path(), tmp, fs::copy_options::overwrite_existing, ec2);
    if (!ec2) {
      const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
      const bool synced = fd >= 0 && ::fsync(fd) == 0;
      if (fd >= 0) ::close(fd);
      if (!synced) return Status::IoError("syncing '" + tmp.string() + "'");
      fs::rename(tmp, e.path(), ec2);
    }
    if (ec2)
      return Status::IoError("copying '" + e.path().string() + "' in snapshot: " + ec2.message());
  }
  if (ec) return Status::IoError("reading snapshot '" + dir + "': " + ec.message());
  return SyncDirectory(dir);
}

Result<std::unique_ptr<StateBackend>> OpenWorkingState(BackendKind kind,
                                                       const std::string& working_dir,
                                                       const std::string& snapshot_dir) {
  std::error_code ec;
  if (!snapshot_dir.empty() && !fs::is_directory(snapshot_dir, ec))
    return Status::NotFound("state snapshot directory '" + snapshot_dir + "' is missing");
  if (kind == BackendKind::kMemory) {
    auto b = std::make_unique<MemoryBackend>();
    if (!snapshot_dir.empty()) CEPHEUS_RETURN_IF_ERROR(b->Load(snapshot_dir));
    return std::unique_ptr<StateBackend>(std::move(b));
  }
  fs::remove_all(working_dir, ec);
  if (ec) return Status::IoError("cannot clear '" + working_dir + "': " + ec.message());
  fs::create_directories(fs::path(working_dir).parent_path(), ec);
  if (ec)
    return Status::IoError("cannot create state directory for '" + working_dir +
                           "': " + ec.message());
  if (!snapshot_dir.empty()) CEPHEUS_RETURN_IF_ERROR(CopySnapshot(snapshot_dir, working_dir));
  return OpenRocksDbBackend(working_dir, /*verify_checksums=*/!snapshot_dir.empty());
}

}  // namespace cepheus::state
