// The RocksDB state backend. RocksDB headers stay in this file.
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include "state/state_backend.h"

namespace cepheus::state {
namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

class RocksDbBackend final : public StateBackend {
 public:
  explicit RocksDbBackend(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {
    // Durability comes from snapshots alone (a checkpoint flushes the
    // memtables and hard-links a consistent set of files; a restart rebuilds
    // the working state from a checkpoint and discards the rest), so writes
    // need no write-ahead log.
    write_.sync = false;
    write_.disableWAL = true;
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
    rocksdb::WriteBatch wb(batch.bytes() + 64);
    rocksdb::Status s;
    batch.ForEach([&](bool del, std::string_view k, std::string_view v) {
      if (!s.ok()) return;
      const rocksdb::Slice key(k.data(), k.size());
      s = del ? wb.Delete(key) : wb.Put(key, rocksdb::Slice(v.data(), v.size()));
    });
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
  Status Snapshot(const std::string& dir) override {
    rocksdb::Checkpoint* cp = nullptr;
    CEPHEUS_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &cp), "checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> owned(cp);
    return FromRocks(owned->CreateCheckpoint(dir), "checkpoint to '" + dir + "'");
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
