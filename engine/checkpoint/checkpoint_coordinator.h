// CheckpointCoordinator: takes the checkpoints of a live run, one at a time
// (docs/architecture.md "Checkpoints"). Synchronous part, on the caller's
// (reader) thread: a barrier goes to every worker after everything read so
// far; each worker writes back its changed keys and waits while the sinks
// close their parts and the backend takes an image of the state. Then the
// workers go on. Asynchronous part, on a thread of its own: the image is
// written into the checkpoint directory and the metadata makes the
// checkpoint complete; back on the caller's thread, Finish() tells the sinks
// to publish their parts. The coordinator knows nothing of how events are
// read or routed: the runner gives it the barrier injection and the reader
// position as callbacks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/time_types.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/snapshot_sync.h"
#include "io/sink.h"
#include "metrics/counters.h"
#include "metrics/http_server.h"
#include "state/state_backend.h"

namespace cepheus::engine {

// Moments inside a checkpoint where tests stretch time so that a crash test
// can kill the process there. Production runs pass none.
class CheckpointHooks {
 public:
  virtual ~CheckpointHooks() = default;
  // The sinks' parts are staged; the metadata is not written yet.
  virtual void BeforeMetadata(uint64_t /*checkpoint_id*/) {}
  // The metadata is written; the sinks have not published their parts yet.
  virtual void BeforePublish(uint64_t /*checkpoint_id*/) {}
};

// A hook that sleeps `ms` at both moments (the CLI's testing flag).
class DelayHooks final : public CheckpointHooks {
 public:
  explicit DelayHooks(int64_t ms) : ms_(ms) {}
  void BeforeMetadata(uint64_t) override { Sleep(); }
  void BeforePublish(uint64_t) override { Sleep(); }

 private:
  void Sleep() const;
  int64_t ms_;
};

class CheckpointCoordinator {
 public:
  struct Wiring {
    CheckpointStore* store = nullptr;
    state::StateBackend* backend = nullptr;
    // Sinks by the name their commit record is kept under (null: absent).
    std::vector<std::pair<const char*, io::Sink*>> sinks;
    int parallelism = 1;
    const Clock* clock = nullptr;
    CheckpointHooks* hooks = nullptr;  // optional
    int retain = 3;
    bool copy_files = false;
    Duration interval = Duration::Millis(0);  // 0: only when asked
    // What the checkpoint records beyond the coordinator's own fields: the
    // reader position, patterns, keyings, backend (called at the barrier).
    std::function<CheckpointMetadata()> describe;
    // Sends `barrier` with watermark `wm` to every worker.
    std::function<void(const std::shared_ptr<SnapshotSync>& barrier, Watermark wm)> inject_barrier;
    // Writes what the reader holds for the sinks (before they prepare).
    std::function<Status()> flush_side_outputs;
    // After the sinks committed checkpoint `id` (sources commit their
    // offsets here). Optional.
    std::function<Status(uint64_t id)> on_complete;
    metrics::Registry* metrics = nullptr;
    // Told when the sinks' commits start and end (/readyz). Optional.
    metrics::Readiness* readiness = nullptr;
  };

  CheckpointCoordinator(Wiring wiring, uint64_t next_id);
  ~CheckpointCoordinator();  // joins the asynchronous part
  CheckpointCoordinator(const CheckpointCoordinator&) = delete;
  CheckpointCoordinator& operator=(const CheckpointCoordinator&) = delete;

  // Whether the interval has passed and no checkpoint is in flight.
  bool Due() const;
  // Starts a checkpoint (first completing the one in flight, if any).
  Status Begin(Watermark wm, bool finished);
  // Completes the checkpoint in flight if its asynchronous part is done, or
  // waits for it with `wait`.
  Status Finish(bool wait);
  // A checkpoint that is complete when this returns.
  Status TakeNow(Watermark wm, bool finished);
  uint64_t completed() const { return completed_; }

 private:
  struct InFlight;
  Status DoBegin(Watermark wm, bool finished);
  Status DoFinish(bool wait);
  // Counts a failed checkpoint (its error is passed on).
  Status Counted(Status s) {
    if (!s.ok()) c_failures_->Add(1);
    return s;
  }
  Wiring w_;
  uint64_t next_id_;
  uint64_t completed_ = 0;
  int64_t last_begin_ms_;
  std::unique_ptr<InFlight> inflight_;
  metrics::Registry local_metrics_;
  metrics::Counter *c_checkpoints_, *c_failures_;
  metrics::Gauge *g_duration_ms_, *g_pause_ms_, *g_id_, *g_size_;
};

}  // namespace cepheus::engine
