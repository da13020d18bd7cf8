#include "state/key_groups.h"

#include <gtest/gtest.h>

#include "common/hash.h"

namespace cepheus::state {
namespace {

TEST(KeyGroups, RangesPartitionTheGroupsAndInvertWorkerOfGroup) {
  for (int parallelism : {1, 2, 3, 4, 7, 128}) {
    int next = 0;
    for (int w = 0; w < parallelism; ++w) {
      int b, e;
      GroupRange(w, kDefaultKeyGroups, parallelism, &b, &e);
      EXPECT_EQ(b, next) << "contiguous";
      const KeyGroupRange r = RangeOfWorker(w, kDefaultKeyGroups, parallelism);
      EXPECT_EQ(r.begin, b);
      EXPECT_EQ(r.end, e);
      EXPECT_EQ(r.size(), e - b);
      if (e > b) {
        EXPECT_TRUE(r.contains(b) && r.contains(e - 1) && !r.contains(e));
      }
      for (int g = b; g < e; ++g) EXPECT_EQ(WorkerOfGroup(g, kDefaultKeyGroups, parallelism), w);
      next = e;
    }
    EXPECT_EQ(next, kDefaultKeyGroups);
  }
}

TEST(KeyGroups, HashIsStableAcrossBuilds) {
  // Part of the on-disk contract (checkpoints): these values must never change.
  EXPECT_EQ(StableHash(""), 0xd725c98e9509182eull);
  EXPECT_EQ(KeyGroupOf(StableHash("card-42"), kDefaultKeyGroups),
            static_cast<int>(StableHash("card-42") % 128));
}

}  // namespace
}  // namespace cepheus::state
