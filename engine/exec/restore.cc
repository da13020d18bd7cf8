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

namespace {

// What a pattern's stored state depends on, without what only decides
// which events are taken or what a match emits: the automaton's shape
// (states, stages, edges with their contiguity, guards, quantifier bits and
// finals; condition indexes, not their text), the aggregate word layout,
// the window, gaps, the skip strategy, and the keying. Runs and buffer
// nodes refer to all of these; a condition's threshold or an EMIT field
// they never see.
std::string StateLayout(const patterns::CompiledPattern& pat) {
  std::string t = "v" + std::to_string(pat.vars.size());
  for (const auto& st : pat.states) {
    t += "|s" + std::to_string(st.var) + "," + std::to_string(st.cond) + "," +
         std::to_string(st.gap_ms) + "," + std::to_string(st.wait_ms);
    for (const auto& e : st.edges) {
      t += ";e" + std::to_string(e.target) + "," + std::to_string(static_cast<int>(e.op)) + "," +
           std::to_string(e.continue_q) + "," + std::to_string(e.bypass_q) + "," +
           std::to_string(e.until_cond) + "," + (e.until_kills ? "k" : "-");
      for (const auto& g : e.guards) t += ",g" + std::to_string(g.cond) + (g.strict ? "s" : "r");
    }
    for (const auto& f : st.finals) {
      t += ";f";
      for (const auto& g : f.guards) t += ",g" + std::to_string(g.cond) + (g.strict ? "s" : "r");
    }
  }
  for (const auto& q : pat.quants) t += "|q" + std::to_string(static_cast<int>(q.mode));
  t += "|greedy" + std::to_string(pat.greedy_q);
  const patterns::AggLayout& a = pat.aggs;
  t += "|aggs" + std::to_string(a.num_words) + "," + std::to_string(a.total_count);
  for (const auto& v : a.vars) {
    t += ";" + std::to_string(v.count) + "," + std::to_string(v.first) + "," +
         std::to_string(v.last) + "," + std::to_string(v.prev);
    for (const auto& f : v.fields)
      t += "," + std::to_string(f.field) + ":" + std::to_string(static_cast<int>(f.type)) + ":" +
           std::to_string(f.sum) + ":" + std::to_string(f.min) + ":" + std::to_string(f.max) + ":" +
           std::to_string(f.last_value) + ":" + std::to_string(f.last_set);
  }
  t += "|within" + (pat.within ? std::to_string(pat.within->millis()) : std::string("-"));
  t += "|gap" + (pat.max_gap ? std::to_string(pat.max_gap->millis()) : std::string("-"));
  t += "|skip" + std::to_string(static_cast<int>(pat.skip)) + "," + std::to_string(pat.skip_var) +
       (pat.skip_strict ? "s" : "") + (pat.has_timeout_emit ? "|timeouts" : "");
  return t;
}

std::string KeyingOf(const CompiledPipeline& p, int pattern_index) {
  for (const Keying& k : p.keyings)
    for (int pi : k.patterns)
      if (pi == pattern_index) return KeyingSignature(p, k);
  return "";
}

// The full part of a fingerprint (before the '.'; older checkpoints have
// only that part) and the state layout part (empty if absent).
std::pair<std::string, std::string> SplitFingerprint(const std::string& fp) {
  const size_t dot = fp.find('.');
  if (dot == std::string::npos) return {fp, ""};
  return {fp.substr(0, dot), fp.substr(dot + 1)};
}

}  // namespace

std::string PatternFingerprint(const CompiledPipeline& p, int pattern_index) {
  const auto& pat = *p.patterns[static_cast<size_t>(pattern_index)];
  const std::string keying = KeyingOf(p, pattern_index);
  return Fingerprint(pat.ToText() + "|" + keying) + "." +
         Fingerprint(StateLayout(pat) + "|" + keying);
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
    const auto [was, was_layout] = SplitFingerprint(fp);
    if (now >= 0) {
      const auto [is, is_layout] = SplitFingerprint(PatternFingerprint(pipeline, now));
      if (is == was) {
        spdlog::info("pattern {}: unchanged since checkpoint {}, its state is restored", name,
                     meta.id);
        continue;
      }
      if (!was_layout.empty() && is_layout == was_layout) {
        spdlog::info(
            "pattern {}: changed since checkpoint {} in its conditions or EMIT only (the same "
            "automaton and state layout): its partial matches are kept and go on under the new "
            "definition",
            name, meta.id);
        continue;
      }
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
