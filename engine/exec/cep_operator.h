// CepOperator: the CEP operator behind KeyedOperator. Per pattern and key a
// KeyMatcher, kept deserialized in a bounded cache and written back to the
// state backend at barriers and on eviction; per pattern a queue of the keys'
// deadlines (timers), with the deadlines of evicted keys kept in the backend;
// match records rendered to the matches output. Single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/exec/keyed_operator.h"
#include "engine/format/format.h"
#include "engine/nfa/nfa_runtime.h"
#include "engine/plan/pipeline.h"
#include "io/record.h"
#include "io/sink.h"
#include "state/key_groups.h"
#include "state/keyed_cache.h"
#include "state/state_backend.h"

namespace cepheus::engine {

// With the state cache's counters (keys evicted, loaded, peak in memory).
struct WorkerStats : state::CacheStats {
  uint64_t events = 0;
  // Per pattern, in the pipeline's order (sized by the operator).
  std::vector<MatcherStats> patterns;
  uint64_t peak_buffered = 0;
  int64_t peak_live_runs = 0;  // after each batch (and any budget cut)
  // The sum over patterns.
  MatcherStats matcher() const {
    MatcherStats sum;
    for (const MatcherStats& p : patterns) sum.Add(p);
    return sum;
  }
  int64_t live_runs() const {
    int64_t n = 0;
    for (const MatcherStats& p : patterns) n += p.live_runs;
    return n;
  }
};

// The common wiring of a pattern's matchers (the CEP operator's and the
// batch matcher's): pattern, node pool, stats, limits, whether timeouts are
// reported. The caller adds `emit` (where matches go).
void WireMatcherEnv(const CompiledPipeline& pipeline, const patterns::CompiledPattern& pattern,
                    NodePool* pool, MatcherStats* stats, MatcherEnv* env);

// `cepheus explain`: the events of one pattern (and key) and what its runs
// did with each (engine/nfa TraceNote), as the real operator runs.
struct TraceRequest {
  std::string pattern;
  std::string key;  // empty: every key
  std::function<void(std::string_view key, const Row& row)> on_event;
  std::function<void(std::string_view key, const TraceNote& note)> on_note;
};

class CepOperator final : public KeyedOperator {
 public:
  // Counts into `*stats` (the worker's). `errors` receives matches a STRICT
  // skip could not apply to; null sends them to `matches`.
  CepOperator(const CompiledPipeline& pipeline, state::KeyGroupRange groups, WorkerStats* stats,
              io::Sink* matches, io::Sink* errors);
  ~CepOperator() override;
  CepOperator(const CepOperator&) = delete;
  CepOperator& operator=(const CepOperator&) = delete;

  // Deletes everything a pattern keeps in `backend` (its state is dropped
  // when the pattern changed since the checkpoint).
  static Status DropPatternState(state::StateBackend* backend, const std::string& pattern);
  bool Wants(uint32_t keying) const override {
    return keying < keying_patterns_.size() && !keying_patterns_[keying].empty();
  }
  void AttachState(const WorkerStateOptions& options) override;
  // Sends the matches and timeouts of the patterns that have an output of
  // their own (CompiledPipeline::pattern_output) to `routed[i]` (one per
  // config.routed_outputs entry) instead of `matches`. Before any event.
  void RouteOutputs(const std::vector<io::Sink*>& routed);
  // Traces `trace->pattern` (borrowed; null: off). Before any event.
  void SetTrace(const TraceRequest* trace);
  // At most `runs` partial matches in memory (0: no limit); see Worker.
  void SetRunBudget(size_t runs) { run_budget_ = runs; }

  // Batch use (backtest: one key's events at a time, in order, then the key
  // ends). Match records go to `matches` and failed STRICT skips to
  // `errors` instead of the sinks (both stay the caller's).
  void RenderInto(io::RecordBatch* matches, io::RecordBatch* errors) {
    out_target_ = matches;
    errors_target_ = errors;
  }
  // The key's input is over: every partial match of `key` on `keying` ends
  // (as at the end of the input) and the key is forgotten. `report` hears,
  // per pattern, how many matches the key had since it started.
  template <typename Report>
  void EndKey(uint32_t keying, std::string_view key, Report&& report) {
    for (int pi : keying_patterns_[keying]) {
      PatternState& ps = patterns_[static_cast<size_t>(pi)];
      EndKeyOf(pi, key);
      if (ps.key_matches) report(ps.pattern->name, ps.key_matches);
      ps.key_matches = 0;
    }
  }
  // Matches and timeouts so far of pattern `name`'s matchers here.
  struct PatternCounts {
    std::string name;
    uint64_t matches = 0, timeouts = 0;
  };
  std::vector<PatternCounts> pattern_counts() const;

  void* Prefetch(uint32_t keying, const Row& row, bool resolve) override;
  void OnEvent(uint32_t keying, const RowPtr& row, void* hint) override;
  void OnWatermark(EventTime wm) override;
  void EndOfBatch() override;
  void FlushOutput() override;
  Status WriteBack() override;
  Status Restore(state::KeyGroupRange groups, const RestoreMapping& mapping) override;
  const Status& status() const override { return status_; }

 private:
  // The keyed state: a KeyMatcher per (pattern, key) in a bounded cache
  // with per-key timers (state/keyed_cache.h), one space per pattern.
  // Defined in cep_operator.cc (its map is an Abseil node map, kept out of
  // this header).
  struct Cache;
  struct MatcherCodec;
  struct PatternState {
    const patterns::CompiledPattern* pattern = nullptr;
    const Keying* keying = nullptr;
    MatcherEnv env;
    std::unique_ptr<MatcherCodec> codec;
    std::unique_ptr<NodePool> pool;     // the buffer of this pattern's runs
    io::RecordBatch* out = nullptr;     // its own output's batch (null: the matches batch)
    std::string_view current_key_view;  // the key whose matcher is emitting (a map key)
    std::unique_ptr<MatchRenderer> renderer;
    uint64_t matches = 0, timeouts = 0;  // emitted by this pattern's matchers
    uint64_t key_matches = 0;            // since the last EndKey (batch use)
  };

  void EndKeyOf(int pattern, std::string_view key);
  void CutOldestRuns();
  void Fail(const Status& s) {
    if (status_.ok()) status_ = s;
  }

  const CompiledPipeline& pipeline_;
  const state::KeyGroupRange groups_;
  WorkerStats& stats_;
  io::Sink* matches_;
  io::Sink* errors_out_;
  WorkerStateOptions state_;
  size_t run_budget_ = 0;
  static constexpr uint64_t kSweepEvery = 1 << 16;
  uint64_t events_since_sweep_ = 0;
  std::vector<PatternState> patterns_;
  std::unique_ptr<Cache> cache_;                   // after patterns_ (its codecs): destroyed first
  std::vector<std::vector<int>> keying_patterns_;  // keying -> indexes into patterns_
  std::string key_scratch_;
  std::string prefetch_scratch_;
  io::RecordBatch out_;
  io::RecordBatch errors_;  // for errors_out_
  std::vector<io::Sink*> routed_sinks_;
  const TraceRequest* trace_ = nullptr;
  int traced_pattern_ = -1;
  std::vector<io::RecordBatch> routed_out_;  // one per routed sink
  io::RecordBatch* out_target_ = &out_;
  io::RecordBatch* errors_target_ = &errors_;
  Status status_;
};

}  // namespace cepheus::engine
