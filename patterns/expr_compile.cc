// Compiler pass 3: typing and code generation of conditions, aggregates and EMIT.
#include "patterns/compiler.h"

#include <re2/re2.h>

#include <algorithm>
#include <functional>

namespace cepheus::patterns::compiler {

VT TypeOfField(FieldType t) {
  switch (t) {
    case FieldType::kInt:
      return VT::kInt;
    case FieldType::kDouble:
      return VT::kDouble;
    case FieldType::kString:
      return VT::kString;
    case FieldType::kBool:
      return VT::kBool;
    case FieldType::kTimestamp:
      return VT::kTimestamp;
  }
  return VT::kNull;
}

const char* TypeName(VT t) {
  switch (t) {
    case VT::kNull:
      return "null";
    case VT::kInt:
      return "int";
    case VT::kDouble:
      return "double";
    case VT::kString:
      return "string";
    case VT::kBool:
      return "bool";
    case VT::kTimestamp:
      return "timestamp";
  }
  return "?";
}

bool IsNumber(VT t) { return t == VT::kInt || t == VT::kDouble; }

// The type of a value that is either an `a` or a `b` (CASE branches,
// COALESCE arguments): null goes with anything, int with double.
bool Unify(VT a, VT b, VT* out) {
  if (a == VT::kNull || a == b) {
    *out = b;
  } else if (b == VT::kNull) {
    *out = a;
  } else if (IsNumber(a) && IsNumber(b)) {
    *out = VT::kDouble;
  } else {
    return false;
  }
  return true;
}

// ---- expressions --------------------------------------------------------------------

int Compiler::VarWord(int var, const char* which) {
  auto& va = out_->aggs.vars[static_cast<size_t>(var)];
  std::string w = which;
  if (w == "count") return va.count >= 0 ? va.count : (va.count = NewWord());
  if (w == "first") {
    VarWord(var, "count");
    return va.first >= 0 ? va.first : (va.first = NewWord());
  }
  if (w == "last") return va.last >= 0 ? va.last : (va.last = NewWord());
  // prev needs last
  VarWord(var, "last");
  return va.prev >= 0 ? va.prev : (va.prev = NewWord());
}

AggLayout::VarAggs::FieldAgg& Compiler::FieldAggOf(int var, int field) {
  auto& va = out_->aggs.vars[static_cast<size_t>(var)];
  for (auto& fa : va.fields)
    if (fa.field == field) return fa;
  AggLayout::VarAggs::FieldAgg fa;
  fa.field = field;
  fa.type = out_->schema->field(static_cast<size_t>(field)).type;
  va.fields.push_back(fa);
  return va.fields.back();
}

void Compiler::CheckPrecedes(int ref_var, const Scope& s, SourceSpan span) {
  if (s.kind != ScopeKind::kDefine || s.var < 0 || ref_var == s.var) return;
  const auto& pre = may_precede_[static_cast<size_t>(s.var)];
  const auto& gctx = guard_context_[static_cast<size_t>(s.var)];
  if (pre.count(ref_var) || gctx.count(ref_var)) return;
  d_.Error(span, "stage '" + out_->vars[static_cast<size_t>(ref_var)] +
                     "' is never matched before '" + out_->vars[static_cast<size_t>(s.var)] +
                     "', so its values are not known here");
}

int Compiler::CompileAgg(const Expr& e, const Scope& s, VT* type) {
  const std::string& fn = e.op;
  ExprNode n;
  auto bad = [&](const std::string& msg) {
    d_.Error(e.span, msg);
    *type = VT::kNull;
    return -1;
  };
  if (fn == "ABS") {
    if (e.args.size() != 1) return bad("ABS takes one argument");
    VT t;
    int a = CompileExpr(e.args[0], s, &t);
    if (a < 0) return -1;
    if (!IsNumber(t) && t != VT::kNull)
      return bad(std::string("ABS needs a number, not ") + TypeName(t));
    n.op = Op::kAbs;
    n.a = a;
    n.type = t;
    *type = t;
    return out_->program.Add(std::move(n));
  }
  if (fn == "COALESCE") {
    if (e.args.empty()) return bad("COALESCE takes one or more arguments");
    VT result = VT::kNull;
    for (const Expr& arg : e.args) {
      VT t;
      int x = CompileExpr(arg, s, &t);
      if (x < 0) return -1;
      if (!Unify(result, t, &result)) {
        d_.Error(arg.span, std::string("COALESCE argument is a ") + TypeName(t) +
                               " but an earlier one is a " + TypeName(result));
        return -1;
      }
      n.list.push_back(x);
    }
    n.op = Op::kCoalesce;
    n.type = *type = result;
    return out_->program.Add(std::move(n));
  }
  if (fn == "LOWER" || fn == "UPPER" || fn == "LENGTH") {
    if (e.args.size() != 1) return bad(fn + " takes one argument");
    VT t;
    int a = CompileExpr(e.args[0], s, &t);
    if (a < 0) return -1;
    if (t != VT::kString && t != VT::kNull)
      return bad(fn + " needs a string, not a " + TypeName(t));
    n.op = fn == "LOWER" ? Op::kLower : fn == "UPPER" ? Op::kUpper : Op::kLength;
    n.a = a;
    n.type = *type = fn == "LENGTH" ? VT::kInt : VT::kString;
    return out_->program.Add(std::move(n));
  }
  if (fn == "ROUND" || fn == "FLOOR" || fn == "CEIL" || fn == "CEILING") {
    const bool round = fn == "ROUND";
    if (e.args.empty() || e.args.size() > (round ? 2u : 1u))
      return bad(round ? "ROUND takes a number and, optionally, the digits to keep"
                       : fn + " takes one argument");
    VT t;
    int a = CompileExpr(e.args[0], s, &t);
    if (a < 0) return -1;
    if (!IsNumber(t) && t != VT::kNull) return bad(fn + " needs a number, not a " + TypeName(t));
    if (e.args.size() == 2) {
      VT td;
      n.b = CompileExpr(e.args[1], s, &td);
      if (n.b < 0) return -1;
      if (td != VT::kInt)
        return bad("ROUND's digits must be an integer, not a " + std::string(TypeName(td)));
    }
    n.op = round ? Op::kRound : fn == "FLOOR" ? Op::kFloor : Op::kCeil;
    n.a = a;
    n.type = *type = t == VT::kNull ? VT::kDouble : t;
    return out_->program.Add(std::move(n));
  }
  if (fn == "COUNT" && e.star) {
    if (out_->aggs.total_count < 0) out_->aggs.total_count = NewWord();
    n.op = Op::kAggTotal;
    n.agg = out_->aggs.total_count;
    n.type = *type = VT::kInt;
    return out_->program.Add(std::move(n));
  }
  static const std::set<std::string> kAggs = {"COUNT", "SUM",   "AVG",  "MIN",
                                              "MAX",   "FIRST", "LAST", "PREV"};
  if (!kAggs.count(fn))
    return bad("unknown function " + fn +
               "; known: COUNT, SUM, AVG, MIN, MAX, FIRST, LAST, PREV, ABS, COALESCE, LOWER, "
               "UPPER, LENGTH, ROUND, FLOOR, CEIL");
  if (e.args.size() != 1 || e.args[0].kind != Expr::Kind::kRef)
    return bad(fn + " takes one argument: " +
               (fn == "COUNT" ? std::string("a stage, e.g. COUNT(b), or *")
                              : "a stage's field, e.g. " + fn + "(b.price)"));
  const Expr& arg = e.args[0];
  if (fn == "COUNT") {
    std::string v = arg.qualifier.empty() ? arg.name : arg.qualifier;
    auto it = var_index_.find(v);
    if (it == var_index_.end())
      return bad("COUNT needs a stage of the MATCH clause; '" + v + "' is not one");
    CheckPrecedes(it->second, s, arg.span);
    n.op = Op::kAggCount;
    n.var = it->second;
    n.agg = VarWord(it->second, "count");
    n.type = *type = VT::kInt;
    return out_->program.Add(std::move(n));
  }
  if (arg.qualifier.empty())
    return bad(fn + " needs a stage-qualified field, e.g. " + fn + "(b." + arg.name + ")");
  auto it = var_index_.find(arg.qualifier);
  if (it == var_index_.end())
    return bad("unknown stage '" + arg.qualifier + "' (stages: " + [&] {
      std::string s2;
      for (const auto& v : out_->vars) s2 += (s2.empty() ? "" : ", ") + v;
      return s2;
    }() + ")");
  int field = out_->schema->IndexOf(arg.name);
  if (field < 0) return bad("stream '" + ast_.stream + "' has no field '" + arg.name + "'");
  int var = it->second;
  CheckPrecedes(var, s, arg.span);
  FieldType ft = out_->schema->field(static_cast<size_t>(field)).type;
  VT vt = TypeOfField(ft);
  n.var = var;
  n.slot = field;
  n.field_type = ft;
  if (fn == "SUM" || fn == "AVG") {
    if (!IsNumber(vt))
      return bad(fn + " needs a numeric field; '" + arg.name + "' is " + TypeName(vt));
    auto& fa = FieldAggOf(var, field);
    if (fa.sum < 0) fa.sum = NewWord();
    n.agg = fa.sum;
    n.agg2 = VarWord(var, "count");
    n.op = fn == "SUM" ? Op::kAggSum : Op::kAggAvg;
    n.type = fn == "SUM" ? vt : VT::kDouble;
  } else if (fn == "MIN" || fn == "MAX") {
    if (vt == VT::kBool) return bad(fn + " does not apply to bool field '" + arg.name + "'");
    auto& fa = FieldAggOf(var, field);
    int& w = fn == "MIN" ? fa.min : fa.max;
    if (w < 0) w = NewWord();
    n.agg = w;
    n.op = fn == "MIN" ? Op::kAggMin : Op::kAggMax;
    n.type = vt;
  } else if (fn == "FIRST") {
    n.agg = VarWord(var, "first");
    n.agg2 = VarWord(var, "count");
    n.op = Op::kAggFirst;
    n.type = vt;
  } else if (fn == "LAST" && vt != VT::kString) {
    auto& fa = FieldAggOf(var, field);
    if (fa.last_value < 0) {
      fa.last_value = NewWord();
      fa.last_set = NewWord();
    }
    n.agg = fa.last_value;
    n.agg2 = fa.last_set;
    n.op = Op::kAggLastValue;
    n.type = vt;
  } else if (fn == "LAST") {
    n.agg = VarWord(var, "last");
    n.op = Op::kAggLast;
    n.type = vt;
  } else {  // PREV
    n.agg = VarWord(var, "prev");
    n.agg2 = VarWord(var, "last");
    n.op = Op::kAggPrev;
    n.type = vt;
  }
  *type = n.type;
  return out_->program.Add(std::move(n));
}

int Compiler::CompileExpr(const Expr& e, const Scope& s, VT* type) {
  ExprNode n;
  switch (e.kind) {
    case Expr::Kind::kIntLit:
    case Expr::Kind::kDurationLit:
      n.constant = Value::Int(e.int_value);
      n.type = *type = VT::kInt;
      return out_->program.Add(std::move(n));
    case Expr::Kind::kDoubleLit:
      n.constant = Value::Double(e.double_value);
      n.type = *type = VT::kDouble;
      return out_->program.Add(std::move(n));
    case Expr::Kind::kStringLit:
      n.constant = Value::String(out_->program.AddString(e.text));
      n.type = *type = VT::kString;
      return out_->program.Add(std::move(n));
    case Expr::Kind::kBoolLit:
      n.constant = Value::Bool(e.int_value != 0);
      n.type = *type = VT::kBool;
      return out_->program.Add(std::move(n));
    case Expr::Kind::kNullLit:
      n.type = *type = VT::kNull;
      return out_->program.Add(std::move(n));
    case Expr::Kind::kRef: {
      if (e.qualifier.empty()) {
        int field = out_->schema->IndexOf(e.name);
        if (field < 0) {
          if (var_index_.count(e.name))
            d_.Error(e.span, "'" + e.name + "' is a stage; name one of its fields, e.g. " + e.name +
                                 "." + out_->schema->field(0).name);
          else
            d_.Error(e.span, "stream '" + ast_.stream + "' has no field '" + e.name + "'");
          *type = VT::kNull;
          return -1;
        }
        n.op = Op::kField;
        n.slot = field;
        n.field_type = out_->schema->field(static_cast<size_t>(field)).type;
        n.type = *type = TypeOfField(n.field_type);
        return out_->program.Add(std::move(n));
      }
      auto it = var_index_.find(e.qualifier);
      if (it == var_index_.end()) {
        std::string stages;
        for (const auto& v : out_->vars) stages += (stages.empty() ? "" : ", ") + v;
        d_.Error(e.span, "unknown stage '" + e.qualifier + "' (stages: " + stages + ")");
        *type = VT::kNull;
        return -1;
      }
      if (s.kind == ScopeKind::kDefine && it->second == s.var) {
        Expr bare = e;
        bare.qualifier.clear();
        return CompileExpr(bare, s, type);
      }
      Expr call;
      call.kind = Expr::Kind::kCall;
      call.op = "LAST";
      call.span = e.span;
      call.args.push_back(e);
      return CompileAgg(call, s, type);
    }
    case Expr::Kind::kCall:
      return CompileAgg(e, s, type);
    case Expr::Kind::kUnary: {
      VT t;
      int a = CompileExpr(e.args[0], s, &t);
      if (a < 0) return -1;
      if (e.op == "NOT") {
        if (t != VT::kBool && t != VT::kNull) {
          d_.Error(e.args[0].span, std::string("NOT needs a condition, not a ") + TypeName(t));
          return -1;
        }
        n.op = Op::kNot;
        n.type = *type = VT::kBool;
      } else {
        if (!IsNumber(t) && t != VT::kNull) {
          d_.Error(e.args[0].span, std::string("unary minus needs a number, not a ") + TypeName(t));
          return -1;
        }
        n.op = Op::kNeg;
        n.type = *type = t;
      }
      n.a = a;
      return out_->program.Add(std::move(n));
    }
    case Expr::Kind::kBinary: {
      VT ta, tb;
      int a = CompileExpr(e.args[0], s, &ta);
      int b = CompileExpr(e.args[1], s, &tb);
      if (a < 0 || b < 0) return -1;
      n.a = a;
      n.b = b;
      const std::string& op = e.op;
      if (op == "AND" || op == "OR") {
        for (auto [t, sub] : {std::pair{ta, &e.args[0]}, std::pair{tb, &e.args[1]}})
          if (t != VT::kBool && t != VT::kNull) {
            d_.Error(sub->span, op + " needs conditions on both sides; this is a " + TypeName(t));
            return -1;
          }
        n.op = op == "AND" ? Op::kAnd : Op::kOr;
        n.type = *type = VT::kBool;
        return out_->program.Add(std::move(n));
      }
      if (op == "||") {
        for (auto [t, sub] : {std::pair{ta, &e.args[0]}, std::pair{tb, &e.args[1]}})
          if (t != VT::kString && t != VT::kNull && !IsNumber(t)) {
            d_.Error(sub->span,
                     std::string("|| joins strings (and numbers); this is a ") + TypeName(t));
            return -1;
          }
        n.op = Op::kConcat;
        n.type = *type = VT::kString;
        return out_->program.Add(std::move(n));
      }
      if (op == "+" || op == "-" || op == "*" || op == "/" || op == "%") {
        VT r = VT::kNull;
        if (ta == VT::kNull || tb == VT::kNull)
          r = IsNumber(ta) ? ta : (IsNumber(tb) ? tb : VT::kInt);
        else if (IsNumber(ta) && IsNumber(tb))
          r = (ta == VT::kDouble || tb == VT::kDouble || op == "/")
                  ? (op == "/" && ta == VT::kInt && tb == VT::kInt ? VT::kInt : VT::kDouble)
                  : VT::kInt;
        else if (ta == VT::kTimestamp && tb == VT::kTimestamp && op == "-")
          r = VT::kInt;
        else if (ta == VT::kTimestamp && tb == VT::kInt && (op == "+" || op == "-"))
          r = VT::kTimestamp;
        else if (ta == VT::kInt && tb == VT::kTimestamp && op == "+")
          r = VT::kTimestamp;
        else {
          d_.Error(e.span, std::string("cannot apply '") + op + "' to " + TypeName(ta) + " and " +
                               TypeName(tb));
          return -1;
        }
        n.op = op == "+"   ? Op::kAdd
               : op == "-" ? Op::kSub
               : op == "*" ? Op::kMul
               : op == "/" ? Op::kDiv
                           : Op::kMod;
        n.type = *type = r;
        return out_->program.Add(std::move(n));
      }
      // comparisons
      bool ok = ta == VT::kNull || tb == VT::kNull || ta == tb ||
                ((IsNumber(ta) || ta == VT::kTimestamp) && (IsNumber(tb) || tb == VT::kTimestamp));
      if (!ok) {
        d_.Error(e.span, std::string("cannot compare ") + TypeName(ta) + " with " + TypeName(tb));
        return -1;
      }
      if ((ta == VT::kBool || tb == VT::kBool) && op != "=" && op != "<>") {
        d_.Error(e.span, "bool values can only be compared with = and <>");
        return -1;
      }
      n.op = op == "="    ? Op::kEq
             : op == "<>" ? Op::kNe
             : op == "<"  ? Op::kLt
             : op == "<=" ? Op::kLe
             : op == ">"  ? Op::kGt
                          : Op::kGe;
      n.type = *type = VT::kBool;
      return out_->program.Add(std::move(n));
    }
    case Expr::Kind::kIn: {
      VT ta;
      int a = CompileExpr(e.args[0], s, &ta);
      n.op = Op::kIn;
      n.negated = e.negated;
      n.a = a;
      bool failed = a < 0;
      for (size_t i = 1; i < e.args.size(); ++i) {
        VT t;
        int x = CompileExpr(e.args[i], s, &t);
        if (x < 0) {
          failed = true;
          continue;
        }
        bool ok = t == VT::kNull || ta == VT::kNull || t == ta || (IsNumber(t) && IsNumber(ta));
        if (!ok) {
          d_.Error(e.args[i].span, std::string("IN list value is a ") + TypeName(t) +
                                       " but the tested value is a " + TypeName(ta));
          failed = true;
        }
        n.list.push_back(x);
      }
      if (failed) return -1;
      n.type = *type = VT::kBool;
      return out_->program.Add(std::move(n));
    }
    case Expr::Kind::kMatches: {
      VT ta;
      int a = CompileExpr(e.args[0], s, &ta);
      if (a < 0) return -1;
      const std::string what = e.op.empty() ? "MATCHES" : e.op;
      if (ta != VT::kString && ta != VT::kNull) {
        d_.Error(e.args[0].span, what + " needs a string, not a " + TypeName(ta));
        return -1;
      }
      RE2::Options opts;
      opts.set_log_errors(false);
      auto re = std::make_unique<RE2>(e.text, opts);
      if (!re->ok()) {
        d_.Error(e.span, "invalid regular expression '" + e.text + "': " + re->error());
        return -1;
      }
      n.op = Op::kMatches;
      n.negated = e.negated;
      n.a = a;
      n.regex = out_->program.AddRegex(std::move(re));
      n.type = *type = VT::kBool;
      return out_->program.Add(std::move(n));
    }
    case Expr::Kind::kIsNull: {
      VT ta;
      int a = CompileExpr(e.args[0], s, &ta);
      if (a < 0) return -1;
      n.op = Op::kIsNull;
      n.negated = e.negated;
      n.a = a;
      n.type = *type = VT::kBool;
      return out_->program.Add(std::move(n));
    }
    case Expr::Kind::kCase: {
      n.op = Op::kCase;
      VT result = VT::kNull;
      bool failed = false;
      const size_t pairs = static_cast<size_t>(e.int_value);
      for (size_t i = 0; i < e.args.size(); ++i) {
        const bool is_cond = i < 2 * pairs && i % 2 == 0;
        VT t;
        int x = CompileExpr(e.args[i], s, &t);
        if (x < 0) {
          failed = true;
          continue;
        }
        if (is_cond && t != VT::kBool && t != VT::kNull) {
          d_.Error(e.args[i].span, std::string("WHEN needs a condition, not a ") + TypeName(t));
          failed = true;
        } else if (!is_cond && !Unify(result, t, &result)) {
          d_.Error(e.args[i].span, std::string("this CASE branch is a ") + TypeName(t) +
                                       " but an earlier one is a " + TypeName(result));
          failed = true;
        }
        if (i < 2 * pairs)
          n.list.push_back(x);
        else
          n.a = x;
      }
      if (failed) return -1;
      n.type = *type = result;
      return out_->program.Add(std::move(n));
    }
  }
  return -1;
}

bool Compiler::IsEventOnly(int node) const {
  if (node < 0) return true;
  const ExprNode& n = out_->program.node(node);
  if (IsAggregate(n.op)) return false;
  if (!IsEventOnly(n.a) || !IsEventOnly(n.b)) return false;
  for (int x : n.list)
    if (!IsEventOnly(x)) return false;
  return true;
}

int Compiler::AndNodes(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  ExprNode n;
  n.op = Op::kAnd;
  n.a = a;
  n.b = b;
  n.type = VT::kBool;
  return out_->program.Add(std::move(n));
}

int Compiler::CompileCondition(const Expr& e, int var, std::string text, Condition* out) {
  // Split the top-level AND chain so that conjuncts about the current event
  // alone can be tested once per event, for all runs.
  std::vector<const Expr*> conj;
  std::function<void(const Expr&)> split = [&](const Expr& x) {
    if (x.kind == Expr::Kind::kBinary && x.op == "AND") {
      split(x.args[0]);
      split(x.args[1]);
    } else {
      conj.push_back(&x);
    }
  };
  split(e);
  for (const Expr* c : conj) {
    if (c->kind != Expr::Kind::kBinary || c->op != "=") continue;
    const Expr* ref = &c->args[0];
    const Expr* lit = &c->args[1];
    if (ref->kind != Expr::Kind::kRef) std::swap(ref, lit);
    if (ref->kind != Expr::Kind::kRef || !ref->qualifier.empty()) continue;
    if (lit->kind == Expr::Kind::kStringLit)
      out->equals.emplace_back(ref->name, "s:" + lit->text);
    else if (lit->kind == Expr::Kind::kIntLit)
      out->equals.emplace_back(ref->name, "i:" + std::to_string(lit->int_value));
  }
  for (const Expr* c : conj) {
    if (c->kind != Expr::Kind::kBinary) continue;
    const std::string& op = c->op;
    if (op != "<" && op != "<=" && op != ">" && op != ">=" && op != "=") continue;
    const Expr* ref = &c->args[0];
    const Expr* lit = &c->args[1];
    bool flipped = false;
    if (ref->kind != Expr::Kind::kRef) {
      std::swap(ref, lit);
      flipped = true;
    }
    if (ref->kind != Expr::Kind::kRef || !ref->qualifier.empty()) continue;
    double v;
    if (lit->kind == Expr::Kind::kIntLit)
      v = static_cast<double>(lit->int_value);
    else if (lit->kind == Expr::Kind::kDoubleLit)
      v = lit->double_value;
    else
      continue;
    // field OP v (with the sides swapped, the comparison turns around).
    std::string o = op;
    if (flipped) o = o == "<" ? ">" : o == "<=" ? ">=" : o == ">" ? "<" : o == ">=" ? "<=" : o;
    Condition::Range r;
    r.field = ref->name;
    if (o == "<" || o == "<=" || o == "=") {
      r.hi = v;
      r.hi_open = o == "<";
    }
    if (o == ">" || o == ">=" || o == "=") {
      r.lo = v;
      r.lo_open = o == ">";
    }
    out->ranges.push_back(r);
  }
  Scope s{ScopeKind::kDefine, var};
  int pre = -1, res = -1;
  bool failed = false;
  for (const Expr* c : conj) {
    VT t;
    int node = CompileExpr(*c, s, &t);
    if (node < 0) {
      failed = true;
      continue;
    }
    if (t != VT::kBool && t != VT::kNull) {
      d_.Error(c->span, std::string("a condition must be true or false; this is a ") + TypeName(t));
      failed = true;
      continue;
    }
    if (IsEventOnly(node))
      pre = AndNodes(pre, node);
    else
      res = AndNodes(res, node);
  }
  out->prefilter = pre;
  out->residual = res;
  out->var = var;
  out->text = std::move(text);
  return failed ? -1 : 0;
}

void Compiler::CompileEmit(const std::vector<EmitItem>& items, ScopeKind kind,
                           std::vector<EmitField>* out, bool* events) {
  std::set<std::string> names;
  for (const EmitItem& item : items) {
    if (item.events) {
      *events = true;
      continue;
    }
    EmitField f;
    f.name = item.alias.empty() ? Slice(item.expr.span) : item.alias;
    if (!names.insert(f.name).second) {
      d_.Error(item.span,
               "EMIT names '" + f.name + "' twice; give one of them another name with AS");
      continue;
    }
    VT t;
    f.expr = CompileExpr(item.expr, Scope{kind, -1}, &t);
    f.type = t;
    if (f.expr >= 0) out->push_back(std::move(f));
  }
}

}  // namespace cepheus::patterns::compiler
