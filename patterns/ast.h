// The pattern language's abstract syntax tree, as the parser produces it.
// Every node carries the byte range of the source text it came from, so the
// checker can point at it. Plain values: no behaviour, no third-party types.
// See docs/dsl.md for the language.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/time_types.h"

namespace cepheus::patterns {

// Byte offsets [begin, end) into the pattern's source text.
struct SourceSpan {
  uint32_t begin = 0;
  uint32_t end = 0;
};

struct Expr {
  enum class Kind {
    kIntLit,     // int_value
    kDoubleLit,  // double_value
    kStringLit,  // text
    kBoolLit,    // int_value 0/1
    kNullLit,
    kDurationLit,  // int_value = milliseconds
    kRef,          // [qualifier '.'] name: a field of the current event or of an earlier stage
    kCall,         // name(args): COUNT, SUM, AVG, MIN, MAX, FIRST, LAST, PREV, ABS, ...
    kUnary,        // op: "-" or "NOT"; args[0]
    kBinary,       // op: + - * / % = <> < <= > >= AND OR; args[0], args[1]
    kIn,           // args[0] IN (args[1..]); negated => NOT IN
    kMatches,      // args[0] MATCHES text (an RE2 pattern); negated => NOT MATCHES
                   // (LIKE is parsed into this, op "LIKE", text the translated regex)
    kIsNull,       // args[0] IS NULL; negated => IS NOT NULL
    kCase,         // CASE WHEN args[0] THEN args[1] ... [ELSE args.back()] END;
                   // int_value = number of WHEN pairs (simple CASE x WHEN v is
                   // parsed as WHEN x = v)
  };
  Kind kind = Kind::kNullLit;
  std::string op;         // operator, or function name for kCall
  std::string qualifier;  // kRef: stage name, or empty
  std::string name;       // kRef: field name (or stage name for COUNT(stage))
  std::string text;       // string literal / regex
  int64_t int_value = 0;
  double double_value = 0;
  bool negated = false;
  bool star = false;  // COUNT(*)
  std::vector<Expr> args;
  SourceSpan span;
};

enum class Contiguity : uint8_t {
  kStrict,   // juxtaposition: the very next event (Flink next())
  kRelaxed,  // "->": skip events that do not match (Flink followedBy())
  kAny,      // "->>": skip any event, branch on every match (Flink followedByAny())
};

struct Quantifier {
  enum class Mode : uint8_t { kDefault, kGreedy, kReluctant };
  int min = 1;
  int max = 1;  // kUnbounded for no upper bound
  static constexpr int kUnbounded = -1;
  Mode mode = Mode::kDefault;
  Contiguity inner = Contiguity::kRelaxed;  // between iterations
  bool inner_explicit = false;
  std::optional<Expr> until;
  bool present = false;  // false for a plain, unquantified element
  SourceSpan span;
};

struct RegexNode {
  enum class Kind { kVar, kNeg, kSeq, kAlt };
  Kind kind = Kind::kVar;
  std::string name;                 // kVar, kNeg: the stage (variable) name
  std::vector<RegexNode> children;  // kSeq, kAlt
  // kSeq: ops[i] is the contiguity written before children[i]; ops[0] is unused.
  std::vector<Contiguity> ops;
  Quantifier quant;  // kVar and groups (kSeq/kAlt written in parentheses)
  // `b WITHIN GAP 5 SECONDS`: every event `b` takes is less than this after
  // the event before it in the match (0: no bound).
  int64_t gap_ms = 0;
  SourceSpan gap_span;
  SourceSpan span;
};

// The `WITHIN GAP d` written after a MATCH element.
struct StageGap {
  int64_t ms = 0;
  SourceSpan span;
};

struct Define {
  std::string name;
  Expr condition;
  SourceSpan span;
};

struct SkipStrategy {
  enum class Kind { kNoSkip, kToNext, kPastLast, kToFirst, kToLast };
  Kind kind = Kind::kNoSkip;
  std::string var;  // kToFirst, kToLast
  // STRICT (Flink's throwExceptionOnMiss()): a match without `var`, or whose
  // skip target is its own first event, is an error record, not a match.
  bool strict = false;
  SourceSpan span;
};

struct EmitItem {
  Expr expr;
  std::string alias;
  bool events = false;  // the EVENTS item: all matched events per stage
  SourceSpan span;
};

struct PatternAst {
  std::string name;
  SourceSpan name_span;
  std::string stream;
  SourceSpan stream_span;
  std::vector<std::string> partition_by;
  std::vector<SourceSpan> partition_spans;
  RegexNode match;
  std::optional<Duration> within;
  std::optional<Duration> max_gap;
  std::vector<Define> defines;
  SkipStrategy skip;
  std::vector<EmitItem> emit;
  bool has_timeout_emit = false;
  std::vector<EmitItem> timeout_emit;
  SourceSpan span;
};

}  // namespace cepheus::patterns
