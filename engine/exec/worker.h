// Worker: one thread that owns a range of key groups. It buffers incoming
// events until the watermark passes them and feeds them in (event time,
// arrival) order to its keyed operator (engine/exec/keyed_operator.h; the CEP
// operator today), tells it when the watermark moves, keeps the pending
// events in checkpoints and meets the barrier. Batches arrive through a
// bounded queue; everything else is private to the thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <condition_variable>
#include <mutex>

#include "common/blocking_queue.h"
#include "common/clock.h"
#include "engine/checkpoint/snapshot_sync.h"
#include "engine/exec/cep_operator.h"
#include "engine/exec/keyed_operator.h"
#include "engine/nfa/nfa_runtime.h"
#include "engine/plan/pipeline.h"
#include "io/sink.h"
#include "metrics/counters.h"
#include "state/key_groups.h"
#include "state/state_backend.h"

namespace cepheus::engine {

struct RoutedEvent {
  RowPtr row;
  uint32_t keying = 0;
  // When the reader read it (steady clock, microseconds; 0: unknown): the
  // start of the output latency histogram.
  int64_t arrival_us = 0;
};

// Events plus the watermark that holds after them. A Max watermark ends the input.
struct EventBatch {
  std::vector<RoutedEvent> events;
  Watermark watermark;
  bool stop = false;  // stop without the final watermark (shutdown)
  // Set: a checkpoint barrier after this batch's events.
  std::shared_ptr<SnapshotSync> barrier;
  // When it was sent (SteadyMicros; 0: unknown): the latency of output the
  // watermark alone releases counts from here.
  int64_t sent_us = 0;
};

// Process-wide metrics that every worker adds to after each batch, so a
// scrape during a run sees live values (the counters are atomic; a null
// member is not published).
struct WorkerMetrics {
  // Per pattern (label pattern="name"), in the pipeline's order.
  struct Pattern {
    metrics::Counter* matches = nullptr;
    metrics::Counter* timeouts = nullptr;
    metrics::Counter* runs_dropped = nullptr;
    metrics::Counter* runs_cut_by_budget = nullptr;
    metrics::Counter* held_matches = nullptr;
    metrics::Counter* skip_errors = nullptr;
    metrics::Gauge* live_runs = nullptr;
    metrics::Gauge* buffered_events = nullptr;
  };
  std::vector<Pattern> patterns;
  metrics::Counter* keys_evicted = nullptr;
  metrics::Counter* keys_loaded = nullptr;
  metrics::Counter* cache_lookups = nullptr;
  metrics::Counter* cache_misses = nullptr;
  // Seconds from reading an event to writing the records it released.
  metrics::Histogram* output_latency = nullptr;
};

class Worker {
 public:
  // Makes the operators a worker runs; they count into `stats` (the worker's).
  using OperatorFactory =
      std::function<std::vector<std::unique_ptr<KeyedOperator>>(WorkerStats* stats)>;
  // The worker owns the key groups `groups`: it restores their state and is
  // sent only their events, which it hands to the operators `make` returns
  // (the CEP operator today; windows next).
  Worker(const CompiledPipeline& pipeline, state::KeyGroupRange groups,
         const OperatorFactory& make);
  state::KeyGroupRange groups() const { return groups_; }
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before Start(): keep state in `options.backend` (else only in memory).
  void AttachState(const WorkerStateOptions& options);
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
  // Before Start(): the wall clock of processing-time timers (borrowed;
  // default: the system clock).
  void SetClock(const Clock* clock) { clock_ = clock; }
  const Status& status() const;

  // Processes one batch on the caller's thread (used by Start's loop; also
  // lets tests and batch mode drive a worker synchronously).
  void OnBatch(EventBatch& batch);

 private:
  struct Pending {
    RowPtr row;
    uint32_t keying;
    // The first operator's lookahead hint, taken one event ahead so that
    // the key's memory is on the way when the event is processed.
    void* hint = nullptr;
    int64_t arrival_us = 0;  // RoutedEvent::arrival_us
    // Event-time order, ties in arrival order.
    bool operator<(const Pending& o) const {
      return row->time() != o.row->time() ? row->time() < o.row->time() : row->seq() < o.row->seq();
    }
  };

  void Loop();
  // The earliest processing-time timer of the operators (kNoTimer: none).
  int64_t NextProcessingTime() const;
  // Calls OnProcessingTime on every operator whose timer is due; true if any.
  bool FireProcessingTimers();
  // Writes the changed keys and the pending events (a checkpoint's sync phase).
  Status WriteBackAll();
  int GroupOf(const Pending& p);
  void Fail(const Status& s) {
    if (status_.ok()) status_ = s;
  }
  // Live metrics: what was already added to them. Returns how many match,
  // timeout and error records the operators emitted since the last call.
  uint64_t PublishMetrics();
  // After the output of `records` records was handed to the sinks: their
  // latency since `arrival_us` (the earliest read of the events behind them).
  void ObserveLatency(uint64_t records, int64_t arrival_us);

  const CompiledPipeline& pipeline_;
  const state::KeyGroupRange groups_;
  WorkerStats stats_;
  std::vector<std::unique_ptr<KeyedOperator>> ops_;
  std::vector<std::vector<KeyedOperator*>> keying_ops_;  // keying -> operators that want it
  WorkerStateOptions state_;
  state::StateWriteBatch writes_;
  std::vector<bool> buffer_groups_;  // groups with pending events in the backend
  BlockingQueue<EventBatch> queue_{16};
  std::thread thread_;
  // Events waiting for the watermark, sorted; [head_, end) are pending.
  // Input is mostly in order, so a batch is usually appended, else merged.
  std::vector<Pending> buffer_;
  size_t head_ = 0;
  std::string key_scratch_;
  Watermark watermark_ = Watermark::Min();
  const WorkerMetrics* metrics_ = nullptr;
  SystemClock system_clock_;
  const Clock* clock_ = &system_clock_;
  WorkerStats published_;
  Status status_;
};

}  // namespace cepheus::engine
