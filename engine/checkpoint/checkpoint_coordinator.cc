#include "engine/checkpoint/checkpoint_coordinator.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>

namespace cepheus::engine {

void DelayHooks::Sleep() const {
  if (ms_ <= 0) return;
  struct timespec d {
    static_cast<time_t>(ms_ / 1000), static_cast<long>(ms_ % 1000) * 1000000L
  };
  nanosleep(&d, nullptr);
}

namespace {
// The bytes of the regular files under `dir` (errors: what could be read).
uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    const uintmax_t size = it->file_size(fec);
    if (!fec) total += size;
  }
  return total;
}
}  // namespace

struct CheckpointCoordinator::InFlight {
  CheckpointMetadata meta;
  std::unique_ptr<state::PendingSnapshot> image;
  int64_t t0 = 0, t_written_back = 0, t_sync = 0;
  uint64_t bytes = 0;  // of the checkpoint's files
  std::thread thread;
  std::atomic<bool> done{false};
  Status status;  // of the asynchronous part; read after `done`
};

CheckpointCoordinator::CheckpointCoordinator(Wiring wiring, uint64_t next_id)
    : w_(std::move(wiring)), next_id_(next_id), last_begin_ms_(w_.clock->MonotonicMillis()) {
  metrics::Registry& reg = w_.metrics ? *w_.metrics : local_metrics_;
  c_checkpoints_ = &reg.GetCounter("cepheus_checkpoints_total", "Checkpoints completed");
  g_duration_ms_ = &reg.GetMillisGauge("cepheus_last_checkpoint_duration_seconds",
                                       "Duration of the last completed checkpoint");
  g_pause_ms_ = &reg.GetMillisGauge("cepheus_last_checkpoint_pause_seconds",
                                    "How long workers were paused in the last checkpoint");
  g_id_ = &reg.GetGauge("cepheus_last_checkpoint_id", "Id of the last completed checkpoint");
  g_size_ = &reg.GetGauge("cepheus_last_checkpoint_size_bytes",
                          "Bytes of the last completed checkpoint's files (shared ones included)");
  c_failures_ = &reg.GetCounter("cepheus_checkpoint_failures_total",
                                "Checkpoints that failed (the run ends with the reason)");
}

CheckpointCoordinator::~CheckpointCoordinator() {
  // The asynchronous part uses the store and the backend: it ends first.
  if (inflight_ && inflight_->thread.joinable()) inflight_->thread.join();
}

bool CheckpointCoordinator::Due() const {
  return !inflight_ && w_.interval.millis() > 0 &&
         w_.clock->MonotonicMillis() - last_begin_ms_ >= w_.interval.millis();
}

Status CheckpointCoordinator::Finish(bool wait) { return Counted(DoFinish(wait)); }

Status CheckpointCoordinator::Begin(Watermark wm, bool finished) {
  return Counted(DoBegin(wm, finished));
}

Status CheckpointCoordinator::DoFinish(bool wait) {
  if (!inflight_ || (!wait && !inflight_->done.load(std::memory_order_acquire)))
    return Status::Ok();
  inflight_->thread.join();
  std::unique_ptr<InFlight> f = std::move(inflight_);
  CEPHEUS_RETURN_IF_ERROR(f->status);
  if (w_.hooks) w_.hooks->BeforePublish(f->meta.id);
  if (w_.readiness) w_.readiness->CommitStarted(w_.clock->MonotonicMillis());
  for (const auto& [slot, rec] : f->meta.outputs)
    for (const auto& [name, sink] : w_.sinks)
      if (sink && std::string_view(name) == slot) CEPHEUS_RETURN_IF_ERROR(sink->Commit(rec));
  if (w_.readiness) w_.readiness->CommitEnded();
  if (w_.on_complete) CEPHEUS_RETURN_IF_ERROR(w_.on_complete(f->meta.id));
  if (Status r = w_.store->Retain(w_.retain); !r.ok())
    // Old checkpoints left behind cost disk space, not correctness.
    spdlog::warn("checkpoint.retain: {}", r.message());
  ++completed_;
  c_checkpoints_->Add(1);
  g_id_->Set(static_cast<int64_t>(f->meta.id));
  const int64_t t1 = w_.clock->MonotonicMillis();
  g_duration_ms_->Set(t1 - f->t0);
  g_pause_ms_->Set(f->t_sync - f->t0);
  g_size_->Set(static_cast<int64_t>(f->bytes));
  spdlog::info(
      "checkpoint {} complete in {} ms (workers paused {} ms: {} ms writing back changed keys, "
      "{} ms taking the image){}",
      f->meta.id, t1 - f->t0, f->t_sync - f->t0, f->t_written_back - f->t0,
      f->t_sync - f->t_written_back, f->meta.finished ? ", run finished" : "");
  return Status::Ok();
}

