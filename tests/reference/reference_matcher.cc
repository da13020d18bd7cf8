#include "tests/reference/reference_matcher.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>

namespace cepheus::testing {
namespace {

using patterns::Contiguity;
using patterns::PatternAst;
using patterns::Quantifier;
using patterns::RegexNode;
using patterns::SkipStrategy;

// kProbeWait: which stages can come next (for the wait a WITHIN GAP allows).
enum class Mode { kNormal, kProbeTake, kProbeFinal, kProbeAlive, kProbeWait };

struct PGuard {
  int var;
  bool strict;
};

// What a kProbeWait probe finds about the ways on from a prefix.
struct Wait {
  int64_t longest_gap = 0;
  bool unbounded_stage = false;  // a next stage without WITHIN GAP
  bool absence_final = false, final_at_once = false;
};

struct Ctx {
  std::vector<std::pair<int, int>> path;
  int last = -1;
  bool at_start = true;
  Contiguity op = Contiguity::kAny;
  std::vector<PGuard> guards;
  // An optional stage was skipped since the last negation: at the end of the
  // pattern the negations no longer matter (Flink proceeds to the final state).
  bool open_tail = false;
  std::vector<std::function<bool(int)>> greedy_kills;  // events that end this branch
  Mode mode = Mode::kNormal;
  int probe_pos = -1;  // kProbeTake: the position to take; kProbeAlive: first pos >= deadline
  bool* found = nullptr;
  struct Wait* wait = nullptr;
};

using Cont = std::function<void(Ctx)>;

struct Completion {
  RefMatch m;
  int start;
  std::tuple<int, int, int64_t> key;
};

class Ref {
 public:
  Ref(const PatternAst& ast, const patterns::CompiledPattern& p, const std::vector<RowPtr>& ev,
      bool timeouts)
      : ast_(ast), p_(p), ev_(ev), timeouts_(timeouts) {
    for (size_t i = 0; i < p.vars.size(); ++i) var_[p.vars[i]] = static_cast<int>(i);
  }

  std::vector<RefMatch> Run() {
    RegexNode root = ast_.match;
    Ctx c;
    Enum(root, c, [this](Ctx x) { Final(std::move(x)); });
    return Select();
  }

 private:
  int N() const { return static_cast<int>(ev_.size()); }
  int64_t Ts(int i) const { return ev_[static_cast<size_t>(i)]->time().millis(); }

  std::vector<uint64_t> Aggs(const std::vector<std::pair<int, int>>& path) const {
    std::vector<uint64_t> w(static_cast<size_t>(p_.aggs.num_words), 0);
    for (auto [pos, var] : path) p_.aggs.Update(w.data(), var, *ev_[static_cast<size_t>(pos)]);
    return w;
  }
  bool Cond(int c, int pos, const std::vector<std::pair<int, int>>& path) const {
    const auto& cd = p_.conditions[static_cast<size_t>(c)];
    auto w = Aggs(path);
    patterns::EvalContext ctx{ev_[static_cast<size_t>(pos)].get(), w.data(), cd.var};
    if (cd.prefilter >= 0 && !p_.program.Test(cd.prefilter, ctx)) return false;
    return cd.residual < 0 || p_.program.Test(cd.residual, ctx);
  }
  int64_t Deadline(const Ctx& c) const {
    int64_t d = INT64_MAX;
    if (c.path.empty()) return d;
    if (p_.within) d = std::min(d, Ts(c.path.front().first) + p_.within->millis());
    if (p_.max_gap) d = std::min(d, Ts(c.last) + p_.max_gap->millis());
    return d;
  }
  // The deadline of a prefix that waits for its next stage: also the latest
  // time any next stage's WITHIN GAP still allows.
  int64_t PrefixDeadline(const Ctx& c, const std::function<void(Ctx)>& k) const {
    int64_t d = Deadline(c);
    Wait w;
    Ctx probe = c;
    probe.mode = Mode::kProbeWait;
    probe.wait = &w;
    k(probe);
    const bool bounded =
        w.longest_gap > 0 && !w.unbounded_stage && !(w.absence_final && !w.final_at_once);
    if (bounded) d = std::min(d, Ts(c.last) + w.longest_gap);
    return d;
  }
  int FirstAtOrAfter(int64_t d) const {
    for (int i = 0; i < N(); ++i)
      if (Ts(i) >= d) return i;
    return N();
  }

