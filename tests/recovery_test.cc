// Differential recovery tests, in process: random patterns over random keyed
// streams, stopped at random records, checkpointed, restored (with another
// parallelism, another cache size, either backend) and continued, must give
// exactly the output of one uninterrupted run without any state. Every kind
// of worker state crosses a checkpoint here: partial matches with shared
// buffers and aggregates, held matches, pending (not yet watermarked)
// events, deadlines of cached and of evicted keys, reader positions and
// watermarks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/pipeline.h"
#include "engine/runner.h"
#include "sinks/outputs.h"
#include "tests/support/random_pattern.h"

namespace cepheus::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) out.push_back(l);
  std::sort(out.begin(), out.end());
  return out;
}

Result<engine::CompiledPipeline> Pipeline(const std::string& pattern, const std::string& input,
                                          int64_t lateness) {
  engine::PipelineConfig cfg;
  engine::StreamConfig s;
  s.name = "s";
  s.source.path = input;
  s.schema = Schema::Create({{"key", FieldType::kString},
                             {"type", FieldType::kString},
                             {"v", FieldType::kInt},
                             {"ts", FieldType::kTimestamp}})
                 .value();
  s.key = {"key"};
  s.time_field = "ts";
  s.watermark.max_out_of_orderness = Duration::Millis(lateness);
  cfg.streams.push_back(s);
  engine::PatternSource ps;
  ps.inline_text = pattern;
  cfg.patterns.push_back(ps);
  cfg.max_runs_per_key = 100000;
  return engine::CompilePipeline(std::move(cfg));
}

struct Outputs {
  std::string matches, late, dead;
};

class Recovery : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cepheus-recovery-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Keyed events in arrival order: time + jitter up to twice the lateness.
  std::string RandomInput(std::mt19937_64& rng, int64_t lateness, int n, int keys) {
    std::vector<std::pair<int64_t, std::string>> arrivals;
    int64_t ts = 0;
    for (int i = 0; i < n; ++i) {
      ts += std::uniform_int_distribution<int>(0, 2)(rng);
      const int key = std::uniform_int_distribution<int>(0, keys - 1)(rng);
      std::string type(1, static_cast<char>('A' + std::uniform_int_distribution<int>(0, 3)(rng)));
      std::string ev = "{\"key\":\"k" + std::to_string(key) + "\",\"type\":\"" + type +
                       "\",\"v\":" + std::to_string(std::uniform_int_distribution<int>(0, 5)(rng)) +
                       ",\"ts\":" + std::to_string(ts) + "}";
      if (i % 37 == 5) ev = "{\"key\":\"k1\",\"type\":";  // malformed
      arrivals.emplace_back(ts + std::uniform_int_distribution<int64_t>(0, 2 * lateness + 1)(rng),
                            ev);
    }
    std::stable_sort(arrivals.begin(), arrivals.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string out;
    for (auto& [at, ev] : arrivals) out += ev + "\n";
    return out;
  }

  fs::path dir_;
};

