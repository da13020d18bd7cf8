// The docs, followed literally as a new user would: every PATTERN example
// compiles, every sample command in them runs, the match record the README
// shows is what the sample emits, and every file they point to exists.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_io.h"

namespace {

namespace fs = std::filesystem;
using cepheus::testing::ReadFile;
using cepheus::testing::RunCli;
using cepheus::testing::ScratchDir;
using cepheus::testing::WriteFile;

const fs::path kRoot = CEPHEUS_SOURCE_DIR;

std::vector<fs::path> MarkdownFiles() {
  std::vector<fs::path> files = {kRoot / "README.md", kRoot / "samples" / "README.md",
                                 kRoot / "bench" / "README.md"};
  for (const auto& e : fs::directory_iterator(kRoot / "docs"))
    if (e.path().extension() == ".md") files.push_back(e.path());
  return files;
}

struct Block {
  fs::path file;
  int line = 0;  // of the opening fence
  std::string lang, text;
};

std::vector<Block> CodeBlocks(const fs::path& md) {
  std::vector<Block> blocks;
  std::istringstream in(ReadFile(md));
  std::string l;
  int n = 0;
  Block* open = nullptr;
  while (std::getline(in, l)) {
    ++n;
    if (l.rfind("```", 0) == 0) {
      if (open) {
        open = nullptr;
      } else {
        blocks.push_back(Block{md, n, l.substr(3), ""});
        open = &blocks.back();
      }
      continue;
    }
    if (open) open->text += l + "\n";
  }
  return blocks;
}

std::string Where(const Block& b) {
  return fs::relative(b.file, kRoot).string() + ":" + std::to_string(b.line);
}

TEST(Docs, EveryPatternExampleCompiles) {
  const std::string dir = ScratchDir("cepheus-docs");
  WriteFile(dir + "/events.jsonl", "");
  WriteFile(dir + "/payments.jsonl", "");
  int checked = 0;
  for (const fs::path& md : MarkdownFiles()) {
    for (const Block& b : CodeBlocks(md)) {
      const size_t start = b.text.find_first_not_of(" \n");
      if (start == std::string::npos || b.text.compare(start, 8, "PATTERN ") != 0) continue;
      std::smatch m;
      ASSERT_TRUE(std::regex_search(b.text, m, std::regex("FROM (\\w+)"))) << Where(b);
      const std::string stream = m[1];
      std::string schema;
      if (stream == "s")  // the stream docs/dsl.md names at its top
        schema =
            "    source: { type: file, path: events.jsonl }\n"
            "    schema: { key: string, type: string, v: int, ts: timestamp }\n"
            "    key: key\n";
      else if (stream == "payments")  // samples/fraud
        schema =
            "    source: { type: file, path: payments.jsonl }\n"
            "    schema: { card_id: string, amount: double, status: string, merchant: "
            "string, ts: timestamp }\n    key: card_id\n";
      else
        FAIL() << Where(b) << ": the example reads stream '" << stream
               << "', which the docs do not define";
      WriteFile(dir + "/example.cep", b.text);
      WriteFile(dir + "/p.yaml", "streams:\n  " + stream + ":\n" + schema +
                                     "    event_time: { field: ts }\npatterns: [ example.cep ]\n");
      auto r = RunCli({"check", dir + "/p.yaml"});
      EXPECT_EQ(r.code, 0) << Where(b) << ": the example does not compile:\n" << b.text << r.err;
      ++checked;
    }
  }
  EXPECT_GE(checked, 6) << "the docs have fewer PATTERN examples than expected";
}

// Runs `./build/app/cepheus ARGS` or `cepheus ARGS` lines of shell blocks whose
// files exist (illustrations over data the reader does not have are skipped).
TEST(Docs, SampleCommandsRunAsWritten) {
  int ran = 0;
  for (const fs::path& md : MarkdownFiles()) {
    for (const Block& b : CodeBlocks(md)) {
      if (b.lang != "sh") continue;
      std::istringstream lines(b.text);
      std::string l;
      while (std::getline(lines, l)) {
        std::istringstream words(l.substr(0, l.find('#')));
        std::vector<std::string> args;
        std::string w;
        while (words >> w) args.push_back(w);
        if (args.empty() || (args[0] != "cepheus" && args[0] != "./build/app/cepheus")) continue;
        args.erase(args.begin());
        bool files_exist = true;
        for (const std::string& a : args)
          if (a.find('/') != std::string::npos && a[0] != '-' && !fs::exists(kRoot / a))
            files_exist = false;
        if (!files_exist || args.empty() || args.back() == "\\") continue;
        for (std::string& a : args)
          if (a.find('/') != std::string::npos && a[0] != '-') a = (kRoot / a).string();
        auto r = RunCli(args);
        EXPECT_EQ(r.code, 0) << Where(b) << ": " << l << "\n" << r.err;
        ++ran;
      }
    }
  }
  EXPECT_GE(ran, 1);
}

TEST(Docs, ReadmeMatchRecordIsWhatTheFraudSampleEmits) {
  const std::string readme = ReadFile(kRoot / "README.md");
  const size_t at = readme.find("A match record:");
  ASSERT_NE(at, std::string::npos);
  std::string shown;
  for (const Block& b : CodeBlocks(kRoot / "README.md"))
    if (b.lang == "json" && shown.empty()) shown = b.text;
  // The record as one line: drop line breaks and the indentation after them.
  shown = std::regex_replace(shown, std::regex("\n *"), "");
  auto r = RunCli({"run", "--restart", (kRoot / "samples/fraud/pipeline.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(shown + "\n"), std::string::npos) << "README shows\n"
                                                         << shown << "\nthe sample emits\n"
                                                         << r.out;
}

TEST(Docs, EveryReferencedFileExists) {
  const std::regex link("\\]\\(([^)#]+)(#[^)]*)?\\)");
  const std::regex tick("`([A-Za-z0-9_./-]+)`");
  int checked = 0;
  for (const fs::path& md : MarkdownFiles()) {
    const std::string text = ReadFile(md);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link);
         it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1];
      if (target.find("://") != std::string::npos) continue;
      EXPECT_TRUE(fs::exists(md.parent_path() / target)) << md << " links to " << target;
      ++checked;
    }
    for (auto it = std::sregex_iterator(text.begin(), text.end(), tick);
         it != std::sregex_iterator(); ++it) {
      const std::string p = (*it)[1];
      if (p.ends_with(".test")) {
        // A golden scenario: by path under tests/golden, or by its file name.
        bool found = fs::exists(kRoot / "tests/golden" / p) || fs::exists(kRoot / p);
        for (const auto& e : fs::recursive_directory_iterator(kRoot / "tests/golden"))
          found |= p.find('/') == std::string::npos && e.path().filename() == p;
        EXPECT_TRUE(found) << md << " names the golden scenario " << p;
        ++checked;
        continue;
      }
      static const char* kDirs[] = {"app/",     "bench/",    "common/",  "docs/",    "engine/",
                                    "metrics/", "patterns/", "samples/", "scripts/", "sinks/",
                                    "state/",   "tests/",    "time/",    ".ci/"};
      bool repo_path = false;
      for (const char* d : kDirs) repo_path |= p.rfind(d, 0) == 0;
      static const std::regex kSourceFile(".*\\.(h|cc|md|sh|yaml|cep|jsonl|csv|py|txt)");
      if (!repo_path || p.find('*') != std::string::npos || !std::regex_match(p, kSourceFile))
        continue;
      if (p.find("/out/") != std::string::npos || p.find("/data/") != std::string::npos) continue;
      EXPECT_TRUE(fs::exists(kRoot / p)) << md << " names " << p << ", which does not exist";
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
}

}  // namespace

namespace {

// The metric names (cepheus_...) in `text`, without the histogram suffixes.
std::set<std::string> MetricNames(const std::string& text) {
  std::set<std::string> names;
  static const std::regex name(R"(cepheus_[a-z_]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator();
       ++it) {
    std::string n = it->str();
    for (const char* suffix : {"_bucket", "_count", "_sum"})
      if (n.size() > std::strlen(suffix) && n.ends_with(suffix) && n.find("latency") != n.npos)
        n.resize(n.size() - std::strlen(suffix));
    names.insert(n);
  }
  return names;
}

// Every file under `dir` with one of `exts`, read whole and concatenated.
std::string SourcesUnder(const fs::path& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".cc") all += ReadFile(e.path());
  return all;
}

}  // namespace

// The Grafana dashboard (samples/grafana) queries only metrics that
// docs/operations.md documents, and every documented metric is registered
// by the code (a renamed metric breaks this, not a dashboard in production).
TEST(Docs, DashboardAndMetricTableAgreeWithTheCode) {
  const std::string ops = ReadFile(kRoot / "docs" / "operations.md");
  const auto table_start = ops.find("| metric | type | meaning |");
  ASSERT_NE(table_start, std::string::npos);
  const std::string table = ops.substr(table_start, ops.find("\n\n", table_start) - table_start);
  const std::set<std::string> documented = MetricNames(table);
  EXPECT_GT(documented.size(), 30u);
  const std::set<std::string> dashboard =
      MetricNames(ReadFile(kRoot / "samples" / "grafana" / "cepheus-dashboard.json"));
  EXPECT_GT(dashboard.size(), 20u);
  for (const std::string& m : dashboard)
    EXPECT_TRUE(documented.count(m)) << m << " is on the dashboard but not in docs/operations.md";
  std::string code;
  for (const char* dir : {"engine", "metrics", "app", "sinks", "sources"})
    code += SourcesUnder(kRoot / dir);
  for (const std::string& m : documented)
    EXPECT_NE(code.find("\"" + m + "\""), std::string::npos)
        << m << " is documented but no code registers it";
}

// The deployment files say what docs/operations.md promises: a non-root
// image with the state on a volume and the metrics port exposed; a unit
// that stops with SIGTERM (a checkpoint) and restarts on failure only.
TEST(Docs, DeploymentFilesKeepTheirPromises) {
  const std::string docker = ReadFile(kRoot / "Dockerfile");
  for (const char* line : {"FROM debian:bookworm AS build", "FROM debian:bookworm-slim",
                           "USER cepheus", "VOLUME [\"/var/lib/cepheus\"]", "EXPOSE 9464",
                           "STOPSIGNAL SIGTERM", "scripts/runtime-packages.sh"})
    EXPECT_NE(docker.find(line), std::string::npos) << line;
  const std::string unit = ReadFile(kRoot / "samples" / "systemd" / "cepheus.service");
  for (const char* line : {"KillSignal=SIGTERM", "Restart=on-failure", "RestartPreventExitStatus=1",
                           "ExecStartPre=/usr/local/bin/cepheus check"})
    EXPECT_NE(unit.find(line), std::string::npos) << line;
  // The runtime image installs what the binary links against: the script
  // finds a package for every shared library of the cepheus just built.
  const std::string cmd = "bash '" + (kRoot / "scripts" / "runtime-packages.sh").string() + "' '" +
                          CEPHEUS_BINARY + "' 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  EXPECT_EQ(::pclose(pipe), 0) << out;
  for (const char* pkg : {"librocksdb", "librdkafka++1", "libprometheus-cpp-core", "libyaml-cpp"})
    EXPECT_NE(out.find(pkg), std::string::npos) << pkg << "\n" << out;
}
