// Runs the real `cepheus` binary on every sample pipeline and compares its
// outputs with the expected files next to the pipeline, with one and with
// four workers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_io.h"

namespace {

namespace fs = std::filesystem;
using cepheus::testing::ReadFile;
using cepheus::testing::SortedLines;

// Runs a command, returns its stdout and exit status.
std::string RunCommand(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

class Sample : public ::testing::TestWithParam<std::string> {};

TEST_P(Sample, OutputsMatchExpectedFiles) {
  const fs::path dir = fs::path(CEPHEUS_SOURCE_DIR) / "samples" / GetParam();
  int status = 0;
  // Run from the repository root with a relative path, as the README does:
  // record sources in the outputs are then the same as in the expected files.
  const std::string cd = std::string("cd ") + CEPHEUS_SOURCE_DIR + " && ";
  const std::string pipeline = "samples/" + GetParam() + "/pipeline.yaml";
  RunCommand(cd + CEPHEUS_BINARY + " check " + pipeline + " >/dev/null 2>&1", &status);
  ASSERT_EQ(status, 0) << "cepheus check failed for " << GetParam();
  for (int p : {1, 4}) {
    std::string out = RunCommand(cd + CEPHEUS_BINARY + " run --restart -p " + std::to_string(p) +
                                     " " + pipeline + " 2>/dev/null",
                                 &status);
    ASSERT_EQ(status, 0) << GetParam() << " with " << p << " workers";
    EXPECT_EQ(SortedLines(out), SortedLines(ReadFile(dir / "expected_matches.jsonl")))
        << GetParam() << " matches with " << p << " workers";
    // Late events and dead letters come from the one reader, in input order:
    // the same bytes as the expected files, as a user diffing them would see.
    EXPECT_EQ(ReadFile(dir / "out/late.jsonl"), ReadFile(dir / "expected_late.jsonl"))
        << GetParam() << " late events";
    EXPECT_EQ(ReadFile(dir / "out/dead_letter.jsonl"), ReadFile(dir / "expected_dead_letter.jsonl"))
        << GetParam() << " dead letters";
  }
}

INSTANTIATE_TEST_SUITE_P(All, Sample, ::testing::Values("fraud", "trading", "iot"));

TEST(Cli, CheckReportsPatternErrorsWithCaretAndFailsRun) {
  fs::path tmp = fs::temp_directory_path() / ("cepheus-cli-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  std::ofstream(tmp / "bad.cep")
      << "PATTERN p\nFROM s\nMATCH a -> b\nDEFINE a AS v > , b AS w = 1\n";
  std::ofstream(tmp / "events.jsonl") << "{\"k\":\"x\",\"v\":1,\"ts\":1}\n";
  std::ofstream(tmp / "pipeline.yaml")
      << "streams:\n  s:\n    source: { type: file, path: events.jsonl }\n"
         "    schema: { k: string, v: int, ts: timestamp }\n    key: k\n"
         "    event_time: { field: ts }\npatterns: [ bad.cep ]\n";
  int status = 0;
  std::string err = RunCommand(
      std::string(CEPHEUS_BINARY) + " check " + (tmp / "pipeline.yaml").string() + " 2>&1",
      &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("bad.cep:4:17: error: expected expression, found ','"), std::string::npos)
      << err;
  EXPECT_NE(err.find("                 ^"), std::string::npos) << err;
  RunCommand(std::string(CEPHEUS_BINARY) + " run " + (tmp / "pipeline.yaml").string() + " 2>&1",
             &status);
  EXPECT_NE(status, 0);
  // A config error names the file, the line and what is wrong.
  std::ofstream(tmp / "pipeline.yaml")
      << "streams:\n  s:\n    source: { type: file, path: events.jsonl }\n"
         "    schema: { k: string, v: integer64, ts: timestamp }\n    event_time: ts\npatterns: [ "
         "bad.cep ]\n";
  err = RunCommand(
      std::string(CEPHEUS_BINARY) + " check " + (tmp / "pipeline.yaml").string() + " 2>&1",
      &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("pipeline.yaml:4:"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown type 'integer64'"), std::string::npos) << err;
  fs::remove_all(tmp);
}

TEST(Cli, BacktestOverGlobsAndDirectoriesWithTimeRangeAndSummary) {
  const fs::path tmp = fs::temp_directory_path() / ("cepheus-bt-cli-" + std::to_string(::getpid()));
  fs::create_directories(tmp / "history" / "more");
  // Split the fraud sample into three files: two by glob, one in a directory.
  std::ifstream in(fs::path(CEPHEUS_SOURCE_DIR) / "samples/fraud/payments.jsonl");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  for (int part = 0; part < 3; ++part) {
    fs::path f = part < 2 ? tmp / "history" / ("payments-" + std::to_string(part) + ".jsonl")
                          : tmp / "history" / "more" / "payments-2.jsonl";
    std::ofstream out(f);
    for (size_t i = part * lines.size() / 3; i < (part + 1) * lines.size() / 3; ++i)
      out << lines[i] << "\n";
  }
  // The sample's pipeline, writing its side outputs here rather than into
  // samples/fraud/out/ (which the sample test reads at the same time).
  const fs::path sample = fs::path(CEPHEUS_SOURCE_DIR) / "samples/fraud";
  std::string yaml = ReadFile(sample / "pipeline.yaml");
  for (auto [from, to] :
       {std::pair<std::string, std::string>{"path: payments.jsonl",
                                            "path: " + (sample / "payments.jsonl").string()},
        {"[ card_testing.cep ]", "[ " + (sample / "card_testing.cep").string() + " ]"},
        {"path: out/late.jsonl", "path: " + (tmp / "late.jsonl").string()},
        {"path: out/dead_letter.jsonl", "path: " + (tmp / "dead_letter.jsonl").string()}}) {
    auto at = yaml.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    yaml.replace(at, from.size(), to);
  }
  std::ofstream(tmp / "pipeline.yaml") << yaml;
  const std::string pipeline = (tmp / "pipeline.yaml").string();
  const std::string base = std::string(CEPHEUS_BINARY) + " backtest " + pipeline;
  int status = 0;
  std::string err =
      RunCommand(base + " --input '" + (tmp / "history/payments-*.jsonl").string() + "' --input " +
                     (tmp / "history/more").string() + " -o " + (tmp / "out.jsonl").string() +
                     " --summary-json " + (tmp / "summary.json").string() + " -p 2 2>&1",
                 &status);
  ASSERT_EQ(status, 0) << err;
  EXPECT_NE(err.find("records read   422"), std::string::npos) << err;
  EXPECT_NE(err.find("dead letters   3"), std::string::npos) << err;
  EXPECT_NE(err.find("matches        2  card_testing"), std::string::npos) << err;
  std::string summary = ReadFile(tmp / "summary.json");
  EXPECT_NE(summary.find("\"matches_per_pattern\":{\"card_testing\":2}"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("\"top_keys\":[{"), std::string::npos) << summary;
  // Complete mode: the same matches as a live run of the sample (its late event changes nothing).
  std::vector<std::string> got = SortedLines(ReadFile(tmp / "out.jsonl"));
  std::vector<std::string> want =
      SortedLines(ReadFile(fs::path(CEPHEUS_SOURCE_DIR) / "samples/fraud/expected_matches.jsonl"));
  EXPECT_EQ(got, want);
  // --from/--to keep only the attack on c901 (2026-09-21T14:16:40 .. 14:18:10).
  RunCommand(base + " --input '" + (tmp / "history/*").string() +
                 "' --from 2026-09-21T14:16:00Z --to 2026-09-21T14:18:15Z -o " +
                 (tmp / "range.jsonl").string() + " 2>&1",
             &status);
  ASSERT_EQ(status, 0);
  std::string range = ReadFile(tmp / "range.jsonl");
  EXPECT_NE(range.find("\"key\":\"c901\",\"start\""), std::string::npos) << range;
  EXPECT_EQ(range.find("c900"), std::string::npos) << range;
  // Bad arguments are clear errors.
  err = RunCommand(base + " --input '" + (tmp / "nothing-*.jsonl").string() + "' 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("matches no file"), std::string::npos) << err;
  err = RunCommand(base + " --from yesterday 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("'yesterday' is not a date"), std::string::npos) << err;
  err = RunCommand(base + " --memory-budget lots 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("--memory-budget 'lots' is not a size"), std::string::npos) << err;
  fs::remove_all(tmp);
}

}  // namespace
