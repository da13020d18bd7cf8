// The keyed state contract, for every backend.
#include "state/state_backend.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <vector>

namespace cepheus::state {
namespace {

namespace fs = std::filesystem;

class Backend : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cepheus-state-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    backend_ = Open();
  }
  void TearDown() override {
    backend_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<StateBackend> Open() {
    if (GetParam() == "memory") return MakeMemoryBackend();
    auto b = OpenRocksDbBackend((dir_ / "db").string());
    EXPECT_TRUE(b.ok()) << b.status().message();
    return b.ok() ? std::move(b.value()) : nullptr;
  }
  std::map<std::string, std::string> Scan(int group) {
    std::map<std::string, std::string> out;
    std::string last;
    Status s = backend_->ScanGroup(
        group, [&](std::string_view ns, std::string_view key, std::string_view v) {
          std::string k = std::string(ns) + "/" + std::string(key);
          EXPECT_TRUE(out.empty() || k > last) << "scan is ordered by (namespace, key)";
          last = k;
          out[k] = std::string(v);
        });
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  fs::path dir_;
  std::unique_ptr<StateBackend> backend_;
};

TEST_P(Backend, PutGetDeleteAndScanByKeyGroup) {
  ASSERT_TRUE(backend_);
  std::map<std::tuple<int, std::string, std::string>, std::string> model;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 3000; ++i) {
    int g = std::uniform_int_distribution<int>(0, 127)(rng);
    std::string ns =
        std::string("ns") + std::to_string(std::uniform_int_distribution<int>(0, 2)(rng));
    std::string key = "k";
    key += std::to_string(std::uniform_int_distribution<int>(0, 200)(rng));
    if (std::uniform_int_distribution<int>(0, 4)(rng) == 0) {
      ASSERT_TRUE(backend_->Delete(g, ns, key).ok());
      model.erase({g, ns, key});
    } else {
      std::string v(std::uniform_int_distribution<size_t>(0, 40)(rng),
                    static_cast<char>('a' + i % 26));
      v += std::string("\0binary", 7);
      ASSERT_TRUE(backend_->Put(g, ns, key, v).ok());
      model[{g, ns, key}] = v;
    }
  }
  for (const auto& [k, v] : model) {
    auto got = backend_->Get(std::get<0>(k), std::get<1>(k), std::get<2>(k));
    ASSERT_TRUE(got.ok());
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ(**got, v);
  }
  auto missing = backend_->Get(5, "ns0", "nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  for (int g : {0, 1, 77, 127}) {
    std::map<std::string, std::string> expected;
    for (const auto& [k, v] : model)
      if (std::get<0>(k) == g) expected[std::get<1>(k) + "/" + std::get<2>(k)] = v;
    EXPECT_EQ(Scan(g), expected) << "group " << g << " holds exactly its entries";
  }
}

TEST_P(Backend, NamespacesAndKeysDoNotBleedIntoEachOther) {
  ASSERT_TRUE(backend_);
  // "ab"+"c" and "a"+"bc" must stay different entries.
  ASSERT_TRUE(backend_->Put(3, "ab", "c", "1").ok());
  ASSERT_TRUE(backend_->Put(3, "a", "bc", "2").ok());
  ASSERT_TRUE(backend_->Put(256 + 3, "ab", "c", "3").ok()) << "groups above 255 (two bytes)";
  EXPECT_EQ(**backend_->Get(3, "ab", "c"), "1");
  EXPECT_EQ(**backend_->Get(3, "a", "bc"), "2");
  EXPECT_EQ(Scan(3).size(), 2u);
  EXPECT_EQ(Scan(259).size(), 1u);
}

TEST_P(Backend, DeleteNamespaceRemovesExactlyThatNamespaceOfThatGroup) {
  ASSERT_TRUE(backend_);
  for (int g : {4, 5})
    for (const char* ns : {"b", "m/p", "m/pq"})
      for (int k = 0; k < 20; ++k)
        ASSERT_TRUE(backend_->Put(g, ns, "key" + std::to_string(k), "v").ok());
  ASSERT_TRUE(backend_->DeleteNamespace(4, "m/p").ok());
  auto g4 = Scan(4);
  EXPECT_EQ(g4.size(), 40u);
  for (const auto& [k, v] : g4) EXPECT_FALSE(k.starts_with("m/p/")) << k;
  EXPECT_EQ(Scan(5).size(), 60u) << "other groups keep theirs";
}

// ScanNamespace: one (group, namespace), from a key on, in key order, until
// the visitor says stop; never an entry of a neighbouring namespace (one
// whose name extends this one's) or group.
TEST_P(Backend, ScanNamespaceVisitsOneNamespaceFromAKeyOnAndStopsWhenAsked) {
  ASSERT_TRUE(backend_);
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::string k(1 + rng() % 6, ' ');
    for (char& c : k) c = static_cast<char>(rng() % 256);  // binary keys too
    model[k] = std::to_string(i);
    ASSERT_TRUE(backend_->Put(9, "t/p", k, model[k]).ok());
  }
  for (const char* other : {"t/pq", "t/", "s/p"})
    ASSERT_TRUE(backend_->Put(9, other, "x", "other namespace").ok());
  ASSERT_TRUE(backend_->Put(8, "t/p", "x", "other group").ok());
  ASSERT_TRUE(backend_->Put(10, "t/p", "", "other group").ok());
  for (std::string from :
       {std::string(), std::string("\x80"), std::string("zz"), std::string(8, '\xff')}) {
    std::vector<std::pair<std::string, std::string>> seen, want;
    for (auto it = model.lower_bound(from); it != model.end(); ++it) want.emplace_back(*it);
    ASSERT_TRUE(backend_
                    ->ScanNamespace(9, "t/p", from,
                                    [&](std::string_view k, std::string_view v) {
                                      seen.emplace_back(k, v);
                                      return true;
                                    })
                    .ok());
    EXPECT_EQ(seen, want) << "from " << from.size() << " bytes";
  }
  int visited = 0;
  ASSERT_TRUE(backend_
                  ->ScanNamespace(9, "t/p", "",
                                  [&](std::string_view, std::string_view) { return ++visited < 3; })
                  .ok());
  EXPECT_EQ(visited, 3) << "the scan stops when the visitor returns false";
  int none = 0;
  ASSERT_TRUE(backend_
                  ->ScanNamespace(11, "t/p", "",
                                  [&](std::string_view, std::string_view) {
                                    ++none;
                                    return true;
                                  })
                  .ok());
  EXPECT_EQ(none, 0);
}

