// A brute-force reference matcher for differential tests. It reads the MATCH
// expression (the AST, not the NFA), enumerates every way to map events to
// stages, and checks each rule of docs/architecture.md "Matching semantics"
// directly on positions. Aggregates are recomputed from the whole path for
// every test. Exponential; for inputs of a handful of events only.
#pragma once

#include <string>
#include <vector>

#include "common/row.h"
#include "patterns/ast.h"
#include "patterns/compiled.h"

namespace cepheus::testing {

struct RefMatch {
  bool timeout = false;
  std::vector<std::pair<int, int>> path;  // (position, stage index)
  bool operator<(const RefMatch& o) const {
    return timeout != o.timeout ? timeout < o.timeout : path < o.path;
  }
  bool operator==(const RefMatch& o) const = default;
  std::string ToString(const patterns::CompiledPattern& p) const;
};

// All matches (and, with report_timeouts and NO SKIP, timed-out partial
// matches) of `pattern` over the events of one key, given in processing order.
std::vector<RefMatch> ReferenceMatch(const patterns::PatternAst& ast,
                                     const patterns::CompiledPattern& pattern,
                                     const std::vector<RowPtr>& events, bool report_timeouts);

}  // namespace cepheus::testing
