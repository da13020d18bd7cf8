// Checker and NFA compiler: resolves every name against the stream schema,
// types every expression, and builds the position automaton (docs/architecture.md).
#include <re2/re2.h>

#include <algorithm>
#include <functional>
#include <set>

#include "common/hash.h"
#include "patterns/compiled.h"
#include "patterns/limits.h"
#include "patterns/parser.h"

namespace cepheus::patterns {
namespace {

constexpr int kMaxStates = 4096;
constexpr int kMaxRepeat = 1000;

using VT = Value::Type;

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

// ---- Glushkov fragments -----------------------------------------------------
struct Entry {
  int item;
  bool inherit;  // the contiguity is the one written before the enclosing element
  Contiguity op;
  std::vector<Guard> guards;
  uint64_t cont = 0, byp = 0;
  int until = -1;
  bool until_kills = false;
};
struct Exit {
  int item;
  std::vector<Guard> guards;
  uint64_t byp = 0;
  // A positive optional element was skipped after the last negation on the
  // way out. At the end of the pattern such a path completes at once, as
  // Flink's proceed to the final state does: the negation only guards the
  // stage that may still follow (`a -> !x -> c?` emits `a` when `a` arrives).
  bool open_tail = false;
  bool operator==(const Exit&) const = default;
};
struct NullPath {
  std::vector<Guard> guards;
  uint64_t byp = 0;
  bool operator==(const NullPath&) const = default;
};
struct Frag {
  std::vector<Entry> first;
  std::vector<Exit> last;
  std::vector<NullPath> nulls;  // empty: not nullable
};

template <typename T>
void AppendUnique(std::vector<T>& v, T x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(std::move(x));
}
std::vector<Guard> Concat(const std::vector<Guard>& a, const std::vector<Guard>& b) {
  std::vector<Guard> r = a;
  for (const auto& g : b) AppendUnique(r, g);
  return r;
}

class Compiler {
 public:
  Compiler(const PatternAst& ast, const SourceFile& file, const StreamCatalog& catalog,
           Diagnostics& diags)
      : ast_(ast), file_(file), catalog_(catalog), d_(diags) {}

  std::unique_ptr<CompiledPattern> Run();

 private:
  enum class ScopeKind { kDefine, kEmit, kTimeoutEmit };
  struct Scope {
    ScopeKind kind;
    int var = -1;  // DEFINE/UNTIL: the stage being defined
  };

  void CollectVars(const RegexNode& n);
  void CheckStructure(const RegexNode& n, bool is_root);
  // `loop_guards`: negations written right after this element; as in Flink
  // they also guard the gaps between its iterations (a loop's own edges).
  Frag Build(const RegexNode& n, const std::vector<Guard>& loop_guards = {});
  Frag BuildVar(const RegexNode& n, const std::vector<Guard>& loop_guards);
  Frag BuildGroup(const RegexNode& n, const std::vector<Guard>& loop_guards);
  Frag BuildBody(const RegexNode& n);
  // `between`: guards on the edges from one part to the next (group copies).
  Frag SeqOf(std::vector<Frag> parts, const std::vector<Contiguity>& ops,
             const std::vector<Guard>& between = {});
  static Frag Optional(Frag f) {
    AppendUnique(f.nulls, NullPath{});
    return f;
  }
  void Connect(const std::vector<Exit>& from, const std::vector<Entry>& to, Contiguity op,
               const NullPath& mid);
  int NewState(int var, const std::string& label);
  void ComputePrecedence();

  int CompileExpr(const Expr& e, const Scope& s, VT* type);
  int CompileAgg(const Expr& e, const Scope& s, VT* type);
  int CompileCondition(const Expr& e, int var, std::string text, Condition* out);
  bool IsEventOnly(int node) const;
  int AndNodes(int a, int b);
  void CompileEmit(const std::vector<EmitItem>& items, ScopeKind kind, std::vector<EmitField>* out,
                   bool* events);
  int VarWord(int var, const char* which);
  AggLayout::VarAggs::FieldAgg& FieldAggOf(int var, int field);
  int NewWord() { return out_->aggs.num_words++; }
  std::string Slice(SourceSpan s) const { return file_.text().substr(s.begin, s.end - s.begin); }
  void CheckPrecedes(int ref_var, const Scope& s, SourceSpan span);

