// The RocksDB state backend. RocksDB headers stay in this file.
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "state/state_backend.h"

namespace cepheus::state {
namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

namespace fs = std::filesystem;

Status Errno(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

// Copies the first `size` bytes of `src` to a new file `dst`, durably.
Status CopyPrefix(const std::string& src, const std::string& dst, uint64_t size) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Errno("opening '" + src + "'");
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    return Errno("creating '" + dst + "'");
  }
  Status s;
  std::vector<char> buf(1 << 20);
  uint64_t left = size;
  while (s.ok() && left > 0) {
    const ssize_t n = ::read(in, buf.data(), std::min<uint64_t>(left, buf.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = Errno("reading '" + src + "'");
    if (n == 0) s = Status::IoError("'" + src + "' is shorter than its snapshot size");
    if (!s.ok()) break;
    for (ssize_t off = 0; off < n && s.ok();) {
      const ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) s = Errno("writing '" + dst + "'");
      if (w > 0) off += w;
    }
    left -= static_cast<uint64_t>(n);
  }
  if (s.ok() && ::fsync(out) != 0) s = Errno("syncing '" + dst + "'");
  ::close(in);
  if (::close(out) != 0 && s.ok()) s = Errno("closing '" + dst + "'");
  return s;
}

// The live files of the database at one moment, pinned (file deletions are
// off until this is destroyed): table files are immutable and are
// hard-linked; the manifest and the write-ahead log keep growing, so only
// their length at that moment is copied; CURRENT is written anew.
class RocksImage final : public PendingSnapshot {
 public:
  RocksImage(rocksdb::DB* db, std::vector<rocksdb::LiveFileStorageInfo> files)
      : db_(db), files_(std::move(files)) {}
  ~RocksImage() override { db_->EnableFileDeletions(/*force=*/false); }

  Status WriteTo(const std::string& dir) override {
    std::error_code ec;
    if (fs::exists(dir, ec)) return Status::IoError("snapshot directory '" + dir + "' exists");
    const std::string tmp = dir + ".tmp";
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) return Status::IoError("cannot create '" + tmp + "': " + ec.message());
    for (const rocksdb::LiveFileStorageInfo& f : files_) {
      std::string name = f.relative_filename;
      while (!name.empty() && name.front() == '/') name.erase(0, 1);
      const std::string src = (fs::path(f.directory) / name).string();
      const std::string dst = (fs::path(tmp) / name).string();
      if (!f.replacement_contents.empty()) {
        CEPHEUS_RETURN_IF_ERROR(WriteFileDurably(dst, f.replacement_contents));
        continue;
      }
      const bool immutable =
          f.file_type == rocksdb::kTableFile || f.file_type == rocksdb::kBlobFile;
      if (immutable && ::link(src.c_str(), dst.c_str()) == 0) continue;
      CEPHEUS_RETURN_IF_ERROR(CopyPrefix(src, dst, f.size));
    }
    CEPHEUS_RETURN_IF_ERROR(SyncDirectory(tmp));
    fs::rename(tmp, dir, ec);
    if (ec) return Status::IoError("renaming '" + tmp + "': " + ec.message());
    CEPHEUS_RETURN_IF_ERROR(SyncDirectory(fs::path(dir).parent_path().string()));
    // Now the memtables are flushed, in the background (writers go on): the
    // next image then links table files and copies only the log written
    // after this point, so each checkpoint costs about what changed.
    // Best effort: when writes are stalled it is refused (TryAgain), and the
    // memtables are flushed anyway once full; the image is complete either way.
    rocksdb::FlushOptions flush;
    flush.wait = false;
    flush.allow_write_stall = true;
    db_->Flush(flush).PermitUncheckedError();
    return Status::Ok();
  }

 private:
  rocksdb::DB* db_;
  std::vector<rocksdb::LiveFileStorageInfo> files_;
};

