// KeyMatcher: the runtime state of one compiled pattern for one partition key
// (its live runs and held matches), and the per-event step of the automaton.
// The compiled pattern is shared and const; everything that changes lives
// here. Events must be fed in event-time order (ties in arrival order), with
// AdvanceTime() called as the watermark moves. Not thread-safe: one worker
// owns a key.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/row.h"
#include "common/small_vector.h"
#include "engine/nfa/match_buffer.h"
#include "patterns/compiled.h"
#include "patterns/limits.h"

namespace cepheus::engine {

// Orders completions so that skip strategies decide as a streaming engine
// would: by the event whose processing completed them, timers firing (in
// deadline order) before the event that passed them.
struct CompletionKey {
  uint64_t position = 0;  // index of the key's event that completed the match
  uint8_t phase = 0;      // 0: a timer before that event, 1: the event itself
  int64_t deadline = 0;   // for timers
  auto operator<=>(const CompletionKey&) const = default;
};

// A match, or a partial match that timed out.
// A run's aggregate words (see patterns::AggLayout); inline up to 6 words.
using AggWords = SmallVector<uint64_t, 6>;

struct MatchResult {
  bool timeout = false;
  BufNode* last = nullptr;  // the path; the receiver gets one reference
  AggWords aggs;
  EventTime start;
  EventTime end;
  EventId start_id;
  CompletionKey completion;
  // AFTER MATCH SKIP TO FIRST/LAST x STRICT could not skip (the receiver
  // reports the match as an error record instead of a match).
  enum class SkipError : uint8_t { kNone, kNoSuchStage, kOwnFirstEvent };
  SkipError skip_error = SkipError::kNone;
};

struct MatcherStats {
  uint64_t runs_created = 0;
  uint64_t runs_dropped = 0;  // cut by the per-key run cap
  uint64_t matches = 0;
  uint64_t timeouts = 0;
  uint64_t skip_errors = 0;  // matches a STRICT skip could not apply to
  // Matches an AFTER MATCH SKIP strategy held back until earlier-started
  // partial matches of their key ended (Flink's rule), and how long they
  // waited in event time after their last event.
  uint64_t held_matches = 0;
  uint64_t held_wait_ms_total = 0;
  int64_t held_wait_ms_max = 0;
  // Runs held in memory by the matchers that share these stats (a gauge),
  // and runs cut to keep a process-wide budget (limits.max_live_runs).
  int64_t live_runs = 0;
  uint64_t runs_cut_by_budget = 0;
  // Events held by those runs (buffer nodes; a gauge set by the owner).
  int64_t buffered_events = 0;

