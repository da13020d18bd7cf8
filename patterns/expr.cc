#include "patterns/expr.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>

namespace cepheus::patterns {
namespace {

const Row* RowAt(const uint64_t* words, int w) {
  return reinterpret_cast<const Row*>(static_cast<uintptr_t>(words[w]));
}
uint64_t RowWord(const Row* r) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(r)); }
double DoubleAt(const uint64_t* words, int w) {
  double d;
  std::memcpy(&d, &words[w], sizeof d);
  return d;
}
void SetDouble(uint64_t* words, int w, double d) { std::memcpy(&words[w], &d, sizeof d); }

double AsDouble(const Value& v) {
  return v.type == Value::Type::kDouble ? v.d : static_cast<double>(v.i);
}

// Three-way comparison of two non-null values of comparable types.
int Compare(const Value& x, const Value& y) {
  if (x.type == Value::Type::kString) return x.s < y.s ? -1 : (x.s == y.s ? 0 : 1);
  if (x.type == Value::Type::kDouble || y.type == Value::Type::kDouble) {
    double a = AsDouble(x), b = AsDouble(y);
    return a < b ? -1 : (a == b ? 0 : 1);
  }
  return x.i < y.i ? -1 : (x.i == y.i ? 0 : 1);
}

bool Equal(const Value& x, const Value& y) {
  if (x.type == Value::Type::kString || y.type == Value::Type::kString)
    return x.type == y.type && x.s == y.s;
  if (x.type == Value::Type::kBool || y.type == Value::Type::kBool)
    return x.type == y.type && x.i == y.i;
  return Compare(x, y) == 0;
}

}  // namespace

Value ReadField(const Row& row, int slot, FieldType type) {
  size_t i = static_cast<size_t>(slot);
  if (row.IsNull(i)) return Value::Null();
  switch (type) {
    case FieldType::kInt:
      return Value::Int(row.GetInt(i));
    case FieldType::kDouble:
      return Value::Double(row.GetDouble(i));
    case FieldType::kString:
      return Value::String(row.GetString(i));
    case FieldType::kBool:
      return Value::Bool(row.GetBool(i));
    case FieldType::kTimestamp:
      return Value::Timestamp(row.GetInt(i));
  }
  return Value::Null();
}

void AggLayout::Update(uint64_t* words, int var, const Row& row) const {
  if (total_count >= 0) ++words[total_count];
  if (var < 0 || static_cast<size_t>(var) >= vars.size()) return;
  const VarAggs& va = vars[static_cast<size_t>(var)];
  int64_t count_before = va.count >= 0 ? static_cast<int64_t>(words[va.count]) : 0;
  if (va.count >= 0) ++words[va.count];
  if (va.first >= 0 && count_before == 0) words[va.first] = RowWord(&row);
  if (va.prev >= 0 && va.last >= 0) words[va.prev] = words[va.last];
  if (va.last >= 0) words[va.last] = RowWord(&row);
  for (const auto& fa : va.fields) {
    Value v = ReadField(row, fa.field, fa.type);
    if (fa.last_value >= 0) {
      words[fa.last_set] = v.is_null() ? 0 : 1;
      if (v.type == Value::Type::kDouble)
        SetDouble(words, fa.last_value, v.d);
      else
        words[fa.last_value] = static_cast<uint64_t>(v.i);
    }
    if (v.is_null()) continue;
    if (fa.sum >= 0) {
      if (fa.type == FieldType::kDouble)
        SetDouble(words, fa.sum, DoubleAt(words, fa.sum) + v.d);
      else
        words[fa.sum] = static_cast<uint64_t>(static_cast<int64_t>(words[fa.sum]) + v.i);
    }
    if (fa.min >= 0) {
      const Row* m = RowAt(words, fa.min);
      if (!m || Compare(v, ReadField(*m, fa.field, fa.type)) < 0) words[fa.min] = RowWord(&row);
    }
    if (fa.max >= 0) {
      const Row* m = RowAt(words, fa.max);
      if (!m || Compare(v, ReadField(*m, fa.field, fa.type)) > 0) words[fa.max] = RowWord(&row);
    }
  }
}

