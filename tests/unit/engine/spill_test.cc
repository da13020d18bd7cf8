// The backtest's spill store: sorted runs written per partition and read
// back entry by entry, whatever the entry sizes (entries straddle the
// reader's 1 MiB reads), with a damaged file reported, never misread.
#include "engine/batch/spill.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

namespace cepheus::engine::batch {
namespace {

namespace fs = std::filesystem;

RowPtr MakeRow(int64_t time, uint64_t seq, size_t string_bytes) {
  RowBuilder b(2);
  b.Reset();
  b.SetInt(0, time * 7);
  b.SetString(1, std::string(string_bytes, static_cast<char>('a' + seq % 26)));
  return b.Build(EventTime::FromMillis(time), seq);
}

class Spill : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("cepheus-spill-test-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_);
  }
  void TearDown() override { fs::remove_all(base_); }
  fs::path base_;
};

TEST_F(Spill, RunsReadBackInSortedOrderWithEveryByte) {
  std::mt19937 rng(5);
  PartSet parts = NewPartSet(1);
  std::vector<Entry> want;
  Partition& part = parts[0][3];
  for (uint64_t i = 0; i < 3000; ++i) {
    // Mostly small rows, some bigger than the reader's 1 MiB buffer.
    const size_t bytes = i % 500 == 7 ? (1 << 20) + rng() % 5000 : rng() % 300;
    RowPtr row = MakeRow(static_cast<int64_t>(rng() % 1000), i, bytes);
    want.push_back(MakeEntry(rng() % 4, row));
    part.entries.push_back(MakeEntry(want.back().hash, row));
  }
  std::sort(want.begin(), want.end(), EntryLess{});
  fs::path dir;
  {
    SpillStore store(base_.string());
    ASSERT_TRUE(store.WriteRun(parts).ok());
    EXPECT_TRUE(part.entries.empty()) << "spilled entries leave memory";
    ASSERT_EQ(part.sections.size(), 1u);
    EXPECT_EQ(store.runs(), 1);
    EXPECT_EQ(store.spilled_bytes(), part.sections[0].length);
    dir = fs::path(store.file(0)).parent_path();
    SectionReader reader(store.file(0), part.sections[0].offset, part.sections[0].length);
    for (const Entry& w : want) {
      Entry got;
      auto r = reader.Next(&got);
      ASSERT_TRUE(r.ok()) << r.status().message();
      ASSERT_TRUE(*r);
      EXPECT_EQ(got.hash, w.hash);
      EXPECT_EQ(got.ts, w.ts);
      EXPECT_EQ(got.seq, w.seq);
      EXPECT_EQ(got.row->ByteSize(), w.row->ByteSize());
    }
    Entry end;
    auto r = reader.Next(&end);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(*r) << "the section ends where it was written to";
  }
  EXPECT_FALSE(fs::exists(dir)) << "the spill directory is removed with the store";
}

TEST_F(Spill, ATruncatedSectionIsCorruptionNotAShortRead) {
  PartSet parts = NewPartSet(1);
  for (uint64_t i = 0; i < 10; ++i)
    parts[0][0].entries.push_back(MakeEntry(1, MakeRow(static_cast<int64_t>(i), i, 40)));
  SpillStore store(base_.string());
  ASSERT_TRUE(store.WriteRun(parts).ok());
  const auto& sec = parts[0][0].sections[0];
  // Cuts inside the hash, inside the row length, inside a row, before the
  // last byte (entries are 100 bytes: none of these is a boundary).
  for (uint64_t cut : {uint64_t{3}, uint64_t{10}, sec.length / 2 + 3, sec.length - 1}) {
    SectionReader reader(store.file(0), sec.offset, cut);
    Result<bool> r = true;
    Entry e;
    while (r.ok() && *r) r = reader.Next(&e);
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().message();
  }
}

}  // namespace
}  // namespace cepheus::engine::batch
