// Rendering of output records as JSON lines: matches and timeouts (with their
// EMIT fields and deterministic id), and events (for late and EVENTS output).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/row.h"
#include "common/schema.h"
#include "engine/nfa_runtime.h"
#include "patterns/compiled.h"

namespace cepheus::engine {

// The partition key of `row` as text: the field value, or values joined by
// '|' for a composite key. Empty when the pattern is not partitioned.
std::string KeyString(const Row& row, const std::vector<int>& fields, const Schema& schema);
// The same without allocating for the common single string key: a view into
// the row, or into `*scratch` (reused) for other keys. Valid while both live.
std::string_view KeyView(const Row& row, const std::vector<int>& fields, const Schema& schema,
                         std::string* scratch);

// A stable 64-bit id of a match: pattern, key, and each event's (time, tie,
// stage). Equal for the same match whatever the parallelism or run.
uint64_t MatchId(std::string_view pattern, std::string_view key, const BufNode* last, bool timeout);

// Renders match records of one pattern as JSON lines. The constant parts
// (pattern name, field names) are escaped once, up front. Thread-compatible.
class MatchRenderer {
 public:
  explicit MatchRenderer(const patterns::CompiledPattern& p);
  // Appends one JSON line (with '\n') for `m`.
  void Render(std::string_view key, const MatchResult& m, std::string* out) const;
  // For a match whose STRICT skip failed (m.skip_error): one dead-letter line
  // with the pattern, key, reason and the match itself.
  void RenderSkipError(std::string_view key, const MatchResult& m, std::string* out) const;
  // Renders `m` to `matches`, or a STRICT skip failure to `errors`.
  void RenderTo(std::string_view key, const MatchResult& m, std::string* matches,
                std::string* errors) const {
    if (m.skip_error == MatchResult::SkipError::kNone)
      Render(key, m, matches);
    else
      RenderSkipError(key, m, errors);
  }

 private:
  const patterns::CompiledPattern& p_;
  std::string match_prefix_, timeout_prefix_;          // {"pattern":"..","type":"..","key":
  std::vector<std::string> emit_keys_, timeout_keys_;  // "name":
};

// Appends `row` as a JSON object of its schema fields.
void AppendRowJson(std::string* out, const Row& row, const Schema& schema);

}  // namespace cepheus::engine
