// Random small patterns and event sequences for differential tests.
#pragma once

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/row.h"
#include "patterns/compiled.h"

namespace cepheus::testing {

// Stream "s" with fields type (string A-D), v (int), ts (timestamp).
patterns::StreamCatalog RandomCatalog();

struct RandomCase {
  std::string pattern_text;
  std::vector<RowPtr> events;  // one key, processing order
  // What the pattern exercises (for coverage counts): "greedy loop",
  // "negation after loop", "negation after group", "optional after negation",
  // "stage gap".
  std::vector<std::string> features;
};

RandomCase MakeRandomCase(std::mt19937_64& rng, const patterns::StreamCatalog& catalog,
                          int max_events);

RowPtr MakeEvent(const patterns::StreamCatalog& catalog, const std::string& type, int64_t v,
                 int64_t ts, uint64_t seq);

}  // namespace cepheus::testing
