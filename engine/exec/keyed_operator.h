// KeyedOperator: what a worker runs over the events of its key groups. The
// worker owns what every operator needs -- the input queue, the event-time
// buffer that releases events in (event time, arrival) order once the
// watermark passes them, the pending events' part of a checkpoint, the
// barrier rendezvous and the live metrics -- and the operator owns its
// per-key state, its timers and its output. The CEP operator (one NFA per
// pattern and key) is the one operator today; windowed aggregates plug in
// here next. Single-threaded: called on the worker's thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "common/row.h"
#include "common/status.h"
#include "common/time_types.h"
#include "state/key_groups.h"
#include "state/state_backend.h"

namespace cepheus::engine {

// How the state of a checkpoint maps onto the current pipeline.
struct RestoreMapping {
  // Checkpoint keying index -> current keying index, or -1 (its events are dropped).
  std::vector<int> keyings;
  Watermark watermark;
  // The checkpoint keeps a timer entry per stored key with a deadline (worker
  // state layout 2). Older checkpoints do not: Restore then writes them.
  bool timers_in_state = true;
};

// Where a worker and its operators keep state beyond memory (see
// docs/architecture.md).
struct WorkerStateOptions {
  state::StateBackend* backend = nullptr;  // shared by all workers
  // At most this many keys (over all patterns) stay deserialized in memory;
  // the least recently used ones beyond are written back and dropped. 0: no limit.
  size_t cache_keys = 0;
};

class KeyedOperator {
 public:
  virtual ~KeyedOperator() = default;

  // Whether events of keying `keying` are for this operator (the worker
  // hands each event to every operator that wants its keying).
  virtual bool Wants(uint32_t keying) const = 0;
  // Before the first event: keep state in `options.backend` (else only in memory).
  virtual void AttachState(const WorkerStateOptions& options) = 0;

  // Lookahead for the event after next (`resolve` false: start loading the
  // hash slot) or the next one (`resolve` true: returns an opaque hint that
  // OnEvent may use, or null). Optional.
  virtual void* Prefetch(uint32_t /*keying*/, const Row& /*row*/, bool /*resolve*/) {
    return nullptr;
  }
  // An event of keying `keying`, in event-time order, at or behind the watermark.
  virtual void OnEvent(uint32_t keying, const RowPtr& row, void* hint) = 0;
  // The watermark reached `wm` (Max: the end of the input): fire what is due.
  virtual void OnWatermark(EventTime wm) = 0;
  // Processing-time timers (e.g. a window's "early firing every 10 s of
  // wall-clock time"): when the operator next wants OnProcessingTime, in
  // wall-clock milliseconds of the worker's injected clock (kNoTimer: never).
  // The worker calls OnProcessingTime once the clock reached it -- between
  // batches, or after waiting for it while no batch comes -- then flushes
  // the operator's output. Results that depend on it are outside the
  // run == backtest contract (the backtest has no wall clock to follow).
  static constexpr int64_t kNoTimer = INT64_MAX;
  virtual int64_t NextProcessingTime() const { return kNoTimer; }
  virtual void OnProcessingTime(int64_t /*now_ms*/) {}
  // After every batch: housekeeping (idle keys, the key cache, memory budgets).
  virtual void EndOfBatch() = 0;
  // Hands what the batch produced to the sinks.
  virtual void FlushOutput() = 0;
  // At a checkpoint barrier: writes every changed key back to the state backend.
  virtual Status WriteBack() = 0;
  // Before the first event: takes over the state of `groups` from the state
  // backend, which holds a restored checkpoint.
  virtual Status Restore(state::KeyGroupRange groups, const RestoreMapping& mapping) = 0;
  // The first error met (state I/O, sinks); the worker reports it.
  virtual const Status& status() const = 0;
};

}  // namespace cepheus::engine
