// Contract tests between `backtest` and `run`: the same patterns over the same
// history must give the same match records (ids included).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "engine/batch/backtest.h"
#include "engine/exec/runner.h"
#include "engine/plan/pipeline.h"
#include "sinks/outputs.h"
#include "sources/file_source.h"
#include "tests/golden/golden_format.h"
#include "tests/support/random_pattern.h"
#include "tests/support/test_io.h"

namespace cepheus::testing {
namespace {

namespace fs = std::filesystem;

struct Outputs {
  std::string matches, late, dead;
};

Result<Outputs> Run(const engine::CompiledPipeline& p, int parallelism) {
  sinks::MemoryOutput m, l, d;
  engine::RunOptions o;
  o.sources = &sources::FileSources();
  o.parallelism = parallelism;
  engine::PipelineRunner r(p, engine::RunOutputs{&m, &l, &d}, o);
  auto s = r.Run();
  if (!s.ok()) return s.status();
  return Outputs{m.contents(), l.contents(), d.contents()};
}

Result<Outputs> Backtest(const engine::CompiledPipeline& p, int parallelism, bool as_live,
                         size_t budget = size_t{1} << 30,
                         engine::BacktestSummary* summary = nullptr,
                         uint64_t split_above = 8 << 20) {
  sinks::MemoryOutput m, l, d;
  engine::BacktestOptions o;
  o.sources = &sources::FileSources();
  o.parallelism = parallelism;
  o.as_live = as_live;
  o.memory_budget = budget;
  o.split_above = split_above;
  engine::Backtester b(p, engine::RunOutputs{&m, &l, &d}, o);
  auto s = b.Run();
  if (!s.ok()) return s.status();
  if (summary) *summary = s.value();
  return Outputs{m.contents(), l.contents(), d.contents()};
}

int64_t TsOf(const std::string& json) {
  auto p = json.find("\"ts\":");
  return std::strtoll(json.c_str() + p + 5, nullptr, 10);
}

// Checks every contract on one input (events in arrival order).
void CheckContracts(const std::string& name, const std::string& pattern,
                    const std::vector<std::string>& events, int64_t lateness,
                    const std::string& schema, const fs::path& dir) {
  SCOPED_TRACE(name + "\n" + pattern);
  fs::path input = dir / "input.jsonl", sorted = dir / "sorted.jsonl";
  {
    std::ofstream out(input);
    for (const auto& e : events) out << e << "\n";
    std::vector<std::string> by_time = events;
    std::stable_sort(by_time.begin(), by_time.end(),
                     [](const std::string& a, const std::string& b) { return TsOf(a) < TsOf(b); });
    std::ofstream out2(sorted);
    for (const auto& e : by_time) out2 << e << "\n";
  }
  auto live = OneStreamPipeline(pattern, input.string(), lateness, schema);
  ASSERT_TRUE(live.ok()) << live.status().message();
  auto presorted = OneStreamPipeline(pattern, sorted.string(), lateness, schema);
  ASSERT_TRUE(presorted.ok());

  auto run = Run(live.value(), 2);
  ASSERT_TRUE(run.ok()) << run.status().message();
  auto as_live = Backtest(live.value(), 2, true);
  ASSERT_TRUE(as_live.ok()) << as_live.status().message();
  EXPECT_EQ(SortedLines(as_live->matches), SortedLines(run->matches))
      << "backtest --as-live vs run";
  EXPECT_EQ(SortedLines(as_live->late), SortedLines(run->late)) << "the same events are late";
  EXPECT_EQ(SortedLines(as_live->dead), SortedLines(run->dead));

  auto run_sorted = Run(presorted.value(), 1);
  ASSERT_TRUE(run_sorted.ok());
  auto complete = Backtest(live.value(), 3, false);
  ASSERT_TRUE(complete.ok());
  EXPECT_EQ(SortedLines(complete->matches), SortedLines(run_sorted->matches))
      << "complete vs run on sorted input";
  EXPECT_EQ(complete->late, "") << "complete mode has no late events";
  // Matches a STRICT skip could not apply to are dead letters in every mode.
  auto skip_errors = [](const std::string& dead) {
    std::vector<std::string> v;
    for (const std::string& l : SortedLines(dead))
      if (l.find("\"match\":{") != std::string::npos) v.push_back(l);
    return v;
  };
  EXPECT_EQ(skip_errors(complete->dead), skip_errors(run_sorted->dead));

  // Byte-identical output for any parallelism, with spilling, and with the
  // input split into byte ranges across reader threads.
  auto one = Backtest(live.value(), 1, false);
  auto spilled = Backtest(live.value(), 2, false, /*budget=*/1);
  auto split = Backtest(live.value(), 3, false, size_t{1} << 30, nullptr, /*split_above=*/1);
  auto split_spilled = Backtest(live.value(), 2, false, /*budget=*/1, nullptr, /*split_above=*/1);
  for (const auto* r : {&one, &spilled, &split, &split_spilled})
    ASSERT_TRUE(r->ok()) << r->status().message();
  EXPECT_EQ(one->matches, complete->matches) << "parallelism 1 vs 3";
  EXPECT_EQ(spilled->matches, complete->matches) << "spilling to disk";
  EXPECT_EQ(split->matches, complete->matches) << "input split across reader threads";
  EXPECT_EQ(split_spilled->matches, complete->matches) << "split and spilled";
  EXPECT_EQ(SortedLines(split->dead).size(), SortedLines(complete->dead).size())
      << "dead letters all reported";
}

class BacktestContract : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ScratchDir("cepheus-bt"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(BacktestContract, EveryGoldenScenario) {
  int n = 0;
  for (const auto& e :
       fs::recursive_directory_iterator(fs::path(CEPHEUS_SOURCE_DIR) / "tests/golden")) {
    if (e.path().extension() != ".test") continue;
    auto g = ReadGoldenFile(e.path());
    ASSERT_TRUE(g.ok()) << g.status().message();
    CheckContracts(e.path().filename().string(), g->pattern, g->events, g->lateness_ms, g->schema,
                   dir_);
    ++n;
  }
  EXPECT_GE(n, 60);
}

TEST_F(BacktestContract, RandomStreamsWithDisorderBeyondTheLateness) {
  const auto catalog = RandomCatalog();
  std::mt19937_64 rng(77);
  int with_matches = 0;
  const int total_cases = ScaledCases(200);
  for (int c = 0; c < total_cases; ++c) {
    RandomCase rc = MakeRandomCase(rng, catalog, 1);  // the pattern; events made below
    std::string pattern = rc.pattern_text;
    if (!OneStreamPipeline(pattern, "unused", 0, "key string, type string, v int, ts timestamp")
             .ok())
      continue;  // a pattern the checker rejects
    // Several keys, some idle for long stretches; arrival = time + jitter of
    // up to twice the allowed lateness, so some events are late.
    const int64_t lateness = std::uniform_int_distribution<int>(0, 3)(rng);
    std::vector<std::pair<int64_t, std::string>> arrivals;
    int64_t ts = 0;
    const int n = std::uniform_int_distribution<int>(5, 40)(rng);
    for (int i = 0; i < n; ++i) {
      ts += std::uniform_int_distribution<int>(0, 2)(rng);
      int key = std::uniform_int_distribution<int>(0, 3)(rng);
      if (key == 3 && i % 7) key = 0;  // k3 is mostly idle
      std::string type(1, static_cast<char>('A' + std::uniform_int_distribution<int>(0, 3)(rng)));
      std::string ev = "{\"key\":\"k" + std::to_string(key) + "\",\"type\":\"" + type +
                       "\",\"v\":" + std::to_string(std::uniform_int_distribution<int>(0, 5)(rng)) +
                       ",\"ts\":" + std::to_string(ts) + "}";
      int64_t jitter = std::uniform_int_distribution<int64_t>(0, 2 * lateness + 1)(rng);
      arrivals.emplace_back(ts + jitter, ev);
    }
    std::stable_sort(arrivals.begin(), arrivals.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> events;
    for (auto& [at, ev] : arrivals) events.push_back(ev);
    CheckContracts("random case " + std::to_string(c), pattern, events, lateness,
                   "key string, type string, v int, ts timestamp", dir_);
    if (HasFailure()) break;
    auto p = OneStreamPipeline(pattern, (dir_ / "input.jsonl").string(), lateness,
                               "key string, type string, v int, ts timestamp");
    auto out = Backtest(p.value(), 1, true);
    if (out.ok() && !out->matches.empty()) ++with_matches;
  }
  EXPECT_GT(with_matches, 30 * total_cases / 200)  // (30 of the full 200 cases)
      << "the random cases must actually match something";
}

// A spill directory is someone else's while its owner process lives, even
// when its lock is free (the instant between creating the lock file and
// locking it): two backtests starting together in one temporary directory
// must not delete each other's spill. Once the owner is gone, the next
// backtest removes it.
TEST_F(BacktestContract, SpillDirectoriesOfLiveProcessesAreNotRemoved) {
  const fs::path input = dir_ / "in.jsonl";
  std::ofstream(input) << "{\"key\":\"k\",\"type\":\"A\",\"v\":1,\"ts\":1}\n";
  auto p = OneStreamPipeline("PATTERN p FROM s MATCH a DEFINE a AS type = 'A'", input.string(), 0,
                             "key string, type string, v int, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  const pid_t owner = ::fork();
  if (owner == 0) {
    ::execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(owner, 0);
  const fs::path base = dir_ / "spill";
  const fs::path theirs = base / ("cepheus-spill-" + std::to_string(owner) + "-1");
  fs::create_directories(theirs);
  std::ofstream(theirs / "cepheus.lock") << owner;  // created, not locked yet
  std::ofstream(theirs / "run-0") << "data";
  auto backtest = [&] {
    sinks::MemoryOutput m, l, d;
    engine::BacktestOptions o;
    o.sources = &sources::FileSources();
    o.parallelism = 1;
    o.spill_dir = base.string();
    engine::Backtester b(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    return b.Run().ok();
  };
  ASSERT_TRUE(backtest());
  EXPECT_TRUE(fs::exists(theirs / "run-0")) << "the owner is alive: its spill stays";
  ::kill(owner, SIGKILL);
  ::waitpid(owner, nullptr, 0);
  ASSERT_TRUE(backtest());
  EXPECT_FALSE(fs::exists(theirs)) << "the owner is gone: its spill is removed";
}

TEST_F(BacktestContract, KeysSharingAHashAreStillMatchedApart) {
  // With only 2 bits of hash, many keys collide; the batch must still match
  // each key on its own events (as run does), spilled or not.
  fs::path input = dir_ / "many.jsonl";
  {
    std::ofstream out(input);
    std::mt19937_64 rng(3);
    for (int i = 0; i < 3000; ++i)
      out << "{\"key\":\"k" << std::uniform_int_distribution<int>(0, 40)(rng) << "\",\"type\":\""
          << "ABC"[std::uniform_int_distribution<int>(0, 2)(rng)] << "\",\"v\":1,\"ts\":" << i
          << "}\n";
  }
  auto p = OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 500 MILLISECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C'",
      input.string(), 0, "key string, type string, v int, ts timestamp");
  ASSERT_TRUE(p.ok());
  auto run = testing::Run(p.value(), 1);
  ASSERT_TRUE(run.ok());
  for (size_t budget : {size_t{1} << 30, size_t{1}}) {
    sinks::MemoryOutput m, l, d;
    engine::BacktestOptions o;
    o.sources = &sources::FileSources();
    o.parallelism = 2;
    o.memory_budget = budget;
    o.hash_mask = 0x3;
    engine::Backtester b(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    auto s = b.Run();
    ASSERT_TRUE(s.ok()) << s.status().message();
    EXPECT_GT(s->matches, 100u);
    EXPECT_EQ(SortedLines(m.contents()), SortedLines(run->matches)) << "budget " << budget;
  }
}

// A CSV input split into byte ranges across reader threads: every range uses
// the file's header, and no split lands inside a quoted field that spans
// lines (the file is full of them).
TEST_F(BacktestContract, CsvSplitAcrossReadersUsesTheHeaderAndKeepsQuotedNewlines) {
  std::mt19937_64 rng(11);
  std::string csv = "\xEF\xBB\xBFkey,type,note,ts\r\n";  // a BOM and CRLF, as spreadsheets write
  const char* types[] = {"A", "B", "C"};
  for (int i = 0; i < 6000; ++i) {
    std::string note = "\"n" + std::to_string(i);
    for (uint64_t k = rng() % 3; k > 0; --k) note += "\nmore, \"\"quoted\"\"";
    note += "\"";
    if (i % 997 == 5) {
      csv += "k1,A,broken,notatime\n";  // a dead letter
      continue;
    }
    csv += "k" + std::to_string(rng() % 40) + "," + types[rng() % 3] + "," + note + "," +
           std::to_string(1000 + i) + "\n";
  }
  const fs::path input = dir_ / "input.csv";
  WriteFile(input.string(), csv);
  const std::string pattern =
      "PATTERN p FROM s MATCH a -> b -> c WITHIN 50 MILLISECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B' AND note != a.note, c AS type = 'C' "
      "EMIT a.note AS an, c.note AS cn";
  auto p = OneStreamPipeline(pattern, input.string(), 0,
                             "key string, type string, note string, ts int", "csv");
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto run = testing::Run(p.value(), 1);
  ASSERT_TRUE(run.ok()) << run.status().message();
  ASSERT_GT(SortedLines(run->matches).size(), 100u);
  EXPECT_NE(run->matches.find("more, \\\"quoted\\\""), std::string::npos)
      << "quoted newlines and quotes reach the match";
  EXPECT_EQ(SortedLines(run->dead).size(), 7u) << run->dead;
  auto one = Backtest(p.value(), 1, false);
  ASSERT_TRUE(one.ok()) << one.status().message();
  EXPECT_EQ(SortedLines(one->matches), SortedLines(run->matches));
  for (int parallelism : {2, 3, 5}) {
    auto split =
        Backtest(p.value(), parallelism, false, size_t{1} << 30, nullptr, /*split_above=*/1);
    ASSERT_TRUE(split.ok()) << parallelism << ": " << split.status().message();
    EXPECT_EQ(split->matches, one->matches) << "split across " << parallelism << " readers";
    EXPECT_EQ(SortedLines(split->dead).size(), 7u) << split->dead;
  }
}

TEST_F(BacktestContract, BadInputIsReportedNotSkipped) {
  fs::path input = dir_ / "in.jsonl";
  std::ofstream(input) << "{\"key\":\"k\",\"type\":\"A\",\"v\":1,\"ts\":1}\nnot json\n"
                          "{\"key\":\"k\",\"type\":\"B\",\"v\":1,\"ts\":2}\n";
  auto p =
      OneStreamPipeline("PATTERN p FROM s MATCH a -> b DEFINE a AS type = 'A', b AS type = 'B'",
                        input.string(), 0, "key string, type string, v int, ts timestamp");
  ASSERT_TRUE(p.ok());
  engine::BacktestSummary summary;
  auto out = Backtest(p.value(), 2, false, size_t{1} << 30, &summary);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(summary.reader.dead_letters, 1u);
  EXPECT_EQ(summary.matches, 1u);
  EXPECT_NE(out->dead.find("\"line\":2"), std::string::npos);
  EXPECT_NE(summary.ToJson().find("\"dead_letters\":1"), std::string::npos);

  // A compressed file cut short: a clear error, not a silently shorter history.
  std::string gz = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03";  // a gzip header, no data
  std::ofstream(dir_ / "cut.jsonl.gz", std::ios::binary) << gz;
  auto cut = OneStreamPipeline("PATTERN p FROM s MATCH a", (dir_ / "cut.jsonl.gz").string(), 0,
                               "key string, type string, v int, ts timestamp");
  ASSERT_TRUE(cut.ok());
  auto cut_result = Backtest(cut.value(), 1, false);
  ASSERT_FALSE(cut_result.ok());
  EXPECT_NE(cut_result.status().message().find("ends in the middle of a gzip stream"),
            std::string::npos)
      << cut_result.status().message();

  auto missing = OneStreamPipeline("PATTERN p FROM s MATCH a", (dir_ / "nope.jsonl").string(), 0,
                                   "key string, type string, v int, ts timestamp");
  ASSERT_TRUE(missing.ok());
  auto err = Backtest(missing.value(), 1, false);
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.status().message().find("cannot open"), std::string::npos)
      << err.status().message();
}

}  // namespace
}  // namespace cepheus::testing
