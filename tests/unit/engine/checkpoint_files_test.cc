// Checkpoint metadata, the checkpoint store, and the exactly-once file sink's
// commit protocol, including every crash point between its steps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/checkpoint/checkpoint.h"
#include "sinks/outputs.h"

#include "tests/support/test_io.h"

namespace cepheus::engine {
namespace {

namespace fs = std::filesystem;
using cepheus::testing::ReadFile;
using cepheus::testing::ScratchDir;

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ScratchDir("cepheus-ckfiles"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<io::Sink> Sink() {
    auto o = sinks::MakeOutput(
        io::SinkConfig{io::SinkKind::kFile, (dir_ / "out" / "m.jsonl").string(), {}},
        sinks::FileMode::kExactlyOnce);
    EXPECT_TRUE(o.ok());
    return std::move(o.value());
  }
  std::string Visible() { return ReadFile(dir_ / "out" / "m.jsonl"); }
  fs::path dir_;
};

CheckpointMetadata Sample() {
  CheckpointMetadata m;
  m.id = 42;
  m.created_ms = 1790000000123;
  m.parallelism = 3;
  m.watermark = Watermark::At(EventTime::FromMillis(123456));
  m.reader_state = std::string("\x01\x00\xff binary", 10);
  m.state_backend = "rocksdb";
  m.state_location = "state";
  m.patterns = {{"p one", "0123456789abcdef"}, {"q", "fedcba9876543210"}};
  m.keyings = {"s|a:int,|a,"};
  m.outputs = {{"matches", "0 10 .m.part-42"}, {"late", ""}};
  return m;
}

TEST_F(CheckpointFiles, MetadataRoundTripsAndAnyDamageIsRefused) {
  const CheckpointMetadata m = Sample();
  const std::string text = m.Encode();
  auto back = CheckpointMetadata::Decode(text, "meta");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->Encode(), text);
  EXPECT_EQ(back->reader_state, m.reader_state);
  EXPECT_EQ(back->patterns, m.patterns);
  EXPECT_EQ(back->outputs, m.outputs);
  EXPECT_EQ(back->watermark, m.watermark);
  for (size_t cut = 0; cut < text.size(); ++cut)
    EXPECT_FALSE(CheckpointMetadata::Decode(text.substr(0, cut), "meta").ok()) << cut;
  for (size_t i = 0; i < text.size(); i += 3) {
    std::string bad = text;
    bad[i] = bad[i] == 'a' ? 'b' : 'a';
    EXPECT_FALSE(CheckpointMetadata::Decode(bad, "meta").ok()) << "changed byte " << i;
  }
}

TEST_F(CheckpointFiles, StoreFindsTheNewestCompleteAndRetainsThree) {
  CheckpointStore store(dir_.string());
  auto none = store.FindLatest();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  for (uint64_t id = 1; id <= 5; ++id) {
    fs::create_directories(store.StateDirOf(id));
    CheckpointMetadata m = Sample();
    m.id = id;
    ASSERT_TRUE(store.Complete(m).ok());
    ASSERT_TRUE(store.Retain(3).ok());
  }
  fs::create_directories(store.StateDirOf(6));  // a snapshot that never completed
  EXPECT_FALSE(fs::exists(store.DirOf(2)));
  EXPECT_TRUE(fs::exists(store.DirOf(3)));
  EXPECT_EQ(store.NextId(), 7u);
  auto latest = store.FindLatest();
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->metadata.id, 5u);
}

TEST_F(CheckpointFiles, SinkShowsOnlyCommittedCheckpoints) {
  fs::create_directories(dir_ / "out");
  std::ofstream(dir_ / "out" / "m.jsonl") << "from an earlier job\n";
  auto sink = Sink();
  ASSERT_TRUE(sink->Recover("").ok());
  EXPECT_EQ(Visible(), "") << "a fresh start begins an empty output";
  ASSERT_TRUE(sink->Write(testing::Lines("a\nb\n")).ok());
  ASSERT_TRUE(sink->Flush().ok());
  EXPECT_EQ(Visible(), "") << "nothing is visible before its checkpoint completes";
  auto r1 = sink->PrepareCommit(1);
  ASSERT_TRUE(r1.ok());
  ASSERT_TRUE(sink->Write(testing::Lines("c\n")).ok());
  EXPECT_EQ(Visible(), "");
  ASSERT_TRUE(sink->Commit(*r1).ok());
  EXPECT_EQ(Visible(), "a\nb\n");
  auto r2 = sink->PrepareCommit(2);
  ASSERT_TRUE(r2.ok());
  ASSERT_TRUE(sink->Commit(*r2).ok());
  EXPECT_EQ(Visible(), "a\nb\nc\n");
  ASSERT_TRUE(sink->Commit(*r2).ok()) << "committing twice is harmless";
  EXPECT_EQ(Visible(), "a\nb\nc\n");
}

TEST_F(CheckpointFiles, SinkRecoversFromEveryCrashPoint) {
  std::string r1, r2;
  {
    auto sink = Sink();
    ASSERT_TRUE(sink->Recover("").ok());
    ASSERT_TRUE(sink->Write(testing::Lines("one\n")).ok());
    r1 = sink->PrepareCommit(1).value();
    ASSERT_TRUE(sink->Commit(r1).ok());
    ASSERT_TRUE(sink->Write(testing::Lines("two\ntwo\n")).ok());
    r2 = sink->PrepareCommit(2).value();
    ASSERT_TRUE(sink->Write(testing::Lines("three (never checkpointed)\n")).ok());
    ASSERT_TRUE(sink->Flush().ok());
    // Crash: checkpoint 2's metadata was written, its part not yet appended.
  }
  EXPECT_EQ(Visible(), "one\n");
  {
    auto sink = Sink();
    ASSERT_TRUE(sink->Recover(r2).ok());
    EXPECT_EQ(Visible(), "one\ntwo\ntwo\n") << "the interrupted commit is finished";
  }
  {
    auto sink = Sink();
    ASSERT_TRUE(sink->Recover(r2).ok());
    EXPECT_EQ(Visible(), "one\ntwo\ntwo\n") << "recovering again changes nothing";
  }
  // Crash in the middle of the append: the part is re-applied whole.
  {
    auto sink = Sink();
    ASSERT_TRUE(sink->Recover(r1).ok());  // back to checkpoint 1 (e.g. 2 was damaged)
    EXPECT_EQ(Visible(), "one\n") << "output of a checkpoint not restored is cut off";
    ASSERT_TRUE(sink->Write(testing::Lines("two\ntwo\n")).ok());
    r2 = sink->PrepareCommit(2).value();
  }
  std::ofstream(dir_ / "out" / "m.jsonl", std::ios::app) << "tw";  // half an append
  {
    auto sink = Sink();
    ASSERT_TRUE(sink->Recover(r2).ok());
    EXPECT_EQ(Visible(), "one\ntwo\ntwo\n");
  }
  for (const auto& e : fs::directory_iterator(dir_ / "out"))
    EXPECT_EQ(e.path().filename().string()[0] == '.' &&
                  e.path().filename().string().find("part-") != std::string::npos,
              false)
        << "no part is left behind: " << e.path();
  // The visible file lost data it had committed: refuse, do not guess.
  std::ofstream(dir_ / "out" / "m.jsonl", std::ios::trunc) << "o";
  auto sink = Sink();
  Status s = sink->Recover(r2);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fewer than"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cepheus::engine
