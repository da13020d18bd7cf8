#include "engine/plan/pipeline.h"

#include <fstream>
#include <set>
#include <sstream>

namespace cepheus::engine {

Result<CompiledPipeline> CompilePipeline(PipelineConfig config) {
  CompiledPipeline out;
  out.catalog = std::make_unique<patterns::StreamCatalog>();
  for (const StreamConfig& s : config.streams)
    (*out.catalog)[s.name] = patterns::StreamInfo{s.schema, s.key};
  std::string errors;
  std::set<std::string> names;
  for (const PatternSource& src : config.patterns) {
    std::string text = src.inline_text;
    if (!src.path.empty()) {
      std::ifstream in(src.path, std::ios::binary);
      if (!in) {
        errors += src.path + ": error: cannot open pattern file\n";
        continue;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    patterns::SourceFile file(src.display_name(), text);
    std::string warnings;
    auto compiled = patterns::CompilePatternFile(file, *out.catalog, &warnings);
    if (!compiled.ok()) {
      errors += compiled.status().message();
      continue;
    }
    out.warnings += warnings;
    for (auto& p : compiled.value()) {
      if (!names.insert(p->name).second) {
        errors +=
            file.name() + ": error: pattern '" + p->name + "' is also defined in another file\n";
        continue;
      }
      out.patterns.push_back(p);
    }
  }
  if (!errors.empty()) return Status::InvalidArgument(errors);
  // Routing: one keying per (stream, partition fields).
  for (size_t i = 0; i < out.patterns.size(); ++i) {
    const auto& p = *out.patterns[i];
    int stream = -1;
    for (size_t s = 0; s < config.streams.size(); ++s)
      if (config.streams[s].name == p.stream) stream = static_cast<int>(s);
    Keying* k = nullptr;
    for (Keying& existing : out.keyings)
      if (existing.stream == stream && existing.fields == p.partition_fields) k = &existing;
    if (!k) {
      out.keyings.push_back(Keying{stream, p.partition_fields, {}});
      k = &out.keyings.back();
    }
    k->patterns.push_back(static_cast<int>(i));
  }
  out.config = std::move(config);
  return out;
}

}  // namespace cepheus::engine
