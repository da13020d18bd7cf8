// Keeps the module DAG honest: scans every #include of our sources and fails
// on an include that goes against the allowed dependencies, or on a
// third-party header in one of our public headers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace {

namespace fs = std::filesystem;

// Modules and what each may include. An engine stage is a module of its
// own ("engine/nfa"), like a top-level folder.
const std::map<std::string, std::set<std::string>>& Allowed() {
  static const std::set<std::string> kBase = {"common", "io",    "patterns",
                                              "time",   "state", "metrics"};
  auto with = [&](std::set<std::string> extra, bool base) {
    if (base) extra.insert(kBase.begin(), kBase.end());
    return extra;
  };
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"common", {"common"}},
      {"patterns", {"common", "patterns"}},
      {"time", {"common", "time"}},
      {"state", {"common", "time", "state"}},
      {"metrics", {"common", "metrics"}},
      {"io", {"common", "io"}},
      // The one librdkafka wrapper: for the Kafka connectors and the app only.
      {"io/kafka", {"common", "io", "io/kafka"}},
      // Engine stages, bottom up.
      {"engine/plan", {"common", "io", "patterns", "time", "state", "engine/plan"}},
      {"engine/nfa", {"common", "patterns", "engine/nfa"}},
      {"engine/format", {"common", "io", "patterns", "time", "engine/nfa", "engine/format"}},
      {"engine/ingest",
       {"common", "io", "patterns", "time", "state", "engine/plan", "engine/nfa", "engine/format",
        "engine/ingest"}},
      {"engine/checkpoint", {"common", "io", "state", "metrics", "time", "engine/checkpoint"}},
      {"engine/exec", with({"engine/plan", "engine/nfa", "engine/format", "engine/ingest",
                            "engine/checkpoint", "engine/exec"},
                           true)},
      {"engine/batch", with({"engine/plan", "engine/nfa", "engine/format", "engine/ingest",
                             "engine/exec", "engine/batch"},
                            true)},
      // Connectors see the io interfaces, never the engine.
      {"sinks", {"common", "io", "io/kafka", "sinks"}},
      {"sources", {"common", "io", "io/kafka", "sources"}},
      {"app",
       with({"engine/plan", "engine/nfa", "engine/format", "engine/ingest", "engine/checkpoint",
             "engine/exec", "engine/batch", "io/kafka", "sources", "sinks", "app"},
            true)},
  };
  return kAllowed;
}

// The module an include names ("engine/nfa/nfa_runtime.h" -> "engine/nfa"),
// or "" for a third-party or system header.
std::string ModuleOf(const std::string& target) {
  const auto slash = target.find('/');
  if (slash == std::string::npos) return "";
  std::string top = target.substr(0, slash);
  if (target.starts_with("io/kafka/")) return "io/kafka";
  if (top == "engine") {
    const auto second = target.find('/', slash + 1);
    if (second == std::string::npos) return "engine";  // a file directly in engine/
    return target.substr(0, second);
  }
  return Allowed().count(top) ? top : "";
}

struct Include {
  std::string file;
  int line;
  std::string target;
};

std::vector<Include> IncludesOf(const fs::path& root, const std::string& module) {
  std::vector<Include> out;
  static const std::regex kInclude(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  for (const auto& entry : fs::recursive_directory_iterator(root / module)) {
    auto ext = entry.path().extension();
    if (ext != ".h" && ext != ".cc") continue;
    std::ifstream in(entry.path());
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      std::smatch m;
      if (std::regex_search(line, m, kInclude))
        out.push_back({fs::relative(entry.path(), root).string(), n, m[1]});
    }
  }
  return out;
}

TEST(Layering, ModulesIncludeOnlyWhatTheDagAllows) {
  const fs::path root = CEPHEUS_SOURCE_DIR;
  int checked = 0;
  for (const auto& [module, allowed] : Allowed()) {
    for (const Include& inc : IncludesOf(root, module)) {
      if (ModuleOf(inc.file) != module) continue;  // a sub-module's file (io/kafka in io)
      const std::string target_module = ModuleOf(inc.target);
      if (target_module.empty()) continue;  // a third-party or system header
      ++checked;
      EXPECT_TRUE(allowed.count(target_module))
          << inc.file << ":" << inc.line << ": module '" << module << "' must not include '"
          << inc.target << "'";
    }
  }
  EXPECT_GT(checked, 20);  // the scan did find our includes
}

// Every engine source belongs to a stage: nothing lives directly in engine/,
// and every stage folder is a module above.
TEST(Layering, EveryEngineFileIsInAStage) {
  const fs::path root = CEPHEUS_SOURCE_DIR;
  for (const auto& entry : fs::directory_iterator(root / "engine")) {
    if (entry.is_directory()) {
      EXPECT_TRUE(Allowed().count("engine/" + entry.path().filename().string()))
          << entry.path() << " is not a module of the layering test";
    } else {
      EXPECT_EQ(entry.path().filename(), "CMakeLists.txt")
          << entry.path() << " belongs in an engine stage folder";
    }
  }
}

// The rule itself fails on a wrong include.
TEST(Layering, TheRuleCatchesAnUpwardInclude) {
  EXPECT_EQ(ModuleOf("engine/exec/worker.h"), "engine/exec");
  EXPECT_EQ(ModuleOf("absl/container/node_hash_map.h"), "");
  EXPECT_FALSE(Allowed().at("engine/nfa").count(ModuleOf("engine/exec/worker.h")));
  EXPECT_FALSE(Allowed().at("sources").count(ModuleOf("engine/ingest/event_reader.h")));
  EXPECT_FALSE(Allowed().at("engine/ingest").count(ModuleOf("engine/exec/runner.h")));
  EXPECT_TRUE(Allowed().at("engine/exec").count(ModuleOf("engine/nfa/nfa_runtime.h")));
  // The engine never sees the Kafka wrapper; the connectors do.
  EXPECT_EQ(ModuleOf("io/kafka/kafka.h"), "io/kafka");
  EXPECT_FALSE(Allowed().at("engine/ingest").count(ModuleOf("io/kafka/kafka.h")));
  EXPECT_FALSE(Allowed().at("io").count(ModuleOf("io/kafka/kafka.h")));
  EXPECT_TRUE(Allowed().at("sources").count(ModuleOf("io/kafka/kafka.h")));
}

TEST(Layering, NoThirdPartyHeadersInPublicHeaders) {
  const fs::path root = CEPHEUS_SOURCE_DIR;
  static const char* kForbidden[] = {"boost/",      "rocksdb/", "librdkafka/", "rdkafka",
                                     "prometheus/", "simdjson", "yaml-cpp/",   "re2/",
                                     "CLI/",        "absl/",    "spdlog/",     "fmt/"};
  for (const auto& [module, allowed] : Allowed()) {
    for (const Include& inc : IncludesOf(root, module)) {
      bool header = inc.file.size() > 2 && inc.file.substr(inc.file.size() - 2) == ".h";
      for (const char* f : kForbidden) {
        if (inc.target.find(f) == std::string::npos) continue;
        EXPECT_FALSE(header) << inc.file << ":" << inc.line << ": public header includes "
                             << inc.target;
        if (std::string(f) == "boost/") {
          EXPECT_EQ(inc.file, "patterns/parser.cc")
              << "Spirit X3 belongs in patterns/parser.cc only";
        }
      }
    }
  }
}

}  // namespace