ExprProgram::ExprProgram() = default;
ExprProgram::~ExprProgram() = default;
ExprProgram::ExprProgram(ExprProgram&&) noexcept = default;
ExprProgram& ExprProgram::operator=(ExprProgram&&) noexcept = default;

const re2::RE2* ExprProgram::AddRegex(std::unique_ptr<re2::RE2> re) {
  regexes_.push_back(std::move(re));
  return regexes_.back().get();
}

std::string_view ExprProgram::AddString(std::string s) {
  strings_.push_back(std::make_unique<std::string>(std::move(s)));
  return *strings_.back();
}

Value ExprProgram::EvalAgg(const ExprNode& n, const EvalContext& ctx) const {
  const uint64_t* w = ctx.aggs;
  const bool with_current = n.var == ctx.current_var && ctx.current != nullptr;
  const Row* cur = ctx.current;
  auto field_of = [&](const Row* r) {
    return r ? ReadField(*r, n.slot, n.field_type) : Value::Null();
  };
  switch (n.op) {
    case Op::kAggTotal:
      return Value::Int(static_cast<int64_t>(w[n.agg]) + (ctx.current_var >= 0));
    case Op::kAggCount:
      return Value::Int(static_cast<int64_t>(w[n.agg]) + (with_current ? 1 : 0));
    case Op::kAggSum:
    case Op::kAggAvg: {
      Value cv = with_current ? field_of(cur) : Value::Null();
      int64_t count = static_cast<int64_t>(w[n.agg2]) + (with_current ? 1 : 0);
      if (n.field_type == FieldType::kDouble) {
        double s = DoubleAt(w, n.agg) + (cv.is_null() ? 0.0 : cv.d);
        if (n.op == Op::kAggSum) return Value::Double(s);
        return count > 0 ? Value::Double(s / static_cast<double>(count)) : Value::Null();
      }
      int64_t s = static_cast<int64_t>(w[n.agg]) + (cv.is_null() ? 0 : cv.i);
      if (n.op == Op::kAggSum) return Value::Int(s);
      return count > 0 ? Value::Double(static_cast<double>(s) / static_cast<double>(count))
                       : Value::Null();
    }
    case Op::kAggMin:
    case Op::kAggMax: {
      Value best = field_of(RowAt(w, n.agg));
      if (with_current) {
        Value cv = field_of(cur);
        if (!cv.is_null() && (best.is_null() || (n.op == Op::kAggMin ? Compare(cv, best) < 0
                                                                     : Compare(cv, best) > 0)))
          best = cv;
      }
      return best;
    }
    case Op::kAggFirst: {
      if (with_current && w[n.agg2] == 0) return field_of(cur);
      return field_of(RowAt(w, n.agg));
    }
    case Op::kAggLast:
      return with_current ? field_of(cur) : field_of(RowAt(w, n.agg));
    case Op::kAggLastValue: {
      if (with_current) return field_of(cur);
      if (!w[n.agg2]) return Value::Null();
      switch (n.field_type) {
        case FieldType::kDouble:
          return Value::Double(DoubleAt(w, n.agg));
        case FieldType::kBool:
          return Value::Bool(w[n.agg] != 0);
        case FieldType::kTimestamp:
          return Value::Timestamp(static_cast<int64_t>(w[n.agg]));
        default:
          return Value::Int(static_cast<int64_t>(w[n.agg]));
      }
    }
    case Op::kAggPrev:
      // With the current event included, the previous one is the run's last.
      return with_current ? field_of(RowAt(w, n.agg2)) : field_of(RowAt(w, n.agg));
    default:
      return Value::Null();
  }
}

// Strings built while evaluating (stable addresses: a deque never moves its
// elements). Cleared when a new evaluation starts on this thread.
static std::deque<std::string>& TempStrings() {
  thread_local std::deque<std::string> temps;
  return temps;
}

static std::string_view NewTemp(std::string s) { return TempStrings().emplace_back(std::move(s)); }

