#include <gtest/gtest.h>

#include "patterns/parser.h"

namespace cepheus::patterns {
namespace {

std::vector<PatternAst> ParseOk(const std::string& text) {
  SourceFile f("t.cep", text);
  Diagnostics d;
  auto r = ParsePatterns(f, d);
  EXPECT_FALSE(d.HasErrors()) << d.Render(f);
  return r;
}

std::string ParseErr(const std::string& text) {
  SourceFile f("t.cep", text);
  Diagnostics d;
  ParsePatterns(f, d);
  EXPECT_TRUE(d.HasErrors());
  return d.Render(f);
}

TEST(Parser, FullExampleFromTheIssue) {
  auto pats = ParseOk(R"(
PATTERN card_testing
FROM payments
PARTITION BY card_id
MATCH small{3,} -> big
WITHIN 10 MINUTES
DEFINE
  small AS amount < 5 AND status = 'approved',
  big   AS amount > 500 AND merchant <> LAST(small.merchant)
AFTER MATCH SKIP PAST LAST EVENT
EMIT card_id, COUNT(small) AS attempts, SUM(small.amount) AS probed, big.amount AS charged
ON TIMEOUT EMIT card_id, COUNT(small) AS attempts
)");
  ASSERT_EQ(pats.size(), 1u);
  const PatternAst& p = pats[0];
  EXPECT_EQ(p.name, "card_testing");
  EXPECT_EQ(p.stream, "payments");
  EXPECT_EQ(p.partition_by, std::vector<std::string>{"card_id"});
  ASSERT_EQ(p.match.kind, RegexNode::Kind::kSeq);
  ASSERT_EQ(p.match.children.size(), 2u);
  EXPECT_EQ(p.match.children[0].name, "small");
  EXPECT_EQ(p.match.children[0].quant.min, 3);
  EXPECT_EQ(p.match.children[0].quant.max, Quantifier::kUnbounded);
  EXPECT_EQ(p.match.ops[1], Contiguity::kRelaxed);
  ASSERT_TRUE(p.within.has_value());
  EXPECT_EQ(p.within->millis(), 600000);
  ASSERT_EQ(p.defines.size(), 2u);
  EXPECT_EQ(p.defines[1].condition.op, "AND");
  EXPECT_EQ(p.skip.kind, SkipStrategy::Kind::kPastLast);
  ASSERT_EQ(p.emit.size(), 4u);
  EXPECT_EQ(p.emit[1].alias, "attempts");
  EXPECT_EQ(p.emit[2].expr.op, "SUM");
  EXPECT_TRUE(p.has_timeout_emit);
  EXPECT_EQ(p.timeout_emit.size(), 2u);
}

TEST(Parser, ContiguityOperatorsAndNegation) {
  auto p = ParseOk("PATTERN p FROM s MATCH a b -> c ->> d !x -> e -> !y")[0];
  const auto& m = p.match;
  ASSERT_EQ(m.children.size(), 7u);
  EXPECT_EQ(m.ops[1], Contiguity::kStrict);
  EXPECT_EQ(m.ops[2], Contiguity::kRelaxed);
  EXPECT_EQ(m.ops[3], Contiguity::kAny);
  EXPECT_EQ(m.children[4].kind, RegexNode::Kind::kNeg);
  EXPECT_EQ(m.ops[4], Contiguity::kStrict);
  EXPECT_EQ(m.children[6].kind, RegexNode::Kind::kNeg);
  EXPECT_EQ(m.ops[6], Contiguity::kRelaxed);
}

TEST(Parser, Quantifiers) {
  auto p = ParseOk(
      "PATTERN p FROM s MATCH a? b* c+ d{3} e{2,} f{2,5} g{,4} h+? i++ j?? k+ CONSECUTIVE "
      "l* COMBINATIONS m+ UNTIL (v > 3)")[0];
  const auto& c = p.match.children;
  ASSERT_EQ(c.size(), 13u);
  auto bounds = [&](size_t i) { return std::pair{c[i].quant.min, c[i].quant.max}; };
  const int inf = Quantifier::kUnbounded;
  EXPECT_EQ(bounds(0), std::pair(0, 1));
  EXPECT_EQ(bounds(1), std::pair(0, inf));
  EXPECT_EQ(bounds(2), std::pair(1, inf));
  EXPECT_EQ(bounds(3), std::pair(3, 3));
  EXPECT_EQ(bounds(4), std::pair(2, inf));
  EXPECT_EQ(bounds(5), std::pair(2, 5));
  EXPECT_EQ(bounds(6), std::pair(0, 4));
  EXPECT_EQ(c[7].quant.mode, Quantifier::Mode::kReluctant);
  EXPECT_EQ(c[8].quant.mode, Quantifier::Mode::kGreedy);
  EXPECT_EQ(c[9].quant.mode, Quantifier::Mode::kReluctant);
  EXPECT_EQ(bounds(9), std::pair(0, 1));
  EXPECT_EQ(c[10].quant.inner, Contiguity::kStrict);
  EXPECT_EQ(c[11].quant.inner, Contiguity::kAny);
  ASSERT_TRUE(c[12].quant.until.has_value());
  EXPECT_EQ(c[12].quant.until->op, ">");
}

TEST(Parser, GroupsAndAlternation) {
  auto p = ParseOk("PATTERN p FROM s MATCH a (b | c -> d) (e f){2,} CONSECUTIVE")[0];
  const auto& c = p.match.children;
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[1].kind, RegexNode::Kind::kAlt);
  ASSERT_EQ(c[1].children.size(), 2u);
  EXPECT_EQ(c[1].children[1].kind, RegexNode::Kind::kSeq);
  EXPECT_EQ(c[2].kind, RegexNode::Kind::kSeq);
  EXPECT_TRUE(c[2].quant.present);
  EXPECT_EQ(c[2].quant.min, 2);
  EXPECT_EQ(c[2].quant.inner, Contiguity::kStrict);
}

TEST(Parser, ExpressionPrecedence) {
  auto p = ParseOk(
      "PATTERN p FROM s MATCH a DEFINE a AS NOT x = 1 + 2 * 3 AND y IN ('u', 'v') OR "
      "z MATCHES '^a.*' AND w NOT IN (1, 2)")[0];
  const Expr& e = p.defines[0].condition;
  ASSERT_EQ(e.op, "OR");
  const Expr& left = e.args[0];
  ASSERT_EQ(left.op, "AND");
  EXPECT_EQ(left.args[0].kind, Expr::Kind::kUnary);
  const Expr& cmp = left.args[0].args[0];
  EXPECT_EQ(cmp.op, "=");
  EXPECT_EQ(cmp.args[1].op, "+");
  EXPECT_EQ(cmp.args[1].args[1].op, "*");
  EXPECT_EQ(left.args[1].kind, Expr::Kind::kIn);
  EXPECT_EQ(e.args[1].args[0].kind, Expr::Kind::kMatches);
  EXPECT_TRUE(e.args[1].args[1].negated);
}

TEST(Parser, KeywordsAreCaseInsensitiveAndCommentsIgnored) {
  auto p = ParseOk(
      "pattern p -- a comment\nfrom s // another\nmatch a -> b within 5 seconds\n"
      "define a as v > 1\nafter match skip to first b\n")[0];
  EXPECT_EQ(p.within->millis(), 5000);
  EXPECT_EQ(p.skip.kind, SkipStrategy::Kind::kToFirst);
  EXPECT_EQ(p.skip.var, "b");
}

TEST(Parser, ErrorHasFileLineColumnCaretAndExpectation) {
  std::string err = ParseErr("PATTERN p\nFROM s\nMATCH a ->\nDEFINE a AS v > 1\n");
  EXPECT_NE(
      err.find("t.cep:4:1: error: expected a stage, a (group) or a !negation, found 'DEFINE'"),
      std::string::npos)
      << err;
  EXPECT_NE(err.find("  DEFINE a AS v > 1\n  ^"), std::string::npos) << err;
}

TEST(Parser, ErrorInsideExpression) {
  std::string err = ParseErr("PATTERN p FROM s MATCH a\nDEFINE a AS v > AND w\n");
  EXPECT_NE(err.find("t.cep:2:17: error: expected expression, found 'AND'"), std::string::npos)
      << err;
}

TEST(Parser, ReportsOneErrorPerPatternBlock) {
  std::string err = ParseErr(
      "PATTERN p1 FROM s MATCH a DEFINE a AS (v > 1\n"
      "PATTERN p2 FROM s MATCH a WITHIN ten minutes\n"
      "PATTERN ok FROM s MATCH a\n");
  EXPECT_NE(err.find("t.cep:2:1: error: expected ')'"), std::string::npos) << err;
  EXPECT_NE(err.find("t.cep:2:34: error: expected a duration"), std::string::npos) << err;
}

TEST(Parser, TextBeforeTheFirstPatternIsAnError) {
  std::string err = ParseErr("hello\nPATTERN p FROM s MATCH a\n");
  EXPECT_NE(err.find("t.cep:1:1: error: expected PATTERN"), std::string::npos) << err;
}

}  // namespace
}  // namespace cepheus::patterns

