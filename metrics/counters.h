// Counters and gauges that other modules update through small handles, and
// their rendering in the Prometheus text exposition format (by
// prometheus-cpp's serializer; no prometheus-cpp type in this header). Updating a
// counter is one relaxed atomic add (callers batch per record batch).
// Registration is thread-safe; handles stay valid for the registry's life.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
struct MetricFamily;
}

namespace cepheus::metrics {

class Counter {
 public:
  void Add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class Registry {
 public:
  // Same name and labels return the same counter. `labels` is the rendered
  // label set, e.g. stream="payments".
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Gauge& GetGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  // A gauge set in milliseconds and exposed in seconds (Prometheus' base
  // unit; `name` ends in _seconds).
  Gauge& GetMillisGauge(const std::string& name, const std::string& help,
                        const std::string& labels = "");
  // Sum of a counter over all label sets (0 if unknown).
  uint64_t CounterTotal(const std::string& name) const;
  // The Prometheus text exposition of every family.
  std::string RenderText() const;

 private:
  std::vector<prometheus::MetricFamily> Collect() const;
  struct Family {
    std::string help;
    bool gauge = false;
    double scale = 1;  // exposed value = stored value * scale
    std::map<std::string, Counter*> counters;
    std::map<std::string, Gauge*> gauges;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
  std::deque<Counter> counter_store_;       // guarded by mu_
  std::deque<Gauge> gauge_store_;           // guarded by mu_
};

}  // namespace cepheus::metrics
