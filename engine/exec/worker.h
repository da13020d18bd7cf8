// Worker: one thread that owns a range of key groups. It buffers incoming
// events until the watermark passes them, feeds them in (event time, arrival)
// order to a KeyMatcher per (pattern, key), fires timers as the watermark
// advances, and writes match records to the matches output. Batches arrive
// through a bounded queue; everything else is private to the thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <condition_variable>
#include <mutex>

#include "common/blocking_queue.h"
#include "engine/checkpoint/snapshot_sync.h"
#include "engine/format/format.h"
#include "engine/nfa/nfa_runtime.h"
#include "engine/plan/pipeline.h"
#include "io/sink.h"
#include "metrics/counters.h"
#include "state/key_groups.h"
#include "state/state_backend.h"
#include "time/timer_queue.h"

namespace cepheus::engine {

struct RoutedEvent {
  RowPtr row;
  uint32_t keying = 0;
};

// Events plus the watermark that holds after them. A Max watermark ends the input.
struct EventBatch {
  std::vector<RoutedEvent> events;
  Watermark watermark;
  bool stop = false;  // stop without the final watermark (shutdown)
  // Set: a checkpoint barrier after this batch's events.
  std::shared_ptr<SnapshotSync> barrier;
};

struct WorkerStats {
  uint64_t events = 0;
  MatcherStats matcher;
  uint64_t peak_buffered = 0;
  uint64_t keys_evicted = 0;  // written back and dropped from the cache
  uint64_t keys_loaded = 0;   // read back from the state backend
  uint64_t peak_cached_keys = 0;
  int64_t peak_live_runs = 0;  // after each batch (and any budget cut)
};

// Process-wide metrics that every worker adds to after each batch, so a
// scrape during a run sees live values (the counters are atomic; a null
// member is not published).
struct WorkerMetrics {
  metrics::Counter* matches = nullptr;
  metrics::Counter* timeouts = nullptr;
  metrics::Counter* runs_dropped = nullptr;
  metrics::Counter* runs_cut_by_budget = nullptr;
  metrics::Counter* held_matches = nullptr;
  metrics::Counter* skip_errors = nullptr;
  metrics::Counter* keys_evicted = nullptr;
  metrics::Counter* keys_loaded = nullptr;
  metrics::Gauge* live_runs = nullptr;
};

// Where a worker keeps its state beyond memory (see docs/architecture.md).
struct WorkerStateOptions {
  state::StateBackend* backend = nullptr;  // shared by all workers
  // At most this many keys (over all patterns) stay deserialized in memory;
  // the least recently used ones beyond are written back and dropped. 0: no limit.
  size_t cache_keys = 0;
};

// How the state of a checkpoint maps onto the current pipeline.
struct RestoreMapping {
  // Checkpoint keying index -> current keying index, or -1 (its events are dropped).
  std::vector<int> keyings;
  Watermark watermark;
  // The checkpoint keeps a timer entry per stored key with a deadline (worker
  // state layout 2). Older checkpoints do not: Restore then writes them.
  bool timers_in_state = true;
};

class Worker {
 public:
  // The worker owns the key groups `groups`: it restores their state and is
  // sent only their events. `errors` receives matches a STRICT skip could
  // not apply to (the dead-letter output); null sends them to `matches`.
  Worker(const CompiledPipeline& pipeline, state::KeyGroupRange groups, io::Sink* matches,
         io::Sink* errors = nullptr);
  state::KeyGroupRange groups() const { return groups_; }
  // Deletes everything a pattern keeps in `backend` (its state is dropped
  // when the pattern changed since the checkpoint).
  static Status DropPatternState(state::StateBackend* backend, const std::string& pattern);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before Start(): keep state in `options.backend` (else only in memory).
  void AttachState(const WorkerStateOptions& options);
  // At most `runs` partial matches in memory in this worker (its share of
  // limits.max_live_runs); past it, after a batch, the oldest runs are cut
  // (counted, logged). 0: no limit.
  void SetRunBudget(size_t runs) { run_budget_ = runs; }
  // Before Start(), after AttachState: takes over the state of this worker's
  // key groups from the backend (which holds a restored checkpoint): its
  // pending events and the deadlines of its keys (keys load lazily).
  Status Restore(const RestoreMapping& mapping);
  void Start();
  // Blocks while the worker's queue is full.
  void Push(EventBatch batch) { queue_.Push(std::move(batch)); }
  // Waits for the thread to finish (after a batch with a Max watermark or stop).
  void Join();
  const WorkerStats& stats() const { return stats_; }
  // Before Start(): where to publish live counters (borrowed; may be null).
  void SetMetrics(const WorkerMetrics* metrics) { metrics_ = metrics; }
  const Status& status() const { return status_; }