  // Can stage `var` take position p as the next positive item of `c`?
  // `first_iter`: use c.op and c.guards; else the loop's inner contiguity.
  // Does not check preferences (greedy/reluctant) or the window.
  bool Takeable(const Ctx& c, int var, int until, bool between_iters, Contiguity op, int p,
                bool check_cond) const {
    if (p <= c.last) return false;
    auto takeable_at = [&](int r) {
      if (until >= 0 && Cond(until, r, c.path)) return false;
      return Cond(var, r, c.path);
    };
    if (!c.at_start) {
      if (op == Contiguity::kStrict && p != c.last + 1) return false;
      if (op == Contiguity::kRelaxed)
        for (int r = c.last + 1; r < p; ++r)
          if (takeable_at(r)) return false;
      for (const PGuard& g : c.guards) {
        if (g.strict) {
          // Not-next looks at the event right after the last take; an alive
          // probe (check_cond false) sees only events before its deadline p.
          int nx = c.last + 1;
          if ((check_cond ? nx <= p : nx < p) && nx < N() && Cond(g.var, nx, c.path)) return false;
        } else {
          for (int r = c.last + 1; r < p; ++r)
            if (Cond(g.var, r, c.path)) return false;
        }
      }
      if (between_iters && until >= 0)
        for (int r = c.last + 1; r < p; ++r)
          if (Cond(until, r, c.path)) return false;
    }
    if (!check_cond) return true;
    return takeable_at(p);
  }

  // `gap`: the WITHIN GAP written on the stage (0: none).
  bool InWindow(const Ctx& c, int64_t gap, int p) const {
    if (c.path.empty()) return true;
    if (gap > 0 && Ts(p) - Ts(c.last) >= gap) return false;
    if (p_.within && Ts(p) - Ts(c.path.front().first) >= p_.within->millis()) return false;
    if (p_.max_gap && Ts(p) - Ts(c.last) >= p_.max_gap->millis()) return false;
    return true;
  }

  // Tries every position for the next item `var` and continues with `k`.
  void TakeVar(const Ctx& c, int var, int64_t gap, int until, bool between_iters, Contiguity op,
               const std::function<bool(const Ctx&, int)>& reluctant_conflict,
               const std::function<void(Ctx)>& k) {
    if (c.mode == Mode::kProbeFinal) return;  // a take is not the end
    if (c.mode == Mode::kProbeWait) {
      if (gap > 0)
        c.wait->longest_gap = std::max(c.wait->longest_gap, gap);
      else
        c.wait->unbounded_stage = true;
      return;
    }
    // The first event that ends this branch (a greedy loop it left accepts it).
    // A match's first event has no history: only that event itself counts.
    auto kills = [&](int r) {
      return std::any_of(c.greedy_kills.begin(), c.greedy_kills.end(),
                         [r](const auto& kill) { return kill(r); });
    };
    int dead_at = N();
    if (!c.at_start)
      for (int r = c.last + 1; r < N(); ++r)
        if (kills(r)) {
          dead_at = r;
          break;
        }
    if (c.mode == Mode::kProbeAlive) {
      if (dead_at >= c.probe_pos && Takeable(c, var, until, between_iters, op, c.probe_pos, false))
        *c.found = true;
      return;
    }
    int lo = c.last + 1, hi = dead_at - 1;
    if (c.mode == Mode::kProbeTake) {
      if (c.probe_pos > hi) return;
      lo = hi = c.probe_pos;
    }
    for (int p = lo; p <= hi; ++p) {
      if (!InWindow(c, gap, p)) continue;
      if (!Takeable(c, var, until, between_iters, op, p, true)) continue;
      if (c.at_start && kills(p)) continue;
      if (c.mode == Mode::kProbeTake) {
        *c.found = true;
        return;
      }
      if (reluctant_conflict && reluctant_conflict(c, p)) continue;
      Ctx n = c;
      n.path.emplace_back(p, var);
      n.last = p;
      n.at_start = false;
      n.guards.clear();
      n.open_tail = false;
      n.greedy_kills.clear();
      AfterTake(n, k);
    }
  }

