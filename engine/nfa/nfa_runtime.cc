#include "engine/nfa/nfa_runtime.h"

#include <type_traits>

#include <algorithm>

namespace cepheus::engine {

namespace {

using patterns::CompiledPattern;
using patterns::Condition;
using patterns::Contiguity;
using patterns::Edge;
using patterns::NfaState;
using patterns::Quantifier;
using patterns::SkipStrategy;

// Per-event condition cache: the event-only part of each condition is
// evaluated at most once per event, whatever the number of runs.
class CondEval {
 public:
  CondEval(const CompiledPattern& p, const Row* row, std::vector<int8_t>& cache)
      : p_(p), row_(row), cache_(cache) {
    cache_.assign(p.conditions.size(), -1);
  }
  bool Pre(int c) {
    int8_t& v = cache_[static_cast<size_t>(c)];
    if (v < 0) {
      const Condition& cd = p_.conditions[static_cast<size_t>(c)];
      patterns::EvalContext ctx{row_, nullptr, cd.var};
      v = cd.prefilter < 0 || p_.program.Test(cd.prefilter, ctx);
    }
    return v != 0;
  }
  bool Test(int c, const uint64_t* aggs) {
    if (!Pre(c)) return false;
    const Condition& cd = p_.conditions[static_cast<size_t>(c)];
    if (cd.residual < 0) return true;
    patterns::EvalContext ctx{row_, aggs, cd.var};
    return p_.program.Test(cd.residual, ctx);
  }

 private:
  const CompiledPattern& p_;
  const Row* row_;
  std::vector<int8_t>& cache_;
};

bool PathLess(const BufNode* a, const BufNode* b) {
  auto pa = PathOf(a), pb = PathOf(b);
  return std::lexicographical_compare(pa.begin(), pa.end(), pb.begin(), pb.end(),
                                      [](const BufNode* x, const BufNode* y) {
                                        return x->id != y->id ? x->id < y->id : x->var < y->var;
                                      });
}

bool SamePath(const BufNode* a, const BufNode* b) {
  while (a && b) {
    if (a == b) return true;
    if (a->id != b->id || a->var != b->var) return false;
    a = a->prev;
    b = b->prev;
  }
  return a == b;
}

// Which fired edges survive greedy / reluctant preferences: when one run
// could both stay in (or enter) quantifier Q and leave (or skip) it on the
// same event, a greedy Q keeps only the staying branches and a reluctant Q
// only the leaving ones. Decided on the whole fired set at once.
uint64_t ResolveConflicts(const CompiledPattern& p, const NfaState& st, const int* fired,
                          int nfired) {
  uint64_t keep = nfired >= 64 ? ~uint64_t{0} : (uint64_t{1} << nfired) - 1;
  if (p.quants.empty() || nfired < 2) return keep;
  uint64_t cont = 0, byp = 0;
  for (int i = 0; i < nfired; ++i) {
    const Edge& e = st.edges[static_cast<size_t>(fired[i])];
    cont |= e.continue_q;
    byp |= e.bypass_q;
  }
  uint64_t conflicts = cont & byp;
  if (!conflicts) return keep;
  uint64_t greedy = 0, reluctant = 0;
  for (size_t q = 0; q < p.quants.size(); ++q) {
    if (!(conflicts >> q & 1)) continue;
    if (p.quants[q].mode == Quantifier::Mode::kGreedy) greedy |= uint64_t{1} << q;
    if (p.quants[q].mode == Quantifier::Mode::kReluctant) reluctant |= uint64_t{1} << q;
  }
  for (int i = 0; i < nfired; ++i) {
    const Edge& e = st.edges[static_cast<size_t>(fired[i])];
    if ((e.bypass_q & greedy) || (e.continue_q & reluctant)) keep &= ~(uint64_t{1} << i);
  }
  return keep;
}

// Flink's greedy loops: an edge that leaves or skips a greedy loop (bits
// `left` of p.greedy_q) is dead on an event the loop's stage condition
// accepts (and its UNTIL does not), in the run's context: the branch that
// left the loop neither takes nor skips such an event.
template <typename Eval>
bool GreedyExitDies(const CompiledPattern& p, uint64_t left, Eval& cond, const uint64_t* aggs) {
  for (; left; left &= left - 1) {
    const auto& q = p.quants[static_cast<size_t>(__builtin_ctzll(left))];
    if (cond.Test(q.cond, aggs) && !(q.until >= 0 && cond.Test(q.until, aggs))) return true;
  }
  return false;
}

uint64_t AllBits(size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// A hash of the events (and stages) of a path, for finding duplicates.
uint64_t PathHash(const BufNode* n) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (; n; n = n->prev) {
    h ^= static_cast<uint64_t>(n->id.ts) * 0xff51afd7ed558ccdull +
         (uint64_t{n->id.tie} << 20 | static_cast<uint32_t>(n->var));
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
  }
  return h;
}

// Keeps the first of the results with the same events (several derivations
// can complete the same events), in order; a duplicate's reference is
// dropped. O(n log n) in the results, so thousands completing on one event
// (skip till any) stay cheap.
void KeepUniquePaths(std::vector<MatchResult>& v, NodePool* pool) {
  if (v.size() < 2) return;
  std::vector<std::pair<uint64_t, size_t>> keys;
  keys.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) keys.emplace_back(PathHash(v[i].last), i);
  std::sort(keys.begin(), keys.end());
  std::vector<bool> drop(v.size(), false);
  for (size_t g = 0; g < keys.size();) {
    size_t e = g + 1;
    while (e < keys.size() && keys[e].first == keys[g].first) ++e;
    for (size_t j = g + 1; j < e; ++j)
      for (size_t k = g; k < j; ++k)
        if (!drop[keys[k].second] && SamePath(v[keys[k].second].last, v[keys[j].second].last)) {
          drop[keys[j].second] = true;
          break;
        }
    g = e;
  }
  size_t out = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (drop[i]) {
      pool->Unref(v[i].last);
      continue;
    }
    if (out != i) v[out] = std::move(v[i]);
    ++out;
  }
  v.resize(out);
}

}  // namespace

