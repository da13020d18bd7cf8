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
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "engine/checkpoint/checkpoint.h"
#include "engine/exec/runner.h"
#include "engine/plan/pipeline.h"
#include "sinks/outputs.h"
#include "sources/file_source.h"
#include "state/key_groups.h"
#include "state/state_backend.h"
#include "tests/support/random_pattern.h"
#include "tests/support/test_io.h"

namespace cepheus::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSchema = "key string, type string, v int, ts timestamp";

struct Outputs {
  std::string matches, late, dead;
};

// One run of `p`: its outputs (and its summary in *summary).
Outputs RunOnce(const engine::CompiledPipeline& p, const engine::RunOptions& o,
                engine::RunSummary* summary = nullptr) {
  sinks::MemoryOutput m, l, d;
  engine::PipelineRunner r(p, engine::RunOutputs{&m, &l, &d}, o);
  auto s = r.Run();
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (s.ok() && summary) *summary = s.value();
  return Outputs{m.contents(), l.contents(), d.contents()};
}

// Runs `p` again and again until a run reaches the end of the input (the
// last allowed run always does): run `attempt` uses `options(attempt)`,
// which sets where it stops. Returns what all runs wrote, in order.
struct Restarted {
  Outputs out;
  int restores = 0;
  uint64_t evictions = 0, loads = 0;
};
Restarted RunWithRestarts(const engine::CompiledPipeline& p, int max_runs,
                          const std::function<engine::RunOptions(int)>& options) {
  Restarted r;
  for (int attempt = 0; attempt < max_runs; ++attempt) {
    engine::RunOptions o = options(attempt);
    if (attempt == max_runs - 1) o.stop_after_records = 0;
    engine::RunSummary s;
    const Outputs out = RunOnce(p, o, &s);
    r.out.matches += out.matches;
    r.out.late += out.late;
    r.out.dead += out.dead;
    if (s.restored_from) ++r.restores;
    r.evictions += s.keys_evicted;
    r.loads += s.keys_loaded;
    if (!s.stopped) break;
  }
  return r;
}

// Checkpoints only at the stops, state in `dir`.
engine::RunOptions Checkpointed(const fs::path& dir) {
  engine::RunOptions o;
  o.sources = &sources::FileSources();
  o.checkpoint.enabled = true;
  o.checkpoint.state_dir = dir.string();
  o.checkpoint.interval = Duration::Millis(0);
  return o;
}