// The two-part snapshot: the image is the state at BeginSnapshot; writes
// made after it (while WriteTo runs on another thread) are not in it, and
// later images see them. This is what lets workers go on during a checkpoint.
TEST_P(Backend, AnImageIsTheStateWhenItWasTakenWhateverIsWrittenMeanwhile) {
  const BackendKind kind = GetParam() == "memory" ? BackendKind::kMemory : BackendKind::kRocksDb;
  auto work = OpenWorkingState(kind, (dir_ / "work").string(), "");
  ASSERT_TRUE(work.ok()) << work.status().message();
  StateBackend& b = **work;
  std::vector<std::unique_ptr<PendingSnapshot>> images;
  // Five images, each after a round of writes that overwrites, deletes and
  // adds; between images enough is written to fill several memtables, so
  // RocksDB flushes and compacts while images are pending.
  for (int round = 0; round < 5; ++round) {
    StateWriteBatch batch;
    for (int i = 0; i < 40000; ++i) {
      const std::string k = "k" + std::to_string(i);
      if (i % 7 == round)
        batch.Delete(i % 128, "ns", k);
      else
        batch.Put(i % 128, "ns", k, "r" + std::to_string(round) + std::string(100, 'x'));
      if (batch.count() == 5000) {
        ASSERT_TRUE(b.Write(batch).ok());
      }
    }
    ASSERT_TRUE(b.Write(batch).ok());
    auto image = b.BeginSnapshot();
    ASSERT_TRUE(image.ok()) << image.status().message();
    images.push_back(std::move(image.value()));
  }
  // Write the images out on another thread while this one keeps writing.
  std::vector<Status> written(images.size());
  std::thread writer([&] {
    for (size_t i = 0; i < images.size(); ++i)
      written[i] = images[i]->WriteTo((dir_ / ("img-" + std::to_string(i))).string());
  });
  StateWriteBatch later;
  for (int i = 0; i < 40000; ++i) {
    later.Put(i % 128, "ns", "k" + std::to_string(i), "after all images");
    if (later.count() == 5000) {
      ASSERT_TRUE(b.Write(later).ok());
    }
  }
  ASSERT_TRUE(b.Write(later).ok());
  writer.join();
  images.clear();
  for (size_t round = 0; round < written.size(); ++round) {
    ASSERT_TRUE(written[round].ok()) << written[round].message();
    auto restored = OpenWorkingState(kind, (dir_ / "check").string(),
                                     (dir_ / ("img-" + std::to_string(round))).string());
    ASSERT_TRUE(restored.ok()) << restored.status().message();
    for (int i : {0, 1, 2, 3, 4, 5, 6, 7, 12345, 39999}) {
      auto got = (*restored)->Get(i % 128, "ns", "k" + std::to_string(i));
      ASSERT_TRUE(got.ok());
      if (i % 7 == static_cast<int>(round)) {
        EXPECT_FALSE(got->has_value()) << "deleted in round " << round << ", key " << i;
      } else {
        ASSERT_TRUE(got->has_value()) << "round " << round << ", key " << i;
        EXPECT_EQ(got->value().substr(0, 2), "r" + std::to_string(round)) << "key " << i;
      }
    }
  }
}

