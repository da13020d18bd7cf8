// The generic keyed state cache (state/keyed_cache.h): bounded memory,
// write-back, timers of values that were evicted, restore, end of input --
// checked against a plain map on random operations.
#include "state/keyed_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace cepheus::state {
namespace {

// A test value: a running sum with an optional deadline. Idle when zero.
struct Value {
  int64_t sum = 0;
  EventTime deadline = EventTime::Max();
};

struct ValueCodecImpl final : ValueCodec<Value> {
  bool Idle(const Value& v) const override { return v.sum == 0; }
  EventTime Deadline(const Value& v) const override { return v.deadline; }
  void Encode(const Value& v, std::string* out) const override {
    PutSigned(out, v.sum);
    PutSigned(out, v.deadline.millis());
  }
  Status Decode(std::string_view in, Value* out) const override {
    int64_t sum, deadline;
    if (!GetSigned(&in, &sum) || !GetSigned(&in, &deadline) || !in.empty())
      return Status::Corruption("bad value");
    out->sum = sum;
    out->deadline = EventTime::FromMillis(deadline);
    return Status::Ok();
  }
  void Release(Value& v) const override {
    ++releases;
    v = Value{};
  }
  mutable int releases = 0;
};

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct SvEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
template <typename K, typename V>
using StdMap = std::unordered_map<K, V, SvHash, SvEq>;
using Cache = KeyedStateCache<Value, StdMap>;

EventTime T(int64_t ms) { return EventTime::FromMillis(ms); }

// A cache with one space ("v/a", timers "t/a") over a memory backend.
struct OneSpace {
  explicit OneSpace(size_t capacity) {
    s = cache.AddSpace("v/a", "t/a", "space a", &codec);
    cache.Attach(backend.get(), capacity);
  }
  std::unique_ptr<StateBackend> backend = MakeMemoryBackend();
  CacheStats stats;
  Status error;
  ValueCodecImpl codec;
  Cache cache{KeyGroupRange{}, &stats, &error};
  int s = 0;
};

// The timer-index entries of `key` in the backend: (deadline, key).
std::vector<std::pair<EventTime, std::string>> TimerEntries(StateBackend& backend,
                                                            std::string_view key) {
  std::vector<std::pair<EventTime, std::string>> out;
  EXPECT_TRUE(backend
                  .ScanNamespace(KeyGroupOfKey(key), "t/a", "",
                                 [&](std::string_view k, std::string_view) {
                                   EventTime at;
                                   std::string_view which;
                                   EXPECT_TRUE(DecodeDeadlineKey(k, &at, &which));
                                   out.emplace_back(at, std::string(which));
                                   return true;
                                 })
                  .ok());
  return out;
}

TEST(KeyedCache, EvictedValuesComeBackFromTheBackend) {
  OneSpace f(10);
  Cache& cache = f.cache;
  const CacheStats& stats = f.stats;
  const int s = f.s;
  for (int k = 0; k < 100; ++k) {
    auto* n = cache.FindOrLoad(s, "key" + std::to_string(k));
    cache.Touch(*n);
    n->second.value.sum = k + 1;
    cache.EvictIfOver();
    cache.NextBatch();
  }
  EXPECT_LE(cache.cached(), 10u);
  EXPECT_GE(stats.keys_evicted, 90u);
  for (int k = 0; k < 100; ++k) {
    auto* n = cache.FindOrLoad(s, "key" + std::to_string(k));
    EXPECT_EQ(n->second.value.sum, k + 1) << k;
    cache.EvictIfOver();
    cache.NextBatch();
  }
  EXPECT_GE(stats.keys_loaded, 90u);
  EXPECT_LE(stats.peak_cached_keys, 11u);
  EXPECT_TRUE(f.error.ok()) << f.error.message();
}

TEST(KeyedCache, WriteBackStoresChangedValuesAndDeletesIdleOnes) {
  OneSpace f(0);
  Cache& cache = f.cache;
  StateBackend& backend = *f.backend;
  auto* n = cache.FindOrLoad(f.s, "k");
  cache.Touch(*n);
  n->second.value = Value{5, T(100)};
  ASSERT_TRUE(cache.WriteBack().ok());
  auto got = backend.Get(KeyGroupOfKey("k"), "v/a", "k");
  ASSERT_TRUE(got.ok() && got->has_value());
  const auto timers = TimerEntries(backend, "k");
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_EQ(timers[0].first, T(100));
  EXPECT_EQ(timers[0].second, "k");
  cache.Touch(*n);
  n->second.value = Value{};
  ASSERT_TRUE(cache.WriteBack().ok());
  got = backend.Get(KeyGroupOfKey("k"), "v/a", "k");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value()) << "an idle value is deleted";
  EXPECT_TRUE(TimerEntries(backend, "k").empty()) << "and so is its timer entry";
  cache.SweepIdle();
  EXPECT_EQ(cache.cached(), 0u);
}