  const PatternAst& ast_;
  const SourceFile& file_;
  const StreamCatalog& catalog_;
  Diagnostics& d_;
  std::unique_ptr<CompiledPattern> out_;
  const StreamInfo* stream_ = nullptr;
  std::map<std::string, int> var_index_;
  std::vector<SourceSpan> var_spans_;
  std::vector<int> define_of_var_;
  // may_precede_[v] = stages that can be matched before some occurrence of v.
  std::vector<std::set<int>> may_precede_;
  std::vector<std::set<int>> guard_context_;  // for negated stages
  bool too_many_states_ = false;
  struct PendingUntil {
    int cond;
    const Expr* expr;
    int var;
  };
  std::vector<PendingUntil> pending_until_;
};

int Compiler::NewState(int var, const std::string& label) {
  if (static_cast<int>(out_->states.size()) >= kMaxStates) {
    if (!too_many_states_)
      d_.Error(ast_.match.span, "the pattern unrolls to more than " + std::to_string(kMaxStates) +
                                    " states; use smaller repetition counts");
    too_many_states_ = true;
    return 0;
  }
  NfaState st;
  st.var = var;
  st.cond = var;  // condition i is stage i's DEFINE
  st.label = label;
  out_->states.push_back(std::move(st));
  return static_cast<int>(out_->states.size()) - 1;
}

void Compiler::CollectVars(const RegexNode& n) {
  if (n.kind == RegexNode::Kind::kVar || n.kind == RegexNode::Kind::kNeg) {
    if (!var_index_.count(n.name)) {
      var_index_[n.name] = static_cast<int>(out_->vars.size());
      out_->vars.push_back(n.name);
      var_spans_.push_back(n.span);
    }
  }
  for (const auto& c : n.children) CollectVars(c);
}

void Compiler::CheckStructure(const RegexNode& n, bool is_root) {
  if (n.gap_ms != 0) {
    if (n.kind != RegexNode::Kind::kVar) {
      d_.Error(n.gap_span, "WITHIN GAP applies to a single stage, not a group");
    } else if (n.gap_ms <= 0) {
      d_.Error(n.gap_span, "WITHIN GAP must be positive");
    }
  }
  if (n.quant.present) {
    const Quantifier& q = n.quant;
    if (q.max != Quantifier::kUnbounded && (q.max < 1 || q.min > q.max))
      d_.Error(q.span, "invalid repetition bounds {" + std::to_string(q.min) + "," +
                           std::to_string(q.max) + "}: need 0 <= min <= max and max >= 1");
    if (q.min > kMaxRepeat || q.max > kMaxRepeat)
      d_.Error(q.span, "repetition bounds above " + std::to_string(kMaxRepeat) +
                           " are not supported; use {n,} for an open bound");
    if (n.kind != RegexNode::Kind::kVar) {
      if (q.mode != Quantifier::Mode::kDefault)
        d_.Error(q.span, "greedy (+) and reluctant (?) modes apply to a single stage, not a group");
      if (q.until) d_.Error(q.span, "UNTIL applies to a single looping stage, not a group");
    } else if (q.until && q.max != Quantifier::kUnbounded && q.max <= 1) {
      d_.Error(q.span, "UNTIL needs a looping stage (+, *, {n,} or {n,m} with m > 1)");
    }
  }
  if (n.kind == RegexNode::Kind::kSeq) {
    for (size_t i = 0; i < n.children.size(); ++i) {
      const RegexNode& c = n.children[i];
      if (c.kind == RegexNode::Kind::kNeg) {
        if (i == 0)
          d_.Error(
              c.span,
              "a negation must follow a stage: a pattern or group cannot start with !" + c.name);
        else if (i + 1 == n.children.size() && !is_root)
          d_.Error(c.span, "a negation can end only the whole pattern, not a group");
      }
      CheckStructure(c, false);
    }
  } else {
    for (const auto& c : n.children) CheckStructure(c, false);
  }
}

void Compiler::Connect(const std::vector<Exit>& from, const std::vector<Entry>& to, Contiguity op,
                       const NullPath& mid) {
  for (const Exit& x : from) {
    for (const Entry& e : to) {
      Edge edge;
      edge.target = e.item;
      edge.op = e.inherit ? op : e.op;
      edge.guards = Concat(Concat(x.guards, mid.guards), e.guards);
      edge.continue_q = e.cont;
      edge.bypass_q = x.byp | mid.byp | e.byp;
      edge.until_cond = e.until;
      edge.until_kills = e.until_kills;
      AppendUnique(out_->states[static_cast<size_t>(x.item)].edges, std::move(edge));
    }
  }
}

Frag Compiler::SeqOf(std::vector<Frag> parts, const std::vector<Contiguity>& ops,
                     const std::vector<Guard>& between) {
  Frag result;
  std::vector<Exit> pending;
  std::vector<NullPath> prefix{NullPath{}};
  for (size_t i = 0; i < parts.size(); ++i) {
    Frag& f = parts[i];
    const bool first_part = i == 0;
    const Contiguity op = ops[i];
    for (const NullPath& np : prefix) {
      for (const Entry& e : f.first) {
        Entry ne = e;
        ne.guards = Concat(np.guards, e.guards);
        ne.byp |= np.byp;
        if (ne.inherit && !first_part) {
          ne.inherit = false;
          ne.op = op;
        }
        result.first.push_back(std::move(ne));
      }
    }
    Connect(pending, f.first, op, NullPath{between, 0});
    std::vector<Exit> next_pending = f.last;
    const bool positive = !f.first.empty();
    for (const Exit& x : pending)
      for (const NullPath& np : f.nulls)
        AppendUnique(next_pending,
                     Exit{x.item, Concat(x.guards, np.guards), x.byp | np.byp,
                          positive && np.guards.empty() && (x.open_tail || !x.guards.empty())});
    pending = std::move(next_pending);
    std::vector<NullPath> next_prefix;
    for (const NullPath& a : prefix)
      for (const NullPath& b : f.nulls)
        AppendUnique(next_prefix, NullPath{Concat(a.guards, b.guards), a.byp | b.byp});
    prefix = std::move(next_prefix);
  }
  result.last = std::move(pending);
  result.nulls = std::move(prefix);
  return result;
}

Frag Compiler::BuildVar(const RegexNode& n, const std::vector<Guard>& loop_guards) {
  const int var = var_index_.at(n.name);
  const Quantifier& q = n.quant;
  int lo = q.present ? q.min : 1;
  int hi = q.present ? q.max : 1;
  bool unbounded = hi == Quantifier::kUnbounded;
  int copies = unbounded ? std::max(lo, 1) : hi;
  copies = std::min(copies, kMaxRepeat);
  uint64_t qbit = 0;
  if (q.present && q.mode != Quantifier::Mode::kDefault) {
    if (out_->quants.size() >= kMaxPreferenceQuantifiers) {
      d_.Error(q.span, "at most " + std::to_string(kMaxPreferenceQuantifiers) +
                           " greedy or reluctant quantifiers per pattern");
    } else {
      qbit = uint64_t{1} << out_->quants.size();
      out_->quants.push_back(QuantInfo{q.mode, n.name, var, -1});
      // Flink applies greedy only where the count is open (not times(n)).
      if (q.mode == Quantifier::Mode::kGreedy && (unbounded || lo != hi)) out_->greedy_q |= qbit;
    }
  }
  int until = -1;
  if (q.until) {
    // Compiled once the automaton is known (name checks need stage order).
    until = static_cast<int>(out_->conditions.size());
    out_->conditions.push_back(Condition{});
    pending_until_.push_back({until, &*q.until, var});
    if (qbit) out_->quants.back().until = until;
  }
  std::vector<int> items;
  for (int k = 1; k <= copies; ++k) {
    std::string label = n.name;
    if (copies > 1 || unbounded) {
      label += "[" + std::to_string(k);
      if (unbounded && k == copies) label += "..";
      label += "]";
    }
    items.push_back(NewState(var, label));
    out_->states[static_cast<size_t>(items.back())].gap_ms = n.gap_ms;
  }
  const Contiguity inner = q.present ? q.inner : Contiguity::kRelaxed;
  auto add_loop_edge = [&](int from, int to) {
    Edge e;
    e.target = to;
    e.op = inner;
    e.continue_q = qbit;
    e.until_cond = until;
    e.until_kills = until >= 0;
    e.guards = loop_guards;
    AppendUnique(out_->states[static_cast<size_t>(from)].edges, std::move(e));
  };
  for (size_t k = 0; k + 1 < items.size(); ++k) add_loop_edge(items[k], items[k + 1]);
  if (unbounded) add_loop_edge(items.back(), items.back());
  Frag f;
  f.first.push_back(Entry{items[0], true, Contiguity::kRelaxed, {}, qbit, 0, until, false});
  for (int k = std::max(lo, 1); k <= copies; ++k)
    f.last.push_back(Exit{items[static_cast<size_t>(k - 1)], {}, qbit});
  if (lo == 0) f.nulls.push_back(NullPath{{}, qbit});
  return f;
}

Frag Compiler::BuildBody(const RegexNode& n) {
  if (n.kind == RegexNode::Kind::kAlt) {
    Frag f;
    for (const auto& c : n.children) {
      Frag b = Build(c);
      for (auto& e : b.first) f.first.push_back(std::move(e));
      for (auto& x : b.last) AppendUnique(f.last, std::move(x));
      for (auto& np : b.nulls) AppendUnique(f.nulls, std::move(np));
    }
    return f;
  }
  // kSeq
  std::vector<Frag> parts;
  std::vector<Contiguity> ops;
  auto guard_of = [&](size_t i) {
    Contiguity op = i < n.ops.size() ? n.ops[i] : Contiguity::kStrict;
    return Guard{var_index_.at(n.children[i].name), op == Contiguity::kStrict};
  };
  for (size_t i = 0; i < n.children.size(); ++i) {
    const RegexNode& c = n.children[i];
    Contiguity op = i < n.ops.size() ? n.ops[i] : Contiguity::kStrict;
    ops.push_back(op);
    if (c.kind == RegexNode::Kind::kNeg) {
      Frag g;
      g.nulls.push_back(NullPath{{guard_of(i)}, 0});
      parts.push_back(std::move(g));
    } else {
      std::vector<Guard> after;
      for (size_t j = i + 1; j < n.children.size() && n.children[j].kind == RegexNode::Kind::kNeg;
           ++j)
        AppendUnique(after, guard_of(j));
      parts.push_back(Build(c, after));
    }
  }
  return SeqOf(std::move(parts), ops);
}

Frag Compiler::BuildGroup(const RegexNode& n, const std::vector<Guard>& loop_guards) {
  const Quantifier& q = n.quant;
  RegexNode body = n;
  body.quant = Quantifier{};
  int lo = q.min;
  bool unbounded = q.max == Quantifier::kUnbounded;
  int copies = std::min(unbounded ? std::max(lo, 1) : q.max, kMaxRepeat);
  std::vector<Frag> c;
  for (int k = 0; k < copies && !too_many_states_; ++k) c.push_back(BuildBody(body));
  if (c.empty()) return Frag{};
  if (!c[0].nulls.empty()) {
    d_.Error(n.span, "a repeated group needs at least one mandatory stage");
    return Frag{};
  }
  const Contiguity inner = q.inner;
  if (unbounded) {
    // Loop back from the last copy to its own start.
    Connect(c.back().last, c.back().first, inner, NullPath{loop_guards, 0});
    std::vector<Contiguity> ops(c.size(), inner);
    Frag f = SeqOf(std::move(c), ops, loop_guards);
    return lo == 0 ? Optional(std::move(f)) : f;
  }
  // Copies beyond the minimum are nested optionals: c[lo] (c[lo+1] (...)?)?
  Frag tail;
  bool have_tail = false;
  for (int k = copies - 1; k >= std::max(lo, 0); --k) {
    if (k < lo) break;
    if (!have_tail) {
      tail = Optional(std::move(c[static_cast<size_t>(k)]));
      have_tail = true;
    } else {
      std::vector<Frag> two;
      two.push_back(std::move(c[static_cast<size_t>(k)]));
      two.push_back(std::move(tail));
      tail = Optional(SeqOf(std::move(two), {inner, inner}, loop_guards));
    }
  }
  std::vector<Frag> parts;
  for (int k = 0; k < lo; ++k) parts.push_back(std::move(c[static_cast<size_t>(k)]));
  if (have_tail) parts.push_back(std::move(tail));
  std::vector<Contiguity> ops(parts.size(), inner);
  return SeqOf(std::move(parts), ops, loop_guards);
}

Frag Compiler::Build(const RegexNode& n, const std::vector<Guard>& loop_guards) {
  if (too_many_states_) return Frag{};
  switch (n.kind) {
    case RegexNode::Kind::kVar:
      return BuildVar(n, loop_guards);
    case RegexNode::Kind::kNeg:
      return Frag{};  // handled by the enclosing sequence
    case RegexNode::Kind::kSeq:
    case RegexNode::Kind::kAlt:
      return n.quant.present ? BuildGroup(n, loop_guards) : BuildBody(n);
  }
  return Frag{};
}

void Compiler::ComputePrecedence() {
  const size_t ns = out_->states.size();
  std::vector<std::set<int>> pre(ns);
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t s = 0; s < ns; ++s) {
      std::set<int> flow = pre[s];
      if (out_->states[s].var >= 0) flow.insert(out_->states[s].var);
      for (const Edge& e : out_->states[s].edges) {
        auto& dst = pre[static_cast<size_t>(e.target)];
        size_t before = dst.size();
        dst.insert(flow.begin(), flow.end());
        if (dst.size() != before) changed = true;
      }
    }
  }
  may_precede_.assign(out_->vars.size(), {});
  guard_context_.assign(out_->vars.size(), {});
  for (size_t s = 1; s < ns; ++s) {
    const NfaState& st = out_->states[s];
    may_precede_[static_cast<size_t>(st.var)].insert(pre[s].begin(), pre[s].end());
    std::set<int> ctx = pre[s];
    ctx.insert(st.var);
    for (const Edge& e : st.edges)
      for (const Guard& g : e.guards)
        guard_context_[static_cast<size_t>(g.cond)].insert(ctx.begin(), ctx.end());
    for (const FinalEdge& f : st.finals)
      for (const Guard& g : f.guards)
        guard_context_[static_cast<size_t>(g.cond)].insert(ctx.begin(), ctx.end());
  }
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

std::unique_ptr<CompiledPattern> Compiler::Run() {
  out_ = std::make_unique<CompiledPattern>();
  out_->name = ast_.name;
  out_->stream = ast_.stream;
  out_->source_text = Slice(ast_.span);
  {
    std::string norm;
    for (char c : out_->source_text)
      if (!std::isspace(static_cast<unsigned char>(c))) norm.push_back(c);
    out_->fingerprint = StableHash(norm);
  }
  if (ast_.stream.empty()) {
    d_.Error(ast_.name_span, "pattern '" + ast_.name + "' has no FROM clause naming its stream");
    return nullptr;
  }
  auto sit = catalog_.find(ast_.stream);
  if (sit == catalog_.end()) {
    std::string known;
    for (const auto& [k, v] : catalog_) known += (known.empty() ? "" : ", ") + k;
    d_.Error(ast_.stream_span, "unknown stream '" + ast_.stream +
                                   "' (streams: " + (known.empty() ? "none" : known) + ")");
    return nullptr;
  }
  stream_ = &sit->second;
  out_->schema = &stream_->schema;
  if (ast_.match.children.empty() && ast_.match.kind != RegexNode::Kind::kVar) {
    d_.Error(ast_.name_span, "pattern '" + ast_.name + "' has no MATCH clause");
    return nullptr;
  }
  // Partition key.
  std::vector<std::string> keys = ast_.partition_by.empty() ? stream_->key : ast_.partition_by;
  for (size_t i = 0; i < keys.size(); ++i) {
    int f = stream_->schema.IndexOf(keys[i]);
    if (f < 0) {
      d_.Error(
          ast_.partition_spans.empty() ? ast_.stream_span : ast_.partition_spans[0],
          "PARTITION BY names '" + keys[i] + "', which stream '" + ast_.stream + "' does not have");
      continue;
    }
    out_->partition_fields.push_back(f);
    out_->partition_names.push_back(keys[i]);
  }
  if (ast_.within && ast_.within->millis() <= 0)
    d_.Error(ast_.name_span, "WITHIN must be positive");
  if (ast_.max_gap && ast_.max_gap->millis() <= 0)
    d_.Error(ast_.name_span, "MAX GAP must be positive");
  out_->within = ast_.within;
  out_->max_gap = ast_.max_gap;

  CollectVars(ast_.match);
  out_->aggs.vars.resize(out_->vars.size());
  out_->conditions.resize(out_->vars.size());
  CheckStructure(ast_.match, true);
  if (d_.HasErrors()) return nullptr;

  // Build the automaton.
  out_->states.push_back(NfaState{-1, -1, "start", {}, {}, false});
  RegexNode root = ast_.match;
  if (root.kind == RegexNode::Kind::kVar) {
    RegexNode s;
    s.kind = RegexNode::Kind::kSeq;
    s.ops.push_back(Contiguity::kStrict);
    s.span = root.span;
    s.children.push_back(std::move(root));
    root = std::move(s);
  }
  Frag top = Build(root);
  if (too_many_states_) return nullptr;
  if (!top.nulls.empty()) {
    d_.Error(ast_.match.span,
             "this MATCH can be satisfied by no event at all; make at least one stage mandatory");
    return nullptr;
  }
  for (const Entry& e : top.first) {
    Edge edge;
    edge.target = e.item;
    edge.op = Contiguity::kAny;
    edge.guards = e.guards;
    edge.continue_q = e.cont;
    edge.bypass_q = e.byp;
    edge.until_cond = e.until;
    AppendUnique(out_->states[0].edges, std::move(edge));
  }
  for (const Edge& e : out_->states[0].edges) {
    const NfaState& first = out_->states[static_cast<size_t>(e.target)];
    const int v = first.var;
    if (first.gap_ms != 0) {
      d_.Error(ast_.match.span, "stage '" + out_->vars[static_cast<size_t>(v)] +
                                    "' has WITHIN GAP but can start a match: the gap is measured "
                                    "from the event before it");
      return nullptr;
    }
  }
  for (const NfaState& st : out_->states)
    if (st.edges.size() > kMaxEdgesPerState || st.finals.size() > kMaxFinalsPerState) {
      d_.Error(ast_.match.span, "the pattern is too ambiguous: state " + st.label +
                                    " has more than " + std::to_string(kMaxEdgesPerState) +
                                    " ways to continue");
      return nullptr;
    }
  for (const Exit& x : top.last) {
    NfaState& st = out_->states[static_cast<size_t>(x.item)];
    const bool at_once = x.guards.empty() || x.open_tail;
    AppendUnique(st.finals, FinalEdge{at_once ? std::vector<Guard>{} : x.guards});
    if (at_once) st.has_unguarded_final = true;
  }
  bool needs_deadline = false;
  for (NfaState& st : out_->states) {
    // A state that completes at once needs no absence check as well: the
    // same events would complete again.
    if (st.has_unguarded_final)
      std::erase_if(st.finals, [](const FinalEdge& f) { return !f.guards.empty(); });
    for (const FinalEdge& f : st.finals)
      for (const Guard& g : f.guards)
        if (!g.strict) needs_deadline = true;
  }
  for (NfaState& st : out_->states) {
    // A run here can only go on within the longest gap of its next stages;
    // a final that waits out an absence keeps it to the pattern's window.
    int64_t wait = 0;
    bool bounded = !st.edges.empty() && (st.has_unguarded_final || st.finals.empty());
    for (const Edge& e : st.edges) {
      const int64_t g = out_->states[static_cast<size_t>(e.target)].gap_ms;
      if (g == 0) bounded = false;
      wait = std::max(wait, g);
    }
    st.wait_ms = bounded ? wait : 0;
  }
  if (needs_deadline && !out_->has_deadline())
    d_.Error(ast_.match.span,
             "a pattern that ends with '-> !x' (absence) needs WITHIN (or MAX GAP): "
             "the match is emitted when that time has passed without x");
  ComputePrecedence();

  // Conditions.
  std::map<std::string, const Define*> defs;
  for (const Define& d : ast_.defines) {
    if (!var_index_.count(d.name)) {
      d_.Error(d.span, "DEFINE '" + d.name + "' names no stage of the MATCH clause");
      continue;
    }
    if (!defs.emplace(d.name, &d).second)
      d_.Error(d.span, "stage '" + d.name + "' is defined twice");
  }
  for (size_t v = 0; v < out_->vars.size(); ++v) {
    Condition c;
    auto it = defs.find(out_->vars[v]);
    if (it == defs.end()) {
      c.var = static_cast<int>(v);
      c.text = "true";
    } else {
      CompileCondition(it->second->condition, static_cast<int>(v),
                       Slice(it->second->condition.span), &c);
    }
    out_->conditions[v] = c;
  }
  for (const PendingUntil& pu : pending_until_) {
    Condition c;
    CompileCondition(*pu.expr, pu.var, "UNTIL " + Slice(pu.expr->span), &c);
    out_->conditions[static_cast<size_t>(pu.cond)] = c;
  }

  // Skip strategy.
  out_->skip = ast_.skip.kind;
  if (ast_.skip.kind == SkipStrategy::Kind::kToFirst ||
      ast_.skip.kind == SkipStrategy::Kind::kToLast) {
    auto it = var_index_.find(ast_.skip.var);
    if (it == var_index_.end())
      d_.Error(ast_.skip.span,
               "SKIP TO names '" + ast_.skip.var + "', which is not a stage of the MATCH clause");
    else
      out_->skip_var = it->second;
    out_->skip_strict = ast_.skip.strict;
    // A stage that can start the match: skipping to it may skip nothing at all
    // (Flink guards the same case only with throwExceptionOnMiss()).
    bool can_start = false;
    for (const Edge& e : out_->states[0].edges)
      if (out_->states[static_cast<size_t>(e.target)].var == out_->skip_var) can_start = true;
    if (it != var_index_.end() && can_start && ast_.skip.kind == SkipStrategy::Kind::kToFirst)
      d_.Warning(ast_.skip.span,
                 "SKIP TO FIRST " + ast_.skip.var + ": '" + ast_.skip.var +
                     "' can be a match's first event, and then nothing is skipped" +
                     (ast_.skip.strict ? " (STRICT reports those matches as errors)"
                                       : " (add STRICT to report those matches instead)"));
  }

  // Projections.
  CompileEmit(ast_.emit, ScopeKind::kEmit, &out_->emit, &out_->emit_events);
  out_->has_timeout_emit = ast_.has_timeout_emit;
  CompileEmit(ast_.timeout_emit, ScopeKind::kTimeoutEmit, &out_->timeout_emit,
              &out_->timeout_emit_events);
  if (ast_.has_timeout_emit && !out_->has_deadline())
    d_.Warning(ast_.name_span, "ON TIMEOUT EMIT without WITHIN or MAX GAP never fires");
  if (!out_->has_deadline())
    d_.Warning(
        ast_.name_span,
        "pattern '" + ast_.name +
            "' has no WITHIN: partial matches are kept until they complete or the input ends");
  if (ast_.skip.kind != SkipStrategy::Kind::kNoSkip) {
    // Flink's rule, kept: a completed match waits for every earlier-started
    // partial match of its key to end, so an alert can be late by that much.
    const std::string bound =
        ast_.within ? "up to WITHIN " + FormatDuration(*ast_.within) + " of event time"
                    : "until those partial matches end (no WITHIN: possibly until the input ends)";
    d_.Warning(ast_.skip.span,
               "with AFTER MATCH SKIP, a completed match is held until every earlier-started "
               "partial match of its key has ended: an alert can be delayed " +
                   bound + " (counted as held matches in the run summary)");
  }
  if (d_.HasErrors()) return nullptr;
  return std::move(out_);
}

}  // namespace

std::unique_ptr<CompiledPattern> CompilePattern(const PatternAst& ast, const SourceFile& file,
                                                const StreamCatalog& catalog, Diagnostics& diags) {
  Diagnostics local;
  Compiler c(ast, file, catalog, local);
  auto r = c.Run();
  diags.Append(local);
  return r;
}

Result<std::vector<std::shared_ptr<const CompiledPattern>>> CompilePatternFile(
    const SourceFile& file, const StreamCatalog& catalog, std::string* warnings) {
  Diagnostics diags;
  std::vector<PatternAst> asts = ParsePatterns(file, diags);
  std::vector<std::shared_ptr<const CompiledPattern>> out;
  std::set<std::string> names;
  for (const PatternAst& ast : asts) {
    if (!names.insert(ast.name).second) {
      diags.Error(ast.name_span, "pattern '" + ast.name + "' is defined twice");
      continue;
    }
    auto p = CompilePattern(ast, file, catalog, diags);
    if (p) out.push_back(std::move(p));
  }
  if (diags.HasErrors()) return Status::InvalidArgument(diags.Render(file));
  if (warnings) *warnings = diags.Render(file);
  return out;
}

}  // namespace cepheus::patterns
