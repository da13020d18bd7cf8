// CompiledPattern: the immutable result of compiling one PATTERN block against
// its stream's schema. It holds the NFA, the condition programs and the EMIT
// projections. It is shared read-only by every worker (runs, buffers and timers
// live in per-key runtime state elsewhere), so all members are const after
// Compile() returns.
//
// The NFA is a position automaton (Glushkov): state 0 is the start; every
// other state is one occurrence of a stage in the unrolled MATCH expression,
// entered by taking an event. An edge says which state can take the next
// event, with which contiguity, and which negations ("guards") must not be
// seen before it. See docs/architecture.md, "Matching semantics".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/schema.h"
#include "common/status.h"
#include "common/time_types.h"
#include "patterns/ast.h"
#include "patterns/diagnostics.h"
#include "patterns/expr.h"

namespace cepheus::patterns {

// A condition split for evaluation: `prefilter` depends on the current event
// only (evaluated once per event for all runs), `residual` needs a run's
// context (earlier stages, aggregates). Either may be -1 (true).
struct Condition {
  int prefilter = -1;
  int residual = -1;
  int var = -1;  // the stage whose aggregates include the current event
  std::string text;
  // Its top-level conjuncts `field = literal` about the current event, as
  // (field, "s:text" / "i:number"): two conditions that require different
  // literals of one field never hold for the same event (patterns/cost.h).
  std::vector<std::pair<std::string, std::string>> equals;
  // Its top-level conjuncts `field < number` (<=, >, >=, =) about the
  // current event, as intervals: two conditions whose intervals on one
  // field do not meet never hold for the same event.
  struct Range {
    std::string field;
    double lo = -1e308, hi = 1e308;
    bool lo_open = false, hi_open = false;
  };
  std::vector<Range> ranges;
};

struct Guard {
  int cond = -1;
  bool strict = false;  // "!x" right after a stage (not-next) vs "-> !x" (not-followed-by)
  bool operator==(const Guard&) const = default;
};

struct Edge {
  int target = 0;  // state that takes the event
  Contiguity op = Contiguity::kRelaxed;
  std::vector<Guard> guards;
  uint64_t continue_q = 0;   // quantifiers (bits) this edge stays in or enters
  uint64_t bypass_q = 0;     // quantifiers this edge leaves or skips
  int until_cond = -1;       // an event meeting it can not be taken over this edge
  bool until_kills = false;  // ...and it ends this edge's option (between loop iterations)
  bool operator==(const Edge&) const = default;
};

struct FinalEdge {
  std::vector<Guard> guards;  // empty: the match completes as soon as the state is entered
  bool operator==(const FinalEdge&) const = default;
};

struct NfaState {
  int var = -1;   // stage index (-1 for the start state)
  int cond = -1;  // condition an event must meet to enter this state
  std::string label;
  std::vector<Edge> edges;
  std::vector<FinalEdge> finals;
  bool has_unguarded_final = false;
  // `b WITHIN GAP d` on the stage occurrence this state takes: an event is
  // taken here only less than d after the run's last event (0: no bound).
  int64_t gap_ms = 0;
  // The longest WITHIN GAP among the stages this state can go on to (0: some
  // way on has no such bound): a run here ends that long after its last event.
  int64_t wait_ms = 0;
};

struct QuantInfo {
  Quantifier::Mode mode;
  std::string label;
  int cond = -1;   // the stage's condition (what the loop takes)
  int until = -1;  // its UNTIL condition, or -1
};

struct EmitField {
  std::string name;
  int expr = -1;
  Value::Type type = Value::Type::kNull;
};

struct StreamInfo {
  Schema schema;
  std::vector<std::string> key;  // the stream's declared key fields
};

struct CompiledPattern {
  std::string name;
  std::string stream;
  std::vector<int> partition_fields;
  std::vector<std::string> partition_names;
  const Schema* schema = nullptr;  // owned by the caller's catalog
  std::vector<std::string> vars;   // stage names, by index
  std::vector<NfaState> states;    // states[0] is the start state
  std::vector<Condition> conditions;
  std::vector<QuantInfo> quants;
  // Greedy quantifiers that can still take after their minimum (Flink's
  // .greedy()): a branch that left or skipped one of them (an edge whose
  // bypass_q has its bit) dies on an event that meets the stage's condition
  // and not its UNTIL, whether that event would be taken or skipped.
  uint64_t greedy_q = 0;
  ExprProgram program;
  AggLayout aggs;
  std::optional<Duration> within;
  std::optional<Duration> max_gap;
  SkipStrategy::Kind skip = SkipStrategy::Kind::kNoSkip;
  int skip_var = -1;
  bool skip_strict = false;  // SKIP TO FIRST/LAST x STRICT
  std::vector<EmitField> emit;
  bool emit_events = false;
  bool has_timeout_emit = false;
  std::vector<EmitField> timeout_emit;
  bool timeout_emit_events = false;
  std::string source_text;
  // Stable fingerprint of the pattern's meaning (name + normalized source).
  uint64_t fingerprint = 0;

  // A run can end only at a deadline (WITHIN or MAX GAP) when this is false.
  bool has_deadline() const { return within.has_value() || max_gap.has_value(); }
  std::string ToText() const;  // human-readable NFA listing
  std::string ToDot() const;   // Graphviz
};

using StreamCatalog = std::map<std::string, StreamInfo, std::less<>>;

// Checks `ast` against the catalog and compiles it. Every problem found is
// reported to `diags` (not just the first); returns null when there are errors.
std::unique_ptr<CompiledPattern> CompilePattern(const PatternAst& ast, const SourceFile& file,
                                                const StreamCatalog& catalog, Diagnostics& diags);

// Parses and compiles every pattern in `file`. On error, returns a Status
// whose message is the rendered diagnostics (file:line:col, line, caret).
Result<std::vector<std::shared_ptr<const CompiledPattern>>> CompilePatternFile(
    const SourceFile& file, const StreamCatalog& catalog, std::string* warnings = nullptr);

}  // namespace cepheus::patterns