class Recovery : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ScratchDir("cepheus-recovery"); }
  void TearDown() override { fs::remove_all(dir_); }

  // Keyed events in arrival order: time + jitter up to twice the lateness.
  // With `punctuations`, every 17th record is followed by a watermark
  // punctuation a little behind its arrival time (some later events are late
  // because of it).
  std::string RandomInput(std::mt19937_64& rng, int64_t lateness, int n, int keys,
                          bool punctuations = false) {
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
    int i = 0;
    for (auto& [at, ev] : arrivals) {
      out += ev + "\n";
      if (punctuations && ++i % 17 == 0)
        out += "{\"__watermark\":" + std::to_string(at - 2 * lateness - 1) + "}\n";
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(Recovery, StopRestoreContinueEqualsOneUninterruptedRun) {
  const auto catalog = RandomCatalog();
  std::mt19937_64 rng(2024);
  int cases = 0, with_matches = 0, restores = 0, evictions = 0, loads = 0;
  const int want = ScaledCases(150);
  for (int c = 0; c < 400 && cases < want; ++c) {
    RandomCase rc = MakeRandomCase(rng, catalog, 1);
    const int64_t lateness = std::uniform_int_distribution<int>(0, 3)(rng);
    const fs::path input = dir_ / "input.jsonl";
    const int n = std::uniform_int_distribution<int>(20, 200)(rng);
    const int keys = std::uniform_int_distribution<int>(1, 12)(rng);
    std::ofstream(input) << RandomInput(rng, lateness, n, keys, /*punctuations=*/c % 3 == 1);
    auto p = OneStreamPipeline(rc.pattern_text, input.string(), lateness, kSchema);
    if (!p.ok()) continue;  // a pattern the checker rejects
    ++cases;
    SCOPED_TRACE(rc.pattern_text + "\ncase " + std::to_string(c));
    if (std::getenv("RECOVERY_VERBOSE"))  // which case takes the time
      std::cerr << "case " << c << " at " << std::time(nullptr) << "\n" << rc.pattern_text;

    engine::RunOptions plain;

    plain.sources = &sources::FileSources();
    plain.parallelism = 2;
    const Outputs want = RunOnce(p.value(), plain);
    if (!want.matches.empty()) ++with_matches;

    // The same input in several stopped-and-restored runs.
    const fs::path state_dir = dir_ / ("state-" + std::to_string(c));
    const bool rocks = c % 2 == 0;
    uint64_t stop_at = 0;
    const Restarted r = RunWithRestarts(p.value(), 20, [&](int) {
      engine::RunOptions o = Checkpointed(state_dir);
      o.parallelism = std::uniform_int_distribution<int>(1, 3)(rng);
      o.lines_per_turn = std::uniform_int_distribution<size_t>(1, 9)(rng);
      o.checkpoint.backend = rocks ? state::BackendKind::kRocksDb : state::BackendKind::kMemory;
      const size_t cache_choices[] = {0, 1, 2, 5};
      o.checkpoint.cache_keys = cache_choices[std::uniform_int_distribution<int>(0, 3)(rng)];
      stop_at += std::uniform_int_distribution<uint64_t>(1, static_cast<uint64_t>(n) / 3 + 1)(rng);
      o.stop_after_records = stop_at;
      return o;
    });
    const Outputs& got = r.out;
    restores += r.restores;
    evictions += static_cast<int>(r.evictions);
    loads += static_cast<int>(r.loads);
    EXPECT_EQ(SortedLines(got.matches), SortedLines(want.matches));
    EXPECT_EQ(got.late, want.late);
    EXPECT_EQ(got.dead, want.dead);
    if (HasFailure()) break;
    fs::remove_all(state_dir);
  }
  std::cerr << cases << " cases (" << with_matches << " with matches), " << restores
            << " restores, " << evictions << " evictions, " << loads << " loads\n";
  EXPECT_GE(cases, want);
  // (Thresholds for the full 150 cases, scaled with CEPHEUS_TEST_SCALE.)
  EXPECT_GT(with_matches, 40 * want / 150);
  EXPECT_GT(restores, 300 * want / 150);
  EXPECT_GT(evictions, 100 * want / 150) << "small caches must evict";
  EXPECT_GT(loads, 100 * want / 150) << "evicted keys must be read back";
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
  auto p = OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 20 SECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C' "
      "EMIT key, COUNT(b) AS nb, SUM(b.v) AS sb ON TIMEOUT EMIT key, COUNT(b) AS nb",
      input.string(), 0, kSchema);
  ASSERT_TRUE(p.ok()) << p.status().message();
  engine::RunOptions plain;
  plain.sources = &sources::FileSources();
  plain.parallelism = 2;
  const std::string want = RunOnce(p.value(), plain).matches;
  engine::RunOptions o = Checkpointed(dir_ / "state");
  o.parallelism = 2;
  o.checkpoint.cache_keys = 16;
  engine::RunSummary summary;
  const std::string got = RunOnce(p.value(), o, &summary).matches;
  EXPECT_GT(summary.keys_evicted, 10000u);
  EXPECT_GT(summary.keys_loaded, 10000u);
  // Eviction runs between batches (2048 events): a worker never held more
  // than the cache plus one batch's keys, of the 5000.
  EXPECT_LT(summary.peak_cached_keys, 16u + 2048u);
  EXPECT_GT(SortedLines(want).size(), 1000u);
  EXPECT_EQ(SortedLines(got), SortedLines(want));
}

// Two streams read in turns: which events are late depends on how the
// streams interleave (the watermark is the minimum over both). A restored
// reader reads in exactly the same steps as one never stopped, so even the
// late events are the same.
TEST_F(Recovery, TwoStreamsRestoreToTheSameInterleaving) {
  std::mt19937_64 rng(99);
  for (int c = 0, n = ScaledCases(30); c < n; ++c) {
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
    engine::RunOptions plain;
    plain.sources = &sources::FileSources();
    plain.parallelism = 2;
    plain.lines_per_turn = per_turn;
    plain.read_buffer_bytes = 700;  // reads stop mid-turn: turn sizes must not depend on it
    const Outputs want = RunOnce(p.value(), plain);
    uint64_t stop_at = 0;
    const Outputs got = RunWithRestarts(p.value(), 30, [&](int) {
                          engine::RunOptions o =
                              Checkpointed(dir_ / ("state2-" + std::to_string(c)));
                          o.parallelism = std::uniform_int_distribution<int>(1, 3)(rng);
                          o.lines_per_turn = per_turn;
                          o.read_buffer_bytes = 700;
                          stop_at += std::uniform_int_distribution<uint64_t>(1, 60)(rng);
                          o.stop_after_records = stop_at;
                          return o;
                        }).out;
    EXPECT_FALSE(want.late.empty());
    EXPECT_EQ(got.late, want.late);
    EXPECT_EQ(got.dead, want.dead);
    EXPECT_EQ(SortedLines(got.matches), SortedLines(want.matches));
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
  auto p = OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 30 MILLISECONDS DEFINE a AS type = 'A', b AS "
      "type = 'B', c AS type = 'C' EMIT key, COUNT(b) AS nb ON TIMEOUT EMIT key",
      plain.string() + ".gz", 2, kSchema);
  ASSERT_TRUE(p.ok()) << p.status().message();
  const Outputs want = RunOnce(p.value(), FileRunOptions());
  uint64_t stop_at = 0;
  const Restarted r = RunWithRestarts(p.value(), 12, [&](int attempt) {
    engine::RunOptions o = Checkpointed(dir_ / "state");
    o.parallelism = 1 + attempt % 2;
    o.lines_per_turn = 64;
    o.read_buffer_bytes = 4096;
    stop_at += std::uniform_int_distribution<uint64_t>(100, 400)(rng);
    o.stop_after_records = stop_at;
    return o;
  });
  const Outputs& got = r.out;
  const int restores = r.restores;
  EXPECT_GE(restores, 5);
  EXPECT_FALSE(want.matches.empty());
  EXPECT_EQ(SortedLines(got.matches), SortedLines(want.matches));
  EXPECT_EQ(got.late, want.late);
  EXPECT_EQ(got.dead, want.dead);
}

// An input that no longer matches the checkpoint is a clear error, not a
// silent restart: a file cut shorter than the recorded offset, or a stream
// that now reads another file.
TEST_F(Recovery, InputsThatChangedSinceTheCheckpointAreRefused) {
  std::mt19937_64 rng(8);
  const fs::path input = dir_ / "in.jsonl";
  const std::string text = RandomInput(rng, 0, 500, 3);
  WriteFile(input.string(), text);
  const std::string pattern =
      "PATTERN p FROM s MATCH a -> b DEFINE a AS type = 'A', b AS type = 'B'";
  auto p = OneStreamPipeline(pattern, input.string(), 0, kSchema);
  ASSERT_TRUE(p.ok());
  engine::RunOptions o = Checkpointed(dir_ / "state");
  o.lines_per_turn = 10;
  o.stop_after_records = 300;
  engine::RunSummary summary;
  RunOnce(p.value(), o, &summary);
  ASSERT_TRUE(summary.stopped);

  o.stop_after_records = 0;
  WriteFile(input.string(), text.substr(0, 100));
  {
    sinks::MemoryOutput m, l, d;
    engine::PipelineRunner r(p.value(), engine::RunOutputs{&m, &l, &d}, o);
    auto s = r.Run();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("is shorter than the checkpoint's position"),
              std::string::npos)
        << s.status().message();
  }
  WriteFile((dir_ / "other.jsonl").string(), text);
  auto other = OneStreamPipeline(pattern, (dir_ / "other.jsonl").string(), 0, kSchema);
  ASSERT_TRUE(other.ok());
  sinks::MemoryOutput m, l, d;
  engine::PipelineRunner r(other.value(), engine::RunOutputs{&m, &l, &d}, o);
  auto s = r.Run();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("which is not among the stream's inputs now"),
            std::string::npos)
      << s.status().message();
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
  auto p = OneStreamPipeline(
      "PATTERN absent FROM s MATCH a -> !b WITHIN 10 SECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B' EMIT key",
      input.string(), 0, kSchema);
  ASSERT_TRUE(p.ok()) << p.status().message();
  engine::RunOptions plain;
  plain.sources = &sources::FileSources();
  plain.parallelism = 1;
  plain.lines_per_turn = 1;
  const std::string want = RunOnce(p.value(), plain).matches;
  engine::RunOptions o = Checkpointed(dir_ / "state");
  o.parallelism = 1;
  o.lines_per_turn = 1;
  o.checkpoint.cache_keys = 1;
  engine::RunSummary summary;
  const std::string got = RunOnce(p.value(), o, &summary).matches;
  EXPECT_EQ(std::count(want.begin(), want.end(), '\n'), 10);
  EXPECT_GT(summary.keys_evicted, 5u);
  EXPECT_EQ(got, want) << "same matches in the same (deadline) order";
}