namespace cepheus::patterns {
namespace {

TEST(Parser, ExpectationNamesTheRuleNotItsWrapper) {
  std::string err = ParseErr("PATTERN p FROM 42 MATCH a\n");
  EXPECT_NE(err.find("t.cep:1:16: error: expected identifier, found '42'"), std::string::npos)
      << err;
}

TEST(Parser, EventsIsAStreamNameAndAnEmitItem) {
  auto p = ParseOk("PATTERN p FROM events MATCH a EMIT COUNT(*) AS n, EVENTS")[0];
  EXPECT_EQ(p.stream, "events");
  ASSERT_EQ(p.emit.size(), 2u);
  EXPECT_TRUE(p.emit[1].events);
}

}  // namespace
}  // namespace cepheus::patterns

namespace cepheus::patterns {
namespace {

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Deeply nested input used to overflow the stack in the recursive grammar;
// it is refused up front with a position instead.
TEST(ParserLimits, DeepNestingIsAnErrorNotACrash) {
  const std::string head = "PATTERN p FROM s MATCH a DEFINE a AS ";
  for (int n : {2000, 12000}) {
    EXPECT_NE(ParseErr(head + Repeat("(", n) + "v > 1" + Repeat(")", n)).find("nesting too deep"),
              std::string::npos);
    EXPECT_NE(ParseErr(head + Repeat("NOT ", n) + "v > 1").find("nesting too deep"),
              std::string::npos);
    EXPECT_NE(ParseErr(head + Repeat("- ", n) + "v > 1").find("nesting too deep"),
              std::string::npos);
    // (12000 CASEs exceed the block size limit first.)
    EXPECT_NE(
        ParseErr(head + Repeat("CASE WHEN true THEN ", n / 6) + "v > 1" + Repeat(" END", n / 6))
            .find("nesting too deep"),
        std::string::npos);
    EXPECT_NE(ParseErr("PATTERN p FROM s MATCH " + Repeat("(", n) + "a" + Repeat(")", n) +
                       " DEFINE a AS v > 1")
                  .find("nesting too deep"),
              std::string::npos);
  }
  // Parentheses in strings and comments do not count; moderate nesting is fine.
  ParseOk(head + Repeat("(", 40) + "v > 1" + Repeat(")", 40) + " AND t = '" + Repeat("(", 500) +
          "' -- " + Repeat("(", 500) + "\n");
  ParseOk(head + Repeat("CASE WHEN true THEN ", 40) + "v > 1" + Repeat(" END", 40));
  // A long flat chain is not nested, but its tree is deep: refused after parsing.
  std::string chain = head;
  for (int i = 0; i < 5000; ++i) chain += "v + ";
  EXPECT_NE(ParseErr(chain + "v > 1").find("expression too deeply nested"), std::string::npos);
}

TEST(ParserLimits, SizeLimitsComeBeforeAnyExpensiveWork) {
  std::string stages, defines;
  for (int i = 0; i < 300; ++i) {
    stages += (i ? " -> s" : "s") + std::to_string(i);
    defines += (i ? ", s" : "s") + std::to_string(i) + " AS v > 1";
  }
  EXPECT_NE(ParseErr("PATTERN p FROM s MATCH " + stages + " DEFINE " + defines)
                .find("MATCH names 300 stages; at most 256"),
            std::string::npos);
  const std::string big =
      "PATTERN p FROM s MATCH a DEFINE a AS v > 1 AND t = '" + std::string(70000, 'x') + "'";
  EXPECT_NE(ParseErr(big).find("at most 65536 are allowed"), std::string::npos);
}

TEST(ParserLimits, NonAsciiBytesAreHandled) {
  // UTF-8 in strings and comments is fine.
  auto p =
      ParseOk("PATTERN p FROM s MATCH a DEFINE a AS t = 'caf\xC3\xA9 \xE2\x82\xAC' -- \xC3\xBC\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].defines[0].condition.args[1].text, "caf\xC3\xA9 \xE2\x82\xAC");
  // Identifiers are ASCII: a non-ASCII character where a token belongs is an
  // error that shows the whole character.
  EXPECT_NE(
      ParseErr("PATTERN p FROM s MATCH a -> \xC3\xA9 DEFINE a AS v > 1").find("found '\xC3\xA9'"),
      std::string::npos);
  EXPECT_NE(ParseErr("PATTERN p FROM s MATCH \xC3\xA9t\xC3\xA9 DEFINE a AS v > 1").find("error"),
            std::string::npos);
  // Invalid UTF-8 anywhere is reported with its position.
  EXPECT_NE(ParseErr("PATTERN p FROM s MATCH a DEFINE a AS t = 'x\xFF'")
                .find("1:44: error: the "
                      "pattern text is not "
                      "valid UTF-8"),
            std::string::npos);
  // Every byte value at every token position: an error or a parse, never a crash.
  const std::string base = "PATTERN p FROM s MATCH a -> b WITHIN 5 SECONDS DEFINE a AS v > 1";
  for (size_t pos = 0; pos <= base.size(); pos += 3) {
    for (int byte = 1; byte < 256; byte += 7) {
      std::string t = base;
      t.insert(pos, 1, static_cast<char>(byte));
      SourceFile f("t.cep", t);
      Diagnostics d;
      ParsePatterns(f, d);
    }
  }
}

}  // namespace
}  // namespace cepheus::patterns

namespace cepheus::patterns {
namespace {

TEST(ParserLimits, CaretLinesUpUnderTextWithMultibyteCharacters) {
  const std::string err =
      ParseErr("PATTERN p FROM s MATCH a DEFINE a AS t = '\xC3\xA9\xC3\xA9' AND AND");
  // The caret sits under the second AND: 50 characters in (52 bytes).
  const std::string caret_line = err.substr(err.rfind('\n', err.size() - 2) + 1);
  EXPECT_EQ(caret_line.find('^'), 2u + 50u) << err;
  EXPECT_NE(err.find("t.cep:1:53:"), std::string::npos) << "columns count bytes: " << err;
}

}  // namespace
}  // namespace cepheus::patterns
