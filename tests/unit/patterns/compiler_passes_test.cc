// The compiler's passes, each judged on its own output (patterns/compiler.h):
// the NFA build by the automaton's shape and by invariants that hold for any
// pattern (checked on random ones), the expression pass by evaluating the
// compiled programs on events.
#include <gtest/gtest.h>

#include <random>

#include "patterns/compiled.h"
#include "patterns/limits.h"
#include "tests/support/random_pattern.h"

namespace cepheus::patterns {
namespace {

std::shared_ptr<const CompiledPattern> CompileOne(const std::string& text) {
  static const StreamCatalog catalog = testing::RandomCatalog();
  auto r = CompilePatternFile(SourceFile("p.cep", text), catalog);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value()[0] : nullptr;
}

// ---- NFA build --------------------------------------------------------------

// What holds for every compiled automaton, whatever the pattern.
void ExpectWellFormed(const CompiledPattern& p, const std::string& text) {
  SCOPED_TRACE(text);
  ASSERT_FALSE(p.states.empty());
  EXPECT_EQ(p.states[0].var, -1) << "state 0 is the start state";
  EXPECT_LE(p.states.size(), static_cast<size_t>(kMaxStates));
  bool any_final = false;
  for (size_t s = 0; s < p.states.size(); ++s) {
    const NfaState& st = p.states[s];
    if (s > 0) {
      ASSERT_GE(st.var, 0);
      ASSERT_LT(st.var, static_cast<int>(p.vars.size()));
      EXPECT_GE(st.cond, 0) << "a stage state has its condition";
      EXPECT_LT(st.cond, static_cast<int>(p.conditions.size()));
    }
    EXPECT_LE(st.edges.size(), static_cast<size_t>(kMaxEdgesPerState));
    EXPECT_LE(st.finals.size(), static_cast<size_t>(kMaxFinalsPerState));
    for (const Edge& e : st.edges) {
      EXPECT_GT(e.target, 0) << "no edge enters the start state";
      EXPECT_LT(e.target, static_cast<int>(p.states.size()));
      for (const Guard& g : e.guards) EXPECT_LT(g.cond, static_cast<int>(p.conditions.size()));
      EXPECT_EQ(e.continue_q & e.bypass_q, 0u) << "an edge cannot stay in and leave a loop";
    }
    any_final = any_final || st.has_unguarded_final || !st.finals.empty();
  }
  EXPECT_TRUE(any_final) << "some state completes a match";
  EXPECT_TRUE(p.states[0].finals.empty()) << "the empty match is never a match";
}

TEST(NfaBuildPass, ShapesOfTheBasicConstructs) {
  // a b: start -> a -(strict)-> b, b final.
  auto p = CompileOne("PATTERN p FROM s MATCH a b DEFINE a AS type = 'A', b AS type = 'B'");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->states.size(), 3u);
  ASSERT_EQ(p->states[1].edges.size(), 1u);
  EXPECT_EQ(p->states[1].edges[0].target, 2);
  EXPECT_EQ(p->states[1].edges[0].op, Contiguity::kStrict);
  EXPECT_TRUE(p->states[2].has_unguarded_final);
  EXPECT_FALSE(p->states[1].has_unguarded_final);

  // a ->> b+: a reaches b with skip till any; b loops on itself (its
  // iterations are followed-by, the default inside a loop) and may complete.
  p = CompileOne("PATTERN p FROM s MATCH a ->> b+ DEFINE a AS type = 'A', b AS type = 'B'");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->states.size(), 3u);
  bool self_loop = false;
  for (const Edge& e : p->states[2].edges)
    self_loop = self_loop || (e.target == 2 && e.op == Contiguity::kRelaxed);
  EXPECT_TRUE(self_loop) << p->ToText();
  EXPECT_EQ(p->states[1].edges.at(0).op, Contiguity::kAny);
  EXPECT_TRUE(p->states[2].has_unguarded_final);

  // a b{2}: the count is two copies of b's state.
  p = CompileOne("PATTERN p FROM s MATCH a b{2} DEFINE a AS type = 'A', b AS type = 'B'");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->states.size(), 4u);
  EXPECT_EQ(p->states[2].var, p->states[3].var);

  // a -> !x -> c: the negation is a guard on a's way to c, not a state.
  p = CompileOne(
      "PATTERN p FROM s MATCH a -> !x -> c WITHIN 10 ms "
      "DEFINE a AS type = 'A', x AS type = 'X', c AS type = 'C'");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->states.size(), 3u);
  ASSERT_EQ(p->states[1].edges.size(), 1u);
  EXPECT_EQ(p->states[1].edges[0].guards.size(), 1u);
  EXPECT_FALSE(p->states[1].edges[0].guards[0].strict);
}

