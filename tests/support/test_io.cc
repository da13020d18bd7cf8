#include "tests/support/test_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace cepheus::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) lines.push_back(l);
  std::sort(lines.begin(), lines.end());
  return lines;
}

Result<engine::CompiledPipeline> OneStreamPipeline(const std::string& pattern,
                                                   const std::string& input, int64_t lateness_ms,
                                                   const std::string& schema_spec) {
  engine::PipelineConfig cfg;
  engine::StreamConfig s;
  s.name = "s";
  s.source.path = input;
  std::vector<Field> fields;
  std::stringstream ss(schema_spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::stringstream ps(part);
    std::string name, type;
    ps >> name >> type;
    fields.push_back(Field{name, *ParseFieldType(type)});
  }
  s.schema = Schema::Create(fields).value();
  if (s.schema.IndexOf("key") >= 0) s.key = {"key"};
  s.time_field = "ts";
  s.watermark.max_out_of_orderness = Duration::Millis(lateness_ms);
  cfg.streams.push_back(s);
  engine::PatternSource ps;
  ps.inline_text = pattern;
  cfg.patterns.push_back(ps);
  cfg.max_runs_per_key = 100000;
  return engine::CompilePipeline(std::move(cfg));
}

std::string ScratchDir(const std::string& prefix) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace cepheus::testing
