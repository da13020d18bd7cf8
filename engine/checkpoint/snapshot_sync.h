// SnapshotSync: the rendezvous of a checkpoint's synchronous phase between
// the coordinator and the workers. Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>

#include "common/status.h"

namespace cepheus::engine {

// The rendezvous of one checkpoint's synchronous phase. Each worker, having
// processed everything before the barrier, writes its state back and
// arrives; the coordinator waits for all, takes the snapshot, and releases
// them. (Every worker has one input channel, fed by the single reader, so a
// barrier needs no alignment across channels: it is in order by construction.)
class SnapshotSync {
 public:
  explicit SnapshotSync(int parties) : waiting_(parties) {}
  void Arrive(const Status& s);
  Status WaitAllArrived();
  void Release();
  void WaitReleased();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_;
  bool released_ = false;
  Status status_;
};

}  // namespace cepheus::engine
