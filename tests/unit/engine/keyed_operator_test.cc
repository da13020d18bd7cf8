// The CEP operator driven through the KeyedOperator interface alone, as a
// worker (or a future host) drives it: events in event-time order, the
// watermark, a write-back at a barrier, and a restore of a key-group range
// into fresh operators -- the results equal those of one uninterrupted
// operator, also when the key groups are split between two of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "common/hash.h"
#include "engine/exec/cep_operator.h"
#include "engine/exec/worker.h"
#include "engine/format/format.h"
#include "engine/ingest/decoder.h"
#include "sinks/outputs.h"
#include "state/key_groups.h"
#include "tests/support/test_io.h"

namespace cepheus::engine {
namespace {

struct Fixture {
  CompiledPipeline pipeline;
  std::vector<RowPtr> rows;  // in event-time order
};

Fixture Make() {
  auto p = testing::OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 1 SECOND "
      "DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C' AND v > a.v",
      "unused", 0, "key string, type string, v int, ts timestamp");
  EXPECT_TRUE(p.ok()) << p.status().message();
  Fixture f{std::move(p.value()), {}};
  const StreamConfig& sc = f.pipeline.config.streams[0];
  DecoderOptions dopt;
  dopt.schema = &sc.schema;
  dopt.time_field = sc.schema.IndexOf("ts");
  auto decoder = MakeJsonlDecoder(dopt);
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = "{\"key\":\"k" + std::to_string(rng() % 10) + "\",\"type\":\"" +
                             std::string(1, "ABC"[rng() % 3]) +
                             "\",\"v\":" + std::to_string(rng() % 100) +
                             ",\"ts\":" + std::to_string(1000 + i * 3) + "}";
    RowPtr row;
    std::string error;
    EXPECT_TRUE(decoder->Decode(text, static_cast<uint64_t>(i), &row, &error)) << error;
    f.rows.push_back(std::move(row));
  }
  return f;
}

int GroupOfRow(const Fixture& f, const Row& row) {
  const Keying& k = f.pipeline.keyings[0];
  const std::string key = KeyString(row, k.fields, f.pipeline.config.streams[0].schema);
  return state::KeyGroupOf(StableHash(key), state::kDefaultKeyGroups);
}

// Feeds rows [from, to) of the operator's groups through the interface, the
// watermark after every 100 events.
void Feed(const Fixture& f, KeyedOperator& op, state::KeyGroupRange groups, size_t from,
          size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (!groups.contains(GroupOfRow(f, *f.rows[i]))) continue;
    void* hint = op.Prefetch(0, *f.rows[i], true);
    op.OnEvent(0, f.rows[i], hint);
    if (i % 100 == 99) {
      op.OnWatermark(f.rows[i]->time());
      op.EndOfBatch();
      op.FlushOutput();
    }
  }
}

std::vector<std::string> Sorted(const std::string& text) { return testing::SortedLines(text); }

TEST(KeyedOperator, CepOperatorRestoredFromAWriteBackContinuesExactly) {
  const Fixture f = Make();
  const state::KeyGroupRange all;
  // One operator, no interruption.
  sinks::MemoryOutput want_out;
  {
    WorkerStats stats;
    CepOperator op(f.pipeline, all, &stats, &want_out, nullptr);
    Feed(f, op, all, 0, f.rows.size());
    op.OnWatermark(EventTime::Max());
    op.FlushOutput();
    ASSERT_TRUE(op.status().ok());
    ASSERT_GT(stats.matcher().matches, 10u) << "the workload must produce matches";
  }
  for (bool split : {false, true}) {
    SCOPED_TRACE(split ? "restored into two operators with half the groups each" : "one");
    auto backend = state::MakeMemoryBackend();
    WorkerStateOptions so;
    so.backend = backend.get();
    sinks::MemoryOutput got_out;
    const size_t cut = 1700;
    {
      WorkerStats stats;
      CepOperator op(f.pipeline, all, &stats, &got_out, nullptr);
      op.AttachState(so);
      Feed(f, op, all, 0, cut);
      op.FlushOutput();
      ASSERT_TRUE(op.WriteBack().ok());
    }  // the operator is gone: only the backend remains
    RestoreMapping mapping;
    mapping.keyings = {0};
    mapping.watermark = Watermark::At(f.rows[cut - 1]->time());
    std::vector<state::KeyGroupRange> ranges =
        split ? std::vector<state::KeyGroupRange>{{0, 64}, {64, 128}}
              : std::vector<state::KeyGroupRange>{all};
    for (const state::KeyGroupRange& r : ranges) {
      WorkerStats stats;
      CepOperator op(f.pipeline, r, &stats, &got_out, nullptr);
      op.AttachState(so);
      ASSERT_TRUE(op.Restore(r, mapping).ok());
      Feed(f, op, r, cut, f.rows.size());
      op.OnWatermark(EventTime::Max());
      op.FlushOutput();
      ASSERT_TRUE(op.status().ok()) << op.status().message();
    }
    EXPECT_EQ(Sorted(got_out.contents()), Sorted(want_out.contents()));
  }
}

