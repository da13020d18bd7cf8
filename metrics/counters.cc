#include "metrics/counters.h"

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

uint64_t Registry::CounterTotal(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  uint64_t total = 0;
  for (const auto& [labels, c] : it->second.counters) total += c->value();
  return total;
}

std::string Registry::RenderText() const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  for (const auto& family : families_) {
    // (Not a structured binding: clang 14 cannot capture those in lambdas.)
    const std::string& name = family.first;
    const auto& f = family.second;
    out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + (f.gauge ? " gauge\n" : " counter\n");
    auto series = [&](const std::string& labels) {
      return labels.empty() ? name : name + "{" + labels + "}";
    };
    for (const auto& [labels, c] : f.counters)
      out += series(labels) + " " + std::to_string(c->value()) + "\n";
    for (const auto& [labels, g] : f.gauges)
      out += series(labels) + " " + std::to_string(g->value()) + "\n";
  }
  return out;
}

}  // namespace cepheus::metrics
