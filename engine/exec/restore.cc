#include "engine/exec/restore.h"

#include <spdlog/spdlog.h>

#include "common/hash.h"
#include "engine/exec/cep_operator.h"

namespace cepheus::engine {

namespace {

std::string SchemaText(const Schema& schema) {
  std::string t;
  for (const Field& f : schema.fields())
    t += f.name + ":" + std::string(FieldTypeName(f.type)) + ",";
  return t;
}

}  // namespace

std::string KeyingSignature(const CompiledPipeline& p, const Keying& k) {
  const StreamConfig& sc = p.config.streams[static_cast<size_t>(k.stream)];
  std::string sig = sc.name + "|" + SchemaText(sc.schema) + "|";
  for (int f : k.fields) sig += sc.schema.field(static_cast<size_t>(f)).name + ",";
  return sig;
}

std::string PatternFingerprint(const CompiledPipeline& p, int pattern_index) {
  for (const Keying& k : p.keyings)
    for (int pi : k.patterns)
      if (pi == pattern_index)
        return Fingerprint(p.patterns[static_cast<size_t>(pi)]->ToText() + "|" +
                           KeyingSignature(p, k));
  return Fingerprint(p.patterns[static_cast<size_t>(pattern_index)]->ToText());
}

Result<OpenedState> OpenLatestState(CheckpointStore& store, const CheckpointOptions& ck) {
  auto usable = store.Usable();
  if (!usable.ok()) return usable.status();
  if (!usable->empty() && usable->front().metadata.finished) {
    spdlog::info(
        "state: the previous run of this pipeline finished (checkpoint {}); starting from the "
        "beginning",
        usable->front().metadata.id);
    CEPHEUS_RETURN_IF_ERROR(store.DeleteAll());
    usable->clear();
  }
  // The newest usable checkpoint whose state opens; a state that does not
  // open (damaged table files) falls back to the previous checkpoint.
  OpenedState out;
  std::vector<std::string> failures;
  for (auto& candidate : *usable) {
    const CheckpointMetadata& m = candidate.metadata;
    if (m.state_backend != state::BackendKindName(ck.backend))
      return Status::InvalidArgument("checkpoint " + std::to_string(m.id) + " holds " +
                                     m.state_backend + " state; the pipeline now uses " +
                                     std::string(state::BackendKindName(ck.backend)));
    auto opened = state::OpenWorkingState(ck.backend, store.working_dir(),
                                          candidate.dir + "/" + m.state_location);
    if (opened.ok()) {
      if (!failures.empty())
        spdlog::warn("falling back to checkpoint {} (newer ones could not be restored)", m.id);
      out.backend = std::move(opened.value());
      out.found = std::move(candidate);
      break;
    }
    spdlog::warn("checkpoint {}: its state cannot be restored: {}", m.id,
                 opened.status().message());
    failures.push_back("checkpoint " + std::to_string(m.id) + ": " + opened.status().message());
  }
  if (!failures.empty() && !out.found) {
    std::string msg = "no checkpoint in '" + ck.state_dir +
                      "' could be restored (refusing to start from empty state; move the "
                      "state directory away to start over):";
    for (const auto& f : failures) msg += "\n  " + f;
    return Status::Corruption(msg);
  }
  if (!out.backend) {
    auto opened = state::OpenWorkingState(ck.backend, store.working_dir(), "");
    if (!opened.ok()) return opened.status();
    out.backend = std::move(opened.value());
  }
  return out;
}

Status RecoverSinks(const CheckpointMetadata* meta,
                    const std::vector<std::pair<const char*, io::Sink*>>& sinks) {
  for (auto [slot, out] : sinks) {
    std::string record;
    if (meta)
      for (const auto& [name, rec] : meta->outputs)
        if (name == slot) record = rec;
    if (out) CEPHEUS_RETURN_IF_ERROR(out->Recover(record));
  }
  return Status::Ok();
}

Result<RestoreMapping> MapCheckpoint(const CompiledPipeline& pipeline,
                                     const CheckpointMetadata& meta, state::StateBackend* backend) {
  // Patterns: unchanged ones keep their state, changed or removed ones drop
  // it, new ones start empty.
  for (const auto& [name, fp] : meta.patterns) {
    int now = -1;
    for (size_t i = 0; i < pipeline.patterns.size(); ++i)
      if (pipeline.patterns[i]->name == name) now = static_cast<int>(i);
    if (now >= 0 && PatternFingerprint(pipeline, now) == fp) {
      spdlog::info("pattern {}: unchanged since checkpoint {}, its state is restored", name,
                   meta.id);
      continue;
    }
    spdlog::warn("pattern {}: {} since checkpoint {}, its partial matches are dropped", name,
                 now >= 0 ? "changed" : "removed", meta.id);
    CEPHEUS_RETURN_IF_ERROR(CepOperator::DropPatternState(backend, name));
  }
  for (const auto& pat : pipeline.patterns) {
    bool known = false;
    for (const auto& [name, fp] : meta.patterns) known |= name == pat->name;
    if (!known)
      spdlog::info("pattern {}: new since checkpoint {}, starts with empty state", pat->name,
                   meta.id);
  }
  RestoreMapping mapping;
  mapping.watermark = meta.watermark;
  mapping.timers_in_state = meta.worker_state >= 2;
  for (const std::string& sig : meta.keyings) {
    int now = -1;
    for (size_t k = 0; k < pipeline.keyings.size(); ++k)
      if (KeyingSignature(pipeline, pipeline.keyings[k]) == sig) now = static_cast<int>(k);
    mapping.keyings.push_back(now);
  }
  return mapping;
}

}  // namespace cepheus::engine
