// Runtime behaviour beyond matching semantics: the run cap, match-buffer
// hygiene, and a live (unbounded) input that goes idle.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "engine/exec/runner.h"
#include "engine/nfa/nfa_runtime.h"
#include "engine/plan/pipeline.h"
#include "engine/plan/pipeline_config.h"
#include "patterns/cost.h"
#include "sinks/outputs.h"
#include "sources/file_source.h"
#include "tests/support/random_pattern.h"
#include "tests/support/test_io.h"

namespace cepheus::engine {
namespace {

std::unique_ptr<patterns::CompiledPattern> Compile(const std::string& text,
                                                   const patterns::StreamCatalog& catalog) {
  patterns::SourceFile f("t.cep", text);
  auto r = patterns::CompilePatternFile(f, catalog);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::make_unique<patterns::CompiledPattern>(
      std::move(*std::const_pointer_cast<patterns::CompiledPattern>(r.value()[0])));
}

// A matcher environment over its own pool that counts emitted results.
struct TestEnv {
  explicit TestEnv(const patterns::CompiledPattern* p) {
    env.pattern = p;
    env.pool = &pool;
    env.stats = &stats;
    env.emit = [this](const MatchResult&) { ++emitted; };
  }
  NodePool pool;
  MatcherStats stats;
  MatcherEnv env;
  size_t emitted = 0;
};

TEST(RunCap, SkipTillAnyIsCappedCountedAndReported) {
  const auto catalog = testing::RandomCatalog();
  auto p = Compile(
      "PATTERN p FROM s MATCH a ->> b ->> c DEFINE a AS type = 'A', b AS type = 'B', c AS type = "
      "'C'",
      catalog);
  TestEnv t(p.get());
  MatcherEnv& env = t.env;
  env.max_runs_per_key = 50;
  size_t reported = 0;
  env.on_runs_dropped = [&](size_t n) { reported += n; };
  KeyMatcher km;
  for (int i = 0; i < 300; ++i) {
    RowPtr row = testing::MakeEvent(catalog, i % 3 == 0 ? "A" : (i % 3 == 1 ? "B" : "C"), 1, i, i);
    km.Process(env, row, km.NextId(row->time()));
    ASSERT_LE(km.num_runs(), 50u) << "the cap holds after every event";
  }
  EXPECT_GT(t.stats.runs_dropped, 0u);
  EXPECT_EQ(reported, t.stats.runs_dropped) << "every cut is reported, none silently";
  EXPECT_GT(t.emitted, 0u) << "matching goes on under the cap";
  km.AdvanceTime(env, EventTime::Max());
  km.Clear(env);
  EXPECT_EQ(t.pool.live(), 0u);
}

TEST(MatchBuffer, QuietKeyReleasesEveryNodeWhenItsWindowPasses) {
  const auto catalog = testing::RandomCatalog();
  auto p = Compile(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 10 MILLISECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C'",
      catalog);
  TestEnv t(p.get());
  MatcherEnv& env = t.env;
  NodePool& pool = t.pool;
  KeyMatcher km;
  for (int i = 0; i < 8; ++i) {
    RowPtr row = testing::MakeEvent(catalog, i == 0 ? "A" : "B", 1, i, i);
    km.Process(env, row, km.NextId(row->time()));
  }
  EXPECT_GT(pool.live(), 0u);
  EXPECT_EQ(km.NextDeadline(env).millis(), 10);
  km.AdvanceTime(env, EventTime::FromMillis(9));
  EXPECT_GT(pool.live(), 0u) << "the window has not passed yet";
  km.AdvanceTime(env, EventTime::FromMillis(10));
  EXPECT_TRUE(km.Idle());
  EXPECT_EQ(pool.live(), 0u) << "nothing is kept for a key whose partial matches expired";
}

// A live input: a FIFO that stays open. When it goes quiet past idle_timeout
// the watermark follows the (manual) wall clock and the absence match fires
// while the input is still open.
class IdleSource : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cepheus-idle-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    fifo_ = (dir_ / "in.fifo").string();
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
    writer_ = ::open(fifo_.c_str(), O_RDWR);  // does not block, keeps the FIFO open
    ASSERT_GE(writer_, 0);
  }
  void TearDown() override {
    if (writer_ >= 0) ::close(writer_);
    std::filesystem::remove_all(dir_);
  }
  Result<CompiledPipeline> Pipeline(bool follow) {
    PipelineConfig cfg;
    StreamConfig s;
    s.name = "s";
    s.source.path = fifo_;
    s.schema = testing::RandomCatalog().at("s").schema;
    s.time_field = "ts";
    s.watermark.idle_timeout = Duration::Seconds(5);
    s.watermark.follow_wall_clock_when_idle = follow;
    cfg.streams.push_back(s);
    PatternSource ps;
    ps.inline_text =
        "PATTERN absent FROM s MATCH a -> !b WITHIN 10 SECONDS "
        "DEFINE a AS type = 'A', b AS type = 'B'";
    cfg.patterns.push_back(ps);
    return CompilePipeline(std::move(cfg));
  }
  void Write(const std::string& s) {
    ASSERT_EQ(::write(writer_, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  static bool WaitFor(const std::function<bool()>& pred, int ms) {
    for (int i = 0; i < ms / 10; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  std::filesystem::path dir_;
  std::string fifo_;
  int writer_ = -1;
};

TEST_F(IdleSource, WatermarkFollowsWallClockSoAbsenceFires) {
  auto pipeline = Pipeline(true);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().message();
  sinks::MemoryOutput matches, late, dead;
  ManualClock clock(1'000'000);
  RunOptions opts;
  opts.sources = &sources::FileSources();
  opts.clock = &clock;
  PipelineRunner runner(pipeline.value(), RunOutputs{&matches, &late, &dead}, opts);
  Result<RunSummary> summary = Status::Internal("not run");
  std::thread t([&] { summary = runner.Run(); });
  Write("{\"type\":\"A\",\"v\":1,\"ts\":1000}\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  clock.Advance(6'000);  // idle, but event time only reaches ~7 s < 11 s
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(matches.contents(), "") << "fired before its deadline";
  clock.Advance(6'000);  // event time passes 11 s
  EXPECT_TRUE(
      WaitFor([&] { return matches.contents().find("\"absent\"") != std::string::npos; }, 5000))
      << "the absence match must fire while the input is still open and quiet";
  // An event behind the wall-clock watermark is late, not silently dropped.
  Write("{\"type\":\"B\",\"v\":1,\"ts\":2000}\n");
  EXPECT_TRUE(
      WaitFor([&] { return late.contents().find("\"event_time\"") != std::string::npos; }, 5000));
  ::close(writer_);
  writer_ = -1;
  t.join();
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_EQ(summary->matches, 1u);
  EXPECT_EQ(summary->reader.late, 1u);
}

TEST_F(IdleSource, WithoutFollowingTheClockNothingFiresUntilTheInputEnds) {
  auto pipeline = Pipeline(false);
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().message();
  sinks::MemoryOutput matches, late, dead;
  ManualClock clock(1'000'000);
  RunOptions opts;
  opts.sources = &sources::FileSources();
  opts.clock = &clock;
  PipelineRunner runner(pipeline.value(), RunOutputs{&matches, &late, &dead}, opts);
  std::thread t([&] { (void)runner.Run(); });
  Write("{\"type\":\"A\",\"v\":1,\"ts\":1000}\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  clock.Advance(60'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(matches.contents(), "");
  ::close(writer_);
  writer_ = -1;
  t.join();
  EXPECT_NE(matches.contents().find("\"absent\""), std::string::npos) << "end of input flushes it";
}

// A far-future event is a poison pill: it moves the watermark so far that
// every later event is late. With max_future_skew it is a dead letter
// instead; and any record with invalid UTF-8 keeps its exact bytes.
TEST(Runner, FutureSkewGuardAndExactBytesOfDeadLetters) {
  const std::string dir = testing::ScratchDir("cepheus-skew");
  const std::string input = dir + "/in.jsonl";
  testing::WriteFile(input,
                     "{\"key\":\"k\",\"type\":\"A\",\"ts\":1000}\n"
                     "{\"key\":\"k\",\"type\":\"A\",\"ts\":9000000}\n"
                     "{\"key\":\"k\",\"type\":\"B\",\"ts\":2000}\n"
                     "{\"key\":\"k\xff\",\"type\":\"B\",\"ts\":2000}\n");
  for (bool guard : {false, true}) {
    PipelineConfig cfg;
    StreamConfig s;
    s.name = "s";
    s.source.path = input;
    s.schema = Schema::Create({{"key", FieldType::kString},
                               {"type", FieldType::kString},
                               {"ts", FieldType::kTimestamp}})
                   .value();
    s.key = {"key"};
    s.time_field = "ts";
    if (guard) s.max_future_skew = Duration::Seconds(60);
    cfg.streams.push_back(s);
    PatternSource ps;
    ps.inline_text = "PATTERN ab FROM s MATCH a -> b DEFINE a AS type = 'A', b AS type = 'B'";
    cfg.patterns.push_back(ps);
    auto pipeline = CompilePipeline(std::move(cfg));
    ASSERT_TRUE(pipeline.ok()) << pipeline.status().message();
    sinks::MemoryOutput matches, late, dead;
    ManualClock clock(1'000'000);  // the wall clock: 1000 s
    RunOptions opts;
    opts.sources = &sources::FileSources();
    opts.clock = &clock;
    PipelineRunner runner(pipeline.value(), RunOutputs{&matches, &late, &dead}, opts);
    auto summary = runner.Run();
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    if (!guard) {
      EXPECT_EQ(summary->reader.late, 1u) << "without the guard, the later event is late";
      EXPECT_EQ(summary->matches, 0u);
    } else {
      EXPECT_EQ(summary->reader.late, 0u) << late.contents();
      EXPECT_EQ(summary->matches, 1u);
      EXPECT_NE(dead.contents().find("ahead of the wall clock (event_time.max_future_skew)"),
                std::string::npos)
          << dead.contents();
    }
    // The invalid byte is replaced in `record` and kept exactly in base64.
    EXPECT_NE(dead.contents().find("\"record\":\"{\\\"key\\\":\\\"k\xEF\xBF\xBD\\\""),
              std::string::npos)
        << dead.contents();
    EXPECT_NE(
        dead.contents().find("\"record_base64\":\"eyJrZXkiOiJr/yIsInR5cGUiOiJCIiwidHMiOjIwMDB9\""),
        std::string::npos)
        << dead.contents();
  }
}

// With a skip strategy a completed match waits for earlier-started partial
// matches (Flink's rule, kept); how many waited and for how long is counted.
TEST(Runner, HeldMatchesAreCountedWithTheirWait) {
  const std::string dir = testing::ScratchDir("cepheus-held");
  const std::string input = dir + "/in.jsonl";
  testing::WriteFile(input,
                     "{\"key\":\"k\",\"type\":\"A\",\"v\":1,\"ts\":1000}\n"
                     "{\"key\":\"k\",\"type\":\"A\",\"v\":2,\"ts\":2000}\n"
                     "{\"key\":\"k\",\"type\":\"B\",\"v\":2,\"ts\":3000}\n");
  for (const char* skip : {"", " AFTER MATCH SKIP PAST LAST EVENT"}) {
    auto p = testing::OneStreamPipeline(
        std::string("PATTERN p FROM s MATCH a -> b WITHIN 10 SECONDS DEFINE a AS type = 'A', "
                    "b AS type = 'B' AND v = a.v") +
            skip,
        input, 0, "key string, type string, v int, ts timestamp");
    ASSERT_TRUE(p.ok()) << p.status().message();
    sinks::MemoryOutput matches, late, dead;
    PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, testing::FileRunOptions());
    auto summary = runner.Run();
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    EXPECT_EQ(summary->matches, 1u) << matches.contents();
    if (*skip) {
      // a@2000 b@3000 completes at 3000 but waits for the run of a@1000,
      // which ends at its WITHIN deadline, 11000.
      EXPECT_EQ(summary->matcher.held_matches, 1u);
      EXPECT_EQ(summary->matcher.held_wait_ms_max, 8000);
      EXPECT_NE(summary->matcher.HeldSummary().find("waited up to 8s"), std::string::npos)
          << summary->matcher.HeldSummary();
    } else {
      EXPECT_EQ(summary->matcher.held_matches, 0u) << "without a skip strategy nothing waits";
    }
  }
}

// A pattern whose partial matches explode (skip till any) is held to the
// process-wide budget by cutting the oldest runs, counted, instead of growing
// until the OOM killer ends the process.
TEST(Runner, ProcessWideRunBudgetCutsTheOldestRuns) {
  const std::string dir = testing::ScratchDir("cepheus-budget");
  const std::string input = dir + "/in.jsonl";
  std::string events;
  for (int i = 0; i < 4000; ++i)
    events += "{\"key\":\"k" + std::to_string(i % 20) + "\",\"type\":\"" +
              (i % 3 == 0 ? "A" : "B") + "\",\"v\":" + std::to_string(i) +
              ",\"ts\":" + std::to_string(1000 + i) + "}\n";
  testing::WriteFile(input, events);
  auto p = testing::OneStreamPipeline(
      "PATTERN p FROM s MATCH a ->> b ->> b2 WITHIN 1 HOUR "
      "DEFINE a AS type = 'A', b AS type = 'B', b2 AS type = 'B' AND v > b.v + 10000",
      input, 0, "key string, type string, v int, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  for (size_t budget : {size_t{0}, size_t{2000}}) {
    sinks::MemoryOutput matches, late, dead;
    RunOptions opts;
    opts.sources = &sources::FileSources();
    opts.parallelism = 2;
    opts.max_live_runs = budget;
    PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, opts);
    auto summary = runner.Run();
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    if (budget == 0) {
      EXPECT_GT(summary->peak_live_runs, 20000) << "the pattern explodes without a budget";
      EXPECT_EQ(summary->matcher.runs_cut_by_budget, 0u);
    } else {
      EXPECT_LE(summary->peak_live_runs, static_cast<int64_t>(budget));
      EXPECT_GT(summary->matcher.runs_cut_by_budget, 10000u);
    }
    EXPECT_EQ(summary->matcher.live_runs, 0) << "every run ended and was accounted for";
  }
}

// Watermarks from the input (Flink's Watermark(t) from the source): a
// punctuation record moves the watermark, later events at or before it are
// late, a bad punctuation is a dead letter, and the watermarks output shows
// each value the workers were given, then the end of the input.
TEST(Runner, PunctuationsDriveTheWatermarkAndTheWatermarksOutputShowsIt) {
  const std::string dir = testing::ScratchDir("cepheus-punct");
  const std::string input = dir + "/in.jsonl";
  testing::WriteFile(input,
                     "{\"key\":\"k\",\"type\":\"A\",\"ts\":1000}\n"
                     "{\"__watermark\":1500}\n"
                     "{\"key\":\"k\",\"type\":\"B\",\"ts\":1400}\n"
                     "{\"key\":\"k\",\"type\":\"B\",\"ts\":1600}\n"
                     "{\"__watermark\":\"1970-01-01T00:00:05Z\"}\n"
                     "{\"__watermark\":\"soon\"}\n"
                     "{\"key\":\"k\",\"type\":\"A\",\"ts\":4000}\n"
                     "{\"key\":\"k\",\"type\":\"A\",\"ts\":9000}\n");
  for (bool punctuated : {true, false}) {
    SCOPED_TRACE(punctuated ? "punctuated" : "bounded + punctuations");
    auto p = testing::OneStreamPipeline(
        "PATTERN p FROM s MATCH a -> b DEFINE a AS type = 'A', b AS type = 'B'", input,
        /*lateness_ms=*/0, "key string, type string, ts timestamp");
    ASSERT_TRUE(p.ok()) << p.status().message();
    auto& stream = const_cast<StreamConfig&>(p->config.streams[0]);
    stream.watermark.from_event_times = !punctuated;
    sinks::MemoryOutput matches, late, dead, watermarks;
    RunOptions opts;
    opts.sources = &sources::FileSources();
    opts.lines_per_turn = 1;  // one record per turn: every watermark is sent on its own
    PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead, &watermarks}, opts);
    auto summary = runner.Run();
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    EXPECT_EQ(summary->reader.punctuations, 2u);
    EXPECT_EQ(summary->reader.dead_letters, 1u);
    EXPECT_NE(dead.contents().find("watermark punctuation \\\"__watermark\\\": 'soon' is not an "
                                   "RFC 3339 time"),
              std::string::npos)
        << dead.contents();
    EXPECT_EQ(summary->reader.late, 2u) << late.contents();  // B@1400 and A@4000
    EXPECT_NE(late.contents().find("\"watermark\":\"1970-01-01T00:00:05.000Z\""), std::string::npos)
        << late.contents();
    EXPECT_EQ(summary->matches, 1u) << matches.contents();
    // What the workers were given, in order. Punctuated: the punctuations.
    // Bounded: event times move it too, and it is sent with the next events,
    // so 1500 and 5000 show as the later 1599 and 8999.
    auto line = [](int64_t ms) {
      return "{\"watermark\":\"" + FormatRfc3339(EventTime::FromMillis(ms)) +
             "\",\"watermark_ms\":" + std::to_string(ms) + "}\n";
    };
    const std::string end = "{\"watermark\":null,\"watermark_ms\":null,\"end_of_input\":true}\n";
    EXPECT_EQ(watermarks.contents(), punctuated ? line(1500) + line(5000) + end
                                                : line(999) + line(1599) + line(8999) + end);
  }
}

// Sinks get records, not text: each with its kind, partition key, event time
// and the pattern or stream it comes from, and its JSON payload (what a Kafka
// sink turns into a message key, timestamp and headers).
TEST(Runner, SinksReceiveRecordsWithKindKeyTimeAndName) {
  const std::string dir = testing::ScratchDir("cepheus-records");
  const std::string input = dir + "/in.jsonl";
  testing::WriteFile(input,
                     "{\"key\":\"k1\",\"type\":\"A\",\"ts\":1000}\n"
                     "{\"key\":\"k2\",\"type\":\"A\",\"ts\":1100}\n"
                     "{\"key\":\"k1\",\"type\":\"B\",\"ts\":1200}\n"
                     "not json\n"
                     "{\"key\":\"k2\",\"type\":\"B\",\"ts\":1300}\n"
                     "{\"key\":\"k3\",\"type\":\"B\",\"ts\":500}\n");
  auto p = testing::OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b DEFINE a AS type = 'A', b AS type = 'B'", input,
      /*lateness_ms=*/0, "key string, type string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  sinks::MemoryOutput matches, late, dead, watermarks;
  RunOptions opts = testing::FileRunOptions();
  opts.parallelism = 2;
  PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead, &watermarks}, opts);
  auto summary = runner.Run();
  ASSERT_TRUE(summary.ok()) << summary.status().message();

  auto got = matches.records();
  ASSERT_EQ(got.size(), 2u) << matches.contents();
  std::sort(got.begin(), got.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i].kind, io::RecordKind::kMatch);
    EXPECT_EQ(got[i].name, "p");
    EXPECT_EQ(got[i].key, i == 0 ? "k1" : "k2");
    EXPECT_EQ(got[i].time_ms, i == 0 ? 1200 : 1300) << "the match's last event";
    EXPECT_EQ(got[i].payload.rfind(
                  "{\"pattern\":\"p\",\"type\":\"match\",\"key\":\"" + got[i].key + "\"", 0),
              0u)
        << got[i].payload;
    EXPECT_EQ(got[i].payload.find('\n'), std::string::npos);
  }
  const auto l = late.records();
  ASSERT_EQ(l.size(), 1u) << late.contents();
  EXPECT_EQ(l[0].kind, io::RecordKind::kLate);
  EXPECT_EQ(l[0].key, "k3");
  EXPECT_EQ(l[0].name, "s");
  EXPECT_EQ(l[0].time_ms, 500);
  const auto d = dead.records();
  ASSERT_EQ(d.size(), 1u) << dead.contents();
  EXPECT_EQ(d[0].kind, io::RecordKind::kDeadLetter);
  EXPECT_EQ(d[0].name, "s");
  EXPECT_NE(d[0].payload.find("\"line\":4"), std::string::npos) << d[0].payload;
  const auto w = watermarks.records();
  ASSERT_FALSE(w.empty());
  EXPECT_EQ(w.back().kind, io::RecordKind::kWatermark);
  EXPECT_EQ(w.back().time_ms, INT64_MAX) << "the end of the input";
  // The line form is the records' payloads, one per line.
  std::string lines;
  for (const auto& r : matches.records()) lines += r.payload + "\n";
  EXPECT_EQ(lines, matches.contents());
}