  // Called with each valid prefix: records timeouts, then continues.
  void AfterTake(const Ctx& n, const std::function<void(Ctx)>& k) {
    if (timeouts_ && p_.skip == SkipStrategy::Kind::kNoSkip) {
      int64_t d = PrefixDeadline(n, k);
      if (d != INT64_MAX) {
        bool unguarded = false, alive = false;
        guarded_pending_ = false;
        {
          Ctx probe = n;
          probe.mode = Mode::kProbeFinal;
          probe.found = &unguarded;
          k(probe);
        }
        bool guarded = guarded_pending_;
        if (!unguarded && !guarded) {
          Ctx probe = n;
          probe.mode = Mode::kProbeAlive;
          probe.probe_pos = FirstAtOrAfter(d);
          probe.found = &alive;
          k(probe);
          if (alive) timeouts_found_.insert({RefMatch{true, n.path}, d});
        }
      }
    }
    k(n);
  }

  // `after`: the negations written right after this element. They rule out a
  // negated event between two of its iterations too (Flink: a loop followed
  // by notFollowedBy/notNext stops when it sees the negated event).
  void Enum(const RegexNode& n, const Ctx& c, const Cont& k,
            const std::vector<PGuard>& after = {}) {
    switch (n.kind) {
      case RegexNode::Kind::kVar:
        return EnumVar(n, c, k, after);
      case RegexNode::Kind::kNeg:
        return k(c);  // handled by the sequence
      case RegexNode::Kind::kAlt:
        if (n.quant.present) return EnumGroup(n, c, k, after);
        for (const auto& b : n.children) Enum(b, c, k);
        return;
      case RegexNode::Kind::kSeq:
        if (n.quant.present) return EnumGroup(n, c, k, after);
        return EnumSeq(n, 0, c, k);
    }
  }

  void EnumBody(const RegexNode& n, const Ctx& c, const Cont& k) {
    if (n.kind == RegexNode::Kind::kAlt) {
      for (const auto& b : n.children) Enum(b, c, k);
    } else {
      EnumSeq(n, 0, c, k);
    }
  }

  void EnumSeq(const RegexNode& n, size_t i, const Ctx& c, const Cont& k) {
    if (i == n.children.size()) return k(c);
    const RegexNode& child = n.children[i];
    Ctx x = c;
    if (i > 0) x.op = n.ops[i];
    if (child.kind == RegexNode::Kind::kNeg) {
      x.guards.push_back(PGuard{var_.at(child.name), n.ops[i] == Contiguity::kStrict});
      x.open_tail = false;
      return EnumSeq(n, i + 1, x, k);
    }
    std::vector<PGuard> after;
    for (size_t j = i + 1; j < n.children.size() && n.children[j].kind == RegexNode::Kind::kNeg;
         ++j)
      after.push_back(PGuard{var_.at(n.children[j].name), n.ops[j] == Contiguity::kStrict});
    Enum(
        child, x, [this, &n, i, &k](Ctx y) { EnumSeq(n, i + 1, y, k); }, after);
  }