  void Add(const MatcherStats& o) {
    live_runs += o.live_runs;
    buffered_events += o.buffered_events;
    runs_cut_by_budget += o.runs_cut_by_budget;
    runs_created += o.runs_created;
    runs_dropped += o.runs_dropped;
    matches += o.matches;
    timeouts += o.timeouts;
    skip_errors += o.skip_errors;
    held_matches += o.held_matches;
    held_wait_ms_total += o.held_wait_ms_total;
    held_wait_ms_max = std::max(held_wait_ms_max, o.held_wait_ms_max);
  }
  // "N matches were held ... up to X": empty when none was.
  std::string HeldSummary() const;
};

// What a run did, or had done to it, on one event or deadline: the notes of
// `cepheus explain`. States index the pattern's automaton (its ToText()
// listing); a run is named by its start (time and event id).
struct TraceNote {
  enum class Kind {
    kStarted,      // a new run took the event into `to`
    kTook,         // a run in `from` took the event into `to` (a new version)
    kNotTaken,     // `to`'s condition `cond` was false; the run waits on (relaxed)
    kClosed,       // strict contiguity: `to`'s condition `cond` was false, that way is gone
    kUntouched,    // no condition of `from`'s next stages can hold for this event
    kNegated,      // the negation `cond` saw its event: that way is gone
    kEnded,        // no way on is left: the run is dropped
    kCut,          // a new run or version was dropped by the run cap
    kTimedOut,     // the deadline passed (reported with ON TIMEOUT EMIT)
    kExpired,      // the deadline passed (not reported)
    kAbsenceHeld,  // the deadline passed without the negated event: a match
  };
  Kind kind = Kind::kStarted;
  int from = 0, to = -1, cond = -1;
  int64_t run_start_ms = 0;
  uint64_t run_start_tie = 0;
};

// What a KeyMatcher needs from its owner.
struct MatcherEnv {
  const patterns::CompiledPattern* pattern = nullptr;
  NodePool* pool = nullptr;
  MatcherStats* stats = nullptr;
  // At most this many live runs per key; further branches are dropped and
  // counted (skip-till-any-match can otherwise grow exponentially).
  size_t max_runs_per_key = 10000;
  // Report runs that expire without completing (ON TIMEOUT EMIT).
  bool report_timeouts = false;
  // Receives every emitted match and timeout. The matcher keeps the
  // reference to `last` and releases it when the call returns, so a receiver
  // cannot leak or double-release it; one that keeps the match takes its
  // own reference (NodePool::Ref).
  std::function<void(const MatchResult&)> emit;
  // Told when the run cap cut runs for a key (for logging).
  std::function<void(size_t dropped)> on_runs_dropped;
  // Explain's tracing hook (null: off; then each trace point costs one
  // predictable branch).
  std::function<void(const TraceNote&)> trace;

  // Scratch space reused by every KeyMatcher step (not state).
  struct Scratch;
  std::shared_ptr<Scratch> scratch;  // shared: copies of an env share one buffer set
};

class KeyMatcher {
 public:
  KeyMatcher() = default;
  KeyMatcher(KeyMatcher&&) noexcept = default;
  KeyMatcher& operator=(KeyMatcher&&) noexcept = default;
  KeyMatcher(const KeyMatcher&) = delete;
  KeyMatcher& operator=(const KeyMatcher&) = delete;
  ~KeyMatcher();

  // Releases every node reference (call before destroying the pool).
  void Clear(MatcherEnv& env);

  // The whole state of this key (runs, the match-buffer nodes they reach,
  // held matches, event counters) in the compact format of docs/formats.md.
  void Serialize(const MatcherEnv& env, std::string* out) const;
  // Rebuilds a matcher from Serialize's output, with nodes in env.pool.
  // A damaged or foreign encoding is a Corruption error, never a crash.
  static Result<KeyMatcher> Deserialize(MatcherEnv& env, std::string_view data);

  // The identity the next event at time `t` gets. Call once per event, in order.
  EventId NextId(EventTime t);

  // Fires timers up to `t` (runs whose WITHIN / MAX GAP deadline is <= t
  // expire: absence matches complete, other runs time out), then feeds `row`.
  void Process(MatcherEnv& env, const RowPtr& row, EventId id);
  // Fires timers with deadline <= t. `t` = Max() ends the input: every run ends.
  void AdvanceTime(MatcherEnv& env, EventTime t);

  // Earliest deadline among live runs, or Max() if none.
  EventTime NextDeadline(const MatcherEnv&) const { return next_deadline_; }
  bool Idle() const { return runs_.empty() && held_.empty(); }
  // Brings this key's run array towards the cache (a hint; no effect on results).
  void Prefetch() const {
    if (!runs_.empty()) {
      __builtin_prefetch(runs_.data());
      __builtin_prefetch(reinterpret_cast<const char*>(runs_.data()) + 64);
    }
  }
  size_t num_runs() const { return runs_.size(); }
  // Appends the start time of every live run (for choosing what a memory
  // budget cuts).
  void CollectRunStarts(std::vector<int64_t>* out) const {
    for (const Run& r : runs_) out->push_back(r.start.millis());
  }
  // Drops the runs that started before `t` (oldest first is the budget's
  // policy): their partial matches are lost, counted in runs_cut_by_budget.
  // Held matches they blocked are released. Returns how many were dropped.
  size_t DropRunsStartedBefore(MatcherEnv& env, EventTime t);
  EventTime last_event_time() const { return EventTime::FromMillis(last_id_.ts); }