// Counters are live: a scrape during a run sees the matches written so far
// (workers publish after every batch, before handing the batch's output to
// the sinks), not 0 until the run ends.
TEST(Runner, WorkerCountersArePublishedDuringTheRun) {
  const std::string dir = testing::ScratchDir("cepheus-live-metrics");
  const std::string input = dir + "/in.jsonl";
  std::string events;
  for (int i = 0; i < 3000; ++i)
    events += "{\"key\":\"k" + std::to_string(i % 7) + "\",\"type\":\"" + (i % 2 == 0 ? "A" : "B") +
              "\",\"ts\":" + std::to_string(1000 + i) + "}\n";
  testing::WriteFile(input, events);
  auto p = testing::OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b DEFINE a AS type = 'A', b AS type = 'B'", input, 0,
      "key string, type string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  metrics::Registry registry;
  // A sink that scrapes the registry each time a worker writes to it.
  class ScrapingSink final : public io::Sink {
   public:
    explicit ScrapingSink(const metrics::Registry& r) : r_(r) {}
    Status Write(const io::RecordBatch& batch) override {
      std::lock_guard<std::mutex> l(mu_);
      written_ += batch.size();
      const uint64_t seen = r_.CounterTotal("cepheus_matches_total");
      ++writes_;
      if (seen < written_) ++behind_;
      return Status::Ok();
    }
    Status Flush() override { return Status::Ok(); }
    uint64_t writes_ = 0, behind_ = 0, written_ = 0;

   private:
    const metrics::Registry& r_;
    std::mutex mu_;
  } matches(registry);
  sinks::MemoryOutput late, dead;
  RunOptions opts;
  opts.sources = &sources::FileSources();
  opts.parallelism = 2;
  opts.metrics = &registry;
  opts.lines_per_turn = 50;  // many batches
  PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, opts);
  auto summary = runner.Run();
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_GT(matches.writes_, 3u) << "several batches wrote matches";
  EXPECT_EQ(matches.behind_, 0u) << "a scrape never lagged what the sink had received";
  EXPECT_EQ(registry.CounterTotal("cepheus_matches_total"), summary->matches);
  EXPECT_GT(summary->matches, 1000u);
}