// A working state restored from a snapshot holds exactly the snapshot's
// entries, and later writes to it never reach the snapshot.
TEST_P(Backend, WorkingStateFromASnapshotIsACopy) {
  const BackendKind kind = GetParam() == "memory" ? BackendKind::kMemory : BackendKind::kRocksDb;
  auto work = OpenWorkingState(kind, (dir_ / "work").string(), "");
  ASSERT_TRUE(work.ok()) << work.status().message();
  for (int i = 0; i < 300; ++i)
    ASSERT_TRUE((*work)->Put(i % 128, "ns", "k" + std::to_string(i), std::to_string(i)).ok());
  ASSERT_TRUE((*work)->Snapshot((dir_ / "snap").string()).ok());
  ASSERT_TRUE((*work)->Put(1, "ns", "k1", "later").ok());
  work.value().reset();

  for (int round = 0; round < 2; ++round) {
    auto restored = OpenWorkingState(kind, (dir_ / "work").string(), (dir_ / "snap").string());
    ASSERT_TRUE(restored.ok()) << restored.status().message();
    EXPECT_EQ(**(*restored)->Get(1, "ns", "k1"), "1");
    EXPECT_EQ(**(*restored)->Get(299 % 128, "ns", "k299"), "299");
    ASSERT_TRUE((*restored)->Put(1, "ns", "k1", "changed after restore").ok());
    ASSERT_TRUE((*restored)->Delete(2, "ns", "k2").ok());
  }
  auto fresh = OpenWorkingState(kind, (dir_ / "work").string(), "");
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE((*fresh)->Get(1, "ns", "k1")->has_value()) << "a fresh start is empty";
  auto missing = OpenWorkingState(kind, (dir_ / "work2").string(), (dir_ / "nope").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("is missing"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(All, Backend, ::testing::Values("memory", "rocksdb"));

TEST(MemoryBackend, DamagedSnapshotIsRefused) {
  fs::path dir = fs::temp_directory_path() / ("cepheus-memsnap-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto b = MakeMemoryBackend();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(b->Put(i, "ns", "k", std::string(i, 'x')).ok());
  ASSERT_TRUE(b->Snapshot((dir / "snap").string()).ok());
  const fs::path file = dir / "snap" / "state.bin";
  std::string data;
  {
    std::ifstream in(file, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  for (size_t cut : {size_t{0}, data.size() / 2, data.size() - 1}) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << data.substr(0, cut);
    auto r = OpenWorkingState(BackendKind::kMemory, "", (dir / "snap").string());
    EXPECT_FALSE(r.ok()) << "truncated at " << cut;
  }
  std::string flipped = data;
  flipped[flipped.size() / 2] ^= 0x20;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << flipped;
  EXPECT_FALSE(OpenWorkingState(BackendKind::kMemory, "", (dir / "snap").string()).ok());
  fs::remove_all(dir);
}

TEST(RocksDbBackend, StateSurvivesReopenAndSnapshotsAreIndependent) {
  fs::path dir = fs::temp_directory_path() / ("cepheus-rocks-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    auto b = OpenRocksDbBackend((dir / "db").string());
    ASSERT_TRUE(b.ok()) << b.status().message();
    for (int i = 0; i < 500; ++i)
      ASSERT_TRUE(
          (*b)->Put(i % 128, "runs", "key" + std::to_string(i), "v" + std::to_string(i)).ok());
    ASSERT_TRUE((*b)->Snapshot((dir / "snap-1").string()).ok());
    // Writes after the snapshot do not reach it.
    ASSERT_TRUE((*b)->Put(1, "runs", "key1", "changed").ok());
    ASSERT_TRUE((*b)->Delete(2, "runs", "key2").ok());
    Status again = (*b)->Snapshot((dir / "snap-1").string());
    EXPECT_FALSE(again.ok()) << "a snapshot never overwrites another";
  }
  {
    auto reopened = OpenRocksDbBackend((dir / "db").string());
    ASSERT_TRUE(reopened.ok());
    EXPECT_EQ(**(*reopened)->Get(1, "runs", "key1"), "changed");
    EXPECT_FALSE((*reopened)->Get(2, "runs", "key2")->has_value());
  }
  auto snap = OpenRocksDbBackend((dir / "snap-1").string());
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  EXPECT_EQ(**(*snap)->Get(1, "runs", "key1"), "v1");
  EXPECT_EQ(**(*snap)->Get(2, "runs", "key2"), "v2");
  fs::remove_all(dir);
}

// A snapshot taken without a flush keeps recent writes in its copy of the
// write-ahead log. A damaged record there must fail the restore (so that an
// older checkpoint is used), never end the replay early with writes missing.
TEST(RocksDbBackend, DamagedLogInASnapshotIsRefusedNotReplayedInPart) {
  fs::path dir = fs::temp_directory_path() / ("cepheus-rocks-log-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  {
    auto work = OpenWorkingState(BackendKind::kRocksDb, (dir / "work").string(), "");
    ASSERT_TRUE(work.ok()) << work.status().message();
    for (int i = 0; i < 2000; ++i)
      ASSERT_TRUE((*work)->Put(i % 128, "ns", "k" + std::to_string(i), std::string(64, 'v')).ok());
    ASSERT_TRUE((*work)->Snapshot((dir / "snap").string()).ok());
  }
  fs::path log;
  for (const auto& e : fs::directory_iterator(dir / "snap"))
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0) log = e.path();
  ASSERT_FALSE(log.empty()) << "the unflushed writes are in the snapshot's log";
  {
    auto intact =
        OpenWorkingState(BackendKind::kRocksDb, (dir / "w1").string(), (dir / "snap").string());
    ASSERT_TRUE(intact.ok()) << intact.status().message();
    EXPECT_TRUE((*intact)->Get(1999 % 128, "ns", "k1999")->has_value());
  }
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(log) / 2));
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto damaged =
      OpenWorkingState(BackendKind::kRocksDb, (dir / "w2").string(), (dir / "snap").string());
  ASSERT_FALSE(damaged.ok()) << "a damaged log must not restore";
  EXPECT_EQ(damaged.status().code(), Status::Code::kCorruption) << damaged.status().message();
  fs::remove_all(dir);
}

TEST(RocksDbBackend, UnopenableDirectoryIsAClearError) {
  auto b = OpenRocksDbBackend("/proc/cepheus-cannot-create-here");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("opening state in '/proc/cepheus-cannot-create-here'"),
            std::string::npos)
      << b.status().message();
}

}  // namespace
}  // namespace cepheus::state
