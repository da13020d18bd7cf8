// The ingest stage (EventReader) over the io::Source contract: one watermark
// per source partition combined as their minimum, a revoked partition that
// stops holding the watermark back, dead letters that name the partition's
// input, and reader positions of the format before partitions that still
// restore.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/varint.h"
#include "engine/ingest/event_reader.h"
#include "sources/file_source.h"
#include "tests/support/test_io.h"

namespace cepheus::engine {
namespace {

namespace fs = std::filesystem;

// A source that is not a file: a script of deliveries from several
// partitions of an unbounded input (what a Kafka topic looks like to the
// ingest). Each Poll plays one step.
class ScriptedSource : public io::Source {
 public:
  struct Step {
    int partition = 0;
    std::vector<std::string> records;
    bool revoke = false;  // instead of records: the partition is taken away
  };
  ScriptedSource(std::vector<int> partitions, std::vector<Step> steps)
      : partitions_(std::move(partitions)), steps_(std::move(steps)) {}

  Status Open() override {
    for (int p : partitions_) changes_.push_back(io::AssignmentChange{p, true, false});
    return Status::Ok();
  }
  Result<Polled> Poll(size_t, io::SourceBatch* batch) override {
    batch->Clear();
    if (next_ >= steps_.size()) return Polled::kNothing;
    const Step& step = steps_[next_++];
    batch->partition = step.partition;
    if (step.revoke) {
      changes_.push_back(io::AssignmentChange{step.partition, false, false});
      return Polled::kMore;
    }
    // The payloads lie in one buffer with room to read ahead, as the contract says.
    buffer_.clear();
    for (const auto& r : step.records) buffer_ += r + "\n";
    buffer_.append(128, ' ');
    size_t at = 0;
    uint64_t offset = 0;
    for (const auto& r : step.records) {
      batch->records.push_back(
          io::SourceRecord{std::string_view(buffer_).substr(at, r.size()), 0, offset++, 0, false});
      at += r.size() + 1;
    }
    batch->readable_after = 128 + 1;
    return Polled::kMore;
  }
  void TakeAssignmentChanges(std::vector<io::AssignmentChange>* out) override {
    out->insert(out->end(), changes_.begin(), changes_.end());
    changes_.clear();
  }
  bool ended() const override { return false; }
  std::string_view origin(int partition) const override {
    origin_ = "topic/" + std::to_string(partition);
    return origin_;
  }
  void SavePosition(std::string* out) const override { PutVarint(out, next_); }
  Status RestorePosition(std::string_view* in) override {
    uint64_t n;
    if (!GetVarint(in, &n)) return Status::Corruption("bad");
    next_ = n;
    return Status::Ok();
  }
  uint64_t bytes_read() const override { return 0; }
  bool done() const { return next_ >= steps_.size(); }

