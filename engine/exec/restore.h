// The restore step of a checkpointed run, out of PipelineRunner::Run: find
// the newest checkpoint whose state opens (falling back past damaged ones,
// refusing to start empty when none does), return the outputs to what it
// committed, and map its state onto the current pipeline (unchanged patterns
// keep their partial matches, changed or removed ones drop them).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/exec/keyed_operator.h"
#include "engine/exec/runner.h"
#include "engine/plan/pipeline.h"
#include "io/sink.h"
#include "state/state_backend.h"

namespace cepheus::engine {

// What identifies a keying across runs: its stream, the stream's schema
// (pending events are stored in that layout) and the key fields.
std::string KeyingSignature(const CompiledPipeline& p, const Keying& k);
// What identifies a pattern's meaning across runs (with its keying).
std::string PatternFingerprint(const CompiledPipeline& p, int pattern_index);

struct OpenedState {
  std::unique_ptr<state::StateBackend> backend;  // the working state
  std::optional<CheckpointStore::Found> found;   // the checkpoint it holds (none: empty)
};

// Opens the working state from the newest usable checkpoint in `store` (or
// empty when there is none, or when the previous run finished).
Result<OpenedState> OpenLatestState(CheckpointStore& store, const CheckpointOptions& ck);

// Returns every sink to what checkpoint `meta` committed (a fresh start
// without `meta`). `sinks`: the slot name each sink's record is kept under.
Status RecoverSinks(const CheckpointMetadata* meta,
                    const std::vector<std::pair<const char*, io::Sink*>>& sinks);

// Maps checkpoint `meta` onto `pipeline`: drops the state of patterns that
// changed or were removed since (logged), and returns how its keyings map.
Result<RestoreMapping> MapCheckpoint(const CompiledPipeline& pipeline,
                                     const CheckpointMetadata& meta, state::StateBackend* backend);

}  // namespace cepheus::engine