// Checkpoint and state series: with RocksDB state and a 2-key cache over 7
// keys, lookups miss the cache and read the backend; every completed
// checkpoint has a size; a checkpoint a sink refuses is counted as failed.
TEST(Runner, CheckpointAndStateMetrics) {
  const std::string dir = testing::ScratchDir("cepheus-ck-metrics");
  const std::string input = dir + "/in.jsonl";
  std::string events;
  for (int i = 0; i < 3000; ++i)
    events += "{\"key\":\"k" + std::to_string(i % 7) + "\",\"type\":\"" + (i % 3 == 0 ? "A" : "B") +
              "\",\"ts\":" + std::to_string(1000 + i) + "}\n";
  testing::WriteFile(input, events);
  auto p = testing::OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b+ WITHIN 1 HOUR DEFINE a AS type = 'A', b AS type = 'B'", input,
      0, "key string, type string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  // Refuses to prepare a commit when `refuse` is set.
  class RefusingSink final : public io::Sink {
   public:
    Status Write(const io::RecordBatch&) override { return Status::Ok(); }
    Status Flush() override { return Status::Ok(); }
    Result<std::string> PrepareCommit(uint64_t id) override {
      if (refuse) return Status::IoError("refused checkpoint " + std::to_string(id));
      return std::string();
    }
    bool refuse = false;
  };
  for (bool refuse : {false, true}) {
    SCOPED_TRACE(refuse ? "a refused checkpoint" : "checkpoints that complete");
    metrics::Registry registry;
    RefusingSink matches;
    matches.refuse = refuse;
    sinks::MemoryOutput late, dead;
    RunOptions opts;
    opts.sources = &sources::FileSources();
    opts.metrics = &registry;
    opts.lines_per_turn = 100;
    opts.checkpoint.enabled = true;
    opts.checkpoint.backend = state::BackendKind::kRocksDb;
    opts.checkpoint.state_dir = dir + (refuse ? "/state-refused" : "/state");
    opts.checkpoint.interval = Duration::Millis(1);
    opts.checkpoint.cache_keys = 2;
    PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, opts);
    auto summary = runner.Run();
    const std::string text = registry.RenderText();
    if (refuse) {
      ASSERT_FALSE(summary.ok());
      EXPECT_NE(summary.status().message().find("refused checkpoint"), std::string::npos);
      EXPECT_EQ(registry.CounterTotal("cepheus_checkpoint_failures_total"), 1u) << text;
      EXPECT_EQ(registry.CounterTotal("cepheus_checkpoints_total"), 0u);
      continue;
    }
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    EXPECT_EQ(registry.CounterTotal("cepheus_checkpoint_failures_total"), 0u);
    EXPECT_EQ(registry.CounterTotal("cepheus_checkpoints_total"), summary->checkpoints);
    EXPECT_GT(registry.GaugeTotal("cepheus_last_checkpoint_size_bytes"), 0) << text;
    EXPECT_EQ(static_cast<uint64_t>(registry.GaugeTotal("cepheus_last_checkpoint_id")),
              summary->checkpoints)
        << "a fresh start's ids count from 1";
    EXPECT_GT(registry.GaugeTotal("cepheus_state_bytes"), 0) << text;
    const uint64_t lookups = registry.CounterTotal("cepheus_state_cache_lookups_total");
    const uint64_t misses = registry.CounterTotal("cepheus_state_cache_misses_total");
    EXPECT_EQ(lookups, 3000u) << "one per event and pattern";
    EXPECT_GT(misses, 0u) << "7 keys do not fit a 2-key cache";
    EXPECT_LT(misses, lookups);
    EXPECT_EQ(registry.CounterTotal("cepheus_state_keys_loaded_total"), summary->keys_loaded);
  }
}

