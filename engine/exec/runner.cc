#include "engine/exec/runner.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>

#include "common/hash.h"
#include "common/json.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/checkpoint_coordinator.h"
#include "engine/exec/restore.h"
#include "engine/exec/worker.h"
#include "engine/format/format.h"
#include "engine/ingest/event_reader.h"
#include "state/key_groups.h"

namespace cepheus::engine {
namespace {
constexpr size_t kBatchEvents = 2048;

// The counters every worker adds to after each batch (live).
WorkerMetrics RegisterWorkerMetrics(metrics::Registry& reg) {
  WorkerMetrics m;
  m.matches = &reg.GetCounter("cepheus_matches_total", "Matches emitted");
  m.timeouts = &reg.GetCounter("cepheus_timeouts_total", "Partial matches that timed out");
  m.runs_dropped =
      &reg.GetCounter("cepheus_runs_dropped_total", "Partial matches cut by max_runs_per_key");
  m.runs_cut_by_budget = &reg.GetCounter("cepheus_runs_cut_by_budget_total",
                                         "Partial matches cut to keep limits.max_live_runs");
  m.held_matches =
      &reg.GetCounter("cepheus_held_matches_total",
                      "Matches held by AFTER MATCH SKIP until earlier partial matches ended");
  m.skip_errors = &reg.GetCounter(
      "cepheus_skip_errors_total",
      "Matches AFTER MATCH SKIP TO ... STRICT could not skip for (sent to dead_letter)");
  m.keys_evicted = &reg.GetCounter("cepheus_state_keys_evicted_total",
                                   "Keys written back and dropped from the cache");
  m.keys_loaded =
      &reg.GetCounter("cepheus_state_keys_loaded_total", "Keys read back from the state backend");
  m.live_runs = &reg.GetGauge("cepheus_live_runs", "Partial matches held in memory now");
  return m;
}

// The router: every worker is given a contiguous range of key groups; an
// event goes, once per keying of its stream, to the owner of its key's group.
class Router {
 public:
  Router(const CompiledPipeline& pipeline, int parallelism)
      : pipeline_(pipeline), owner_(state::kDefaultKeyGroups, -1) {
    for (int w = 0; w < parallelism; ++w) {
      ranges_.push_back(state::RangeOfWorker(w, state::kDefaultKeyGroups, parallelism));
      for (int g = ranges_.back().begin; g < ranges_.back().end; ++g)
        owner_[static_cast<size_t>(g)] = w;
    }
  }
  const std::vector<state::KeyGroupRange>& ranges() const { return ranges_; }
  // Appends `e` to the batches of its owners; returns how many it added.
  size_t Route(const ReadEvent& e, std::vector<EventBatch>* batches) {
    const StreamConfig& sc = pipeline_.config.streams[static_cast<size_t>(e.stream)];
    size_t n = 0;
    for (size_t k = 0; k < pipeline_.keyings.size(); ++k) {
      const Keying& keying = pipeline_.keyings[k];
      if (keying.stream != e.stream) continue;
      const uint64_t h = StableHash(KeyView(*e.row, keying.fields, sc.schema, &scratch_));
      const int w = owner_[static_cast<size_t>(state::KeyGroupOf(h, state::kDefaultKeyGroups))];
      (*batches)[static_cast<size_t>(w)].events.push_back(
          RoutedEvent{e.row, static_cast<uint32_t>(k)});
      ++n;
    }
    return n;
  }