TEST(NfaBuildPass, EveryRandomPatternGivesAWellFormedAutomaton) {
  const StreamCatalog catalog = testing::RandomCatalog();
  std::mt19937_64 rng(2026);
  int compiled = 0;
  for (int i = 0; i < 400; ++i) {
    const testing::RandomCase c = testing::MakeRandomCase(rng, catalog, 4);
    auto r = CompilePatternFile(SourceFile("r.cep", c.pattern_text), catalog);
    if (!r.ok()) continue;  // the generator may write what the checker refuses
    ++compiled;
    ExpectWellFormed(*r.value()[0], c.pattern_text);
  }
  EXPECT_GT(compiled, 300);
}

// ---- expression compile -----------------------------------------------------

Value EvalDefine(const CompiledPattern& p, int var, const Row& row) {
  const Condition& c = p.conditions[static_cast<size_t>(var)];
  EXPECT_LT(c.residual, 0) << "an event-only condition";
  return c.prefilter < 0 ? Value::Bool(true) : p.program.Eval(c.prefilter, EvalContext{&row});
}

TEST(ExprCompilePass, ConditionsEvaluateWithSqlTypesAndNulls) {
  const StreamCatalog catalog = testing::RandomCatalog();
  auto p = CompileOne(
      "PATTERN p FROM s MATCH a b c d e "
      "DEFINE a AS v * 2 + 1 > 7, "                  // int arithmetic
      "b AS v / 2 = 2 AND v % 2 = 1, "               // integer division for two ints
      "c AS type LIKE 'A%' AND v BETWEEN 1 AND 3, "  // strings and ranges
      "d AS CASE WHEN v > 0 THEN type ELSE 'none' END = 'B', "
      "e AS COALESCE(NULL, v) = v");
  ASSERT_TRUE(p);
  auto ev = [&](const std::string& type, int64_t v) {
    return testing::MakeEvent(catalog, type, v, 1000, 1);
  };
  EXPECT_TRUE(EvalDefine(*p, 0, *ev("A", 4)).IsTrue());
  EXPECT_FALSE(EvalDefine(*p, 0, *ev("A", 3)).IsTrue());
  EXPECT_TRUE(EvalDefine(*p, 1, *ev("A", 5)).IsTrue());
  EXPECT_FALSE(EvalDefine(*p, 1, *ev("A", 4)).IsTrue());
  EXPECT_TRUE(EvalDefine(*p, 2, *ev("AB", 2)).IsTrue());
  EXPECT_FALSE(EvalDefine(*p, 2, *ev("BA", 2)).IsTrue());
  EXPECT_FALSE(EvalDefine(*p, 2, *ev("A", 4)).IsTrue());
  EXPECT_TRUE(EvalDefine(*p, 3, *ev("B", 1)).IsTrue());
  EXPECT_FALSE(EvalDefine(*p, 3, *ev("B", 0)).IsTrue());
  EXPECT_TRUE(EvalDefine(*p, 4, *ev("C", 9)).IsTrue());
}

TEST(ExprCompilePass, ConditionsOnEarlierStagesAreResidualsEventOnlyOnesArePrefilters) {
  auto p = CompileOne(
      "PATTERN p FROM s MATCH a -> b+ -> c "
      "DEFINE a AS type = 'A', b AS type = 'B' AND v > a.v, c AS SUM(b.v) > 10");
  ASSERT_TRUE(p);
  EXPECT_GE(p->conditions[0].prefilter, 0);
  EXPECT_LT(p->conditions[0].residual, 0);
  EXPECT_GE(p->conditions[1].prefilter, 0) << "type = 'B' is split off";
  EXPECT_GE(p->conditions[1].residual, 0) << "v > a.v needs the run";
  EXPECT_LT(p->conditions[2].prefilter, 0);
  EXPECT_GE(p->conditions[2].residual, 0);
  EXPECT_GT(p->aggs.num_words, 0) << "SUM(b.v) has a slot in the run";
}

}  // namespace
}  // namespace cepheus::patterns