struct MatcherEnv::Scratch {
  std::vector<int8_t> cond_cache;
  std::vector<int8_t> state_affected;  // per NFA state, for the current event
  std::vector<MatchResult> completed;
  AggWords zero_aggs;
};

namespace {
MatcherEnv::Scratch& ScratchOf(MatcherEnv& env) {
  if (!env.scratch) env.scratch = std::make_shared<MatcherEnv::Scratch>();
  return *env.scratch;
}
}  // namespace

KeyMatcher::~KeyMatcher() = default;

void KeyMatcher::Clear(MatcherEnv& env) {
  env.stats->live_runs -= static_cast<int64_t>(runs_.size());
  for (Run& r : runs_) env.pool->Unref(r.node);
  for (MatchResult& m : held_) env.pool->Unref(m.last);
  runs_.clear();
  held_.clear();
  next_deadline_ = EventTime::Max();
  state_mask_ = 0;
  has_fresh_ = false;
}

EventId KeyMatcher::NextId(EventTime t) {
  if (t.millis() == last_id_.ts) {
    ++last_id_.tie;
  } else {
    last_id_ = EventId{t.millis(), 0};
  }
  return last_id_;
}

void KeyMatcher::RecomputeStateMask() {
  uint64_t m = 0;
  for (const Run& r : runs_) m |= r.state < 64 ? uint64_t{1} << r.state : ~uint64_t{0};
  state_mask_ = m;
}

void KeyMatcher::RecomputeNextDeadline() {
  EventTime d = EventTime::Max();
  for (const Run& r : runs_) d = std::min(d, r.deadline);
  next_deadline_ = d;
}

