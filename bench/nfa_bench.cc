// The NFA core alone (Google Benchmark): events already decoded into rows,
// one KeyMatcher per key, no I/O, no threads. Workload of bench/README.md.
#include <benchmark/benchmark.h>

#include <random>
#include <unordered_map>

#include "engine/nfa/nfa_runtime.h"
#include "patterns/compiled.h"

namespace cepheus {
namespace {

patterns::StreamCatalog Catalog() {
  patterns::StreamCatalog c;
  c["events"] = patterns::StreamInfo{Schema::Create({{"key", FieldType::kString},
                                                     {"type", FieldType::kString},
                                                     {"price", FieldType::kDouble},
                                                     {"ts", FieldType::kTimestamp}})
                                         .value(),
                                     {"key"}};
  return c;
}

struct Workload {
  std::vector<RowPtr> rows;
  std::vector<int> keys;
};

const Workload& Events() {
  static const Workload w = [] {
    Workload w;
    const auto cat = Catalog();
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> key(0, 999), type(0, 3);
    std::uniform_real_distribution<double> price(0, 100);
    RowBuilder b(4);
    const int n = 2'000'000;
    for (int i = 0; i < n; ++i) {
      int k = key(rng);
      b.Reset();
      std::string ks = "k" + std::to_string(k);
      b.SetString(0, ks);
      b.SetString(1, std::string(1, "ABCD"[type(rng)]));
      b.SetDouble(2, price(rng));
      b.SetInt(3, i);
      w.rows.push_back(b.Build(EventTime::FromMillis(i), static_cast<uint64_t>(i)));
      w.keys.push_back(k);
    }
    return w;
  }();
  return w;
}

void RunPattern(benchmark::State& state, const std::string& text) {
  static const auto catalog = Catalog();
  auto compiled = patterns::CompilePatternFile(patterns::SourceFile("bench.cep", text), catalog);
  if (!compiled.ok()) {
    state.SkipWithError(compiled.status().message().c_str());
    return;
  }
  const patterns::CompiledPattern& p = *compiled.value()[0];
  const Workload& w = Events();
  uint64_t matches = 0;
  for (auto _ : state) {
    engine::NodePool pool;
    engine::MatcherStats stats;
    engine::MatcherEnv env;
    env.pattern = &p;
    env.pool = &pool;
    env.stats = &stats;
    env.emit = [&](const engine::MatchResult&) { ++matches; };
    std::vector<engine::KeyMatcher> km(1000);
    for (size_t i = 0; i < w.rows.size(); ++i) {
      engine::KeyMatcher& m = km[static_cast<size_t>(w.keys[i])];
      m.Process(env, w.rows[i], m.NextId(w.rows[i]->time()));
    }
    for (auto& m : km) {
      m.AdvanceTime(env, EventTime::Max());
      m.Clear(env);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * w.rows.size()));
  state.counters["matches"] =
      static_cast<double>(matches) / static_cast<double>(state.iterations());
}

const char* kSeq =
    "PATTERN p FROM events MATCH a %s b %s c WITHIN %d SECONDS "
    "DEFINE a AS type = 'A', b AS type = 'B' AND price > a.price, c AS type = 'C'";

std::string Seq(const char* op, int w) {
  char buf[512];
  std::snprintf(buf, sizeof buf, kSeq, op, op, w);
  return buf;
}

void BM_SkipTillNext_W1s(benchmark::State& s) { RunPattern(s, Seq("->", 1)); }
void BM_SkipTillNext_W10s(benchmark::State& s) { RunPattern(s, Seq("->", 10)); }
void BM_SkipTillNext_W60s(benchmark::State& s) { RunPattern(s, Seq("->", 60)); }
void BM_SkipTillAny_W1s(benchmark::State& s) { RunPattern(s, Seq("->>", 1)); }
void BM_KleeneAvg_W10s(benchmark::State& s) {
  RunPattern(s,
             "PATTERN p FROM events MATCH a -> b+ -> c WITHIN 10 SECONDS "
             "DEFINE a AS type = 'A', b AS type = 'B', c AS type = 'C' AND AVG(b.price) > a.price");
}

BENCHMARK(BM_SkipTillNext_W1s)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SkipTillNext_W10s)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SkipTillNext_W60s)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SkipTillAny_W1s)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KleeneAvg_W10s)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cepheus

BENCHMARK_MAIN();
