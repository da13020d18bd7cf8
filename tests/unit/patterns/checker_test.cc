#include <gtest/gtest.h>

#include <map>
#include <set>

#include "patterns/compiled.h"

namespace cepheus::patterns {
namespace {

StreamCatalog Catalog() {
  StreamCatalog c;
  c["payments"] = StreamInfo{Schema::Create({{"card_id", FieldType::kString},
                                             {"amount", FieldType::kDouble},
                                             {"count", FieldType::kInt},
                                             {"status", FieldType::kString},
                                             {"ok", FieldType::kBool},
                                             {"ts", FieldType::kTimestamp}})
                                 .value(),
                             {"card_id"}};
  return c;
}

Result<std::vector<std::shared_ptr<const CompiledPattern>>> Compile(const std::string& text) {
  static const StreamCatalog catalog = Catalog();
  return CompilePatternFile(SourceFile("c.cep", text), catalog);
}

std::string Errors(const std::string& text) {
  auto r = Compile(text);
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

TEST(Checker, CompilesAndClassifiesConditions) {
  auto r = Compile(
      "PATTERN p FROM payments MATCH a b+ -> c WITHIN 1 MINUTE\n"
      "DEFINE a AS amount < 5, b AS status = 'x' AND amount > AVG(b.amount), c AS amount > "
      "a.amount");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const CompiledPattern& p = *r.value()[0];
  EXPECT_EQ(p.partition_names, std::vector<std::string>{"card_id"});
  ASSERT_EQ(p.vars.size(), 3u);
  // a: event only; b: event-only prefilter plus per-run residual; c: per run.
  EXPECT_GE(p.conditions[0].prefilter, 0);
  EXPECT_LT(p.conditions[0].residual, 0);
  EXPECT_GE(p.conditions[1].prefilter, 0);
  EXPECT_GE(p.conditions[1].residual, 0);
  EXPECT_LT(p.conditions[2].prefilter, 0);
  EXPECT_GE(p.conditions[2].residual, 0);
  // start -> a -(next)-> b[1..] (loop, followed-by) -> c
  ASSERT_EQ(p.states.size(), 4u);
  EXPECT_EQ(p.states[1].edges.size(), 1u);
  EXPECT_EQ(p.states[1].edges[0].op, Contiguity::kStrict);
  EXPECT_EQ(p.states[2].edges.size(), 2u);
  EXPECT_TRUE(p.states[3].has_unguarded_final);
  EXPECT_NE(p.ToText().find("b[1..]"), std::string::npos);
  EXPECT_NE(p.ToDot().find("digraph"), std::string::npos);
}

TEST(Checker, UnknownFieldPointsAtIt) {
  std::string e = Errors("PATTERN p FROM payments MATCH a\nDEFINE a AS amont > 5");
  EXPECT_NE(e.find("c.cep:2:13: error: stream 'payments' has no field 'amont'"), std::string::npos)
      << e;
  EXPECT_NE(e.find("              ^~~~~"), std::string::npos) << e;
}

TEST(Checker, ReportsEveryErrorNotJustTheFirst) {
  std::string e = Errors(
      "PATTERN p FROM payments MATCH a -> b\n"
      "DEFINE a AS amount > 'x', b AS nope.amount > 1 AND status MATCHES '(('\n"
      "AFTER MATCH SKIP TO LAST zz\n");
  EXPECT_NE(e.find("cannot compare double with string"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown stage 'nope'"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid regular expression"), std::string::npos) << e;
  EXPECT_NE(e.find("SKIP TO names 'zz'"), std::string::npos) << e;
}

TEST(Checker, UnknownStream) {
  std::string e = Errors("PATTERN p FROM payment MATCH a");
  EXPECT_NE(e.find("c.cep:1:16: error: unknown stream 'payment' (streams: payments)"),
            std::string::npos)
      << e;
}

TEST(Checker, StructuralRules) {
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH !a -> b").find("cannot start with !a"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a -> !b").find("needs WITHIN"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH (a -> !b) -> c WITHIN 1 S")
                .find("can end only the whole pattern"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH (a b)++").find("apply to a single stage"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a UNTIL (amount > 1)").find("expected a clause"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a? UNTIL (amount > 1)")
                .find("UNTIL needs a looping stage"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a{3,2}").find("invalid repetition bounds"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a? b*").find("no event at all"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH (a?){2}").find("mandatory stage"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a DEFINE a AS ok, a AS ok").find("defined twice"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a DEFINE b AS ok").find("names no stage"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a -> b DEFINE a AS amount > b.amount")
                .find("never matched before 'a'"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a DEFINE a AS amount + 1")
                .find("must be true or false"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a EMIT SUM(a.status)").find("numeric field"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a EMIT COUNT(a) AS x, amount AS x").find("twice"),
            std::string::npos);
}

TEST(Checker, StageGapRules) {
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a WITHIN GAP 1 S -> b")
                .find("'a' has WITHIN GAP but can start a match"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a? -> b WITHIN GAP 1 S")
                .find("'b' has WITHIN GAP but can start a match"),
            std::string::npos);
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a -> (b c) WITHIN GAP 1 S")
                .find("WITHIN GAP applies to a single stage"),
            std::string::npos);
  // A misspelt GAP is named, with what was expected.
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a -> b WITHIN GAPS 1 S").find("expected"),
            std::string::npos);

  auto r = Compile("PATTERN p FROM payments MATCH a -> b WITHIN GAP 2 S -> c+ WITHIN GAP 5 S -> d");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const CompiledPattern& p = *r.value()[0];
  // After a: only b can come, within 2 s. After c: c again (5 s) or d (no
  // bound), so a run there waits as long as the pattern allows.
  std::map<std::string, std::set<int64_t>> wait;  // stage -> waits of its states
  for (const NfaState& st : p.states)
    if (st.var >= 0) wait[p.vars[static_cast<size_t>(st.var)]].insert(st.wait_ms);
  EXPECT_EQ(wait.at("a"), std::set<int64_t>{2000});
  EXPECT_EQ(wait.at("b"), std::set<int64_t>{5000});
  EXPECT_EQ(wait.at("c"), std::set<int64_t>{0});
  std::map<std::string, std::set<int64_t>> gap;
  for (const NfaState& st : p.states)
    if (st.var >= 0) gap[p.vars[static_cast<size_t>(st.var)]].insert(st.gap_ms);
  EXPECT_EQ(gap.at("b"), std::set<int64_t>{2000});
  EXPECT_EQ(gap.at("c"), std::set<int64_t>{5000});
  EXPECT_EQ(gap.at("d"), std::set<int64_t>{0});

  // The bound belongs to the occurrence it is written on: the second b
  // below has none.
  auto twice = Compile("PATTERN p FROM payments MATCH a -> b WITHIN GAP 1 S -> b");
  ASSERT_TRUE(twice.ok()) << twice.status().message();
  std::multiset<int64_t> b_gaps;
  for (const NfaState& st : twice.value()[0]->states)
    if (st.var == 1) b_gaps.insert(st.gap_ms);
  EXPECT_EQ(b_gaps, (std::multiset<int64_t>{0, 1000}));
}

TEST(Checker, AbsenceWithWithinCompiles) {
  auto r = Compile("PATTERN p FROM payments MATCH a -> !b WITHIN 10 S DEFINE a AS ok, b AS NOT ok");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const CompiledPattern& p = *r.value()[0];
  ASSERT_EQ(p.states[1].finals.size(), 1u);
  EXPECT_EQ(p.states[1].finals[0].guards.size(), 1u);
  EXPECT_FALSE(p.states[1].has_unguarded_final);
}

TEST(Checker, DuplicatePatternNames) {
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a\nPATTERN p FROM payments MATCH b")
                .find("defined twice"),
            std::string::npos);
}

}  // namespace
}  // namespace cepheus::patterns