  void EnumGroup(const RegexNode& n, const Ctx& c, const Cont& k,
                 const std::vector<PGuard>& after) {
    const Quantifier& q = n.quant;
    std::function<void(int, Ctx)> iter = [&](int i, Ctx x) {
      if (i >= q.min) {
        Ctx out = x;
        if (i == 0) out.open_tail = out.open_tail || !out.guards.empty();
        k(out);
      }
      if (q.max != Quantifier::kUnbounded && i >= q.max) return;
      if (x.mode == Mode::kNormal && static_cast<int>(x.path.size()) >= N() + 1) return;
      Ctx y = x;
      if (i >= 1) {
        y.op = q.inner;
        y.guards.insert(y.guards.end(), after.begin(), after.end());
      }
      EnumBody(n, y, [&, i](Ctx z) { iter(i + 1, std::move(z)); });
    };
    iter(0, c);
  }

  void EnumVar(const RegexNode& n, const Ctx& c, const Cont& k, const std::vector<PGuard>& after) {
    const int var = var_.at(n.name);
    const Quantifier& q = n.quant;
    const int lo = q.present ? q.min : 1;
    const int hi = q.present ? q.max : 1;
    const Quantifier::Mode mode = q.present ? q.mode : Quantifier::Mode::kDefault;
    int until = -1;
    if (q.until) until = UntilCond(n);
    std::function<void(int, Ctx)> iter = [&, var, lo, hi, mode, until](int i, Ctx x) {
      const bool can_more = hi == Quantifier::kUnbounded || i < hi;
      const Contiguity op = i == 0 ? x.op : q.inner;
      if (i >= lo) {
        Ctx exit = x;
        if (i == 0) exit.open_tail = exit.open_tail || !exit.guards.empty();
        if (mode == Quantifier::Mode::kGreedy && lo != hi) {
          // Flink's greedy: the branch that leaves (or skips) the loop dies at
          // the first later event the loop's condition accepts, taken or not.
          std::vector<std::pair<int, int>> path = x.path;
          exit.greedy_kills.push_back([this, path, var, until](int r) {
            return Cond(var, r, path) && !(until >= 0 && Cond(until, r, path));
          });
        }
        k(exit);
      }
      if (!can_more) return;
      std::function<bool(const Ctx&, int)> reluctant;
      if (mode == Quantifier::Mode::kReluctant && i >= lo) {
        reluctant = [this, &k](const Ctx& before, int p) {
          bool f = false;
          Ctx pr = before;
          pr.mode = Mode::kProbeTake;
          pr.probe_pos = p;
          pr.found = &f;
          k(pr);
          return f;
        };
      }
      Ctx more = x;
      if (i >= 1) more.guards.insert(more.guards.end(), after.begin(), after.end());
      TakeVar(more, var, n.gap_ms, until, i >= 1, op, reluctant,
              [&iter, i](Ctx y) { iter(i + 1, std::move(y)); });
    };
    iter(0, c);
  }

  int UntilCond(const RegexNode& n) {
    // The compiled pattern keeps UNTIL conditions after the stage conditions;
    // find the one compiled from this text for this stage.
    const auto& u = *n.quant.until;
    std::string text =
        "UNTIL " + p_.source_text.substr(u.span.begin - ast_.span.begin, u.span.end - u.span.begin);
    for (size_t i = p_.vars.size(); i < p_.conditions.size(); ++i)
      if (p_.conditions[i].text == text && p_.conditions[i].var == var_.at(n.name))
        return static_cast<int>(i);
    return -1;
  }

  void Final(Ctx c) {
    if (c.open_tail) c.guards.clear();
    if (c.mode == Mode::kProbeTake) return;
    if (c.mode == Mode::kProbeAlive) return;
    if (c.mode == Mode::kProbeWait) {
      // An absence at the end waits for the pattern's window, not a gap.
      (c.guards.empty() ? c.wait->final_at_once : c.wait->absence_final) = true;
      return;
    }
    if (c.mode == Mode::kProbeFinal) {
      if (c.guards.empty()) {
        *c.found = true;
      } else {
        // A guarded final still open at the deadline completes as a match.
        int64_t d = Deadline(c);
        int kd = FirstAtOrAfter(d);
        if (GuardsHold(c, kd)) guarded_pending_ = true;
      }
      return;
    }
    if (c.path.empty()) return;
    Completion comp;
    comp.m.path = c.path;
    comp.start = c.path.front().first;
    if (c.guards.empty()) {
      comp.key = {c.last, 1, 0};
    } else {
      int64_t d = Deadline(c);
      int kd = FirstAtOrAfter(d);
      if (!GuardsHold(c, kd)) return;
      bool only_strict =
          std::all_of(c.guards.begin(), c.guards.end(), [](const PGuard& g) { return g.strict; });
      if (only_strict && c.last + 1 < kd)
        comp.key = {c.last + 1, 1, 0};
      else
        comp.key = {kd, 0, d};
    }
    completions_.push_back(std::move(comp));
  }

