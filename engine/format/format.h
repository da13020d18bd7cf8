// The format stage: every output record is rendered here, as a JSON payload
// in an io::RecordBatch (kind, key, event time): matches and timeouts (with
// their EMIT fields and deterministic id), failed STRICT skips, late events,
// dead letters and watermarks. Sinks never render; a new output encoding
// changes this file only. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/row.h"
#include "common/schema.h"
#include "engine/nfa/nfa_runtime.h"
#include "io/record.h"
#include "patterns/compiled.h"
#include "time/watermark.h"

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
  // Appends the JSON object of `m` (no line terminator).
  // Appends the match's JSON object; returns its id.
  uint64_t Render(std::string_view key, const MatchResult& m, std::string* out) const;
  // For a match whose STRICT skip failed (m.skip_error): a dead-letter object
  // with the pattern, key, reason and the match itself.
  void RenderSkipError(std::string_view key, const MatchResult& m, std::string* out) const;
  // Adds `m` to `matches` (a match or timeout record), or a STRICT skip
  // failure to `errors` (a dead-letter record). The record's time is the
  // match's last event.
  void RenderTo(std::string_view key, const MatchResult& m, io::RecordBatch* matches,
                io::RecordBatch* errors) const;

 private:
  const patterns::CompiledPattern& p_;
  std::string match_prefix_, timeout_prefix_;          // {"pattern":"..","type":"..","key":
  std::vector<std::string> emit_keys_, timeout_keys_;  // "name":
};

// Appends `row` as a JSON object of its schema fields.
void AppendRowJson(std::string* out, const Row& row, const Schema& schema);

// Where an input record came from, for late and dead-letter records.
struct RecordOrigin {
  std::string_view stream;  // the stream's name (kept by the pipeline)
  std::string_view source;  // the input, e.g. the file's path
  uint64_t line = 0;        // 0: unknown (a file read in byte ranges)
  uint64_t offset = 0;
};

// A record that could not be used: why, and its exact bytes.
void RenderDeadLetter(const RecordOrigin& at, std::string_view reason, std::string_view record,
                      io::RecordBatch* out);
// An event behind the watermark `wm`; `key` is its partition key.
void RenderLate(const RecordOrigin& at, std::string_view key, const Row& row, const Schema& schema,
                Watermark wm, io::RecordBatch* out);
// The watermark sent to the workers moved to `wm` (Max: the end of input).
void RenderWatermark(Watermark wm, io::RecordBatch* out);

}  // namespace cepheus::engine