TEST_F(Recovery, StopRestoreContinueEqualsOneUninterruptedRun) {
  const auto catalog = RandomCatalog();
  std::mt19937_64 rng(2024);
  int cases = 0, with_matches = 0, restores = 0, evictions = 0, loads = 0;
  for (int c = 0; c < 400 && cases < 150; ++c) {
    RandomCase rc = MakeRandomCase(rng, catalog, 1);
    const int64_t lateness = std::uniform_int_distribution<int>(0, 3)(rng);
    const fs::path input = dir_ / "input.jsonl";
    const int n = std::uniform_int_distribution<int>(20, 200)(rng);
    const int keys = std::uniform_int_distribution<int>(1, 12)(rng);
    std::ofstream(input) << RandomInput(rng, lateness, n, keys);
    auto p = Pipeline(rc.pattern_text, input.string(), lateness);
    if (!p.ok()) continue;  // a pattern the checker rejects
    ++cases;
    SCOPED_TRACE(rc.pattern_text + "\ncase " + std::to_string(c));

    Outputs want;
    {
      sinks::MemoryOutput m, l, d;
      engine::RunOptions o;
      o.parallelism = 2;
      engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
      auto s = r.Run();
      ASSERT_TRUE(s.ok()) << s.status().message();
      want = Outputs{m.contents(), l.contents(), d.contents()};
      if (!want.matches.empty()) ++with_matches;
    }

    // The same input in several stopped-and-restored runs.
    const fs::path state_dir = dir_ / ("state-" + std::to_string(c));
    const bool rocks = c % 2 == 0;
    Outputs got;
    uint64_t stop_at = 0;
    for (int attempt = 0; attempt < 20; ++attempt) {
      sinks::MemoryOutput m, l, d;
      engine::RunOptions o;
      o.parallelism = std::uniform_int_distribution<int>(1, 3)(rng);
      o.lines_per_turn = std::uniform_int_distribution<size_t>(1, 9)(rng);
      o.checkpoint.enabled = true;
      o.checkpoint.backend = rocks ? state::BackendKind::kRocksDb : state::BackendKind::kMemory;
      o.checkpoint.state_dir = state_dir.string();
      o.checkpoint.interval_ms = 0;  // checkpoints at the stops
      const size_t cache_choices[] = {0, 1, 2, 5};
      o.checkpoint.cache_keys = cache_choices[std::uniform_int_distribution<int>(0, 3)(rng)];
      const bool last = attempt == 19;
      stop_at += std::uniform_int_distribution<uint64_t>(1, static_cast<uint64_t>(n) / 3 + 1)(rng);
      o.stop_after_records = last ? 0 : stop_at;
      engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
      auto s = r.Run();
      ASSERT_TRUE(s.ok()) << s.status().message();
      got.matches += m.contents();
      got.late += l.contents();
      got.dead += d.contents();
      if (s->restored_from) ++restores;
      evictions += static_cast<int>(s->keys_evicted);
      loads += static_cast<int>(s->keys_loaded);
      if (!s->stopped) break;
    }
    EXPECT_EQ(Lines(got.matches), Lines(want.matches));
    EXPECT_EQ(got.late, want.late);
    EXPECT_EQ(got.dead, want.dead);
    if (HasFailure()) break;
    fs::remove_all(state_dir);
  }
  std::cerr << cases << " cases (" << with_matches << " with matches), " << restores
            << " restores, " << evictions << " evictions, " << loads << " loads\n";
  EXPECT_GE(cases, 150);
  EXPECT_GT(with_matches, 40);
  EXPECT_GT(restores, 300);
  EXPECT_GT(evictions, 100) << "small caches must evict";
  EXPECT_GT(loads, 100) << "evicted keys must be read back";
}

// State larger than the cache: thousands of keys with live partial matches,
// a cache of 16 keys per worker. Most state lives only in RocksDB; results
// are those of a run with everything in memory.
TEST_F(Recovery, StateLargerThanTheCacheLivesInRocksDb) {
  const fs::path input = dir_ / "many.jsonl";
  {
    std::ofstream out(input);
    std::mt19937_64 rng(5);
    for (int i = 0; i < 40000; ++i)
      out << "{\"key\":\"k" << std::uniform_int_distribution<int>(0, 4999)(rng) << "\",\"type\":\""
          << "ABC"[std::uniform_int_distribution<int>(0, 2)(rng)] << "\",\"v\":" << i % 7
          << ",\"ts\":" << i << "}\n";
  }
  auto p = Pipeline(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 20 SECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C' "
      "EMIT key, COUNT(b) AS nb, SUM(b.v) AS sb ON TIMEOUT EMIT key, COUNT(b) AS nb",
      input.string(), 0);
  ASSERT_TRUE(p.ok()) << p.status().message();
  std::string want;
  {
    sinks::MemoryOutput m, l, d;
    engine::RunOptions o;
    o.parallelism = 2;
    engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    ASSERT_TRUE(r.Run().ok());
    want = m.contents();
  }
  sinks::MemoryOutput m, l, d;
  engine::RunOptions o;
  o.parallelism = 2;
  o.checkpoint.enabled = true;
  o.checkpoint.state_dir = (dir_ / "state").string();
  o.checkpoint.interval_ms = 0;
  o.checkpoint.cache_keys = 16;
  engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
  auto s = r.Run();
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_GT(s->keys_evicted, 10000u);
  EXPECT_GT(s->keys_loaded, 10000u);
  // Eviction runs between batches (2048 events): a worker never held more
  // than the cache plus one batch's keys, of the 5000.
  EXPECT_LT(s->peak_cached_keys, 16u + 2048u);
  EXPECT_GT(Lines(want).size(), 1000u);
  EXPECT_EQ(Lines(m.contents()), Lines(want));
}

