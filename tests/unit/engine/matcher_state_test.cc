// KeyMatcher state round trips: stop after any event, serialize, restore into
// a fresh pool, continue — the matches must be exactly those of a run that
// never stopped. Damaged state must be refused cleanly.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/nfa/nfa_runtime.h"
#include "patterns/compiled.h"
#include "patterns/parser.h"
#include "tests/reference/reference_matcher.h"
#include "tests/support/random_pattern.h"

namespace cepheus::testing {
namespace {

struct Collector {
  std::map<engine::EventId, int>* pos;
  std::vector<RefMatch> matches;
  engine::NodePool* pool;
  void operator()(const engine::MatchResult& m) {
    RefMatch r;
    r.timeout = m.timeout;
    for (const engine::BufNode* n : engine::PathOf(m.last)) {
      auto it = pos->find(n->id);
      r.path.emplace_back(it == pos->end() ? -1 : it->second, n->var);
    }
    matches.push_back(std::move(r));
  }
};

engine::MatcherEnv Env(const patterns::CompiledPattern& p, engine::NodePool* pool,
                       engine::MatcherStats* stats, Collector* c) {
  engine::MatcherEnv env;
  env.pattern = &p;
  env.pool = pool;
  env.stats = stats;
  env.max_runs_per_key = 1'000'000;
  env.report_timeouts = p.has_timeout_emit;
  env.emit = [c](const engine::MatchResult& m) { (*c)(m); };
  return env;
}

TEST(MatcherState, SnapshotAndRestoreAnywhereGivesTheSameMatches) {
  const auto catalog = RandomCatalog();
  std::mt19937_64 rng(99);
  int checked = 0, restored_with_runs = 0;
  for (int c = 0; c < 4000; ++c) {
    RandomCase rc = MakeRandomCase(rng, catalog, 9);
    patterns::SourceFile file("r.cep", rc.pattern_text);
    patterns::Diagnostics diags;
    auto asts = patterns::ParsePatterns(file, diags);
    auto p = asts.empty() ? nullptr : patterns::CompilePattern(asts[0], file, catalog, diags);
    if (!p) continue;
    std::map<engine::EventId, int> pos;
    // Uninterrupted.
    engine::NodePool pool0;
    engine::MatcherStats stats0;
    Collector all{&pos, {}, &pool0};
    auto env0 = Env(*p, &pool0, &stats0, &all);
    engine::KeyMatcher whole;
    std::vector<engine::EventId> ids;
    for (size_t i = 0; i < rc.events.size(); ++i) {
      ids.push_back(whole.NextId(rc.events[i]->time()));
      pos[ids.back()] = static_cast<int>(i);
      whole.Process(env0, rc.events[i], ids.back());
    }
    whole.AdvanceTime(env0, EventTime::Max());
    whole.Clear(env0);
    // Stopped after `cut` events, serialized, restored into a fresh pool.
    const size_t cut = std::uniform_int_distribution<size_t>(0, rc.events.size())(rng);
    engine::NodePool pool1, pool2;
    engine::MatcherStats stats1, stats2;
    Collector split{&pos, {}, &pool1};
    auto env1 = Env(*p, &pool1, &stats1, &split);
    engine::KeyMatcher before;
    for (size_t i = 0; i < cut; ++i)
      before.Process(env1, rc.events[i], before.NextId(rc.events[i]->time()));
    std::string bytes;
    before.Serialize(env1, &bytes);
    if (before.num_runs() > 0) ++restored_with_runs;
    before.Clear(env1);
    ASSERT_EQ(pool1.live(), 0u);
    split.pool = &pool2;
    auto env2 = Env(*p, &pool2, &stats2, &split);
    auto after = engine::KeyMatcher::Deserialize(env2, bytes);
    ASSERT_TRUE(after.ok()) << after.status().message();
    for (size_t i = cut; i < rc.events.size(); ++i) {
      engine::EventId id = after->NextId(rc.events[i]->time());
      ASSERT_EQ(id, ids[i]) << "event identities continue across the restore";
      after->Process(env2, rc.events[i], id);
    }
    after->AdvanceTime(env2, EventTime::Max());
    after->Clear(env2);
    EXPECT_EQ(pool2.live(), 0u) << "restored nodes are all released";
    std::sort(all.matches.begin(), all.matches.end());
    std::sort(split.matches.begin(), split.matches.end());
    ASSERT_EQ(split.matches, all.matches) << "case " << c << " cut " << cut << "\n"
                                          << rc.pattern_text;
    ++checked;
  }
  EXPECT_GT(checked, 3000);
  EXPECT_GT(restored_with_runs, 1000) << "most snapshots must carry live partial matches";
}

TEST(MatcherState, DamagedStateIsRefusedNotCrashedOn) {
  const auto catalog = RandomCatalog();
  auto compiled = patterns::CompilePatternFile(
      patterns::SourceFile(
          "d.cep",
          "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 100 MILLISECONDS "
          "DEFINE a AS type = 'A', b AS v >= a.v AND COUNT(b) < 5, c AS type = 'C'"),
      catalog);
  ASSERT_TRUE(compiled.ok());
  const patterns::CompiledPattern& p = *compiled.value()[0];
  engine::NodePool pool;
  engine::MatcherStats stats;
  std::map<engine::EventId, int> pos;
  Collector c{&pos, {}, &pool};
  auto env = Env(p, &pool, &stats, &c);
  engine::KeyMatcher km;
  const char* types = "ABBABBBAB";
  for (int i = 0; i < 9; ++i) {
    RowPtr row = MakeEvent(catalog, std::string(1, types[i]), i % 4, i, static_cast<uint64_t>(i));
    km.Process(env, row, km.NextId(row->time()));
  }
  ASSERT_GT(km.num_runs(), 3u);
  std::string bytes;
  km.Serialize(env, &bytes);
  km.Clear(env);
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto r = engine::KeyMatcher::Deserialize(env, std::string_view(bytes.data(), len));
    EXPECT_FALSE(r.ok()) << "a truncated state (" << len << " of " << bytes.size()
                         << " bytes) was accepted";
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x41);
    auto r = engine::KeyMatcher::Deserialize(env, bad);
    if (!r.ok()) continue;
    // A flip that still decodes must be a usable state: keep matching on it.
    for (int j = 9; j < 14; ++j) {
      RowPtr row =
          MakeEvent(catalog, std::string(1, "ABC"[j % 3]), j % 4, j, static_cast<uint64_t>(j));
      r->Process(env, row, r->NextId(row->time()));
    }
    r->AdvanceTime(env, EventTime::Max());
    r->Clear(env);
  }
  EXPECT_EQ(pool.live(), 0u) << "refused states leak no node";
  auto good = engine::KeyMatcher::Deserialize(env, bytes);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->num_runs() > 0, true);
  good->Clear(env);
}

}  // namespace
}  // namespace cepheus::testing