struct KeyMatcher::Step {
  Step(MatcherEnv& e, const RowPtr& r, EventId i, uint64_t position, MatcherEnv::Scratch& scratch,
       size_t room_left)
      : env(e),
        p(*e.pattern),
        row(r),
        id(i),
        pos(position),
        cond(p, r.get(), scratch.cond_cache),
        completed(scratch.completed),
        zero_aggs(scratch.zero_aggs),
        affected(scratch.state_affected),
        room(room_left),
        tracing(static_cast<bool>(e.trace)) {
    completed.clear();
    affected.assign(p.states.size(), -1);
  }

  // Whether the event can touch a run in state `st` at all: some edge's
  // target (or a guard, or an UNTIL) passes its event-only prefilter. Decided
  // once per state per event; runs in untouched states are skipped, which
  // makes the cost per event proportional to the runs the event can affect.
  bool Affects(int st) {
    int8_t& a = affected[static_cast<size_t>(st)];
    if (a < 0) a = ComputeAffects(p.states[static_cast<size_t>(st)]) ? 1 : 0;
    return a != 0;
  }
  bool ComputeAffects(const NfaState& st) {
    for (const Edge& e : st.edges) {
      if (cond.Pre(p.states[static_cast<size_t>(e.target)].cond) ||
          (e.until_cond >= 0 && cond.Pre(e.until_cond)))
        return true;
      for (uint64_t q = e.bypass_q & p.greedy_q; q; q &= q - 1)
        if (cond.Pre(p.quants[static_cast<size_t>(__builtin_ctzll(q))].cond)) return true;
      for (const auto& g : e.guards)
        if (cond.Pre(g.cond)) return true;
    }
    for (const auto& f : st.finals)
      for (const auto& g : f.guards)
        if (cond.Pre(g.cond)) return true;
    return false;
  }
  // A run that stays: its deadline and state count for the matcher's summary.
  void Keep(const Run& r) {
    next_deadline = std::min(next_deadline, r.deadline);
    state_mask |= r.state < 64 ? uint64_t{1} << r.state : ~uint64_t{0};
  }

  MatcherEnv& env;
  const CompiledPattern& p;
  const RowPtr& row;
  const EventId id;
  const uint64_t pos;
  CondEval cond;
  std::vector<MatchResult>& completed;
  const AggWords& zero_aggs;
  std::vector<int8_t>& affected;
  const size_t room;  // new runs allowed by the per-key cap
  EventTime next_deadline = EventTime::Max();
  uint64_t state_mask = 0;
  size_t spawned = 0;
  size_t dropped = 0;
  const bool tracing;  // env.trace is set (explain)
  void Note(TraceNote::Kind kind, int from, int to, int cond, EventTime start, EventId start_id) {
    TraceNote n;
    n.kind = kind;
    n.from = from;
    n.to = to;
    n.cond = cond;
    n.run_start_ms = start.millis();
    n.run_start_tie = start_id.tie;
    env.trace(n);
  }
  int fired[patterns::kMaxEdgesPerState];
  int targets_done[patterns::kMaxEdgesPerState];
};

void KeyMatcher::Process(MatcherEnv& env, const RowPtr& row, EventId id) {
  const LiveRunsDelta delta(env, runs_);
  Expire(env, row->time());
  MatcherEnv::Scratch& scratch = ScratchOf(env);
  const CompiledPattern& p = *env.pattern;
  if (scratch.zero_aggs.size() != static_cast<size_t>(p.aggs.num_words))
    scratch.zero_aggs.assign(static_cast<size_t>(p.aggs.num_words), 0);
  // Runs that stay are compacted in place; new runs are appended after them.
  const size_t old_count = runs_.size();
  // New runs beyond the cap (counting the runs that existed) are dropped.
  const size_t room = env.max_runs_per_key > old_count ? env.max_runs_per_key - old_count : 0;
  Step s(env, row, id, position_++, scratch, room);

  bool touch_runs = has_fresh_ || !held_.empty();
  for (uint64_t m = state_mask_; m && !touch_runs; m &= m - 1) {
    const int st = __builtin_ctzll(m);
    if (st >= static_cast<int>(p.states.size()) || s.Affects(st)) touch_runs = true;
  }
  // When no live run can be changed by this event, all are left as they are.
  size_t kept = touch_runs ? 0 : old_count;
  auto step_all = [&](auto trace) {
    for (size_t ri = kept; ri < old_count; ++ri) {
      if (!StepRun<decltype(trace)::value>(s, ri)) continue;
      if (kept != ri) runs_[kept] = std::move(runs_[ri]);
      ++kept;
    }
  };
  if (__builtin_expect(s.tracing, 0))
    step_all(std::true_type{});
  else
    step_all(std::false_type{});
  StartNewRuns(s);
  FinishStep(s, old_count, kept, touch_runs);
}

