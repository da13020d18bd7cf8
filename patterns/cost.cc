#include "patterns/cost.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "common/time_types.h"

namespace cepheus::patterns {
namespace {

// Per-item sizes of the runtime (engine/nfa): a run with its aggregate
// words, a node of the shared buffer, a row with its fields (strings taken
// as 24 bytes of text each). Estimates, stated in the output.
double RunBytes(const CompiledPattern& p) { return 80.0 + 8.0 * p.aggs.num_words; }
constexpr double kNodeBytes = 48;
double RowBytes(const CompiledPattern& p) {
  double b = 48;
  if (p.schema)
    for (const Field& f : p.schema->fields()) b += 8 + (f.type == FieldType::kString ? 24 : 0);
  return b;
}

std::string Number(double v) {
  if (std::isinf(v) || v >= 1e15) return "more than 10^15";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string Bytes(double b) {
  if (std::isinf(b) || b >= 1e15) return "more than 1 PB";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

}  // namespace

CostBound BoundCost(const CompiledPattern& p, const CostOptions& o) {
  CostBound out;
  const size_t s_count = p.states.size();
  // reach[i][j]: state j can be entered from state i by one or more takes.
  std::vector<std::vector<char>> reach(s_count, std::vector<char>(s_count, 0));
  for (size_t i = 0; i < s_count; ++i) {
    std::vector<size_t> stack{i};
    while (!stack.empty()) {
      const size_t at = stack.back();
      stack.pop_back();
      for (const Edge& e : p.states[at].edges) {
        const size_t t = static_cast<size_t>(e.target);
        if (!reach[i][t]) {
          reach[i][t] = 1;
          stack.push_back(t);
        }
      }
    }
  }
  auto in_cycle = [&](size_t i) { return reach[i][i] != 0; };
  auto same_loop = [&](size_t a, size_t b) { return reach[a][b] && reach[b][a]; };
  // Whether no event can enter both t1 and t2 (their conditions require
  // different literals of one field).
  auto disjoint = [&](int t1, int t2) {
    const int c1 = p.states[static_cast<size_t>(t1)].cond;
    const int c2 = p.states[static_cast<size_t>(t2)].cond;
    if (c1 < 0 || c2 < 0) return false;
    const Condition& a = p.conditions[static_cast<size_t>(c1)];
    const Condition& b = p.conditions[static_cast<size_t>(c2)];
    for (const auto& [f1, v1] : a.equals)
      for (const auto& [f2, v2] : b.equals)
        if (f1 == f2 && v1 != v2) return true;
    // Intervals on one numeric field that do not meet.
    for (const auto& ra : a.ranges)
      for (const auto& rb : b.ranges) {
        if (ra.field != rb.field) continue;
        const bool below = ra.hi < rb.lo || (ra.hi == rb.lo && (ra.hi_open || rb.lo_open));
        const bool above = rb.hi < ra.lo || (rb.hi == ra.lo && (rb.hi_open || ra.lo_open));
        if (below || above) return true;
      }
    return false;
  };
  // How many of a state's next states one event can enter at once.
  auto overlap = [&](const std::set<int>& targets) {
    size_t most = 0;
    for (int t : targets) {
      size_t k = 0;
      for (int u : targets) k += (t == u || !disjoint(t, u)) ? 1 : 0;
      most = std::max(most, k);
    }
    return most;
  };
  // Loops (strongly connected groups of states) and what one event can do
  // to a run in them: without skip till any or overlapping next states, a
  // run extends and leaves at most one version behind per event (a choice
  // of length: n); otherwise it can split each time (base^n). Outside
  // loops: the states entered by skip till any (a choice of event: n) and
  // the branch points (their fan-out).
  std::vector<size_t> loop_heads;  // one state per loop
  std::vector<double> loop_base;   // 0: linear; else the exponential's base
  std::set<int> any_targets;
  double branches = 1;
  bool all_strict = true;
  std::string loop_label, any_label;
  std::vector<std::set<int>> targets_of(s_count);
  std::vector<bool> waits_of(s_count, false);
  for (size_t i = 0; i < s_count; ++i) {
    const NfaState& st = p.states[i];
    for (const Edge& e : st.edges) targets_of[i].insert(e.target);
    // A final that waits out an absence ('-> !x' at the end) keeps the run
    // until its deadline, whatever comes.
    for (const FinalEdge& f : st.finals)
      for (const Guard& g : f.guards)
        if (!g.strict) waits_of[i] = true;
  }
  for (size_t i = 0; i < s_count; ++i) {
    const NfaState& st = p.states[i];
    if (in_cycle(i)) {
      bool known = false;
      for (size_t h : loop_heads) known = known || same_loop(h, i);
      if (!known) {
        loop_heads.push_back(i);
        double base = 0;
        for (size_t j = 0; j < s_count; ++j) {
          if (!same_loop(i, j)) continue;
          bool any = false;
          for (const Edge& e : p.states[j].edges)
            if (e.op == Contiguity::kAny && same_loop(i, static_cast<size_t>(e.target))) any = true;
          const size_t k = overlap(targets_of[j]);
          if (any) base = std::max(base, 2.0 * static_cast<double>(std::max<size_t>(1, k)));
          if (k >= 2) base = std::max(base, static_cast<double>(k + 1));
        }
        loop_base.push_back(base);
        if (loop_label.empty()) loop_label = st.label;
      }
    }
    for (const Edge& e : st.edges) {
      if (i == 0) continue;  // the start state's contiguity means nothing
      if (e.op != Contiguity::kStrict) all_strict = false;
      if (e.op == Contiguity::kAny && !same_loop(i, static_cast<size_t>(e.target))) {
        any_targets.insert(e.target);
        if (any_label.empty()) any_label = p.states[static_cast<size_t>(e.target)].label;
      }
    }
    if (waits_of[i]) all_strict = false;
    const size_t options = targets_of[i].size() + (waits_of[i] && !targets_of[i].empty() ? 1 : 0);
    if (!in_cycle(i) && options >= 2) branches *= static_cast<double>(options);
  }
  const double stages = static_cast<double>(std::max<size_t>(1, s_count - 1));
  out.run_bytes = RunBytes(p);
  out.node_bytes = kNodeBytes;
  out.row_bytes = RowBytes(p);
  const bool acyclic_strict = loop_heads.empty() && any_targets.empty() && all_strict;
  if (acyclic_strict) {
    // Every event must advance a run or end it: a run lives at most as many
    // events as the pattern has stages, so at most that many runs (times
    // the branch points) are live, window or not.
    out.bounded = true;
    out.runs = stages * branches;
    out.formula = Number(out.runs);
    out.reason = "strict contiguity: a run lives at most " + Number(stages) + " events";
    out.capped_runs = std::min(out.runs, static_cast<double>(o.max_runs_per_key));
    out.bytes =
        out.capped_runs * (out.run_bytes + stages * out.node_bytes) + stages * out.row_bytes;
    return out;
  }
  if (!p.within) {
    out.bounded = false;
    std::string why;
    if (!loop_label.empty())
      why = "the looping stage '" + loop_label + "' takes events without end";
    else if (!any_label.empty())
      why = "skip till any ('->>' before '" + any_label + "') branches on every matching event";
    else
      why = "'->' keeps one partial match per start event until it completes";
    out.reason = "no WITHIN: " + why +
                 (p.max_gap ? " (MAX GAP ends runs only when the key pauses that long)" : "") +
                 "; add WITHIN to bound it";
    return out;
  }
  out.bounded = true;
  const double window_s = static_cast<double>(p.within->millis()) / 1000.0;
  out.n = o.events_in_window > 0
              ? o.events_in_window
              : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.key_rate * window_s)));
  const double n = static_cast<double>(out.n);
  // Starts: any event in the window may start a run. Versions per start: a
  // loop adds a choice of length (n), or of subset (2^n) under skip till
  // any; each state entered by skip till any, a choice of event (n); each
  // branch point, its fan-out.
  int n_exp = 1, two_exp = 0;
  double exp_base = 1;  // the product of the exponential loops' bases
  for (double base : loop_base) {
    if (base > 0) {
      ++two_exp;
      exp_base *= base;
    } else {
      ++n_exp;
    }
  }
  n_exp += static_cast<int>(any_targets.size());
  out.runs = branches * std::pow(n, n_exp) * std::pow(exp_base, n);
  std::string f = branches > 1 ? Number(branches) + " x " : "";
  f += n_exp == 1 ? "n" : "n^" + std::to_string(n_exp);
  if (two_exp) f += " x " + Number(exp_base) + "^n";
  out.formula = f;
  std::string why = "one run per start event";
  if (!loop_heads.empty())
    why += two_exp ? ", a split per event in a loop (skip till any, or next stages one event "
                     "can both enter)"
                   : ", a choice of length per loop";
  if (!any_targets.empty()) why += ", a choice of event per '->>'";
  out.reason = why;
  out.capped_runs = std::min(out.runs, static_cast<double>(o.max_runs_per_key));
  // Events a run holds: at most one per stage, or up to n with loops.
  const double path = loop_heads.empty() ? stages : n;
  // Nodes: without skip till any, the runs of one start share one chain
  // (a loop's versions are prefixes of each other), so at most one chain per
  // start; with it, every run may hold its own path.
  const bool any = !any_targets.empty() || two_exp > 0;
  const double holders = any ? out.capped_runs : std::min(out.capped_runs, n);
  out.bytes = out.capped_runs * out.run_bytes + holders * path * out.node_bytes + n * out.row_bytes;
  return out;
}

