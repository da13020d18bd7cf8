// Worker: one thread that owns a range of key groups. It buffers incoming
// events until the watermark passes them, feeds them in (event time, arrival)
// order to a KeyMatcher per (pattern, key), fires timers as the watermark
// advances, and writes match records to the matches output. Batches arrive
// through a bounded queue; everything else is private to the thread.
#pragma once

#include <absl/container/node_hash_map.h>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "common/blocking_queue.h"
#include "engine/match_render.h"
#include "engine/nfa_runtime.h"
#include "engine/output.h"
#include "engine/pipeline.h"

namespace cepheus::engine {

struct RoutedEvent {
  RowPtr row;
  uint32_t keying = 0;
};

// Events plus the watermark that holds after them. `final` ends the input.
struct EventBatch {
  std::vector<RoutedEvent> events;
  Watermark watermark;
  bool stop = false;  // stop without the final watermark (shutdown)
};

struct WorkerStats {
  uint64_t events = 0;
  MatcherStats matcher;
  uint64_t peak_buffered = 0;
};

class Worker {
 public:
  Worker(const CompiledPipeline& pipeline, int index, Output* matches);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();
  // Blocks while the worker's queue is full.
  void Push(EventBatch batch) { queue_.Push(std::move(batch)); }
  // Waits for the thread to finish (after a batch with a Max watermark or stop).
  void Join();
  const WorkerStats& stats() const { return stats_; }
  const Status& status() const { return status_; }

  // Processes one batch on the caller's thread (used by Start's loop; also
  // lets tests and batch mode drive a worker synchronously).
  void OnBatch(EventBatch& batch);

 private:
  struct KeyEntry {
    KeyMatcher matcher;
    EventTime scheduled = EventTime::Max();  // earliest timer queued for this key
  };
  // Abseil's node map: power-of-two buckets (no division per lookup), lookup
  // by string_view without a copy, and stable node addresses (timers hold them).
  using KeyMap = absl::node_hash_map<std::string, KeyEntry>;
  // A timer points at its key's map node (nodes are stable until erased;
  // erasing happens only in SweepIdleKeys, which rebuilds the timers).
  struct Timer {
    EventTime at;
    KeyMap::value_type* key;
    bool operator>(const Timer& o) const { return at > o.at; }
  };
  struct PatternState {
    const patterns::CompiledPattern* pattern = nullptr;
    const Keying* keying = nullptr;
    MatcherEnv env;
    KeyMap keys;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
    std::string_view current_key_view;  // the key whose matcher is emitting (a map key)
    std::unique_ptr<MatchRenderer> renderer;
  };
  struct Pending {
    RowPtr row;
    uint32_t keying;
    // Key node of the keying's first pattern, looked up one event ahead so
    // that its memory is on the way when the event is processed.
    KeyMap::value_type* hint = nullptr;
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
  void Schedule(PatternState& ps, KeyMap::value_type& key);
  void FlushOutput();
  void SweepIdleKeys();
  static constexpr uint64_t kSweepEvery = 1 << 16;
  uint64_t events_since_sweep_ = 0;

  const CompiledPipeline& pipeline_;
  const int index_;
  Output* matches_;
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
  std::string out_;
  WorkerStats stats_;
  Status status_;
};

}  // namespace cepheus::engine