void KeyMatcher::Spawn(Step& s, const Parent* parent, int target) {
  const CompiledPattern& p = s.p;
  const NfaState& ts = p.states[static_cast<size_t>(target)];
  const RowPtr& row = s.row;
  Run n;
  n.node = s.env.pool->New(row, s.id, target, ts.var, parent ? parent->node : nullptr);
  n.state = target;
  n.aggs = parent ? parent->aggs : s.zero_aggs;
  p.aggs.Update(n.aggs.data(), ts.var, *row);
  n.start = parent ? parent->start : row->time();
  n.start_id = parent ? parent->start_id : s.id;
  n.last = row->time();
  n.deadline = EventTime::Max();
  if (p.within) n.deadline = std::min(n.deadline, n.start + *p.within);
  if (p.max_gap) n.deadline = std::min(n.deadline, n.last + *p.max_gap);
  if (ts.wait_ms > 0) n.deadline = std::min(n.deadline, n.last + Duration::Millis(ts.wait_ms));
  n.pending = AllBits(ts.edges.size());
  for (size_t j = 0; j < ts.finals.size(); ++j)
    if (!ts.finals[j].guards.empty()) n.pending_finals |= 1u << j;
  n.fresh = true;
  ++s.env.stats->runs_created;
  if (ts.has_unguarded_final) {
    NodePool::Ref(n.node);
    s.completed.push_back(MatchResult{false, n.node, n.aggs, n.start, n.last, n.start_id,
                                      CompletionKey{s.pos, 1, 0}});
  }
  if (!(n.pending || n.pending_finals)) {
    s.env.pool->Unref(n.node);
    return;
  }
  if (s.spawned >= s.room) {
    // The per-key cap: drop the new branch, count it.
    if (__builtin_expect(s.tracing, 0))
      s.Note(TraceNote::Kind::kCut, -1, target, -1, n.start, n.start_id);
    s.env.pool->Unref(n.node);
    ++s.dropped;
    return;
  }
  s.Keep(n);
  runs_.push_back(std::move(n));
  ++s.spawned;
}

void KeyMatcher::Take(Step& s, const Parent* parent, const NfaState& st, int nfired) {
  const uint64_t keep = ResolveConflicts(s.p, st, s.fired, nfired);
  int ndone = 0;
  for (int i = 0; i < nfired; ++i) {
    if (!(keep >> i & 1)) continue;
    const int target = st.edges[static_cast<size_t>(s.fired[i])].target;
    if (std::find(s.targets_done, s.targets_done + ndone, target) != s.targets_done + ndone)
      continue;
    s.targets_done[ndone++] = target;
    if (__builtin_expect(s.tracing, 0))
      s.Note(parent ? TraceNote::Kind::kTook : TraceNote::Kind::kStarted,
             static_cast<int>(&st - s.p.states.data()), target, -1,
             parent ? parent->start : s.row->time(), parent ? parent->start_id : s.id);
    Spawn(s, parent, target);
  }
}