// A number as text, as || writes it (integers exactly, doubles shortest).
static std::string NumberText(const Value& v) {
  if (v.type == Value::Type::kDouble) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v.d);
    return std::string(buf, r.ptr);
  }
  return std::to_string(v.i);
}

static Value ToType(Value v, Value::Type t) {
  if (t == Value::Type::kDouble && v.type == Value::Type::kInt) return Value::Double(AsDouble(v));
  return v;
}

Value ExprProgram::Eval(int root, const EvalContext& ctx) const {
  if (builds_strings_ && !TempStrings().empty()) TempStrings().clear();
  return EvalNode(root, ctx);
}

Value ExprProgram::EvalNode(int root, const EvalContext& ctx) const {
  const ExprNode& n = nodes_[static_cast<size_t>(root)];
  if (IsAggregate(n.op)) return EvalAgg(n, ctx);
  switch (n.op) {
    case Op::kConst:
      return n.constant;
    case Op::kField:
      return ctx.current ? ReadField(*ctx.current, n.slot, n.field_type) : Value::Null();
    case Op::kNeg: {
      Value v = EvalNode(n.a, ctx);
      if (v.type == Value::Type::kDouble) return Value::Double(-v.d);
      if (v.type == Value::Type::kInt) return Value::Int(-v.i);
      return Value::Null();
    }
    case Op::kAbs: {
      Value v = EvalNode(n.a, ctx);
      if (v.type == Value::Type::kDouble) return Value::Double(std::fabs(v.d));
      if (v.type == Value::Type::kInt) return Value::Int(v.i < 0 ? -v.i : v.i);
      return Value::Null();
    }
    case Op::kNot: {
      Value v = EvalNode(n.a, ctx);
      return v.is_null() ? v : Value::Bool(!v.i);
    }
    case Op::kAnd: {
      Value x = EvalNode(n.a, ctx);
      if (x.type == Value::Type::kBool && !x.i) return Value::Bool(false);
      Value y = EvalNode(n.b, ctx);
      if (y.type == Value::Type::kBool && !y.i) return Value::Bool(false);
      if (x.is_null() || y.is_null()) return Value::Null();
      return Value::Bool(true);
    }
    case Op::kOr: {
      Value x = EvalNode(n.a, ctx);
      if (x.IsTrue()) return x;
      Value y = EvalNode(n.b, ctx);
      if (y.IsTrue()) return y;
      if (x.is_null() || y.is_null()) return Value::Null();
      return Value::Bool(false);
    }
    case Op::kAdd:
    case Op::kSub:
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod: {
      Value x = EvalNode(n.a, ctx);
      Value y = EvalNode(n.b, ctx);
      if (x.is_null() || y.is_null()) return Value::Null();
      if (n.type == Value::Type::kDouble) {
        double a = AsDouble(x), b = AsDouble(y);
        switch (n.op) {
          case Op::kAdd:
            return Value::Double(a + b);
          case Op::kSub:
            return Value::Double(a - b);
          case Op::kMul:
            return Value::Double(a * b);
          case Op::kDiv:
            return b == 0 ? Value::Null() : Value::Double(a / b);
          default:
            return b == 0 ? Value::Null() : Value::Double(std::fmod(a, b));
        }
      }
      int64_t a = x.i, b = y.i;
      int64_t r;
      switch (n.op) {
        case Op::kAdd:
          r = static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
          break;
        case Op::kSub:
          r = static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
          break;
        case Op::kMul:
          r = static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
          break;
        case Op::kDiv:
          if (b == 0 || (b == -1 && a == INT64_MIN)) return Value::Null();
          r = a / b;
          break;
        default:
          if (b == 0 || b == -1) return b == 0 ? Value::Null() : Value::Int(0);
          r = a % b;
      }
      return n.type == Value::Type::kTimestamp ? Value::Timestamp(r) : Value::Int(r);
    }
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      Value x = EvalNode(n.a, ctx);
      Value y = EvalNode(n.b, ctx);
      if (x.is_null() || y.is_null()) return Value::Null();
      if (n.op == Op::kEq) return Value::Bool(Equal(x, y));
      if (n.op == Op::kNe) return Value::Bool(!Equal(x, y));
      int c = Compare(x, y);
      switch (n.op) {
        case Op::kLt:
          return Value::Bool(c < 0);
        case Op::kLe:
          return Value::Bool(c <= 0);
        case Op::kGt:
          return Value::Bool(c > 0);
        default:
          return Value::Bool(c >= 0);
      }
    }
    case Op::kIn: {
      Value x = EvalNode(n.a, ctx);
      if (x.is_null()) return x;
      bool any_null = false;
      for (int e : n.list) {
        Value y = EvalNode(e, ctx);
        if (y.is_null()) {
          any_null = true;
          continue;
        }
        if (Equal(x, y)) return Value::Bool(!n.negated);
      }
      if (any_null) return Value::Null();
      return Value::Bool(n.negated);
    }
    case Op::kMatches: {
      Value x = EvalNode(n.a, ctx);
      if (x.is_null()) return x;
      bool m = RE2::PartialMatch(re2::StringPiece(x.s.data(), x.s.size()), *n.regex);
      return Value::Bool(m != n.negated);
    }
    case Op::kIsNull:
      return Value::Bool(EvalNode(n.a, ctx).is_null() != n.negated);
    case Op::kCase: {
      for (size_t i = 0; i + 1 < n.list.size(); i += 2)
        if (EvalNode(n.list[i], ctx).IsTrue()) return ToType(EvalNode(n.list[i + 1], ctx), n.type);
      return n.a >= 0 ? ToType(EvalNode(n.a, ctx), n.type) : Value::Null();
    }
    case Op::kCoalesce:
      for (int e : n.list) {
        Value v = EvalNode(e, ctx);
        if (!v.is_null()) return ToType(v, n.type);
      }
      return Value::Null();
    case Op::kLower:
    case Op::kUpper: {
      Value x = EvalNode(n.a, ctx);
      if (x.is_null()) return x;
      std::string t(x.s);
      for (char& c : t)
        c = static_cast<char>(n.op == Op::kLower ? std::tolower(static_cast<unsigned char>(c))
                                                 : std::toupper(static_cast<unsigned char>(c)));
      return Value::String(NewTemp(std::move(t)));
    }
    case Op::kLength: {
      Value x = EvalNode(n.a, ctx);
      if (x.is_null()) return x;
      int64_t chars = 0;
      for (char c : x.s) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      return Value::Int(chars);
    }
    case Op::kConcat: {
      Value x = EvalNode(n.a, ctx);
      Value y = EvalNode(n.b, ctx);
      if (x.is_null() || y.is_null()) return Value::Null();
      std::string t = x.type == Value::Type::kString ? std::string(x.s) : NumberText(x);
      t += y.type == Value::Type::kString ? std::string(y.s) : NumberText(y);
      return Value::String(NewTemp(std::move(t)));
    }
    case Op::kRound: {
      Value x = EvalNode(n.a, ctx);
      int64_t digits = 0;
      if (n.b >= 0) {
        Value d = EvalNode(n.b, ctx);
        if (d.is_null()) return d;
        digits = std::clamp<int64_t>(d.i, -18, 18);
      }
      if (x.is_null()) return x;
      if (x.type == Value::Type::kInt) {
        if (digits >= 0) return x;
        int64_t unit = 1;
        for (int64_t k = 0; k < -digits; ++k) unit *= 10;
        const int64_t half = unit / 2;
        const int64_t r = x.i >= 0 ? (x.i / unit + (x.i % unit >= half)) * unit
                                   : -((-(x.i / unit) + (-(x.i % unit) >= half)) * unit);
        return Value::Int(r);
      }
      const double scale = std::pow(10.0, static_cast<double>(digits));
      return Value::Double(std::round(x.d * scale) / scale);
    }
    case Op::kFloor:
    case Op::kCeil: {
      Value x = EvalNode(n.a, ctx);
      if (x.type != Value::Type::kDouble) return x;
      return Value::Double(n.op == Op::kFloor ? std::floor(x.d) : std::ceil(x.d));
    }
    default:
      break;  // aggregates: handled above
  }
  return Value::Null();
}

}  // namespace cepheus::patterns
