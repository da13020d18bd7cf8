// Compiler pass 2: the position automaton (docs/architecture.md).
#include "patterns/compiler.h"

#include <algorithm>
#include <string>

namespace cepheus::patterns::compiler {

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

}  // namespace cepheus::patterns::compiler