 private:
  std::vector<int> partitions_;
  std::vector<Step> steps_;
  size_t next_ = 0;
  std::string buffer_;
  mutable std::string origin_;
  std::vector<io::AssignmentChange> changes_;
};

std::string Ev(int64_t ts) { return "{\"key\":\"k\",\"ts\":" + std::to_string(ts) + "}"; }

TEST(Ingest, OneWatermarkPerPartitionCombinedAsTheMinimumUntilAPartitionIsRevoked) {
  auto p = testing::OneStreamPipeline("PATTERN p FROM s MATCH a", "unused", 0,
                                      "key string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  using Step = ScriptedSource::Step;
  std::vector<std::unique_ptr<io::Source>> sources;
  sources.push_back(std::make_unique<ScriptedSource>(
      std::vector<int>{0, 7},
      std::vector<Step>{
          {0, {Ev(1000), Ev(5000)}},
          {7, {Ev(3000)}},
          {0, {Ev(2500)}},  // behind partition 7's watermark (3000): late
          {0, {Ev(4000)}},  // behind partition 0's own 5000, not the minimum: on time
          {7, {"{\"key\":\"k\",\"ts\":\"never\"}"}},  // a dead letter of partition 7
          {7, {}, true},                              // partition 7 revoked
          {0, {Ev(4500)}},                            // now behind 5000: late
      }));
  auto* source = static_cast<ScriptedSource*>(sources.back().get());
  ManualClock clock(0);  // the wall clock stands still: no partition turns idle
  ReaderOptions ro;
  ro.clock = &clock;
  EventReader reader(p.value(), ro, std::move(sources));
  ASSERT_TRUE(reader.Open().ok());
  std::vector<ReadEvent> events;
  io::RecordBatch dead, late;
  std::vector<int64_t> watermarks;
  while (!source->done()) {
    auto turn = reader.ReadTurn(&events, &dead, &late);
    ASSERT_TRUE(turn.ok()) << turn.status().message();
    watermarks.push_back(reader.UpdateWatermark().time().millis());
  }
  std::vector<int64_t> times;
  for (const auto& e : events) times.push_back(e.row->time().millis());
  EXPECT_EQ(times, (std::vector<int64_t>{1000, 5000, 3000, 4000}));
  EXPECT_EQ(reader.counts().late, 2u);
  EXPECT_NE(late.lines().find("\"event_time\":\"1970-01-01T00:00:02.500Z\""), std::string::npos)
      << late.lines();
  EXPECT_NE(late.lines().find("\"event_time\":\"1970-01-01T00:00:04.500Z\""), std::string::npos)
      << late.lines();
  EXPECT_EQ(reader.counts().dead_letters, 1u);
  EXPECT_NE(dead.lines().find("\"source\":\"topic/7\""), std::string::npos) << dead.lines();
  // The combined watermark: held back by partition 7 until it is revoked.
  ASSERT_EQ(watermarks.size(), 7u);
  EXPECT_LT(watermarks[0], 0) << "partition 7 has no event yet";
  EXPECT_LT(watermarks[3], 4000);
  EXPECT_GE(watermarks[5], 4500) << "the revoked partition no longer holds it back";
}

// A reader position of format 2 (one input per stream, before partitions)
// restores to the same place as one of the current format.
TEST(Ingest, AReaderPositionOfTheFormatBeforePartitionsRestores) {
  const fs::path dir = fs::temp_directory_path() / ("cepheus-ingest-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 50; ++i) text += Ev(1000 + 10 * i) + "\n";
  const std::string input = (dir / "in.jsonl").string();
  testing::WriteFile(input, text);
  auto p =
      testing::OneStreamPipeline("PATTERN p FROM s MATCH a", input, 5, "key string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  ManualClock clock(1'000'000);
  ReaderOptions ro;
  ro.clock = &clock;
  ro.lines_per_turn = 7;
  auto open = [&] {
    auto sources = OpenStreamSources(sources::FileSources(), p->config);
    EXPECT_TRUE(sources.ok());
    auto r = std::make_unique<EventReader>(p.value(), ro, std::move(sources.value()));
    EXPECT_TRUE(r->Open().ok());
    return r;
  };
  auto rest = [&](EventReader& r) {
    std::vector<ReadEvent> events;
    io::RecordBatch dead, late;
    while (true) {
      auto turn = r.ReadTurn(&events, &dead, &late);
      EXPECT_TRUE(turn.ok());
      if (!turn.ok() || turn.value() == EventReader::Turn::kEnd) break;
    }
    std::vector<int64_t> times;
    for (const auto& e : events) times.push_back(e.row->time().millis());
    return times;
  };

  auto first = open();
  std::vector<ReadEvent> events;
  io::RecordBatch dead, late;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(first->ReadTurn(&events, &dead, &late).ok());
  const int64_t wm = first->UpdateWatermark().time().millis();
  const std::string v3 = first->SavePosition();

  // Format 2 = format 3 without the partition count and id after each
  // source's own position (a fresh source finds where that one ends).
  std::string_view in = v3;
  uint64_t u;
  int64_t i64;
  ASSERT_TRUE(GetVarint(&in, &u) && u == 3);
  const size_t body_start = v3.size() - in.size();
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(GetVarint(&in, &u));  // seq and six counts
  ASSERT_TRUE(GetSigned(&in, &i64) && GetVarint(&in, &u) && u == 1);
  auto probe = sources::MakeFileSource(StreamSourceSpec(p->config.streams[0]));
  ASSERT_TRUE(probe->Open().ok());
  ASSERT_TRUE(probe->RestorePosition(&in).ok());
  const size_t source_end = v3.size() - in.size();
  ASSERT_TRUE(GetVarint(&in, &u) && u == 1);  // one partition
  ASSERT_TRUE(GetVarint(&in, &u) && u == 0);  // partition 0
  std::string v2;
  PutVarint(&v2, 2);
  v2 += v3.substr(body_start, source_end - body_start);
  v2 += std::string(in);

  auto from_v3 = open();
  ASSERT_TRUE(from_v3->RestorePosition(v3).ok());
  auto from_v2 = open();
  Status s = from_v2->RestorePosition(v2);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(from_v2->UpdateWatermark().time().millis(), wm);
  EXPECT_EQ(from_v2->counts().events, first->counts().events);
  const auto want = rest(*from_v3);
  EXPECT_EQ(want.size(), 50u - 21u);
  EXPECT_EQ(rest(*from_v2), want);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cepheus::engine