 private:
  const CompiledPipeline& pipeline_;
  std::vector<state::KeyGroupRange> ranges_;
  std::vector<int> owner_;  // key group -> worker
  std::string scratch_;
};

}  // namespace

void PipelineRunner::AddWorker(const Worker& w, RunSummary* summary) {
  summary->matcher.Add(w.stats().matcher);
  summary->keys_evicted += w.stats().keys_evicted;
  summary->keys_loaded += w.stats().keys_loaded;
  summary->peak_cached_keys = std::max(summary->peak_cached_keys, w.stats().peak_cached_keys);
  summary->peak_live_runs += w.stats().peak_live_runs;
  summary->matches = summary->matcher.matches;
  summary->timeouts = summary->matcher.timeouts;
  summary->runs_dropped = summary->matcher.runs_dropped;
}

void PipelineRunner::LogRunWarnings(const RunSummary& summary) const {
  if (const std::string held = summary.matcher.HeldSummary(); !held.empty())
    spdlog::info("{}", held);
  if (summary.matcher.skip_errors)
    spdlog::error(
        "{} matches could not apply AFTER MATCH SKIP ... STRICT; they went to the dead_letter "
        "output with the reason",
        summary.matcher.skip_errors);
  for (const std::string& w : BadInputWarnings(pipeline_.config, summary.streams))
    spdlog::warn("{}", w);
  if (summary.matcher.runs_cut_by_budget)
    spdlog::warn(
        "{} partial matches were cut to keep limits.max_live_runs={} (oldest first; see "
        "cepheus_runs_cut_by_budget_total)",
        summary.matcher.runs_cut_by_budget, options_.max_live_runs);
  if (summary.runs_dropped)
    spdlog::warn(
        "{} partial matches were cut by max_runs_per_key={} (see cepheus_runs_dropped_total)",
        summary.runs_dropped, pipeline_.config.max_runs_per_key);
}

PipelineRunner::PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs,
                               RunOptions options)
    : pipeline_(pipeline), outputs_(outputs), options_(options) {}

