// Key groups: keys hash into a fixed number of groups, the unit of state
// ownership. A worker owns a contiguous range of groups, so the number of
// workers can change between runs without rehashing keys (state moves by
// whole groups, as in Flink). Pure functions; thread-safe.
#pragma once

#include <cstdint>

namespace cepheus::state {

constexpr int kDefaultKeyGroups = 128;

inline int KeyGroupOf(uint64_t key_hash, int num_groups) {
  return static_cast<int>(key_hash % static_cast<uint64_t>(num_groups));
}

// Worker owning `group` when `parallelism` workers split `num_groups` groups
// into contiguous ranges.
inline int WorkerOfGroup(int group, int num_groups, int parallelism) {
  return static_cast<int>(static_cast<int64_t>(group) * parallelism / num_groups);
}

// First group (inclusive) and last group (exclusive) of `worker`.
void GroupRange(int worker, int num_groups, int parallelism, int* begin, int* end);

// The key groups a worker owns: [begin, end). What scale-out hands out (a
// process, a worker); a worker is given its range, it does not compute it.
struct KeyGroupRange {
  int begin = 0;
  int end = kDefaultKeyGroups;
  bool contains(int group) const { return group >= begin && group < end; }
  int size() const { return end - begin; }
};

// The range of `worker` of `parallelism` splitting `num_groups` groups.
inline KeyGroupRange RangeOfWorker(int worker, int num_groups, int parallelism) {
  KeyGroupRange r;
  GroupRange(worker, num_groups, parallelism, &r.begin, &r.end);
  return r;
}

}  // namespace cepheus::state