Status CheckpointCoordinator::DoBegin(Watermark wm, bool finished) {
  CEPHEUS_RETURN_IF_ERROR(DoFinish(/*wait=*/true));
  auto f = std::make_unique<InFlight>();
  f->t0 = w_.clock->MonotonicMillis();
  last_begin_ms_ = f->t0;
  CheckpointMetadata& meta = f->meta;
  meta = w_.describe();
  meta.id = next_id_++;
  meta.finished = finished;
  meta.parallelism = w_.parallelism;
  meta.watermark = wm;
  // The directory exists from the start: a crash at any point of the
  // checkpoint leaves it without metadata, i.e. visibly incomplete.
  std::error_code ec;
  std::filesystem::create_directories(w_.store->DirOf(meta.id), ec);
  auto sync = std::make_shared<SnapshotSync>(w_.parallelism);
  w_.inject_barrier(sync, wm);
  Status s = sync->WaitAllArrived();
  if (s.ok()) s = w_.flush_side_outputs();  // e.g. the watermark just sent
  f->t_written_back = w_.clock->MonotonicMillis();
  if (s.ok() && ec)
    s = Status::IoError("cannot create '" + w_.store->DirOf(meta.id) + "': " + ec.message());
  for (const auto& [slot, sink] : w_.sinks) {
    if (!s.ok() || !sink) continue;
    auto rec = sink->PrepareCommit(meta.id);
    if (!rec.ok())
      s = rec.status();
    else
      meta.outputs.emplace_back(slot, std::move(rec.value()));
  }
  if (s.ok()) {
    auto image = w_.backend->BeginSnapshot();
    if (image.ok())
      f->image = std::move(image.value());
    else
      s = image.status();
  }
  sync->Release();
  CEPHEUS_RETURN_IF_ERROR(s);
  f->t_sync = w_.clock->MonotonicMillis();
  InFlight* raw = f.get();
  inflight_ = std::move(f);
  raw->thread = std::thread([raw, this] {
    const std::string dir = w_.store->StateDirOf(raw->meta.id);
    Status st = raw->image->WriteTo(dir);
    raw->image.reset();  // unpins the files
    if (st.ok() && w_.copy_files) st = state::UnshareSnapshotFiles(dir);
    if (st.ok()) {
      if (w_.hooks) w_.hooks->BeforeMetadata(raw->meta.id);
      raw->meta.created_ms = w_.clock->NowMillis();
      st = w_.store->Complete(raw->meta);
    }
    if (st.ok()) raw->bytes = DirectoryBytes(w_.store->DirOf(raw->meta.id));
    raw->status = st;
    raw->done.store(true, std::memory_order_release);
  });
  return Status::Ok();
}

Status CheckpointCoordinator::TakeNow(Watermark wm, bool finished) {
  CEPHEUS_RETURN_IF_ERROR(Begin(wm, finished));
  return Finish(/*wait=*/true);
}

}  // namespace cepheus::engine
