#include "engine/plan/pipeline.h"

#include "patterns/cost.h"

#include <fnmatch.h>

#include <algorithm>
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
  // Outputs of their own: the first routed output that names a pattern
  // takes it; a name or glob that names no pattern is a mistake.
  out.pattern_output.assign(out.patterns.size(), -1);
  const bool all_compiled = errors.empty();
  for (size_t r = 0; all_compiled && r < config.routed_outputs.size(); ++r) {
    const auto& routed = config.routed_outputs[r];
    for (const std::string& glob : routed.patterns) {
      bool named = false;
      for (size_t i = 0; i < out.patterns.size(); ++i) {
        if (::fnmatch(glob.c_str(), out.patterns[i]->name.c_str(), 0) != 0) continue;
        named = true;
        if (out.pattern_output[i] < 0) out.pattern_output[i] = static_cast<int>(r);
      }
      if (!named)
        errors += config.path + ": error: outputs." + routed.name + ".patterns: '" + glob +
                  "' names no pattern\n";
    }
  }
  // Budgets per pattern.
  out.pattern_run_cap.assign(out.patterns.size(), config.max_runs_per_key);
  for (const auto& [name, limits] : config.pattern_limits) {
    bool found = false;
    for (size_t i = 0; i < out.patterns.size(); ++i) {
      if (out.patterns[i]->name != name) continue;
      found = true;
      size_t& cap = out.pattern_run_cap[i];
      if (limits.max_runs_per_key) cap = std::min(cap, *limits.max_runs_per_key);
      if (limits.max_state_bytes)
        cap = std::min(
            cap,
            std::max<size_t>(1, static_cast<size_t>(static_cast<double>(*limits.max_state_bytes) /
                                                    patterns::RunStateBytes(*out.patterns[i]))));
    }
    if (!found && all_compiled)
      errors += config.path + ": error: limits." + name + ": there is no pattern '" + name + "'\n";
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
