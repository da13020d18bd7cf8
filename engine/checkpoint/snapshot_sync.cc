#include "engine/checkpoint/snapshot_sync.h"

namespace cepheus::engine {

void SnapshotSync::Arrive(const Status& s) {
  std::lock_guard<std::mutex> l(mu_);
  if (!s.ok() && status_.ok()) status_ = s;
  if (--waiting_ == 0) cv_.notify_all();
}

Status SnapshotSync::WaitAllArrived() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return waiting_ <= 0; });
  return status_;
}

void SnapshotSync::Release() {
  std::lock_guard<std::mutex> l(mu_);
  released_ = true;
  cv_.notify_all();
}

void SnapshotSync::WaitReleased() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return released_; });
}

}  // namespace cepheus::engine