template <bool kTrace>
bool KeyMatcher::StepRun(Step& s, size_t ri) {
  const CompiledPattern& p = s.p;
  CondEval& cond = s.cond;
  Run& r = runs_[ri];
  if (!r.fresh && !r.pending_finals && !s.Affects(r.state)) {
    // Nothing this event can do to the run: its relaxed/any edges stay open.
    if (kTrace) s.Note(TraceNote::Kind::kUntouched, r.state, -1, -1, r.start, r.start_id);
    s.Keep(r);
    return true;
  }
  const NfaState& st = p.states[static_cast<size_t>(r.state)];
  const uint64_t* aggs = r.aggs.data();
  int nfired = 0;
  uint64_t consumed = 0;
  for (uint64_t bits = r.pending; bits; bits &= bits - 1) {
    const int i = __builtin_ctzll(bits);
    const uint64_t bit = uint64_t{1} << i;
    const Edge& e = st.edges[static_cast<size_t>(i)];
    bool killed = false;
    if (r.fresh)
      for (const auto& g : e.guards)
        if (g.strict && cond.Test(g.cond, aggs)) {
          killed = true;
          break;
        }
    if (killed ||
        ((e.bypass_q & p.greedy_q) && GreedyExitDies(p, e.bypass_q & p.greedy_q, cond, aggs))) {
      if (kTrace)
        s.Note(killed ? TraceNote::Kind::kNegated : TraceNote::Kind::kClosed, r.state, e.target, -1,
               r.start, r.start_id);
      consumed |= bit;
      continue;
    }
    const NfaState& target = p.states[static_cast<size_t>(e.target)];
    const bool until_now = e.until_cond >= 0 && cond.Test(e.until_cond, aggs);
    const bool can =
        (e.op != Contiguity::kStrict || r.fresh) && !until_now && cond.Test(target.cond, aggs);
    // `WITHIN GAP`: an event too long after the run's last one is not
    // taken, but it still ends a relaxed wait as any matching event does.
    const int64_t gap = target.gap_ms;
    if (can && (gap == 0 || s.row->time().millis() - r.last.millis() < gap)) s.fired[nfired++] = i;
    if (e.op == Contiguity::kStrict || (e.op == Contiguity::kRelaxed && can)) consumed |= bit;
    if (e.until_kills && until_now) consumed |= bit;
    [[maybe_unused]] int negated = -1;
    for (const auto& g : e.guards)
      if (!g.strict && cond.Test(g.cond, aggs)) {
        consumed |= bit;
        if constexpr (kTrace) negated = g.cond;
        break;
      }
    if (kTrace && !can) {
      if (negated >= 0)
        s.Note(TraceNote::Kind::kNegated, r.state, e.target, negated, r.start, r.start_id);
      else
        s.Note(e.op == Contiguity::kStrict ? TraceNote::Kind::kClosed : TraceNote::Kind::kNotTaken,
               r.state, e.target, until_now ? e.until_cond : target.cond, r.start, r.start_id);
    }
  }
  const uint32_t consumed_finals = r.pending_finals ? StepFinals(s, r, st) : 0;
  if (nfired) {
    Parent parent{r.node, r.aggs, r.start, r.start_id};
    Take(s, &parent, st, nfired);  // may grow runs_: `r` is not used after this
  }
  Run& self = runs_[ri];
  self.pending &= ~consumed;
  self.pending_finals &= ~consumed_finals;
  self.fresh = false;
  if (self.pending || self.pending_finals) {
    s.Keep(self);
    return true;
  }
  if (kTrace && !nfired)  // a run that took the event moved on
    s.Note(TraceNote::Kind::kEnded, self.state, -1, -1, self.start, self.start_id);
  s.env.pool->Unref(self.node);
  self.node = nullptr;
  return false;
}

