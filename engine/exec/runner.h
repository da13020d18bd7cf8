// PipelineRunner: runs a compiled pipeline over its sources until every input
// ends (or Stop() is called): reads and decodes records, judges lateness
// against the watermark, routes events by key group to the workers, and
// reports dead letters and late events. The reader runs on the calling
// thread; workers on their own. Stop() may be called from any thread.
// With checkpoints enabled the runner is also the checkpoint coordinator: it
// restores the latest complete checkpoint at start, injects barriers at its
// interval, and takes a final checkpoint at a stop and at the end.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/clock.h"
#include "engine/exec/cep_operator.h"
#include "engine/exec/run_outputs.h"
#include "engine/ingest/event_reader.h"
#include "engine/nfa/nfa_runtime.h"
#include "engine/plan/pipeline.h"
#include "io/sink.h"
#include "io/source.h"
#include "metrics/counters.h"
#include "metrics/http_server.h"
#include "state/state_backend.h"

namespace cepheus::engine {

// Durable state and checkpoints (docs/architecture.md "Durable state").
class CheckpointHooks;  // engine/checkpoint/checkpoint_coordinator.h

struct CheckpointOptions {
  bool enabled = false;
  state::BackendKind backend = state::BackendKind::kRocksDb;
  std::string state_dir;
  // Wall-clock time between checkpoints; 0: only at a stop and at the end.
  Duration interval = Duration::Seconds(10);
  int retain = 3;         // complete checkpoints kept
  size_t cache_keys = 0;  // deserialized keys per worker; 0: no limit
  // Ignore (and delete) existing checkpoints: start from the beginning.
  bool restart = false;
  // Each checkpoint gets its own copy of the state's files instead of hard
  // links shared with the working state and other checkpoints: more disk and
  // checkpoint time, but a damaged file then affects one checkpoint only.
  bool copy_files = false;
};

struct RunOptions {
  // Opens the streams' sources (the app passes sources::FileSources() or a
  // provider that knows more kinds). Required.
  io::SourceProvider* sources = nullptr;
  int parallelism = 1;
  const Clock* clock = nullptr;          // default: the system clock
  metrics::Registry* metrics = nullptr;  // optional
  // Optional: set ready once restored and reading (and not while an
  // output's commit hangs: the checkpoint coordinator reports that).
  metrics::Readiness* readiness = nullptr;
  // How long the reader waits for an unbounded input before it re-checks
  // the clock (and idle watermarks).
  int poll_ms = 100;
  CheckpointOptions checkpoint;
  // Testing aid: called at two moments inside every checkpoint (crash tests
  // kill the process there). Null in normal use.
  CheckpointHooks* checkpoint_hooks = nullptr;
  // Process-wide budget of partial matches held in memory, shared equally by
  // the workers; past it the oldest runs are cut (counted, logged). 0: none.
  size_t max_live_runs = 0;
  // Testing aids: records per input per turn, the read buffer per input, and
  // Stop() once this many records were read (0: never).
  size_t lines_per_turn = 512;
  size_t read_buffer_bytes = 1 << 20;
  uint64_t stop_after_records = 0;
  // A progress line in the log this often (records/s, watermark and its lag,
  // live partial matches, last checkpoint); 0: none.
  Duration progress_interval = Duration::Millis(0);
  // `cepheus explain`: trace one pattern's runs (borrowed; null: off).
  const TraceRequest* trace = nullptr;
};

struct RunSummary {
  ReaderCounts reader;                // records, events, dead letters, late
  std::vector<StreamCounts> streams;  // per stream, this process's reading
  uint64_t matches = 0;
  uint64_t timeouts = 0;
  uint64_t runs_dropped = 0;
  MatcherStats matcher;  // all workers' matcher counters (held matches and their wait)
  std::vector<MatcherStats> patterns;  // the same per pattern, in the pipeline's order
  bool stopped = false;                // ended by Stop(), not by the end of input
  uint64_t checkpoints = 0;
  uint64_t restored_from = 0;  // checkpoint id, 0: a fresh start
  uint64_t keys_evicted = 0, keys_loaded = 0;
  uint64_t peak_cached_keys = 0;  // the most keys one worker held in memory
  int64_t peak_live_runs = 0;     // sum over workers of their peak after a batch
};

class PipelineRunner {
 public:
  PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs, RunOptions options);
  Result<RunSummary> Run();
  // Ends the run at the next batch with a checkpoint (safe in a signal
  // handler); an output waiting on something outside (a Kafka commit being
  // retried) is told to give up.
  void Stop() {
    stop_.store(true);
    for (io::Sink* s : {outputs_.matches, outputs_.late, outputs_.dead_letter, outputs_.watermarks})
      if (s) s->Interrupt();
    for (io::Sink* s : outputs_.routed)
      if (s) s->Interrupt();
  }

 private:
  const CompiledPipeline& pipeline_;
  RunOutputs outputs_;
  RunOptions options_;
  std::atomic<bool> stop_{false};
};

}  // namespace cepheus::engine
