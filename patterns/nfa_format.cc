// Text and Graphviz renderings of a compiled pattern, for `cepheus check`.
#include <sstream>

#include "patterns/compiled.h"

namespace cepheus::patterns {
namespace {

const char* OpName(Contiguity c) {
  switch (c) {
    case Contiguity::kStrict:
      return "next";
    case Contiguity::kRelaxed:
      return "followed-by";
    case Contiguity::kAny:
      return "followed-by-any";
  }
  return "?";
}

std::string GuardText(const CompiledPattern& p, const std::vector<Guard>& guards) {
  std::string s;
  for (const Guard& g : guards) {
    if (!s.empty()) s += ", ";
    s += (g.strict ? "not-next " : "not-followed-by ") + p.vars[static_cast<size_t>(g.cond)];
  }
  return s;
}

std::string QuantText(const CompiledPattern& p, uint64_t bits) {
  std::string s;
  for (size_t i = 0; i < p.quants.size(); ++i)
    if (bits >> i & 1) s += (s.empty() ? "" : ",") + p.quants[i].label;
  return s;
}

std::string EdgeText(const CompiledPattern& p, const Edge& e, bool from_start) {
  std::string s = from_start ? "start" : OpName(e.op);
  if (!e.guards.empty()) s += " unless " + GuardText(p, e.guards);
  if (e.until_cond >= 0)
    s += " until " + p.conditions[static_cast<size_t>(e.until_cond)].text.substr(6);
  if (e.continue_q) s += " [stays in " + QuantText(p, e.continue_q) + "]";
  if (e.bypass_q) s += " [leaves " + QuantText(p, e.bypass_q) + "]";
  return s;
}

std::string Escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r.push_back('\\');
    r.push_back(c);
  }
  return r;
}

}  // namespace

std::string CompiledPattern::ToText() const {
  std::ostringstream o;
  o << "pattern " << name << " on stream " << stream << ", partitioned by ";
  if (partition_names.empty()) o << "(nothing: one global partition)";
  for (size_t i = 0; i < partition_names.size(); ++i) o << (i ? ", " : "") << partition_names[i];
  o << "\n";
  if (within) o << "  within " << FormatDuration(*within) << "\n";
  if (max_gap) o << "  max gap " << FormatDuration(*max_gap) << "\n";
  static const char* kSkip[] = {"no skip", "skip to next event", "skip past last event",
                                "skip to first", "skip to last"};
  o << "  after match: " << kSkip[static_cast<int>(skip)];
  if (skip_var >= 0) o << " " << vars[static_cast<size_t>(skip_var)];
  o << "\n  stages:\n";
  for (size_t v = 0; v < vars.size(); ++v) {
    const Condition& c = conditions[v];
    o << "    " << vars[v] << ": " << c.text;
    if (c.prefilter >= 0 && c.residual >= 0)
      o << "   (per event + per run)";
    else if (c.residual >= 0)
      o << "   (per run)";
    else if (c.prefilter >= 0)
      o << "   (per event)";
    o << "\n";
  }
  o << "  states:\n";
  for (size_t s = 0; s < states.size(); ++s) {
    const NfaState& st = states[s];
    o << "    " << s << " " << st.label << "\n";
    for (const Edge& e : st.edges)
      o << "      -> " << e.target << " " << states[static_cast<size_t>(e.target)].label << "  ("
        << EdgeText(*this, e, s == 0) << ")\n";
    for (const FinalEdge& f : st.finals) {
      o << "      -> MATCH";
      if (!f.guards.empty())
        o << "  (at the deadline, unless " << GuardText(*this, f.guards) << ")";
      o << "\n";
    }
  }
  return o.str();
}

std::string CompiledPattern::ToDot() const {
  std::ostringstream o;
  o << "digraph \"" << Escape(name) << "\" {\n  rankdir=LR;\n  node [shape=circle];\n";
  o << "  s0 [label=\"start\", shape=point, width=0.2];\n";
  o << "  match [label=\"MATCH\", shape=doublecircle];\n";
  for (size_t s = 1; s < states.size(); ++s)
    o << "  s" << s << " [label=\"" << Escape(states[s].label) << "\"];\n";
  for (size_t s = 0; s < states.size(); ++s) {
    for (const Edge& e : states[s].edges)
      o << "  s" << s << " -> s" << e.target << " [label=\"" << Escape(EdgeText(*this, e, s == 0))
        << "\"" << (e.op == Contiguity::kStrict && s != 0 ? ", style=bold" : "") << "];\n";
    for (const FinalEdge& f : states[s].finals)
      o << "  s" << s << " -> match"
        << (f.guards.empty()
                ? ""
                : " [style=dashed, label=\"unless " + Escape(GuardText(*this, f.guards)) + "\"]")
        << ";\n";
  }
  o << "}\n";
  return o.str();
}

}  // namespace cepheus::patterns
