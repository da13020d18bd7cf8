// Parser: pattern source text -> PatternAst. One file may hold several
// PATTERN blocks; a syntax error in one block is reported and parsing goes on
// with the next, so one run reports every block's first syntax error.
// Stateless; safe to call from several threads.
#pragma once

#include <vector>

#include "patterns/ast.h"
#include "patterns/diagnostics.h"

namespace cepheus::patterns {

// Parses every PATTERN block of `file`. Errors go to `diags`; the blocks that
// parsed are returned (possibly none).
std::vector<PatternAst> ParsePatterns(const SourceFile& file, Diagnostics& diags);

}  // namespace cepheus::patterns
