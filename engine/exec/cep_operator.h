// CepOperator: the CEP operator behind KeyedOperator. Per pattern and key a
// KeyMatcher, kept deserialized in a bounded cache and written back to the
// state backend at barriers and on eviction; per pattern a queue of the keys'
// deadlines (timers), with the deadlines of evicted keys kept in the backend;
// match records rendered to the matches output. Single-threaded.
#pragma once

#include <cstdint>
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
#include "state/state_backend.h"
#include "time/timer_queue.h"

namespace cepheus::engine {

struct WorkerStats {
  uint64_t events = 0;
  MatcherStats matcher;
  uint64_t peak_buffered = 0;
  uint64_t keys_evicted = 0;  // written back and dropped from the cache
  uint64_t keys_loaded = 0;   // read back from the state backend
  uint64_t peak_cached_keys = 0;
  int64_t peak_live_runs = 0;  // after each batch (and any budget cut)
};

// The common wiring of a pattern's matchers (the CEP operator's and the
// batch matcher's): pattern, node pool, stats, limits, whether timeouts are
// reported. The caller adds `emit` (where matches go).
void WireMatcherEnv(const CompiledPipeline& pipeline, const patterns::CompiledPattern& pattern,
                    NodePool* pool, MatcherStats* stats, MatcherEnv* env);

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
      EndKeyOf(ps, key);
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
  struct KeyEntry {
    KeyMatcher matcher;
    EventTime scheduled = EventTime::Max();  // earliest timer queued for this key
    uint64_t last_used = 0;                  // batch number, for eviction
    bool dirty = false;                      // changed since written to the backend
    bool stored = false;                     // the backend has an entry for it
    // The deadline of this key's timer entry in the backend (Max: none).
    EventTime stored_timer = EventTime::Max();
  };
  // An Abseil node map (cep_operator.cc; kept out of this header):
  // power-of-two buckets (no division per lookup), lookup by string_view
  // without a copy, and stable node addresses (timers hold them).
  struct KeyMap;
  using KeyNode = std::pair<const std::string, KeyEntry>;
  // A timer points at its key's map node (nodes are stable until erased;
  // erasing happens only in SweepIdleKeys, which rebuilds the timers). A key
  // rescheduled earlier leaves its old timer behind, recognised as superseded
  // (KeyEntry::scheduled) when it pops.
  using Timers = timing::TimerQueue<KeyNode*>;
  struct PatternState {
    const patterns::CompiledPattern* pattern = nullptr;
    std::string ns;        // the backend namespace of its matchers
    std::string timer_ns;  // and of their timers (deadline, key), in deadline order
    const Keying* keying = nullptr;
    MatcherEnv env;
    std::unique_ptr<KeyMap> keys;  // never null
    Timers timers;
    // Timers of keys that are not in memory live in the backend (so memory
    // does not grow with the number of keys): none of them is due before
    // this (Max: none, or no backend).
    EventTime cold_min = EventTime::Max();
    std::vector<EventTime> group_cold_min;  // the same per key group
    std::string_view current_key_view;      // the key whose matcher is emitting (a map key)
    std::unique_ptr<MatchRenderer> renderer;
    uint64_t matches = 0, timeouts = 0;  // emitted by this pattern's matchers
    uint64_t key_matches = 0;            // since the last EndKey (batch use)
  };

  void EndKeyOf(PatternState& ps, std::string_view key);

  // Loads the keys whose backend timers are due at `wm` and lets time pass for them.
  void FireColdTimers(PatternState& ps, EventTime wm);
  // Makes the key's timer entry in the backend match deadline `d`.
  void StoreTimer(PatternState& ps, const std::string& key, KeyEntry& e, EventTime d);
  void Schedule(PatternState& ps, KeyNode& key);
  void SweepIdleKeys();
  void CutOldestRuns();
  // Timers point at map nodes: rebuilt after keys are erased.
  void RebuildTimers(PatternState& ps);
  // The key's entry, loaded from the backend if it is there (else created).
  KeyNode* FindOrLoad(PatternState& ps, std::string_view key);
  void EvictColdKeys();
  // Writes `e` to the backend if it changed (or deletes it if idle).
  void WriteBackKey(PatternState& ps, const std::string& key, KeyEntry& e);
  // Applies the collected writes (before anything reads the backend again).
  void FlushWrites();
  static constexpr size_t kMaxBatchBytes = 4 << 20;
  // End of input with keys in the backend: every stored key ends too.
  void EndStoredKeys(PatternState& ps);
  int GroupOf(std::string_view key) const;
  void Fail(const Status& s) {
    if (status_.ok()) status_ = s;
  }

  const CompiledPipeline& pipeline_;
  const state::KeyGroupRange groups_;
  WorkerStats& stats_;
  io::Sink* matches_;
  io::Sink* errors_out_;
  WorkerStateOptions state_;
  state::StateWriteBatch writes_;
  bool lookup_backend_ = false;  // the backend may hold keys that are not in memory
  size_t cached_keys_ = 0;
  size_t run_budget_ = 0;
  uint64_t batch_no_ = 0;
  std::string value_scratch_;
  static constexpr uint64_t kSweepEvery = 1 << 16;
  uint64_t events_since_sweep_ = 0;
  NodePool pool_;
  std::vector<PatternState> patterns_;
  std::vector<std::vector<int>> keying_patterns_;  // keying -> indexes into patterns_
  std::string key_scratch_;
  std::string prefetch_scratch_;
  io::RecordBatch out_;
  io::RecordBatch errors_;  // for errors_out_
  io::RecordBatch* out_target_ = &out_;
  io::RecordBatch* errors_target_ = &errors_;
  Status status_;
};

}  // namespace cepheus::engine