  // Processes one batch on the caller's thread (used by Start's loop; also
  // lets tests and batch mode drive a worker synchronously).
  void OnBatch(EventBatch& batch);

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
  // An Abseil node map (worker.cc; kept out of this header): power-of-two
  // buckets (no division per lookup), lookup by string_view without a copy,
  // and stable node addresses (timers hold them).
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
  };
  struct Pending {
    RowPtr row;
    uint32_t keying;
    // Key node of the keying's first pattern, looked up one event ahead so
    // that its memory is on the way when the event is processed.
    KeyNode* hint = nullptr;
    // Event-time order, ties in arrival order.
    bool operator<(const Pending& o) const {
      return row->time() != o.row->time() ? row->time() < o.row->time() : row->seq() < o.row->seq();
    }
  };

  void Loop();
  void ProcessEvent(const Pending& p);
  // Lookahead: start loading what processing `p` will touch.
  void PrefetchKey(Pending& p, bool resolve);
  void FireTimers(EventTime wm);
  // Loads the keys whose backend timers are due at `wm` and lets time pass for them.
  void FireColdTimers(PatternState& ps, EventTime wm);
  // Makes the key's timer entry in the backend match deadline `d`.
  void StoreTimer(PatternState& ps, const std::string& key, KeyEntry& e, EventTime d);
  void Schedule(PatternState& ps, KeyNode& key);
  void FlushOutput();
  void SweepIdleKeys();
  void CutOldestRuns();
  // Timers point at map nodes: rebuilt after keys are erased.
  void RebuildTimers(PatternState& ps);
  // The key's entry, loaded from the backend if it is there (else created).
  KeyNode* FindOrLoad(PatternState& ps, std::string_view key);
  void EvictColdKeys();
  // Writes `e` to the backend if it changed (or deletes it if idle).
  void WriteBack(PatternState& ps, const std::string& key, KeyEntry& e);
  // Applies the collected writes (before anything reads the backend again).
  void FlushWrites();
  static constexpr size_t kMaxBatchBytes = 4 << 20;
  state::StateWriteBatch writes_;
  // Writes every changed key and the pending events (a checkpoint's sync phase).
  Status WriteBackAll();
  // End of input with keys in the backend: every stored key ends too.
  void EndStoredKeys(PatternState& ps);
  int GroupOf(std::string_view key) const;
  void Fail(const Status& s) {
    if (status_.ok()) status_ = s;
  }

  WorkerStateOptions state_;
  bool lookup_backend_ = false;  // the backend may hold keys that are not in memory
  size_t cached_keys_ = 0;
  size_t run_budget_ = 0;
  uint64_t batch_no_ = 0;
  std::vector<bool> buffer_groups_;  // groups with pending events in the backend
  std::string value_scratch_;
  static constexpr uint64_t kSweepEvery = 1 << 16;
  uint64_t events_since_sweep_ = 0;

  const CompiledPipeline& pipeline_;
  const state::KeyGroupRange groups_;
  io::Sink* matches_;
  io::Sink* errors_out_;
  BlockingQueue<EventBatch> queue_{16};
  std::thread thread_;
  NodePool pool_;
  std::vector<PatternState> patterns_;
  std::vector<std::vector<int>> keying_patterns_;  // keying -> indexes into patterns_
  // Events waiting for the watermark, sorted; [head_, end) are pending.
  // Input is mostly in order, so a batch is usually appended, else merged.
  std::vector<Pending> buffer_;
  size_t head_ = 0;
  std::string key_scratch_;
  std::string prefetch_scratch_;
  Watermark watermark_ = Watermark::Min();
  io::RecordBatch out_;
  io::RecordBatch errors_;  // for errors_out_
  WorkerStats stats_;
  // Live metrics: what was already added to them.
  void PublishMetrics();
  const WorkerMetrics* metrics_ = nullptr;
  WorkerStats published_;
  Status status_;
};

}  // namespace cepheus::engine