// limits.<pattern>: a pattern's own budget caps its runs per key (directly,
// or from max_state_bytes with the cost model's size of a run); the cuts
// are counted for that pattern only, in the metrics and the summary.
TEST(Runner, PerPatternBudgetsCutOnlyTheirPattern) {
  const std::string dir = testing::ScratchDir("cepheus-budgets");
  std::string events;
  for (int i = 0; i < 600; ++i)  // 200 per key: ~20000 runs each, under the global cap
    events += "{\"key\":\"k" + std::to_string(i % 3) +
              "\",\"type\":\"A\",\"ts\":" + std::to_string(1000 + i) + "}\n";
  testing::WriteFile(dir + "/in.jsonl", events);
  // Three copies of a pattern whose runs grow with every A (skip till any).
  std::string pats;
  for (const char* name : {"free", "capped", "small"})
    pats += std::string("      PATTERN ") + name +
            " FROM s MATCH a ->> b ->> c WITHIN 1 HOUR DEFINE a AS type = 'A', b AS type = "
            "'A', c AS type = 'B' EMIT key\n";
  auto cfg = ParsePipelineConfig(
      "streams:\n  s:\n    source: { path: " + dir +
          "/in.jsonl }\n    schema: { key: string, type: string, ts: timestamp }\n"
          "    key: key\n    event_time: ts\n"
          "patterns:\n  - inline: |\n" +
          pats +
          "limits: { max_runs_per_key: 100000, capped: { max_runs_per_key: 50 },\n"
          "          small: { max_state_bytes: 64KiB } }\n",
      dir + "/p.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto p = CompilePipeline(std::move(cfg.value()));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->pattern_run_cap.size(), 3u);
  EXPECT_EQ(p->pattern_run_cap[0], 100000u);
  EXPECT_EQ(p->pattern_run_cap[1], 50u);
  const size_t small_cap = p->pattern_run_cap[2];
  EXPECT_EQ(small_cap, static_cast<size_t>(64 * 1024 / patterns::RunStateBytes(*p->patterns[2])));
  EXPECT_GT(small_cap, 50u);
  EXPECT_LT(small_cap, 1000u);
  metrics::Registry registry;
  sinks::MemoryOutput matches, late, dead;
  RunOptions opts = testing::FileRunOptions();
  opts.metrics = &registry;
  PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, opts);
  auto summary = runner.Run();
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  ASSERT_EQ(summary->patterns.size(), 3u);
  EXPECT_EQ(summary->patterns[0].runs_dropped, 0u) << "under the global cap";
  EXPECT_GT(summary->patterns[1].runs_dropped, 0u);
  EXPECT_GT(summary->patterns[2].runs_dropped, 0u);
  // Each admitted run of a capped key could branch on every later A: the
  // cuts are what the caps kept out, so the live runs never passed them.
  EXPECT_LE(summary->peak_live_runs,
            static_cast<int64_t>(3 * (p->pattern_run_cap[0] + 50 + small_cap)));
  const std::string text = registry.RenderText();
  for (size_t i = 0; i < 3; ++i) {
    const std::string series = "cepheus_runs_dropped_total{pattern=\"" + p->patterns[i]->name +
                               "\"} " + std::to_string(summary->patterns[i].runs_dropped) + "\n";
    EXPECT_NE(text.find(series), std::string::npos) << series << text;
  }
}

