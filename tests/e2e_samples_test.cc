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

namespace {

namespace fs = std::filesystem;

std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) lines.push_back(l);
  std::sort(lines.begin(), lines.end());
  return lines;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
    std::string out = RunCommand(
        cd + CEPHEUS_BINARY + " run -p " + std::to_string(p) + " " + pipeline + " 2>/dev/null",
        &status);
    ASSERT_EQ(status, 0) << GetParam() << " with " << p << " workers";
    EXPECT_EQ(SortedLines(out), SortedLines(ReadFile(dir / "expected_matches.jsonl")))
        << GetParam() << " matches with " << p << " workers";
    EXPECT_EQ(SortedLines(ReadFile(dir / "out/late.jsonl")),
              SortedLines(ReadFile(dir / "expected_late.jsonl")))
        << GetParam() << " late events";
    EXPECT_EQ(SortedLines(ReadFile(dir / "out/dead_letter.jsonl")),
              SortedLines(ReadFile(dir / "expected_dead_letter.jsonl")))
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

}  // namespace