TEST(KeyedCache, DamagedStoredValueIsReportedWithTheSpaceAndKey) {
  OneSpace f(0);
  ASSERT_TRUE(f.backend->Put(KeyGroupOfKey("k"), "v/a", "k", "\x02garbage").ok());
  ASSERT_TRUE(f.cache.Restore(KeyGroupRange{}, false).ok());
  f.cache.FindOrLoad(f.s, "k");
  EXPECT_EQ(f.error.code(), Status::Code::kCorruption);
  EXPECT_NE(f.error.message().find("key 'k' of space a"), std::string::npos) << f.error.message();
}

// Random operations on a few spaces with a tiny capacity, against a plain
// map: every value survives eviction and restore, and each timer fires
// exactly when the watermark passes it, whether its value is in memory or not.
TEST(KeyedCache, RandomOperationsAgreeWithAPlainMap) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    auto backend = MakeMemoryBackend();
    CacheStats stats;
    Status error;
    ValueCodecImpl codec;
    auto cache = std::make_unique<Cache>(KeyGroupRange{}, &stats, &error);
    constexpr int kSpaces = 2;
    auto add_spaces = [&](Cache& c) {
      for (int s = 0; s < kSpaces; ++s)
        c.AddSpace(std::string("v/").append(1, static_cast<char>('0' + s)),
                   std::string("t/").append(1, static_cast<char>('0' + s)), "s", &codec);
    };
    add_spaces(*cache);
    cache->Attach(backend.get(), 1 + rng() % 8);
    std::map<std::pair<int, std::string>, Value> model;
    int64_t wm = 0;
    std::vector<std::string> names(5 + rng() % 40);
    for (size_t i = 0; i < names.size(); ++i) names[i] = "k" + std::to_string(i);
    for (int step = 0; step < 400; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 6) {  // an event: add to a key, maybe (re)set its deadline
        const int s = static_cast<int>(rng() % kSpaces);
        const std::string& key = names[rng() % names.size()];
        auto* n = cache->FindOrLoad(s, key);
        Value& want = model[{s, key}];
        ASSERT_EQ(n->second.value.sum, want.sum) << "seed " << seed << " step " << step;
        ASSERT_EQ(n->second.value.deadline, want.deadline) << "seed " << seed << " step " << step;
        cache->Touch(*n);
        want.sum += 1 + static_cast<int64_t>(rng() % 3);
        if (rng() % 2) want.deadline = T(wm + 1 + static_cast<int64_t>(rng() % 50));
        n->second.value = want;
        cache->Schedule(s, *n);
      } else if (op < 8) {  // the watermark advances: due values fire
        wm += static_cast<int64_t>(rng() % 30);
        for (int s = 0; s < kSpaces; ++s) {
          std::set<std::string> fired;
          cache->FireDue(s, T(wm), [&](Cache::Node& n, bool) {
            // A deadline that moved later may still be woken at the earlier
            // one (the contract): nothing is due then.
            if (n.second.value.deadline > T(wm)) return;
            EXPECT_TRUE(fired.insert(n.first).second) << "fired twice: " << n.first;
            n.second.value.deadline = EventTime::Max();
          });
          std::set<std::string> due;
          for (auto& [k, v] : model)
            if (k.first == s && v.deadline <= T(wm)) {
              due.insert(k.second);
              v.deadline = EventTime::Max();
            }
          ASSERT_EQ(fired, due) << "seed " << seed << " step " << step << " wm " << wm;
        }
      } else if (op < 9) {  // a barrier
        ASSERT_TRUE(cache->WriteBack().ok());
        if (rng() % 3 == 0) {  // and a restart from it
          cache = std::make_unique<Cache>(KeyGroupRange{}, &stats, &error);
          add_spaces(*cache);
          cache->Attach(backend.get(), 1 + rng() % 8);
          ASSERT_TRUE(cache->Restore(KeyGroupRange{}, false).ok());
        }
      } else {
        cache->EvictIfOver();
        cache->NextBatch();
      }
    }
    // End of input: every key with a value ends once, stored or in memory.
    for (int s = 0; s < kSpaces; ++s) {
      std::map<std::string, int64_t> ended;
      cache->EndAll(s, [&](Cache::Node& n, bool) {
        if (n.second.value.sum) ended[n.first] = n.second.value.sum;
      });
      std::map<std::string, int64_t> want;
      for (auto& [k, v] : model)
        if (k.first == s && v.sum) want[k.second] = v.sum;
      EXPECT_EQ(ended, want) << "seed " << seed;
    }
    EXPECT_EQ(cache->cached(), 0u);
    EXPECT_TRUE(error.ok()) << error.message();
  }
}

}  // namespace
}  // namespace cepheus::state
