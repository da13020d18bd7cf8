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

}  // namespace cepheus::state