 private:
  friend class MatcherDecoder;  // matcher_codec.cc
  struct Run {
    BufNode* node = nullptr;  // owns a reference
    int state = 0;
    uint64_t pending = 0;         // edges of `state` still open
    uint32_t pending_finals = 0;  // guarded final edges still open
    static_assert(patterns::kMaxEdgesPerState <= 64, "pending has one bit per edge");
    static_assert(patterns::kMaxFinalsPerState <= 32, "pending_finals has one bit per final");
    bool fresh = true;       // no event seen since the last take
    bool completed = false;  // its path was already emitted as a match
    EventTime start, last;
    EventTime deadline = EventTime::Max();  // WITHIN / MAX GAP, fixed at creation
    EventId start_id;
    AggWords aggs;
  };

  // Keeps env.stats->live_runs in step with runs_ across one public call
  // (whatever it adds or removes in between).
  struct LiveRunsDelta {
    LiveRunsDelta(const MatcherEnv& env, const std::vector<Run>& r)
        : stats(env.stats), runs(&r), before(static_cast<int64_t>(r.size())) {}
    ~LiveRunsDelta() { stats->live_runs += static_cast<int64_t>(runs->size()) - before; }
    MatcherStats* stats;
    const std::vector<Run>* runs;
    int64_t before;
  };

  // One event's pass over the runs (Process), in parts.
  struct Step;  // nfa_runtime.cc
  // What a new run inherits from the run that takes the event (copied, as
  // appending new runs to runs_ may move the parent).
  struct Parent {
    BufNode* node;
    AggWords aggs;
    EventTime start;
    EventId start_id;
  };
  // Creates the run that enters `target` with the event (a match if it is final).
  void Spawn(Step& s, const Parent* parent, int target);
  // Takes the fired edges s.fired[0, nfired) of `st` (the start state when
  // `parent` is null), one new run per distinct target.
  void Take(Step& s, const Parent* parent, const patterns::NfaState& st, int nfired);
  // Steps live run `ri` with the event; false: the run ended (released).
  // kTrace: with explain's trace notes (a separate instantiation, so the
  // hot loop without them has no trace code at all).
  template <bool kTrace>
  bool StepRun(Step& s, size_t ri);
  // The guarded final edges of `r` the event closes (and a not-next at the
  // end that the event completes).
  uint32_t StepFinals(Step& s, Run& r, const patterns::NfaState& st);
  // Runs the event starts from the start state.
  void StartNewRuns(Step& s);
  // Compacts runs_, records the mask and deadline, releases completed matches.
  void FinishStep(Step& s, size_t old_count, size_t kept, bool touched_runs);

  void RecomputeNextDeadline();
  void Expire(MatcherEnv& env, EventTime t);
  // Emits the held matches that no earlier-started run blocks. `now`: the
  // step's completion key and event time (for the held-match statistics).
  void Release(MatcherEnv& env, const CompletionKey& now_key, EventTime now);
  // Drops the runs, and the held matches from `held_from` on, that started
  // before `bound` (or at it, if `inclusive`): what the skip strategy of a
  // released match rules out.
  void PruneStarts(MatcherEnv& env, EventId bound, bool inclusive, size_t held_from);
  void EmitNow(MatcherEnv& env, MatchResult&& m);

  std::vector<Run> runs_;
  std::vector<MatchResult> held_;  // completed, waiting for earlier-started runs
  EventId last_id_{INT64_MIN, 0};
  uint64_t position_ = 0;  // events processed for this key
  EventTime next_deadline_ = EventTime::Max();
  // NFA states (bit s, or all bits past 63) that have a live run, and whether
  // a run was created by the last event (fresh runs see strict edges). With
  // these an event that cannot touch any run skips the run array entirely.
  uint64_t state_mask_ = 0;
  bool has_fresh_ = false;
  void RecomputeStateMask();
};

}  // namespace cepheus::engine
