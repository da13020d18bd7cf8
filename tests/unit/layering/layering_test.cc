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

const std::map<std::string, std::set<std::string>>& Allowed() {
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"common", {"common"}},
      {"patterns", {"common", "patterns"}},
      {"time", {"common", "time"}},
      {"state", {"common", "state"}},
      {"metrics", {"common", "metrics"}},
      {"io", {"common", "io"}},
      {"engine", {"common", "io", "patterns", "time", "state", "metrics", "engine"}},
      // Connectors see the io interfaces, never the engine.
      {"sinks", {"common", "io", "sinks"}},
      {"sources", {"common", "io", "sources"}},
      {"app",
       {"common", "io", "patterns", "time", "state", "metrics", "engine", "sources", "sinks",
        "app"}},
  };
  return kAllowed;
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
      auto slash = inc.target.find('/');
      if (slash == std::string::npos) continue;
      std::string target_module = inc.target.substr(0, slash);
      if (!Allowed().count(target_module)) continue;  // a third-party or system header
      ++checked;
      EXPECT_TRUE(allowed.count(target_module))
          << inc.file << ":" << inc.line << ": module '" << module << "' must not include '"
          << inc.target << "'";
    }
  }
  EXPECT_GT(checked, 20);  // the scan did find our includes
}

TEST(Layering, NoThirdPartyHeadersInPublicHeaders) {
  const fs::path root = CEPHEUS_SOURCE_DIR;
  static const char* kForbidden[] = {"boost/",    "rocksdb/",    "librdkafka/",
                                     "rdkafka",   "prometheus/", "simdjson",
                                     "yaml-cpp/", "re2/",        "CLI/"};
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
