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
#include <memory>
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

// A histogram with fixed bucket bounds (in the exposed unit, e.g. seconds).
// Observe() adds `n` samples of one value: callers observe once per batch.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value, uint64_t n = 1);
  const std::vector<double>& bounds() const { return bounds_; }
  // Samples per bucket (not cumulative; the last is +Inf), count and sum.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
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
  // Same name and labels return the same histogram; the bounds of its
  // first registration hold.
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, const std::string& labels = "");
  // Sum of a counter (or gauge) over all label sets (0 if unknown).
  uint64_t CounterTotal(const std::string& name) const;
  int64_t GaugeTotal(const std::string& name) const;
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
    std::map<std::string, Histogram*> histograms;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
  std::deque<Counter> counter_store_;       // guarded by mu_
  std::deque<Gauge> gauge_store_;           // guarded by mu_
  std::deque<Histogram> histogram_store_;   // guarded by mu_
};

}  // namespace cepheus::metrics
