#include "metrics/counters.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

namespace cepheus::metrics {

Counter& Registry::GetCounter(const std::string& name, const std::string& help,
                              const std::string& labels) {
  std::lock_guard<std::mutex> l(mu_);
  Family& f = families_[name];
  f.help = help;
  auto it = f.counters.find(labels);
  if (it != f.counters.end()) return *it->second;
  counter_store_.emplace_back();
  f.counters[labels] = &counter_store_.back();
  return counter_store_.back();
}

Gauge& Registry::GetGauge(const std::string& name, const std::string& help,
                          const std::string& labels) {
  std::lock_guard<std::mutex> l(mu_);
  Family& f = families_[name];
  f.help = help;
  f.gauge = true;
  auto it = f.gauges.find(labels);
  if (it != f.gauges.end()) return *it->second;
  gauge_store_.emplace_back();
  f.gauges[labels] = &gauge_store_.back();
  return gauge_store_.back();
}

Gauge& Registry::GetMillisGauge(const std::string& name, const std::string& help,
                                const std::string& labels) {
  Gauge& g = GetGauge(name, help, labels);
  std::lock_guard<std::mutex> l(mu_);
  families_[name].scale = 0.001;
  return g;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::Observe(double value, uint64_t n) {
  const size_t b = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
  buckets_[b].fetch_add(n, std::memory_order_relaxed);
  sum_.fetch_add(value * static_cast<double>(n), std::memory_order_relaxed);
  count_.fetch_add(n, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

Histogram& Registry::GetHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, const std::string& labels) {
  std::lock_guard<std::mutex> l(mu_);
  Family& f = families_[name];
  f.help = help;
  auto it = f.histograms.find(labels);
  if (it != f.histograms.end()) return *it->second;
  histogram_store_.emplace_back(std::move(bounds));
  f.histograms[labels] = &histogram_store_.back();
  return histogram_store_.back();
}

int64_t Registry::GaugeTotal(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  int64_t total = 0;
  for (const auto& [labels, g] : it->second.gauges) total += g->value();
  return total;
}

uint64_t Registry::CounterTotal(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  uint64_t total = 0;
  for (const auto& [labels, c] : it->second.counters) total += c->value();
  return total;
}

namespace {

// `a="x",b="y"` (the rendered label set the callers give) as label pairs.
std::vector<prometheus::ClientMetric::Label> ParseLabels(const std::string& s) {
  std::vector<prometheus::ClientMetric::Label> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t eq = s.find('=', i);
    if (eq == std::string::npos || eq + 1 >= s.size() || s[eq + 1] != '"') break;
    prometheus::ClientMetric::Label l;
    l.name = s.substr(i, eq - i);
    size_t j = eq + 2;
    for (; j < s.size() && s[j] != '"'; ++j) {
      if (s[j] == '\\' && j + 1 < s.size()) ++j;
      l.value.push_back(s[j]);
    }
    out.push_back(std::move(l));
    i = j + 1;
    if (i < s.size() && s[i] == ',') ++i;
  }
  return out;
}

}  // namespace

std::vector<prometheus::MetricFamily> Registry::Collect() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<prometheus::MetricFamily> out;
  for (const auto& [name, f] : families_) {
    prometheus::MetricFamily fam;
    fam.name = name;
    fam.help = f.help;
    fam.type = !f.histograms.empty() ? prometheus::MetricType::Histogram
               : f.gauge             ? prometheus::MetricType::Gauge
                                     : prometheus::MetricType::Counter;
    for (const auto& [labels, c] : f.counters) {
      prometheus::ClientMetric m;
      m.label = ParseLabels(labels);
      m.counter.value = static_cast<double>(c->value());
      fam.metric.push_back(std::move(m));
    }
    for (const auto& [labels, g] : f.gauges) {
      prometheus::ClientMetric m;
      m.label = ParseLabels(labels);
      m.gauge.value = static_cast<double>(g->value()) * f.scale;
      fam.metric.push_back(std::move(m));
    }
    for (const auto& [labels, h] : f.histograms) {
      prometheus::ClientMetric m;
      m.label = ParseLabels(labels);
      // A scrape may run while samples are added: the count is taken as the
      // sum of the buckets read, so the exposition stays consistent.
      const std::vector<uint64_t> counts = h->bucket_counts();
      uint64_t cumulative = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        prometheus::ClientMetric::Bucket b;
        b.cumulative_count = cumulative;
        b.upper_bound =
            i < h->bounds().size() ? h->bounds()[i] : std::numeric_limits<double>::infinity();
        m.histogram.bucket.push_back(b);
      }
      m.histogram.sample_count = cumulative;
      m.histogram.sample_sum = h->sum();
      fam.metric.push_back(std::move(m));
    }
    out.push_back(std::move(fam));
  }
  return out;
}

std::string Registry::RenderText() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace cepheus::metrics