// An operator that only wants processing time: a timer every `period` ms
// of the worker's clock from `first`, recording when it was called.
class TickOperator final : public KeyedOperator {
 public:
  TickOperator(int64_t first, int64_t period) : next_(first), period_(period) {}
  bool Wants(uint32_t) const override { return true; }
  void AttachState(const WorkerStateOptions&) override {}
  void OnEvent(uint32_t, const RowPtr&, void*) override { ++events; }
  void OnWatermark(EventTime) override {}
  int64_t NextProcessingTime() const override { return next_.load(); }
  void OnProcessingTime(int64_t now_ms) override {
    EXPECT_GE(now_ms, next_.load()) << "called before its timer was due";
    fired_at.push_back(now_ms);
    next_ = now_ms + period_;
    fires = fired_at.size();
  }
  void EndOfBatch() override {}
  void FlushOutput() override { flushes_after_fire = fires.load(); }
  Status WriteBack() override { return Status::Ok(); }
  Status Restore(state::KeyGroupRange, const RestoreMapping&) override { return Status::Ok(); }
  const Status& status() const override { return status_; }

  std::vector<int64_t> fired_at;
  std::atomic<size_t> fires{0}, flushes_after_fire{0};
  std::atomic<int> events{0};

 private:
  std::atomic<int64_t> next_;
  const int64_t period_;
  Status status_;
};

std::unique_ptr<Worker> TickWorker(const Fixture& f, TickOperator** op) {
  return std::make_unique<Worker>(f.pipeline, state::KeyGroupRange{}, [op](WorkerStats*) {
    auto t = std::make_unique<TickOperator>(50, 100);
    *op = t.get();
    std::vector<std::unique_ptr<KeyedOperator>> ops;
    ops.push_back(std::move(t));
    return ops;
  });
}

TEST(KeyedOperator, ProcessingTimeTimersFireBetweenBatchesOnTheInjectedClock) {
  const Fixture f = Make();
  TickOperator* op = nullptr;
  auto worker = TickWorker(f, &op);
  ManualClock clock(10);
  worker->SetClock(&clock);
  EventBatch b;
  b.events.push_back(RoutedEvent{f.rows[0], 0});
  b.watermark = Watermark::At(f.rows[0]->time());
  worker->OnBatch(b);
  EXPECT_EQ(op->events.load(), 1);
  EXPECT_TRUE(op->fired_at.empty()) << "not due at 10 ms";
  clock.Set(60);
  EventBatch empty;
  empty.watermark = b.watermark;
  worker->OnBatch(empty);
  EXPECT_EQ(op->fired_at, std::vector<int64_t>{60});
  EXPECT_EQ(op->flushes_after_fire.load(), 1u) << "the output of the firing is flushed";
  worker->OnBatch(empty);
  EXPECT_EQ(op->fired_at.size(), 1u) << "next timer at 160 ms";
}

TEST(KeyedOperator, AnIdleWorkerWakesUpForAProcessingTimeTimer) {
  const Fixture f = Make();
  TickOperator* op = nullptr;
  auto worker = TickWorker(f, &op);
  ManualClock clock(0);
  worker->SetClock(&clock);
  worker->Start();
  // No batch comes: the worker waits for the timer (at 50 ms of the clock).
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(op->fires.load(), 0u) << "the clock has not moved";
  clock.Set(75);
  for (int i = 0; i < 500 && op->flushes_after_fire.load() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(op->fires.load(), 1u);
  EXPECT_EQ(op->flushes_after_fire.load(), 1u);
  EventBatch end;
  end.watermark = Watermark::Max();
  worker->Push(std::move(end));
  worker->Join();
  ASSERT_EQ(op->fired_at.size(), 1u);
  EXPECT_EQ(op->fired_at[0], 75);
}

}  // namespace
}  // namespace cepheus::engine
