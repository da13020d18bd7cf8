// Compiler pass 1: stages, structure, and which stages may precede which.
#include "patterns/compiler.h"

namespace cepheus::patterns::compiler {

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

}  // namespace cepheus::patterns::compiler
