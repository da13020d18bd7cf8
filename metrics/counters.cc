#include "metrics/counters.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

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
    fam.type = f.gauge ? prometheus::MetricType::Gauge : prometheus::MetricType::Counter;
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
    out.push_back(std::move(fam));
  }
  return out;
}

std::string Registry::RenderText() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace cepheus::metrics