double RunStateBytes(const CompiledPattern& p) {
  return RunBytes(p) + static_cast<double>(std::max<size_t>(1, p.states.size() - 1)) * kNodeBytes;
}

std::string FormatCost(const CompiledPattern& p, const CostBound& b, const CostOptions& o) {
  std::string s = "pattern " + p.name + " (stream " + p.stream + "): ";
  if (!b.bounded) {
    s += "unbounded -- " + b.reason + ". At run time limits.max_runs_per_key (" +
         std::to_string(o.max_runs_per_key) +
         ") caps its partial matches per key; cuts are counted (cepheus_runs_dropped_total).\n";
    return s;
  }
  if (b.n > 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%g", o.key_rate);
    s += "WITHIN " + FormatDuration(*p.within) + " at " + rate +
         " event(s)/s per key: n = " + std::to_string(b.n) + " events per key in a window\n";
  } else {
    s += b.reason + "\n";
  }
  s += "  live partial matches per key <= " + b.formula;
  if (b.n > 0 && b.formula != Number(b.runs)) s += " = " + Number(b.runs);
  s += " (" + (b.n > 0 ? b.reason : std::string("independent of the window")) + ")";
  if (b.runs > b.capped_runs)
    s += "\n  capped at " + std::to_string(o.max_runs_per_key) +
         " per key by the limits (max_runs_per_key, or the pattern's own budget): more are "
         "cut and counted";
  s += "\n  state per key <= about " + Bytes(b.bytes) + " (" + Number(b.capped_runs) + " runs x " +
       Number(b.run_bytes) + " B, buffer nodes x " + Number(b.node_bytes) + " B, events x " +
       Number(b.row_bytes) + " B)\n";
  return s;
}

}  // namespace cepheus::patterns
