// Differential test: the NFA runtime against the brute-force reference
// matcher on thousands of random small patterns and inputs.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>

#include "engine/nfa/nfa_runtime.h"
#include "patterns/compiled.h"
#include "patterns/cost.h"
#include "patterns/parser.h"
#include "tests/reference/reference_matcher.h"
#include "tests/support/random_pattern.h"

namespace cepheus::testing {
namespace {

struct Outcome {
  std::vector<RefMatch> matches;
  size_t live_nodes_after = 0;
};

Outcome RunNfa(const patterns::CompiledPattern& p, const std::vector<RowPtr>& events,
               bool timeouts) {
  engine::NodePool pool;
  engine::MatcherStats stats;
  std::map<engine::EventId, int> pos;
  Outcome out;
  engine::MatcherEnv env;
  env.pattern = &p;
  env.pool = &pool;
  env.stats = &stats;
  env.max_runs_per_key = 1'000'000;
  env.report_timeouts = timeouts;
  env.emit = [&](const engine::MatchResult& m) {
    RefMatch r;
    r.timeout = m.timeout;
    for (const engine::BufNode* n : engine::PathOf(m.last))
      r.path.emplace_back(pos.at(n->id), n->var);
    out.matches.push_back(std::move(r));
  };
  engine::KeyMatcher km;
  for (size_t i = 0; i < events.size(); ++i) {
    engine::EventId id = km.NextId(events[i]->time());
    pos[id] = static_cast<int>(i);
    km.Process(env, events[i], id);
  }
  km.AdvanceTime(env, EventTime::Max());
  km.Clear(env);
  out.live_nodes_after = pool.live();
  std::sort(out.matches.begin(), out.matches.end());
  return out;
}

std::string Describe(const std::vector<RefMatch>& v, const patterns::CompiledPattern& p) {
  std::string s;
  for (const auto& m : v) s += "  " + m.ToString(p) + "\n";
  return s.empty() ? "  (none)\n" : s;
}

std::string DescribeEvents(const std::vector<RowPtr>& ev) {
  std::string s;
  for (size_t i = 0; i < ev.size(); ++i)
    s += "  " + std::to_string(i) + ": type=" + std::string(ev[i]->GetString(0)) +
         " v=" + std::to_string(ev[i]->GetInt(1)) +
         " ts=" + std::to_string(ev[i]->time().millis()) + "\n";
  return s;
}

TEST(Differential, NfaAgreesWithBruteForceReference) {
  const auto catalog = RandomCatalog();
  // DIFF_SEED / DIFF_CASES widen the search locally; CI uses the defaults.
  const char* seed_env = std::getenv("DIFF_SEED");
  const char* cases_env = std::getenv("DIFF_CASES");
  std::mt19937_64 rng(seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261121);
  const int kCases = cases_env ? std::atoi(cases_env) : 12000;
  int compiled = 0, with_matches = 0, failures = 0;
  std::map<std::string, int> exercised;  // feature -> compiled cases with it
  const char* only = std::getenv("DIFF_CASE");
  for (int c = 0; c < kCases && failures < 5; ++c) {
    RandomCase rc = MakeRandomCase(rng, catalog, 7);
    if (only && std::atoi(only) != c) continue;
    patterns::SourceFile file("random.cep", rc.pattern_text);
    patterns::Diagnostics diags;
    auto asts = patterns::ParsePatterns(file, diags);
    ASSERT_FALSE(diags.HasErrors()) << diags.Render(file);
    ASSERT_EQ(asts.size(), 1u);
    auto p = patterns::CompilePattern(asts[0], file, catalog, diags);
    if (!p) continue;  // e.g. a reference to a stage that cannot precede
    ++compiled;
    for (const std::string& f : rc.features) ++exercised[f];
    const bool timeouts = p->has_timeout_emit && p->skip == patterns::SkipStrategy::Kind::kNoSkip;
    auto expected = ReferenceMatch(asts[0], *p, rc.events, timeouts);
    Outcome got = RunNfa(*p, rc.events, timeouts);
    if (!expected.empty()) ++with_matches;
    EXPECT_EQ(got.live_nodes_after, 0u) << "match buffer leaked nodes";
    if (got.matches != expected) {
      ++failures;
      ADD_FAILURE() << "case " << c << "\n"
                    << rc.pattern_text << "events:\n"
                    << DescribeEvents(rc.events) << "reference:\n"
                    << Describe(expected, *p) << "nfa:\n"
                    << Describe(got.matches, *p) << p->ToText();
    }
  }
  // The generator must mostly produce valid patterns that do match something.
  EXPECT_GT(compiled, kCases * 8 / 10);
  EXPECT_GT(with_matches, compiled / 3);
  // Each construct the issue tracker found wrong once stays well covered.
  for (const char* f : {"greedy loop", "negation after loop", "negation after group",
                        "optional after negation", "stage gap"}) {
    std::printf("differential cases with %s: %d of %d\n", f, exercised[f], compiled);
    if (!cases_env) {
      EXPECT_GT(exercised[f], kCases / 100) << f;
    }
  }
}

// The static cost bound (`cepheus check --cost`) is an upper bound: on
// random patterns and inputs, the runtime's live partial matches for the
// key never exceed it, with n the most events any WITHIN window of the
// input holds. Unbounded patterns are only checked to be those that can
// grow: no WITHIN, and not all strictly contiguous without loops.
TEST(CostBound, LiveRunsNeverExceedTheStaticBound) {
  const auto catalog = RandomCatalog();
  const char* seed_env = std::getenv("COST_SEED");  // COST_SEED, COST_EVENTS: wider local runs
  const char* events_env = std::getenv("COST_EVENTS");
  std::mt19937_64 rng(seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261203);
  int bounded = 0, windowed = 0, tight = 0;
  for (int c = 0; c < 6000; ++c) {
    RandomCase rc = MakeRandomCase(rng, catalog, events_env ? std::atoi(events_env) : 9);
    patterns::SourceFile file("random.cep", rc.pattern_text);
    patterns::Diagnostics diags;
    auto asts = patterns::ParsePatterns(file, diags);
    ASSERT_FALSE(diags.HasErrors()) << diags.Render(file);
    auto p = patterns::CompilePattern(asts[0], file, catalog, diags);
    if (!p) continue;
    // n: the most events in any window of length WITHIN (all events are one key's).
    int64_t n = static_cast<int64_t>(rc.events.size());
    if (p->within) {
      n = 0;
      for (size_t i = 0, j = 0; i < rc.events.size(); ++i) {
        while (rc.events[i]->time().millis() - rc.events[j]->time().millis() >= p->within->millis())
          ++j;
        n = std::max<int64_t>(n, static_cast<int64_t>(i - j + 1));
      }
    }
    patterns::CostOptions o;
    o.events_in_window = std::max<int64_t>(1, n);
    o.max_runs_per_key = 1'000'000;
    const patterns::CostBound bound = patterns::BoundCost(*p, o);
    if (!bound.bounded) {
      EXPECT_FALSE(p->within) << "a windowed pattern is always bounded\n" << rc.pattern_text;
      continue;
    }
    ++bounded;
    windowed += p->within.has_value();
    engine::NodePool pool;
    engine::MatcherStats stats;
    engine::MatcherEnv env;
    env.pattern = p.get();
    env.pool = &pool;
    env.stats = &stats;
    env.max_runs_per_key = 1'000'000;
    env.emit = [](const engine::MatchResult&) {};
    engine::KeyMatcher km;
    int64_t peak = 0;
    for (const RowPtr& e : rc.events) {
      km.Process(env, e, km.NextId(e->time()));
      peak = std::max(peak, stats.live_runs);
    }
    km.Clear(env);
    tight += static_cast<double>(peak) * 2 >= bound.runs;
    ASSERT_LE(static_cast<double>(peak), bound.runs)
        << "case " << c << ": bound " << bound.formula << " at n = " << n << "\n"
        << rc.pattern_text << DescribeEvents(rc.events) << p->ToText();
  }
  std::printf("cost bound: %d bounded patterns (%d windowed), %d within 2x of the peak\n", bounded,
              windowed, tight);
  EXPECT_GT(bounded, 1000);
  EXPECT_GT(windowed, 500);
}

}  // namespace
}  // namespace cepheus::testing