// A sink that moves a manual clock by 10 ms each time a worker writes to it
// (when `on`), so that time passes as output is produced.
class TickingSink final : public io::Sink {
 public:
  TickingSink(ManualClock& c, bool on) : c_(c), on_(on) {}
  Status Write(const io::RecordBatch&) override {
    if (on_) c_.Advance(10);
    return Status::Ok();
  }
  Status Flush() override { return Status::Ok(); }

 private:
  ManualClock& c_;
  bool on_;
};

// The checkpoint interval is measured on the injected clock: with a clock
// that stands still, an interval of 1 ms never elapses, so only the final
// checkpoint is taken; moved by hand, interval checkpoints follow it.
TEST(Runner, CheckpointIntervalFollowsTheInjectedClock) {
  const std::string dir = testing::ScratchDir("cepheus-ckpt-clock");
  const std::string input = dir + "/in.jsonl";
  std::string events;
  for (int i = 0; i < 400; ++i)
    events += "{\"key\":\"k\",\"type\":\"A\",\"ts\":" + std::to_string(1000 + i) + "}\n";
  testing::WriteFile(input, events);
  auto p = testing::OneStreamPipeline("PATTERN p FROM s MATCH a DEFINE a AS type = 'A'", input, 0,
                                      "key string, type string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  for (bool moving : {false, true}) {
    SCOPED_TRACE(moving ? "clock moved by the output" : "clock standing still");
    ManualClock clock(1'000'000);
    TickingSink matches(clock, moving);
    sinks::MemoryOutput late, dead;
    RunOptions opts;
    opts.sources = &sources::FileSources();
    opts.clock = &clock;
    opts.lines_per_turn = 1;
    opts.checkpoint.enabled = true;
    opts.checkpoint.backend = state::BackendKind::kMemory;
    opts.checkpoint.state_dir = dir + (moving ? "/state-moving" : "/state-still");
    opts.checkpoint.interval = Duration::Millis(1);
    PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, opts);
    auto summary = runner.Run();
    ASSERT_TRUE(summary.ok()) << summary.status().message();
    if (moving)
      EXPECT_GT(summary->checkpoints, 1u);
    else
      EXPECT_EQ(summary->checkpoints, 1u) << "only the final checkpoint";
  }
}