// Two streams read in turns: which events are late depends on how the
// streams interleave (the watermark is the minimum over both). A restored
// reader reads in exactly the same steps as one never stopped, so even the
// late events are the same.
TEST_F(Recovery, TwoStreamsRestoreToTheSameInterleaving) {
  std::mt19937_64 rng(99);
  for (int c = 0; c < 30; ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    const fs::path in_s = dir_ / "s.jsonl", in_t = dir_ / "t.jsonl";
    std::ofstream(in_s) << RandomInput(rng, 2, 300, 5);
    std::ofstream(in_t) << RandomInput(rng, 1, 200, 4);
    engine::PipelineConfig cfg;
    for (const char* name : {"s", "t"}) {
      engine::StreamConfig st;
      st.name = name;
      st.source.path = (dir_ / (std::string(name) + ".jsonl")).string();
      st.schema = Schema::Create({{"key", FieldType::kString},
                                  {"type", FieldType::kString},
                                  {"v", FieldType::kInt},
                                  {"ts", FieldType::kTimestamp}})
                      .value();
      st.key = {"key"};
      st.time_field = "ts";
      st.watermark.max_out_of_orderness = Duration::Millis(name[0] == 's' ? 2 : 1);
      cfg.streams.push_back(st);
    }
    engine::PatternSource ps;
    ps.inline_text =
        "PATTERN ps FROM s MATCH a -> b+ -> c WITHIN 20 MILLISECONDS DEFINE a AS type = 'A', "
        "b AS type = 'B', c AS type = 'C' EMIT key, COUNT(b) AS nb\n"
        "PATTERN pt FROM t MATCH a -> !b WITHIN 10 MILLISECONDS DEFINE a AS type = 'A', "
        "b AS type = 'B' EMIT key";
    cfg.patterns.push_back(ps);
    auto p = engine::CompilePipeline(std::move(cfg));
    ASSERT_TRUE(p.ok()) << p.status().message();
    const size_t per_turn = std::uniform_int_distribution<size_t>(2, 9)(rng);
    Outputs want;
    {
      sinks::MemoryOutput m, l, d;
      engine::RunOptions o;
      o.parallelism = 2;
      o.lines_per_turn = per_turn;
      o.read_buffer_bytes = 700;  // reads stop mid-turn: turn sizes must not depend on it
      engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
      ASSERT_TRUE(r.Run().ok());
      want = Outputs{m.contents(), l.contents(), d.contents()};
    }
    const fs::path state_dir = dir_ / ("state2-" + std::to_string(c));
    Outputs got;
    uint64_t stop_at = 0;
    for (int attempt = 0; attempt < 30; ++attempt) {
      sinks::MemoryOutput m, l, d;
      engine::RunOptions o;
      o.parallelism = std::uniform_int_distribution<int>(1, 3)(rng);
      o.lines_per_turn = per_turn;
      o.read_buffer_bytes = 700;
      o.checkpoint.enabled = true;
      o.checkpoint.state_dir = state_dir.string();
      o.checkpoint.interval_ms = 0;
      stop_at += std::uniform_int_distribution<uint64_t>(1, 60)(rng);
      o.stop_after_records = attempt == 29 ? 0 : stop_at;
      engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
      auto sm = r.Run();
      ASSERT_TRUE(sm.ok()) << sm.status().message();
      got.matches += m.contents();
      got.late += l.contents();
      got.dead += d.contents();
      if (!sm->stopped) break;
    }
    EXPECT_FALSE(want.late.empty());
    EXPECT_EQ(got.late, want.late);
    EXPECT_EQ(got.dead, want.dead);
    EXPECT_EQ(Lines(got.matches), Lines(want.matches));
    if (HasFailure()) break;
  }
}

