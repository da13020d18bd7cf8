// `cepheus test FILE...`: a rule author's unit tests. Each file names a
// pipeline, gives input events and the matches expected from them; the
// events run through the real engine (the pipeline's streams, schemas,
// watermarks and patterns; its inputs, outputs and state replaced) and the
// matches are compared as a multiset. docs/pattern-tests.md describes the
// format.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace cepheus::app {

// Runs every file; reports PASS/FAIL per file (with a diff on failure) to
// `out`. Returns the process exit code: 0 when all pass, 1 otherwise.
int RunPatternTests(const std::vector<std::string>& files, std::ostream& out);

// `cepheus explain`: pattern `pattern` of the pipeline as an automaton
// (text, or DOT) with its cost bound; with `events_file`, those events run
// through the real engine (the pipeline's streams, watermarks, patterns) and
// each event of the pattern's stream -- of key `key`, or of every key --
// is printed with what each run did with it and why (the runtime's tracing
// hook), then the matches. Returns the exit code.
struct ExplainArgs {
  std::string pipeline, pattern, key, events_file;
  // Only events in [from, to) are shown (RFC 3339 or epoch ms; empty: no
  // bound); every event still runs, so the runs they show are the real ones.
  std::string from, to;
  bool dot = false;
};
int RunExplain(const ExplainArgs& args, std::ostream& out);

}  // namespace cepheus::app
