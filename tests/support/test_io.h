// Small helpers shared by tests: whole-file I/O, sorted output lines, a
// one-stream pipeline built in code, and a scratch directory per test.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/exec/runner.h"
#include "engine/plan/pipeline.h"
#include "io/record.h"

namespace cepheus::testing {

// Run options reading the pipeline's files and stdin (sources/).
engine::RunOptions FileRunOptions();

// A batch of match records, one per line of `lines` (each ending in '\n').
io::RecordBatch Lines(std::string_view lines);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& contents);
// The non-empty lines of `text`, sorted (outputs of several workers interleave).
std::vector<std::string> SortedLines(const std::string& text);

// A pipeline with one stream "s" read from `input`, its fields from
// `schema_spec` ("key string, type string, v int, ts timestamp"), keyed by
// "key" if there is one, event time "ts" with `lateness_ms` of allowed
// disorder, and `pattern` inline; `format` jsonl or csv.
Result<engine::CompiledPipeline> OneStreamPipeline(const std::string& pattern,
                                                   const std::string& input, int64_t lateness_ms,
                                                   const std::string& schema_spec,
                                                   const std::string& format = "jsonl");

// The `cepheus` binary run to completion with `args`; standard input is
// /dev/null unless `stdin_path` is given.
struct CliResult {
  int code = -1;  // exit status, or -signal
  std::string out, err;
};
CliResult RunCli(const std::vector<std::string>& args, const std::string& stdin_path = "");
// Starts `cepheus` with `args`, its standard output on `out_fd` and standard
// error appended to `err_path`; returns the pid (see WaitPid).
int SpawnCli(const std::vector<std::string>& args, int out_fd, const std::string& err_path);
// The same with standard input read from `stdin_path` (e.g. a FIFO).
int SpawnCli(const std::vector<std::string>& args, int out_fd, const std::string& err_path,
             const std::string& stdin_path);
// Waits for `pid`: its exit status, or -signal.
int WaitPid(int pid);

// How many random cases the long-running randomized tests run: `full`
// scaled by CEPHEUS_TEST_SCALE (default 1; the sanitizer build, whose code
// runs several times slower, uses a fraction), at least `minimum`.
int ScaledCases(int full, int minimum = 5);

// A fresh, empty directory under the system temp directory, named after the
// running test (and this process); removed when the test passes.
std::string ScratchDir(const std::string& prefix);

// A plain HTTP/1.1 GET to 127.0.0.1:`port` (status -1: no connection).
struct HttpResponse {
  int status = -1;
  std::string body;
};
HttpResponse HttpGet(int port, const std::string& path);
// The port a run logged ("metrics on http://127.0.0.1:PORT/metrics"), or -1.
int LoggedMetricsPort(const std::string& log);
// The value of one series (`name` or `name{labels}`) in a Prometheus text
// scrape, or -1 when absent.
double ScrapedValue(const std::string& text, const std::string& series);
// Polls `done` every 10 ms for up to `ms`; its last answer.
bool WaitUntil(const std::function<bool()>& done, int ms = 15000);

}  // namespace cepheus::testing
