// Wall-clock time, injected so that tests control it: idle detection of
// unbounded live sources, checkpoint intervals and timings. Bounded inputs
// never consult it, so results never depend on it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace cepheus {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMillis() const = 0;
  // For intervals and durations (checkpoint interval, timings): never goes
  // back. Default: the wall clock.
  virtual int64_t MonotonicMillis() const { return NowMillis(); }
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// The steady clock in microseconds, for measurements that are reported and
// never decide anything (latency histograms): not injected.
inline int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A clock tests move by hand. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 0) : now_(start_ms) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace cepheus