uint32_t KeyMatcher::StepFinals(Step& s, Run& r, const NfaState& st) {
  const uint64_t* aggs = r.aggs.data();
  CondEval& cond = s.cond;
  uint32_t consumed_finals = 0;
  for (uint32_t bits = r.pending_finals; bits; bits &= bits - 1) {
    const int j = __builtin_ctz(bits);
    const auto& f = st.finals[static_cast<size_t>(j)];
    bool kill = false, only_strict = true;
    for (const auto& g : f.guards) {
      if (g.strict) {
        if (r.fresh && cond.Test(g.cond, aggs)) kill = true;
      } else {
        only_strict = false;
        if (cond.Test(g.cond, aggs)) kill = true;
      }
    }
    if (kill) {
      consumed_finals |= 1u << j;
    } else if (r.fresh && only_strict) {
      // Not-next at the end: the next event is not the negated one.
      NodePool::Ref(r.node);
      s.completed.push_back(MatchResult{false, r.node, r.aggs, r.start, r.last, r.start_id,
                                        CompletionKey{s.pos, 1, 0}});
      consumed_finals |= 1u << j;
      r.completed = true;
    }
  }
  return consumed_finals;
}

void KeyMatcher::StartNewRuns(Step& s) {
  const CompiledPattern& p = s.p;
  const NfaState& start = p.states[0];
  const uint64_t* zero = s.zero_aggs.data();
  int nfired = 0;
  for (size_t i = 0; i < start.edges.size(); ++i) {
    const Edge& e = start.edges[i];
    if (e.until_cond >= 0 && s.cond.Test(e.until_cond, zero)) continue;
    if ((e.bypass_q & p.greedy_q) && GreedyExitDies(p, e.bypass_q & p.greedy_q, s.cond, zero))
      continue;
    if (s.cond.Test(p.states[static_cast<size_t>(e.target)].cond, zero))
      s.fired[nfired++] = static_cast<int>(i);
  }
  if (nfired) Take(s, nullptr, start, nfired);
}

void KeyMatcher::FinishStep(Step& s, size_t old_count, size_t kept, bool touched_runs) {
  if (s.dropped) {
    s.env.stats->runs_dropped += s.dropped;
    if (s.env.on_runs_dropped) s.env.on_runs_dropped(s.dropped);
  }
  // Close the gap between the kept old runs and the new ones.
  if (kept != old_count) {
    std::move(runs_.begin() + static_cast<std::ptrdiff_t>(old_count), runs_.end(),
              runs_.begin() + static_cast<std::ptrdiff_t>(kept));
    runs_.resize(kept + s.spawned);
  }
  if (touched_runs || old_count == 0) {
    next_deadline_ = s.next_deadline;
    state_mask_ = s.state_mask;
  } else {
    // Old runs untouched: their deadlines and states still hold.
    next_deadline_ = std::min(next_deadline_, s.next_deadline);
    state_mask_ |= s.state_mask;
  }
  has_fresh_ = s.spawned > 0;

  // Several derivations may complete the same events: report each once.
  KeepUniquePaths(s.completed, s.env.pool);
  for (MatchResult& m : s.completed) held_.push_back(std::move(m));
  s.completed.clear();
  if (!held_.empty()) {
    Release(s.env, CompletionKey{s.pos, 1, 0}, s.row->time());
    RecomputeNextDeadline();
    RecomputeStateMask();
  }
}

void KeyMatcher::AdvanceTime(MatcherEnv& env, EventTime t) {
  const LiveRunsDelta delta(env, runs_);
  Expire(env, t);
}

size_t KeyMatcher::DropRunsStartedBefore(MatcherEnv& env, EventTime t) {
  const LiveRunsDelta delta(env, runs_);
  std::vector<Run> keep;
  for (Run& r : runs_) {
    if (r.start < t)
      env.pool->Unref(r.node);
    else
      keep.push_back(std::move(r));
  }
  const size_t dropped = runs_.size() - keep.size();
  if (dropped == 0) return 0;
  runs_ = std::move(keep);
  env.stats->runs_cut_by_budget += dropped;
  // The matches held for those runs need not wait any longer.
  if (!held_.empty()) Release(env, CompletionKey{position_, 2, 0}, last_event_time());
  RecomputeNextDeadline();
  RecomputeStateMask();
  return dropped;
}