// Timers of keys that are not in memory live in the state backend (one
// entry per stored key with a deadline), not in a per-worker heap that grows
// with the number of keys. A checkpoint holds exactly one timer per waiting
// key; a restored run fires them when the watermark passes, without having
// scanned the keys at restore; and a checkpoint from before timers were kept
// in the state (worker_state 1) gets them rebuilt.
TEST_F(Recovery, TimersOfStoredKeysLiveInTheStateAndFireAfterRestore) {
  constexpr int kKeys = 3000;
  const fs::path input = dir_ / "waiting.jsonl";
  {
    std::ofstream out(input);
    for (int i = 0; i < kKeys; ++i)
      out << "{\"key\":\"k" << i << "\",\"type\":\"A\",\"v\":1,\"ts\":" << i << "}\n";
    // Another key only, long after every deadline.
    for (int t = 0; t < 5; ++t)
      out << "{\"key\":\"z\",\"type\":\"C\",\"v\":1,\"ts\":" << 100000 + t << "}\n";
  }
  auto p = OneStreamPipeline(
      "PATTERN p FROM s MATCH a -> b WITHIN 10 SECONDS "
      "DEFINE a AS type = 'A', b AS type = 'B' EMIT key ON TIMEOUT EMIT key",
      input.string(), 0, kSchema);
  ASSERT_TRUE(p.ok()) << p.status().message();
  engine::RunOptions plain;
  plain.sources = &sources::FileSources();
  plain.parallelism = 2;
  const std::string want = RunOnce(p.value(), plain).matches;
  ASSERT_EQ(SortedLines(want).size(), static_cast<size_t>(kKeys));

  // First run: every A, then a stop (and its checkpoint).
  const fs::path state = dir_ / "state";
  engine::RunOptions o = Checkpointed(state);
  o.parallelism = 2;
  o.checkpoint.cache_keys = 16;
  o.stop_after_records = kKeys;
  o.lines_per_turn = 1;  // stop right after the last A
  engine::RunSummary first;
  const std::string before = RunOnce(p.value(), o, &first).matches;
  ASSERT_TRUE(first.stopped);
  EXPECT_TRUE(before.empty());
  fs::path chk;
  for (const auto& e : fs::directory_iterator(state / "checkpoints"))
    if (fs::exists(e.path() / "_metadata")) chk = e.path();
  ASSERT_FALSE(chk.empty());
  {
    auto snap = state::OpenWorkingState(state::BackendKind::kRocksDb, (dir_ / "look").string(),
                                        (chk / "state").string());
    ASSERT_TRUE(snap.ok()) << snap.status().message();
    size_t timers = 0, keys = 0;
    for (int g = 0; g < state::kDefaultKeyGroups; ++g) {
      auto count = [](size_t* n) {
        return [n](std::string_view, std::string_view) { return ++*n, true; };
      };
      ASSERT_TRUE((*snap)->ScanNamespace(g, "t/p", "", count(&timers)).ok());
      ASSERT_TRUE((*snap)->ScanNamespace(g, "m/p", "", count(&keys)).ok());
    }
    // (The last A waits for the watermark among the pending events.)
    EXPECT_EQ(keys, static_cast<size_t>(kKeys - 1));
    EXPECT_EQ(timers, keys) << "one timer entry per waiting key";
  }
  // A copy of the state as an older version would have written it.
  const fs::path old_state = dir_ / "old-state";
  fs::copy(state, old_state, fs::copy_options::recursive);
  {
    const fs::path old_chk = old_state / "checkpoints" / chk.filename();
    auto b = state::OpenRocksDbBackend((old_chk / "state").string());
    ASSERT_TRUE(b.ok()) << b.status().message();
    for (int g = 0; g < state::kDefaultKeyGroups; ++g)
      ASSERT_TRUE((*b)->DeleteNamespace(g, "t/p").ok());
    b.value().reset();
    const std::string text = ReadFile(old_chk / "_metadata");
    auto meta = engine::CheckpointMetadata::Decode(text, "_metadata");
    ASSERT_TRUE(meta.ok()) << meta.status().message();
    ASSERT_EQ(meta->worker_state, 2);
    meta->worker_state = 1;
    const std::string encoded = meta->Encode();
    ASSERT_NE(encoded.find("worker_state 1\n"), std::string::npos);
    WriteFile(old_chk / "_metadata", encoded);
  }
  for (const fs::path& dir : {state, old_state}) {
    SCOPED_TRACE(dir.filename().string());
    engine::RunOptions rest = Checkpointed(dir);
    rest.parallelism = 3;  // other workers own the key groups now
    rest.checkpoint.cache_keys = 16;
    // Stopped before the end of the input (which would end every stored key
    // anyway): only the timers can have fired the timeouts.
    rest.stop_after_records = kKeys + 5;
    rest.lines_per_turn = 1;
    engine::RunSummary second;
    const std::string after = RunOnce(p.value(), rest, &second).matches;
    EXPECT_TRUE(second.stopped);
    EXPECT_EQ(second.restored_from,
              static_cast<uint64_t>(std::stoi(chk.filename().string().substr(4))));
    EXPECT_EQ(SortedLines(after), SortedLines(want));
    EXPECT_GE(second.keys_loaded, static_cast<uint64_t>(kKeys - 1)) << "loaded by their timers";
  }
}

}  // namespace
}  // namespace cepheus::testing