Result<RunSummary> PipelineRunner::Run() {
  const int parallelism = std::max(1, options_.parallelism);
  RunSummary summary;
  metrics::Registry local_metrics;
  metrics::Registry& reg = options_.metrics ? *options_.metrics : local_metrics;
  SystemClock system_clock;
  const Clock& clock = options_.clock ? *options_.clock : system_clock;

  ReaderOptions ropts;
  ropts.clock = options_.clock;
  ropts.lines_per_turn = std::max<size_t>(1, options_.lines_per_turn);
  if (!options_.sources) return Status::InvalidArgument("no source provider (RunOptions::sources)");
  auto sources =
      OpenStreamSources(*options_.sources, pipeline_.config, {}, options_.read_buffer_bytes);
  if (!sources.ok()) return sources.status();
  EventReader reader(pipeline_, ropts, std::move(sources.value()));
  // Every input is opened first: a missing file fails the run before it starts.
  CEPHEUS_RETURN_IF_ERROR(reader.Open());

  // Live counters: the workers add to them after every batch.
  const WorkerMetrics worker_metrics = RegisterWorkerMetrics(reg);
  Router router(pipeline_, parallelism);
  std::vector<std::unique_ptr<Worker>> workers;
  for (const state::KeyGroupRange& groups : router.ranges()) {
    // Each worker runs the CEP operator over its groups; a worker's share of
    // limits.max_live_runs bounds the partial matches it holds.
    workers.push_back(std::make_unique<Worker>(pipeline_, groups, [&](WorkerStats* stats) {
      auto cep = std::make_unique<CepOperator>(pipeline_, groups, stats, outputs_.matches,
                                               outputs_.dead_letter);
      if (options_.max_live_runs)
        cep->SetRunBudget(
            std::max<size_t>(1, options_.max_live_runs / static_cast<size_t>(parallelism)));
      std::vector<std::unique_ptr<KeyedOperator>> ops;
      ops.push_back(std::move(cep));
      return ops;
    }));
  }
  for (auto& w : workers) {
    w->SetMetrics(&worker_metrics);
    w->SetClock(&clock);
  }
  std::vector<EventBatch> batches(static_cast<size_t>(parallelism));
  size_t pending_events = 0;
  Watermark sent_wm = Watermark::Min();

  // Durable state: restore the latest complete checkpoint, or start fresh.
  const CheckpointOptions& ck = options_.checkpoint;
  std::unique_ptr<state::StateBackend> backend;
  std::unique_ptr<CheckpointStore> store;
  const std::pair<const char*, io::Sink*> slots[] = {{"matches", outputs_.matches},
                                                     {"late", outputs_.late},
                                                     {"dead_letter", outputs_.dead_letter},
                                                     {"watermarks", outputs_.watermarks}};
  uint64_t next_checkpoint = 0;
  if (ck.enabled) {
    store = std::make_unique<CheckpointStore>(ck.state_dir);
    if (ck.restart) CEPHEUS_RETURN_IF_ERROR(store->DeleteAll());
    auto opened = OpenLatestState(*store, ck);
    if (!opened.ok()) return opened.status();
    backend = std::move(opened->backend);
    const CheckpointMetadata* meta = opened->found ? &opened->found->metadata : nullptr;
    CEPHEUS_RETURN_IF_ERROR(RecoverSinks(meta, {std::begin(slots), std::end(slots)}));
    WorkerStateOptions wso;
    wso.backend = backend.get();
    wso.cache_keys = ck.cache_keys;
    for (auto& w : workers) w->AttachState(wso);
    if (meta) {
      CEPHEUS_RETURN_IF_ERROR(store->DeleteNewerThan(meta->id));
      auto mapping = MapCheckpoint(pipeline_, *meta, backend.get());
      if (!mapping.ok()) return mapping.status();
      CEPHEUS_RETURN_IF_ERROR(reader.RestorePosition(meta->reader_state));
      for (auto& w : workers) CEPHEUS_RETURN_IF_ERROR(w->Restore(mapping.value()));
      sent_wm = meta->watermark;
      summary.restored_from = meta->id;
      spdlog::info(
          "restored checkpoint {} (written by a run with parallelism {}, now {}): watermark {}",
          meta->id, meta->parallelism, parallelism,
          meta->watermark == Watermark::Min() ? std::string("none")
                                              : FormatRfc3339(meta->watermark.time()));
    } else {
      CEPHEUS_RETURN_IF_ERROR(store->DeleteAll());
    }
    next_checkpoint = store->NextId();
  }
  for (auto& w : workers) w->Start();

  auto& c_records = reg.GetCounter("cepheus_records_read_total", "Input records read");
  auto& c_dead = reg.GetCounter("cepheus_dead_letters_total", "Records that could not be decoded");
  auto& c_late = reg.GetCounter("cepheus_late_events_total", "Events at or behind the watermark");
  io::RecordBatch dead_out, late_out, wm_out;
  // Counters are published once per turn, not per record.
  ReaderCounts published;
  auto publish_counters = [&] {
    const ReaderCounts& c = reader.counts();
    c_records.Add(c.records_read - published.records_read);
    c_dead.Add(c.dead_letters - published.dead_letters);
    c_late.Add(c.late - published.late);
    published = c;
  };
  auto flush_side_outputs = [&]() -> Status {
    if (!dead_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.dead_letter->Write(dead_out));
      dead_out.clear();
    }
    if (!late_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.late->Write(late_out));
      late_out.clear();
    }
    if (!wm_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.watermarks->Write(wm_out));
      wm_out.clear();
    }
    return Status::Ok();
  };
  // The watermarks output: one record each time the watermark sent to the
  // workers advances, written before the workers see it (so before any
  // result it releases), and one at the end of the input.
  auto note_watermark = [&](Watermark wm) {
    if (!outputs_.watermarks || wm <= sent_wm) return;
    RenderWatermark(wm, &wm_out);
  };
  auto send = [&](Watermark wm) {
    note_watermark(wm);
    for (int w = 0; w < parallelism; ++w) {
      EventBatch& b = batches[static_cast<size_t>(w)];
      b.watermark = wm;
      workers[static_cast<size_t>(w)]->Push(std::move(b));
      b = EventBatch{};
    }
    pending_events = 0;
    sent_wm = wm;
  };

  // Checkpoints (engine/checkpoint/checkpoint_coordinator.h): the runner lends the
  // coordinator its barrier injection, its side outputs and its position.
  std::unique_ptr<CheckpointCoordinator> coordinator;
  if (ck.enabled) {
    CheckpointCoordinator::Wiring wiring;
    wiring.store = store.get();
    wiring.backend = backend.get();
    wiring.sinks.assign(std::begin(slots), std::end(slots));
    wiring.parallelism = parallelism;
    wiring.clock = &clock;
    wiring.hooks = options_.checkpoint_hooks;
    wiring.retain = ck.retain;
    wiring.copy_files = ck.copy_files;
    wiring.interval = ck.interval;
    wiring.metrics = &reg;
    wiring.describe = [&] {
      CheckpointMetadata meta;
      meta.reader_state = reader.SavePosition();
      meta.state_backend = state::BackendKindName(ck.backend);
      meta.state_location = "state";
      meta.key_groups = "0-" + std::to_string(state::kDefaultKeyGroups - 1);
      for (size_t i = 0; i < pipeline_.patterns.size(); ++i)
        meta.patterns.emplace_back(pipeline_.patterns[i]->name,
                                   PatternFingerprint(pipeline_, static_cast<int>(i)));
      for (const Keying& k : pipeline_.keyings)
        meta.keyings.push_back(KeyingSignature(pipeline_, k));
      return meta;
    };
    wiring.inject_barrier = [&](const std::shared_ptr<SnapshotSync>& barrier, Watermark wm) {
      for (auto& b : batches) b.barrier = barrier;
      send(wm);
    };
    wiring.flush_side_outputs = flush_side_outputs;
    wiring.on_complete = [&](uint64_t id) { return reader.OnCheckpointComplete(id); };
    coordinator = std::make_unique<CheckpointCoordinator>(std::move(wiring), next_checkpoint);
  }

  Status failure;
  std::vector<ReadEvent> events;
  while (!stop_.load()) {
    events.clear();
    auto turn = reader.ReadTurn(&events, &dead_out, &late_out);
    if (!turn.ok()) {
      failure = turn.status();
      break;
    }
    for (const ReadEvent& e : events) pending_events += router.Route(e, &batches);
    publish_counters();
    if (*turn == EventReader::Turn::kEnd) break;
    if (options_.stop_after_records && reader.counts().records_read >= options_.stop_after_records)
      Stop();
    const bool progress = *turn == EventReader::Turn::kProgress;
    // The end of every input (a Max watermark) is sent only after the loop,
    // with the final checkpoint: workers end their run when they see it.
    Watermark wm = reader.UpdateWatermark();
    if (wm.is_max()) wm = sent_wm;
    if (pending_events >= kBatchEvents || (wm > sent_wm && (pending_events > 0 || !progress)) ||
        (!progress && pending_events > 0)) {
      send(wm);
    }
    Status fs = flush_side_outputs();
    if (!fs.ok()) {
      failure = fs;
      break;
    }
    if (coordinator) {
      Status cs = coordinator->Finish(/*wait=*/false);
      if (cs.ok() && coordinator->Due()) cs = coordinator->Begin(wm, false);
      if (!cs.ok()) {
        failure = cs.WithPrefix("checkpoint failed: ");
        break;
      }
    }
    if (!progress) {
      // Only unbounded inputs remain and none had data: wait for data (or
      // a little while), then look again (the watermark may move with the
      // wall clock meanwhile).
      reader.WaitForInput(std::min(options_.poll_ms, 20));
    }
  }
  publish_counters();
  Status fs = flush_side_outputs();
  if (failure.ok() && !fs.ok()) failure = fs;
  const bool stopped = stop_.load() || !failure.ok();
  if (ck.enabled && failure.ok()) {
    Status cs = coordinator->Finish(/*wait=*/true);
    if (!cs.ok()) failure = cs.WithPrefix("checkpoint failed: ");
  }
  if (ck.enabled && failure.ok()) {
    // A stop ends at a checkpoint the next run continues from; the end of
    // the input at a final one that commits the last outputs.
    Status cs = coordinator->TakeNow(stopped ? sent_wm : Watermark::Max(), !stopped);
    if (!cs.ok()) failure = cs.WithPrefix("final checkpoint failed: ");
  } else if (!stopped) {
    send(Watermark::Max());
    Status ws = flush_side_outputs();
    if (failure.ok() && !ws.ok()) failure = ws;
  }
  if (stopped || !failure.ok()) {
    for (auto& w : workers) {
      EventBatch b;
      b.stop = true;
      w->Push(std::move(b));
    }
  }
  for (auto& w : workers) w->Join();
  if (coordinator) summary.checkpoints = coordinator->completed();
  summary.reader = reader.counts();
  summary.streams = reader.stream_counts();
  for (auto& w : workers) {
    AddWorker(*w, &summary);
    if (failure.ok() && !w->status().ok()) failure = w->status();
  }
  reg.GetGauge("cepheus_held_match_max_wait_ms",
               "Longest event-time wait of a held match after its last event")
      .Set(summary.matcher.held_wait_ms_max);
  // A failed flush (full disk, closed pipe) fails the run: output was lost.
  for (io::Sink* o : {outputs_.matches, outputs_.late, outputs_.dead_letter, outputs_.watermarks}) {
    if (!o) continue;
    Status flushed = o->Flush();
    if (failure.ok() && !flushed.ok()) failure = flushed;
  }
  if (!failure.ok()) return failure;
  summary.stopped = stopped;
  LogRunWarnings(summary);
  return summary;
}

}  // namespace cepheus::engine