void KeyMatcher::Expire(MatcherEnv& env, EventTime t) {
  if (runs_.empty()) {
    if (!held_.empty()) Release(env, CompletionKey{position_, 0, t.millis()}, t);
    return;
  }
  if (next_deadline_ > t) return;
  const CompiledPattern& p = *env.pattern;
  // One deadline at a time, earliest first: releasing held matches (and
  // pruning for a skip strategy) between two deadlines changes the runs.
  while (true) {
    EventTime deadline = EventTime::Max();
    bool any = false;
    for (const Run& r : runs_) {
      EventTime d = r.deadline;
      if (d <= t && (!any || d < deadline)) {
        deadline = d;
        any = true;
      }
    }
    if (!any) break;
    std::vector<MatchResult> completed, timeouts;
    std::vector<Run> keep;
    keep.reserve(runs_.size());
    const CompletionKey key{position_, 0, deadline.millis()};
    for (Run& r : runs_) {
      if (r.deadline != deadline) {
        keep.push_back(std::move(r));
        continue;
      }
      const NfaState& st = p.states[static_cast<size_t>(r.state)];
      if (__builtin_expect(static_cast<bool>(env.trace), 0)) {
        TraceNote n;
        n.kind = r.pending_finals ? TraceNote::Kind::kAbsenceHeld
                 : (env.report_timeouts && deadline != EventTime::Max() &&
                    !st.has_unguarded_final && !r.completed && r.pending)
                     ? TraceNote::Kind::kTimedOut
                     : TraceNote::Kind::kExpired;
        n.from = r.state;
        n.run_start_ms = r.start.millis();
        n.run_start_tie = r.start_id.tie;
        env.trace(n);
      }
      if (r.pending_finals) {
        // Absence at the end: the window closed without the negated event.
        completed.push_back(MatchResult{false, r.node, r.aggs, r.start, r.last, r.start_id, key});
      } else if (env.report_timeouts && deadline != EventTime::Max() && !st.has_unguarded_final &&
                 !r.completed && r.pending) {
        timeouts.push_back(MatchResult{true, r.node, r.aggs, r.start, r.last, r.start_id, key});
      } else {
        env.pool->Unref(r.node);
      }
      r.node = nullptr;  // the reference moved to the result (or was dropped)
    }
    runs_ = std::move(keep);
    KeepUniquePaths(completed, env.pool);
    KeepUniquePaths(timeouts, env.pool);
    for (MatchResult& m : timeouts) EmitNow(env, std::move(m));
    for (MatchResult& m : completed) held_.push_back(std::move(m));
    Release(env, key, deadline);
  }
  if (!held_.empty()) Release(env, CompletionKey{position_, 0, t.millis()}, t);
  RecomputeNextDeadline();
  RecomputeStateMask();
}

void KeyMatcher::EmitNow(MatcherEnv& env, MatchResult&& m) {
  if (m.timeout)
    ++env.stats->timeouts;
  else
    ++env.stats->matches;
  env.emit(m);
  env.pool->Unref(m.last);
}

namespace {
// Counts a match that completed in an earlier step than `now_key` (it was
// held) and how long it waited in event time.
void CountHeld(MatcherEnv& env, const MatchResult& m, const CompletionKey& now_key, EventTime now) {
  if (m.timeout || !(m.completion < now_key)) return;
  // Released at the end of the input (now is Max): no event time passed.
  const int64_t wait = now > m.end && now != EventTime::Max() ? (now - m.end).millis() : 0;
  ++env.stats->held_matches;
  env.stats->held_wait_ms_total += static_cast<uint64_t>(wait);
  env.stats->held_wait_ms_max = std::max(env.stats->held_wait_ms_max, wait);
}

// Which runs and held matches a match rules out, as Flink's skip strategies:
// those that started before `bound` (or at it, if `inclusive`).
struct SkipCut {
  bool prune = true;
  bool inclusive = true;
  EventId bound;
  bool Covers(EventId start) const { return inclusive ? start <= bound : start < bound; }
};

SkipCut SkipCutOf(const CompiledPattern& p, const MatchResult& m) {
  SkipCut cut;
  cut.bound = m.start_id;
  switch (p.skip) {
    case SkipStrategy::Kind::kToNext:
      break;
    case SkipStrategy::Kind::kPastLast:
      cut.bound = m.last->id;
      break;
    case SkipStrategy::Kind::kToFirst:
    case SkipStrategy::Kind::kToLast:
      // Up to (not including) the first or last event of the skip variable;
      // nothing if the match has none.
      cut.inclusive = false;
      cut.prune = false;
      for (const BufNode* n : PathOf(m.last)) {
        if (n->var != p.skip_var) continue;
        if (!cut.prune || p.skip == SkipStrategy::Kind::kToLast) cut.bound = n->id;
        cut.prune = true;
      }
      break;
    case SkipStrategy::Kind::kNoSkip:
      cut.prune = false;
      break;
  }
  return cut;
}
}  // namespace

