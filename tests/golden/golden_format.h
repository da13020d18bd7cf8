// Reading and running golden scenario files (see golden_test.cc).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace cepheus::testing {

struct GoldenCase {
  std::string name;
  std::string schema = "key string, type string, v int, ts timestamp";
  int64_t lateness_ms = 0;
  std::string pattern;
  std::vector<std::string> events;  // JSON lines, in arrival order
  std::vector<std::string> expect;  // sorted
  bool shuffle_allowed = true;      // no late events expected
};

Result<GoldenCase> ReadGoldenFile(const std::filesystem::path& path);

// Runs the case through the real pipeline (file source, watermarks, workers)
// and returns the sorted compact lines: "match KEY a@TS b@TS | f=v",
// "timeout ...", "late TS".
Result<std::vector<std::string>> RunGolden(const GoldenCase& c, const std::filesystem::path& dir,
                                           int parallelism, bool shuffle, uint64_t seed);

// The reference matcher's matches (and timeouts when checked), per key, as
// sorted "match KEY a@TS ..." lines without fields.
Result<std::vector<std::string>> ReferenceLines(const GoldenCase& c, bool* timeouts_checked);

}  // namespace cepheus::testing