  bool GuardsHold(const Ctx& c, int kd) const {
    for (const PGuard& g : c.guards) {
      if (g.strict) {
        if (c.last + 1 < kd && Cond(g.var, c.last + 1, c.path)) return false;
      } else {
        for (int r = c.last + 1; r < kd; ++r)
          if (Cond(g.var, r, c.path)) return false;
      }
    }
    return true;
  }

  std::vector<RefMatch> Select() {
    // One completion per distinct path and completion time.
    std::sort(completions_.begin(), completions_.end(),
              [](const Completion& a, const Completion& b) {
                if (a.start != b.start) return a.start < b.start;
                if (a.key != b.key) return a.key < b.key;
                return a.m.path < b.m.path;
              });
    // One completion per distinct path, the earliest (a path that completes
    // at once is not completed again as an absence).
    std::set<std::vector<std::pair<int, int>>> seen;
    std::erase_if(completions_, [&](const Completion& c) { return !seen.insert(c.m.path).second; });
    std::vector<RefMatch> out;
    std::vector<bool> dead(completions_.size(), false);
    for (size_t i = 0; i < completions_.size(); ++i) {
      if (dead[i]) continue;
      const Completion& m = completions_[i];
      out.push_back(m.m);
      if (p_.skip == SkipStrategy::Kind::kNoSkip) continue;
      int bound = m.start;
      bool inclusive = true, prune = true;
      if (p_.skip == SkipStrategy::Kind::kPastLast) bound = m.m.path.back().first;
      if (p_.skip == SkipStrategy::Kind::kToFirst || p_.skip == SkipStrategy::Kind::kToLast) {
        inclusive = false;
        prune = false;
        for (auto [pos, var] : m.m.path) {
          if (var != p_.skip_var) continue;
          if (!prune || p_.skip == SkipStrategy::Kind::kToLast) bound = pos;
          prune = true;
        }
      }
      if (!prune) continue;
      for (size_t j = i + 1; j < completions_.size(); ++j) {
        int s = completions_[j].start;
        if (inclusive ? s <= bound : s < bound) dead[j] = true;
      }
    }
    for (const auto& [t, when] : timeouts_found_) out.push_back(t);
    std::sort(out.begin(), out.end());
    return out;
  }

  const PatternAst& ast_;
  const patterns::CompiledPattern& p_;
  const std::vector<RowPtr>& ev_;
  bool timeouts_;
  std::map<std::string, int> var_;
  std::vector<Completion> completions_;
  // One timeout per partial match and deadline: the same events reached by
  // two ways that end at different times time out twice.
  std::set<std::pair<RefMatch, int64_t>> timeouts_found_;
  bool guarded_pending_ = false;
};

}  // namespace

std::string RefMatch::ToString(const patterns::CompiledPattern& p) const {
  std::string s = timeout ? "timeout[" : "match[";
  for (size_t i = 0; i < path.size(); ++i) {
    if (i) s += " ";
    s += p.vars[static_cast<size_t>(path[i].second)] + "@" + std::to_string(path[i].first);
  }
  return s + "]";
}

std::vector<RefMatch> ReferenceMatch(const PatternAst& ast,
                                     const patterns::CompiledPattern& pattern,
                                     const std::vector<RowPtr>& events, bool report_timeouts) {
  Ref r(ast, pattern, events, report_timeouts);
  return r.Run();
}

}  // namespace cepheus::testing