// A source hears of every completed checkpoint, after its position was
// saved in it (where a Kafka source commits its offsets to the group), and
// only after the checkpoint's sinks committed.
TEST(Runner, SourcesHearOfEveryCompletedCheckpoint) {
  const std::string dir = testing::ScratchDir("cepheus-ckpt-notify");
  const std::string input = dir + "/in.jsonl";
  std::string events;
  for (int i = 0; i < 300; ++i)
    events += "{\"key\":\"k\",\"type\":\"A\",\"ts\":" + std::to_string(1000 + i) + "}\n";
  testing::WriteFile(input, events);
  auto p = testing::OneStreamPipeline("PATTERN p FROM s MATCH a DEFINE a AS type = 'A'", input, 0,
                                      "key string, type string, ts timestamp");
  ASSERT_TRUE(p.ok()) << p.status().message();
  struct Log {
    std::vector<uint64_t> saved;      // positions saved (one per checkpoint)
    std::vector<uint64_t> completed;  // checkpoint ids heard
    size_t saves_before_complete = 0;
  } log;
  // The file source, with a record of what it was told.
  class Recording final : public io::Source {
   public:
    Recording(std::unique_ptr<io::Source> inner, Log* log) : in_(std::move(inner)), log_(log) {}
    Status Open() override { return in_->Open(); }
    Result<Polled> Poll(size_t n, io::SourceBatch* b) override { return in_->Poll(n, b); }
    void TakeAssignmentChanges(std::vector<io::AssignmentChange>* out) override {
      in_->TakeAssignmentChanges(out);
    }
    bool ended() const override { return in_->ended(); }
    std::string_view origin(int partition) const override { return in_->origin(partition); }
    void SavePosition(std::string* out) const override {
      log_->saved.push_back(log_->saved.size() + 1);
      in_->SavePosition(out);
    }
    Status RestorePosition(std::string_view* in) override { return in_->RestorePosition(in); }
    Status OnCheckpointComplete(uint64_t id) override {
      log_->completed.push_back(id);
      log_->saves_before_complete = log_->saved.size();
      return Status::Ok();
    }
    uint64_t bytes_read() const override { return in_->bytes_read(); }

   private:
    std::unique_ptr<io::Source> in_;
    Log* log_;
  };
  class Provider final : public io::SourceProvider {
   public:
    explicit Provider(Log* log) : log_(log) {}
    Result<std::unique_ptr<io::Source>> Open(const io::SourceSpec& spec) override {
      auto inner = sources::FileSources().Open(spec);
      if (!inner.ok()) return inner.status();
      return std::unique_ptr<io::Source>(new Recording(std::move(inner.value()), log_));
    }
    Result<std::vector<std::unique_ptr<io::Source>>> OpenShares(const io::SourceSpec&, int,
                                                                uint64_t) override {
      return Status::Internal("not used by run");
    }

   private:
    Log* log_;
  } provider(&log);
  ManualClock clock(1'000'000);
  TickingSink matches(clock, true);  // time passes as output is written: checkpoints come due
  sinks::MemoryOutput late, dead;
  RunOptions opts;
  opts.sources = &provider;
  opts.clock = &clock;
  opts.lines_per_turn = 1;
  opts.checkpoint.enabled = true;
  opts.checkpoint.backend = state::BackendKind::kMemory;
  opts.checkpoint.state_dir = dir + "/state";
  opts.checkpoint.interval = Duration::Millis(1);
  PipelineRunner runner(p.value(), RunOutputs{&matches, &late, &dead}, opts);
  auto summary = runner.Run();
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  ASSERT_GT(summary->checkpoints, 1u);
  ASSERT_EQ(log.completed.size(), summary->checkpoints) << "one notice per completed checkpoint";
  for (size_t i = 1; i < log.completed.size(); ++i)
    EXPECT_GT(log.completed[i], log.completed[i - 1]) << "in checkpoint order";
  EXPECT_EQ(log.saved.size(), summary->checkpoints) << "a position saved in each";
  EXPECT_EQ(log.saves_before_complete, log.saved.size())
      << "the last notice comes after the last position was saved";
}

TEST(Runner, MissingInputFileFailsWithAClearError) {
  PipelineConfig cfg;
  StreamConfig s;
  s.name = "s";
  s.source.path = "/nonexistent/events.jsonl";
  s.schema = testing::RandomCatalog().at("s").schema;
  s.time_field = "ts";
  cfg.streams.push_back(s);
  PatternSource ps;
  ps.inline_text = "PATTERN p FROM s MATCH a";
  cfg.patterns.push_back(ps);
  auto pipeline = CompilePipeline(std::move(cfg));
  ASSERT_TRUE(pipeline.ok());
  sinks::MemoryOutput out;
  PipelineRunner runner(pipeline.value(), RunOutputs{&out, &out, &out}, testing::FileRunOptions());
  auto r = runner.Run();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot open '/nonexistent/events.jsonl'"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace cepheus::engine