void KeyMatcher::Release(MatcherEnv& env, const CompletionKey& now_key, EventTime now) {
  const CompiledPattern& p = *env.pattern;
  if (p.skip == SkipStrategy::Kind::kNoSkip) {
    for (MatchResult& m : held_) EmitNow(env, std::move(m));
    held_.clear();
    return;
  }
  std::sort(held_.begin(), held_.end(), [](const MatchResult& a, const MatchResult& b) {
    if (a.start_id != b.start_id) return a.start_id < b.start_id;
    if (a.completion != b.completion) return a.completion < b.completion;
    return PathLess(a.last, b.last);
  });
  size_t emitted = 0;
  while (emitted < held_.size()) {
    MatchResult& m = held_[emitted];
    if (m.last == nullptr) {  // pruned earlier in this loop
      ++emitted;
      continue;
    }
    bool blocked = std::any_of(runs_.begin(), runs_.end(),
                               [&](const Run& r) { return r.start_id < m.start_id; });
    if (blocked) break;
    SkipCut cut = SkipCutOf(p, m);
    MatchResult out = std::move(m);
    m.last = nullptr;
    ++emitted;
    CountHeld(env, out, now_key, now);
    if (p.skip_strict && (!cut.prune || cut.bound == out.start_id)) {
      // Flink's throwExceptionOnMiss(): no `x` to skip to, or skipping to the
      // match's own first event. Reported, nothing skipped; the run goes on.
      out.skip_error =
          cut.prune ? MatchResult::SkipError::kOwnFirstEvent : MatchResult::SkipError::kNoSuchStage;
      cut.prune = false;
      ++env.stats->skip_errors;
    }
    if (cut.prune) PruneStarts(env, cut.bound, cut.inclusive, emitted);
    EmitNow(env, std::move(out));
  }
  std::vector<MatchResult> rest;
  for (size_t i = emitted; i < held_.size(); ++i)
    if (held_[i].last) rest.push_back(std::move(held_[i]));
  held_ = std::move(rest);
}

void KeyMatcher::PruneStarts(MatcherEnv& env, EventId bound, bool inclusive, size_t held_from) {
  const SkipCut cut{true, inclusive, bound};
  std::vector<Run> keep;
  for (Run& r : runs_) {
    if (cut.Covers(r.start_id))
      env.pool->Unref(r.node);
    else
      keep.push_back(std::move(r));
  }
  runs_ = std::move(keep);
  for (size_t i = held_from; i < held_.size(); ++i)
    if (held_[i].last && cut.Covers(held_[i].start_id)) {
      env.pool->Unref(held_[i].last);
      held_[i].last = nullptr;
    }
}

std::string MatcherStats::HeldSummary() const {
  if (held_matches == 0) return "";
  return std::to_string(held_matches) +
         " matches were held by AFTER MATCH SKIP until earlier partial matches of their key "
         "ended: they waited up to " +
         FormatDuration(Duration::Millis(held_wait_ms_max)) + " (mean " +
         FormatDuration(Duration::Millis(
             static_cast<int64_t>(held_wait_ms_total / std::max<uint64_t>(held_matches, 1)))) +
         ") of event time after their last event";
}

}  // namespace cepheus::engine