class RocksDbBackend final : public StateBackend {
 public:
  explicit RocksDbBackend(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {
    // Durability comes from checkpoints alone (a restart rebuilds the
    // working state from a checkpoint and discards the rest), so the log is
    // never synced. It is written, though: it is what lets a checkpoint
    // take the state of one moment without flushing the memtables while
    // the workers wait (BeginSnapshot notes the log's length instead).
    write_.sync = false;
    write_.disableWAL = false;
  }

  uint64_t ApproximateBytes() const override {
    uint64_t live = 0, mem = 0;
    db_->GetIntProperty(rocksdb::DB::Properties::kEstimateLiveDataSize, &live);
    db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
    return live + mem;
  }

  Status Put(int g, std::string_view ns, std::string_view key, std::string_view value) override {
    const std::string k = EncodeStateKey(g, ns, key);
    return FromRocks(db_->Put(write_, k, rocksdb::Slice(value.data(), value.size())), "state put");
  }
  Result<std::optional<std::string>> Get(int g, std::string_view ns,
                                         std::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(read_, EncodeStateKey(g, ns, key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "state get");
    return std::optional<std::string>(std::move(value));
  }
  Status Delete(int g, std::string_view ns, std::string_view key) override {
    return FromRocks(db_->Delete(write_, EncodeStateKey(g, ns, key)), "state delete");
  }
  Status Write(StateWriteBatch& batch) override {
    if (batch.count() == 0) return Status::Ok();
    // In key order (stable: a key written twice keeps its last value): the
    // memtable inserts then walk its skip list forward instead of searching
    // it from the top for each key.
    struct Entry {
      bool del;
      std::string_view k, v;
    };
    std::vector<Entry> entries;
    entries.reserve(batch.count());
    batch.ForEach([&](bool del, std::string_view k, std::string_view v) {
      entries.push_back(Entry{del, k, v});
    });
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return a.k < b.k; });
    rocksdb::WriteBatch wb(batch.bytes() + 64);
    rocksdb::Status s;
    for (const Entry& e : entries) {
      if (!s.ok()) break;
      const rocksdb::Slice key(e.k.data(), e.k.size());
      s = e.del ? wb.Delete(key) : wb.Put(key, rocksdb::Slice(e.v.data(), e.v.size()));
    }
    if (s.ok()) s = db_->Write(write_, &wb);
    batch.Clear();
    return FromRocks(s, "state write");
  }
  Status ScanGroup(int g, const Visitor& visit) override {
    const std::string prefix = EncodeStateKey(g, "", "").substr(0, 2);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_));
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      std::string_view k(it->key().data(), it->key().size());
      int group;
      std::string_view ns, key;
      if (!DecodeStateKey(k, &group, &ns, &key) || group != g) break;
      visit(ns, key, std::string_view(it->value().data(), it->value().size()));
    }
    return FromRocks(it->status(), "state scan");
  }
  Status DeleteNamespace(int g, std::string_view ns) override {
    const std::string lo = EncodeStateKey(g, ns, "");
    // Every key with this prefix sorts below the prefix's successor (the
    // prefix ends in the namespace's last byte, which is never 0xff for text).
    std::string hi = lo;
    while (!hi.empty() && static_cast<unsigned char>(hi.back()) == 0xff) hi.pop_back();
    if (hi.empty()) return Status::InvalidArgument("namespace cannot be range-deleted");
    hi.back() = static_cast<char>(static_cast<unsigned char>(hi.back()) + 1);
    return FromRocks(db_->DeleteRange(write_, db_->DefaultColumnFamily(), lo, hi),
                     "state delete range");
  }
  Status ScanNamespace(int g, std::string_view ns, std::string_view from,
                       const RangeVisitor& visit) override {
    const std::string prefix = EncodeStateKey(g, ns, "");
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_));
    for (it->Seek(EncodeStateKey(g, ns, from)); it->Valid(); it->Next()) {
      const std::string_view k(it->key().data(), it->key().size());
      if (!k.starts_with(prefix)) break;
      if (!visit(k.substr(prefix.size()), std::string_view(it->value().data(), it->value().size())))
        break;
    }
    return FromRocks(it->status(), "state scan");
  }
  Result<std::unique_ptr<PendingSnapshot>> BeginSnapshot() override {
    CEPHEUS_RETURN_IF_ERROR(FromRocks(db_->DisableFileDeletions(), "pinning state files"));
    rocksdb::LiveFilesStorageInfoOptions opts;
    // Never flush: the log holds what the memtables hold, and its length now
    // marks the end of the image.
    opts.wal_size_for_flush = std::numeric_limits<uint64_t>::max();
    std::vector<rocksdb::LiveFileStorageInfo> files;
    rocksdb::Status s = db_->GetLiveFilesStorageInfo(opts, &files);
    if (!s.ok()) {
      db_->EnableFileDeletions(/*force=*/false);
      return FromRocks(s, "listing state files");
    }
    return std::unique_ptr<PendingSnapshot>(new RocksImage(db_.get(), std::move(files)));
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;
  rocksdb::ReadOptions read_;
};

}  // namespace

Result<std::unique_ptr<StateBackend>> OpenRocksDbBackend(const std::string& dir,
                                                         bool verify_checksums) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Workers look up keys that are mostly absent (a key seen for the first
  // time): a Bloom filter answers those without reading table blocks.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Evicted keys are rewritten often: a smaller memtable keeps its skip list
  // shallow (lookups of recently evicted keys search it first).
  options.write_buffer_size = 16 << 20;
  // A checkpoint's state includes a copy of the log; a damaged record in it
  // must fail the restore (which then falls back to an older checkpoint),
  // not silently end the replay early.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) return FromRocks(s, "opening state in '" + dir + "'");
  std::unique_ptr<rocksdb::DB> owned(db);
  if (verify_checksums) {
    // Reads every table file once: a damaged block is found now, when an
    // older checkpoint can still be used, not in the middle of the run.
    s = owned->VerifyChecksum();
    if (!s.ok()) return FromRocks(s, "verifying the checksums of the state in '" + dir + "'");
  }
  return std::unique_ptr<StateBackend>(new RocksDbBackend(std::move(owned)));
}

}  // namespace cepheus::state
