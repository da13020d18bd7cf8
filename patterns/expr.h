// Compiled expressions: a condition or EMIT item as a flat array of nodes over
// slot indexes. No name lookup, no virtual call and no allocation while
// evaluating. A program is immutable after compilation and may be evaluated
// from many threads at once.
//
// Aggregates over a stage (COUNT, SUM, AVG, MIN, MAX, FIRST, LAST, PREV) read
// a run's aggregate words (AggLayout): they are updated incrementally as a run
// takes events (AggLayout::Update), never recomputed from the match buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/row.h"
#include "common/schema.h"

namespace re2 {
class RE2;
}

namespace cepheus::patterns {

struct Value {
  enum class Type : uint8_t { kNull, kInt, kDouble, kString, kBool, kTimestamp };
  Type type = Type::kNull;
  int64_t i = 0;       // kInt, kBool (0/1), kTimestamp (ms)
  double d = 0;        // kDouble
  std::string_view s;  // kString: borrowed from a row or the program

  static Value Null() { return Value{}; }
  static Value Int(int64_t v) { return Value{Type::kInt, v, 0, {}}; }
  static Value Double(double v) { return Value{Type::kDouble, 0, v, {}}; }
  static Value Bool(bool v) { return Value{Type::kBool, v ? 1 : 0, 0, {}}; }
  static Value String(std::string_view v) { return Value{Type::kString, 0, 0, v}; }
  static Value Timestamp(int64_t ms) { return Value{Type::kTimestamp, ms, 0, {}}; }
  bool is_null() const { return type == Type::kNull; }
  bool IsTrue() const { return type == Type::kBool && i != 0; }
};

// Reads field `slot` of `row` as a Value of the schema's type.
Value ReadField(const Row& row, int slot, FieldType type);

// Which aggregate words a run carries, per stage. Words are 8 bytes: counts
// and integer sums as int64, double sums as double, rows as const Row*.
// Rows referenced here are always events of the run's own match path, which
// the match buffer keeps alive, so raw pointers are safe.
struct AggLayout {
  struct VarAggs {
    int count = -1;  // int64
    int first = -1;  // const Row*
    int last = -1;   // const Row*
    int prev = -1;   // const Row* (the event before `last`)
    struct FieldAgg {
      int field;
      FieldType type;
      int sum = -1;  // int64 or double by type
      int min = -1;  // const Row* of the smallest value
      int max = -1;  // const Row* of the largest value
      // The last value itself (numbers, bools, timestamps), so comparing with
      // an earlier stage does not dereference that stage's (cold) row.
      int last_value = -1;  // int64 or double bits
      int last_set = -1;    // 1 when last_value holds a non-null value
    };
    std::vector<FieldAgg> fields;
  };
  std::vector<VarAggs> vars;  // by stage index
  int total_count = -1;       // COUNT(*): events in the run
  int num_words = 0;

  // Folds `row`, just taken by stage `var`, into `words`.
  void Update(uint64_t* words, int var, const Row& row) const;
};

enum class Op : uint8_t {
  kConst,
  kField,         // slot of the current event
  kAggCount,      // COUNT(var)
  kAggTotal,      // COUNT(*)
  kAggSum,        // SUM(var.field)
  kAggAvg,        // AVG(var.field)
  kAggMin,        // MIN(var.field)
  kAggMax,        // MAX(var.field)
  kAggFirst,      // FIRST(var.field)
  kAggLast,       // LAST(var.field), var.field
  kAggLastValue,  // the same for a number/bool/timestamp field, kept by value
  kAggPrev,       // PREV(var.field)
  kNeg,
  kNot,
  kAbs,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
  kIn,        // a IN (list...)
  kMatches,   // a MATCHES regex (and LIKE, translated)
  kIsNull,    // a IS NULL (negated: IS NOT NULL); never null itself
  kCase,      // list = cond1, value1, cond2, value2, ...; a = ELSE value or -1
  kCoalesce,  // list: the first non-null value
  kLower,     // LOWER(a), ASCII letters
  kUpper,     // UPPER(a), ASCII letters
  kLength,    // LENGTH(a): characters (UTF-8 code points)
  kConcat,    // a || b (numbers are written as text)
  kRound,     // ROUND(a [, b digits])
  kFloor,     // FLOOR(a)
  kCeil,      // CEIL(a)
};

// True for the operators that read a run's aggregate words.
inline bool IsAggregate(Op op) { return op >= Op::kAggCount && op <= Op::kAggPrev; }

struct ExprNode {
  Op op = Op::kConst;
  Value::Type type = Value::Type::kNull;  // static result type
  bool negated = false;                   // kIn, kMatches
  int a = -1, b = -1;                     // children
  int slot = -1;                          // kField and aggregates: field slot
  FieldType field_type = FieldType::kInt;
  int var = -1;   // aggregates: stage index
  int agg = -1;   // aggregates: first word (see AggLayout)
  int agg2 = -1;  // second word (AVG: count)
  Value constant;
  std::vector<int> list;            // kIn: element nodes
  const re2::RE2* regex = nullptr;  // kMatches
};

// What an expression sees while it is evaluated.
struct EvalContext {
  // The event being tested (in DEFINE), or the last event of the match (EMIT).
  const Row* current = nullptr;
  // The run's aggregate words (may be null when the layout has none).
  const uint64_t* aggs = nullptr;
  // In DEFINE x, x's aggregates include the current event (as in SQL's
  // MATCH_RECOGNIZE running semantics); -1 elsewhere.
  int current_var = -1;
};

class ExprProgram {
 public:
  ExprProgram();
  ~ExprProgram();
  ExprProgram(ExprProgram&&) noexcept;
  ExprProgram& operator=(ExprProgram&&) noexcept;

  int Add(ExprNode n) {
    if (n.op == Op::kLower || n.op == Op::kUpper || n.op == Op::kConcat) builds_strings_ = true;
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }
  ExprNode& node(int i) { return nodes_[static_cast<size_t>(i)]; }
  const ExprNode& node(int i) const { return nodes_[static_cast<size_t>(i)]; }
  size_t size() const { return nodes_.size(); }
  // Keeps a compiled regex alive for the program's lifetime.
  const re2::RE2* AddRegex(std::unique_ptr<re2::RE2> re);
  // Keeps a string constant alive (Values only borrow).
  std::string_view AddString(std::string s);

  // A string result built by the expression (LOWER, ||, ...) lives in a
  // per-thread buffer until the next Eval on the same thread.
  Value Eval(int root, const EvalContext& ctx) const;
  bool Test(int root, const EvalContext& ctx) const { return Eval(root, ctx).IsTrue(); }

 private:
  Value EvalNode(int root, const EvalContext& ctx) const;
  Value EvalAgg(const ExprNode& n, const EvalContext& ctx) const;
  bool builds_strings_ = false;  // has LOWER, UPPER or ||
  std::vector<ExprNode> nodes_;
  std::vector<std::unique_ptr<re2::RE2>> regexes_;
  std::vector<std::unique_ptr<std::string>> strings_;
};

}  // namespace cepheus::patterns