namespace cepheus::patterns {
namespace {

TEST(Checker, SkipStrategiesWarnThatMatchesCanBeHeld) {
  StreamCatalog catalog;
  catalog["s"] = StreamInfo{
      Schema::Create({{"type", FieldType::kString}, {"ts", FieldType::kTimestamp}}).value(), {}};
  std::string warnings;
  auto r = CompilePatternFile(
      SourceFile("w.cep",
                 "PATTERN p FROM s MATCH a -> b WITHIN 6 HOURS DEFINE a AS type = 'A', b AS type "
                 "= 'B' AFTER MATCH SKIP PAST LAST EVENT"),
      catalog, &warnings);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(warnings.find("w.cep:1:"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("an alert can be delayed up to WITHIN 6h of event time"),
            std::string::npos)
      << warnings;
  warnings.clear();
  r = CompilePatternFile(SourceFile("n.cep",
                                    "PATTERN p FROM s MATCH a -> b WITHIN 6 HOURS DEFINE a AS "
                                    "type = 'A', b AS type = 'B'"),
                         catalog, &warnings);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(warnings.find("held"), std::string::npos) << "no skip strategy, no warning";
}

// Errors at the expression and clause level say what is wrong where it
// stands: SQL words the language lacks are named, and a misspelt clause
// keyword (which the grammar would take for a stage name) is reported as such,
// with the caret on it rather than on the token after it.
TEST(Checker, UnsupportedSqlAndMisspeltClausesAreNamedWhereTheyStand) {
  struct Case {
    std::string text, message, caret_at;
  };
  const std::vector<Case> cases = {
      {"PATTERN p FROM payments MATCH a -> b WITHN 6 HOURS DEFINE a AS ok, b AS ok",
       "unknown clause 'WITHN' (did you mean WITHIN?)", "WITHN"},
      {"PATTERN p FROM payments MATCH a -> b DEFNE a AS ok, b AS ok",
       "unknown clause 'DEFNE' (did you mean DEFINE?)", "DEFNE"},
      {"PATTERN p FROM payments MATCH a b DEFINE a AS ok, b AS ok EMT card_id",
       "unknown clause 'EMT' (did you mean EMIT?)", "EMT"},
      {"PATTERN p FORM payments MATCH a DEFINE a AS ok", "did you mean FROM?", "FORM"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS status IS 3", "expected NULL", "3"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS amount BETWEEN 1 OR 2", "expected AND", "OR"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS status LIKE x", "expected a 'quoted string'",
       "x"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS CASE WHEN ok THEN 1 ELSE 2", "expected END",
       "the end"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS ok WHEN ok",
       "WHEN, THEN, ELSE and END belong in CASE WHEN", "WHEN"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS status ESCAPE", "ESCAPE is not supported",
       "ESCAPE"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS LOWER(amount) = 'x'",
       "LOWER needs a string, not a double", "LOWER"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS CASE WHEN ok THEN 1 ELSE 'x' END = 1",
       "this CASE branch is a string but an earlier one is a int", "'x'"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS ROUND(amount, 1.5) > 1",
       "ROUND's digits must be an integer", "ROUND"},
      {"PATTERN p FROM payments MATCH a DEFINE a AS status || ok = 'x'",
       "|| joins strings (and numbers); this is a bool", "ok ="},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string e = Errors(c.text);
    EXPECT_NE(e.find(c.message), std::string::npos) << e;
    // c.cep:1:COL: the column of the offending word.
    const std::string col =
        std::to_string(c.caret_at == "the end" ? c.text.size() + 1 : c.text.find(c.caret_at) + 1);
    EXPECT_NE(e.find("c.cep:1:" + col + ":"), std::string::npos) << e;
  }
  // A stage named like a keyword but spelt right elsewhere is no error, and a
  // real syntax error after it keeps the plain message.
  EXPECT_NE(Errors("PATTERN p FROM payments MATCH a -> b WITHIN 6 HOURS DEFINE a AS ok, b AS ok "
                   "EMIT card_id card_id")
                .find("expected a clause"),
            std::string::npos);
  // `==` is the same comparison as `=`.
  auto eq = Compile("PATTERN p FROM payments MATCH a DEFINE a AS status == 'x'");
  ASSERT_TRUE(eq.ok()) << eq.status().message();
}

}  // namespace
}  // namespace cepheus::patterns

namespace cepheus::patterns {
namespace {

// The SQL words CASE, WHEN, THEN, ELSE, END, BETWEEN and LIKE are not
// reserved: streams with fields of those names keep working.
TEST(Checker, SqlWordsStillNameFields) {
  StreamCatalog c;
  c["s"] = StreamInfo{Schema::Create({{"case", FieldType::kString},
                                      {"end", FieldType::kInt},
                                      {"like", FieldType::kInt},
                                      {"ts", FieldType::kTimestamp}})
                          .value(),
                      {}};
  auto r = CompilePatternFile(
      SourceFile("w.cep",
                 "PATTERN p FROM s MATCH a DEFINE a AS case = 'x' AND end > 1 AND like < 3 AND "
                 "CASE WHEN end > 2 THEN case ELSE 'y' END LIKE 'x%' AND end BETWEEN 1 AND like"),
      c);
  ASSERT_TRUE(r.ok()) << r.status().message();
}

}  // namespace
}  // namespace cepheus::patterns

namespace cepheus::patterns {
namespace {

TEST(Checker, SkipToAStageThatStartsTheMatchIsFlagged) {
  std::string warnings;
  auto r = CompilePatternFile(SourceFile("s.cep",
                                         "PATTERN p FROM payments MATCH a -> b WITHIN 1 MINUTE "
                                         "DEFINE a AS ok, b AS ok AFTER MATCH SKIP TO FIRST a"),
                              Catalog(), &warnings);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r.value()[0]->skip_strict);
  EXPECT_NE(warnings.find("'a' can be a match's first event, and then nothing is skipped (add "
                          "STRICT"),
            std::string::npos)
      << warnings;
  warnings.clear();
  r = CompilePatternFile(SourceFile("s.cep",
                                    "PATTERN p FROM payments MATCH a -> b WITHIN 1 MINUTE "
                                    "DEFINE a AS ok, b AS ok AFTER MATCH SKIP TO LAST b STRICT"),
                         Catalog(), &warnings);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r.value()[0]->skip_strict);
  EXPECT_EQ(warnings.find("first event"), std::string::npos) << warnings;
}

}  // namespace
}  // namespace cepheus::patterns
