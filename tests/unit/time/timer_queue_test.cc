// Event-time timers: earliest first, only what is due, rebuilt in bulk.
#include "time/timer_queue.h"

#include <gtest/gtest.h>

#include <random>

namespace cepheus::timing {
namespace {

EventTime T(int64_t ms) { return EventTime::FromMillis(ms); }

TEST(TimerQueue, PopsOnlyDueTimersEarliestFirst) {
  TimerQueue<int> q;
  EXPECT_EQ(q.next(), EventTime::Max());
  EXPECT_FALSE(q.PopDue(EventTime::Max()).has_value());
  q.Push(T(30), 3);
  q.Push(T(10), 1);
  q.Push(T(20), 2);
  q.Push(T(10), 4);  // same time as another: both fire
  EXPECT_EQ(q.next(), T(10));
  EXPECT_FALSE(q.PopDue(T(9)).has_value());
  std::vector<int> fired;
  while (auto t = q.PopDue(T(20))) fired.push_back(t->payload);
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[2], 2);
  EXPECT_EQ(std::min(fired[0], fired[1]), 1);
  EXPECT_EQ(std::max(fired[0], fired[1]), 4);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.next(), T(30));
  q.Clear();
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueue, MatchesASortedListOnRandomPushesAndPops) {
  std::mt19937 rng(7);
  TimerQueue<int> q;
  std::vector<std::pair<int64_t, int>> ref;
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 10; ++i) {
      const int64_t at = std::uniform_int_distribution<int64_t>(0, 1000)(rng);
      q.Push(T(at), round * 10 + i);
      ref.emplace_back(at, round * 10 + i);
    }
    const int64_t now = std::uniform_int_distribution<int64_t>(0, 1000)(rng);
    std::vector<int64_t> got, want;
    while (auto t = q.PopDue(T(now))) got.push_back(t->at.millis());
    std::sort(ref.begin(), ref.end());
    while (!ref.empty() && ref.front().first <= now) {
      want.push_back(ref.front().first);
      ref.erase(ref.begin());
    }
    ASSERT_EQ(got, want) << "round " << round;
    if (round % 50 == 0) {
      // A bulk rebuild keeps the order.
      std::vector<TimerQueue<int>::Timer> all;
      for (const auto& [at, v] : ref) all.push_back({T(at), v});
      q.Assign(std::move(all));
    }
  }
}

}  // namespace
}  // namespace cepheus::timing