// A compressed input cannot seek: a restore decompresses up to the recorded
// offset. Stops at random records must still give one run's output.
TEST_F(Recovery, CompressedInputsResumeAtTheirOffsets) {
  std::mt19937_64 rng(5);
  const fs::path plain = dir_ / "in.jsonl";
  std::ofstream(plain) << RandomInput(rng, 2, 3000, 6);
  ASSERT_EQ(std::system(("gzip -k -f " + plain.string()).c_str()), 0);
  auto p = Pipeline(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 30 MILLISECONDS DEFINE a AS type = 'A', b AS "
      "type = 'B', c AS type = 'C' EMIT key, COUNT(b) AS nb ON TIMEOUT EMIT key",
      plain.string() + ".gz", 2);
  ASSERT_TRUE(p.ok()) << p.status().message();
  Outputs want;
  {
    sinks::MemoryOutput m, l, d;
    engine::RunOptions o;
    engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    ASSERT_TRUE(r.Run().ok());
    want = Outputs{m.contents(), l.contents(), d.contents()};
  }
  Outputs got;
  uint64_t stop_at = 0;
  int restores = 0;
  for (int attempt = 0; attempt < 12; ++attempt) {
    sinks::MemoryOutput m, l, d;
    engine::RunOptions o;
    o.parallelism = 1 + attempt % 2;
    o.lines_per_turn = 64;
    o.read_buffer_bytes = 4096;
    o.checkpoint.enabled = true;
    o.checkpoint.state_dir = (dir_ / "state").string();
    o.checkpoint.interval_ms = 0;
    stop_at += std::uniform_int_distribution<uint64_t>(100, 400)(rng);
    o.stop_after_records = attempt == 11 ? 0 : stop_at;
    engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    auto s = r.Run();
    ASSERT_TRUE(s.ok()) << s.status().message();
    got.matches += m.contents();
    got.late += l.contents();
    got.dead += d.contents();
    if (s->restored_from) ++restores;
    if (!s->stopped) break;
  }
  EXPECT_GE(restores, 5);
  EXPECT_FALSE(want.matches.empty());
  EXPECT_EQ(Lines(got.matches), Lines(want.matches));
  EXPECT_EQ(got.late, want.late);
  EXPECT_EQ(got.dead, want.dead);
}

// A key evicted from the cache still fires its deadline when the watermark
// passes it, not only when its next event comes or the input ends: with one
// event per batch the matches come out in deadline order, as without state.
TEST_F(Recovery, EvictedKeysFireTheirDeadlinesOnTime) {
  const fs::path input = dir_ / "absence.jsonl";
  {
    std::ofstream out(input);
    for (int t = 0; t <= 60000; t += 500) {
      if (t % 3000 == 0 && t < 30000)
        out << "{\"key\":\"k" << t / 3000 << "\",\"type\":\"A\",\"v\":1,\"ts\":" << t << "}\n";
      out << "{\"key\":\"filler\",\"type\":\"C\",\"v\":1,\"ts\":" << t << "}\n";
    }
  }
  auto p = Pipeline(
      "PATTERN absent FROM s MATCH a -> !b WITHIN 10 SECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B' EMIT key",
      input.string(), 0);
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto run = [&](bool with_state, engine::RunSummary* summary) {
    sinks::MemoryOutput m, l, d;
    engine::RunOptions o;
    o.parallelism = 1;
    o.lines_per_turn = 1;
    if (with_state) {
      o.checkpoint.enabled = true;
      o.checkpoint.state_dir = (dir_ / "state").string();
      o.checkpoint.interval_ms = 0;
      o.checkpoint.cache_keys = 1;
    }
    engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    auto s = r.Run();
    EXPECT_TRUE(s.ok()) << s.status().message();
    if (s.ok() && summary) *summary = s.value();
    return m.contents();
  };
  const std::string want = run(false, nullptr);
  engine::RunSummary summary;
  const std::string got = run(true, &summary);
  EXPECT_EQ(std::count(want.begin(), want.end(), '\n'), 10);
  EXPECT_GT(summary.keys_evicted, 5u);
  EXPECT_EQ(got, want) << "same matches in the same (deadline) order";
}

}  // namespace
}  // namespace cepheus::testing
