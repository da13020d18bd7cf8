#include "engine/exec/runner.h"

#include <spdlog/spdlog.h>

#include <array>
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

// The counters every worker adds to after each batch (live): per pattern,
// the state cache's, and the output latency.
WorkerMetrics RegisterWorkerMetrics(metrics::Registry& reg, const CompiledPipeline& pipeline) {
  WorkerMetrics m;
  for (const auto& pattern : pipeline.patterns) {
    const std::string l = "pattern=\"" + pattern->name + "\"";
    WorkerMetrics::Pattern p;
    p.matches = &reg.GetCounter("cepheus_matches_total", "Matches emitted", l);
    p.timeouts = &reg.GetCounter("cepheus_timeouts_total", "Partial matches that timed out", l);
    p.runs_dropped =
        &reg.GetCounter("cepheus_runs_dropped_total", "Partial matches cut by max_runs_per_key", l);
    p.runs_cut_by_budget = &reg.GetCounter("cepheus_runs_cut_by_budget_total",
                                           "Partial matches cut to keep limits.max_live_runs", l);
    p.held_matches =
        &reg.GetCounter("cepheus_held_matches_total",
                        "Matches held by AFTER MATCH SKIP until earlier partial matches ended", l);
    p.skip_errors = &reg.GetCounter(
        "cepheus_skip_errors_total",
        "Matches AFTER MATCH SKIP TO ... STRICT could not skip for (sent to dead_letter)", l);
    p.live_runs = &reg.GetGauge("cepheus_live_runs", "Partial matches held in memory now", l);
    p.buffered_events =
        &reg.GetGauge("cepheus_buffered_events", "Events held in memory by partial matches now", l);
    m.patterns.push_back(p);
  }
  m.keys_evicted = &reg.GetCounter("cepheus_state_keys_evicted_total",
                                   "Keys written back and dropped from the cache");
  m.keys_loaded =
      &reg.GetCounter("cepheus_state_keys_loaded_total", "Keys read back from the state backend");
  m.cache_lookups = &reg.GetCounter("cepheus_state_cache_lookups_total",
                                    "Lookups of a key's partial matches for an event");
  m.cache_misses = &reg.GetCounter(
      "cepheus_state_cache_misses_total",
      "Lookups not found in memory that asked the state backend (hit ratio: 1 - misses/lookups)");
  m.output_latency = &reg.GetHistogram(
      "cepheus_output_latency_seconds",
      "From reading an event to writing the matches it completed (or the watermark released)",
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
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
  size_t Route(const ReadEvent& e, int64_t arrival_us, std::vector<EventBatch>* batches) {
    const StreamConfig& sc = pipeline_.config.streams[static_cast<size_t>(e.stream)];
    size_t n = 0;
    for (size_t k = 0; k < pipeline_.keyings.size(); ++k) {
      const Keying& keying = pipeline_.keyings[k];
      if (keying.stream != e.stream) continue;
      const uint64_t h = StableHash(KeyView(*e.row, keying.fields, sc.schema, &scratch_));
      const int w = owner_[static_cast<size_t>(state::KeyGroupOf(h, state::kDefaultKeyGroups))];
      (*batches)[static_cast<size_t>(w)].events.push_back(
          RoutedEvent{e.row, static_cast<uint32_t>(k), arrival_us});
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

// Forwards to an output and counts the records written to it
// (cepheus_output_records_total{output}).
class CountingSink final : public io::Sink {
 public:
  CountingSink(io::Sink* inner, metrics::Counter* records) : inner_(inner), records_(records) {}
  Status Write(const io::RecordBatch& batch) override {
    Status s = inner_->Write(batch);
    if (s.ok()) records_->Add(batch.size());
    return s;
  }
  Status Flush() override { return inner_->Flush(); }
  Status Finish() override { return inner_->Finish(); }
  Result<std::string> PrepareCommit(uint64_t id) override { return inner_->PrepareCommit(id); }
  Status Commit(const std::string& record) override { return inner_->Commit(record); }
  Status Recover(const std::string& record) override { return inner_->Recover(record); }
  void Interrupt() override { inner_->Interrupt(); }

 private:
  io::Sink* inner_;
  metrics::Counter* records_;
};

// The run's outputs by checkpoint slot name, each wrapped in a CountingSink
// (kept in `*owned`); absent outputs stay null.
std::vector<std::pair<const char*, io::Sink*>> CountedSlots(
    const CompiledPipeline& pipeline, const RunOutputs& outputs, metrics::Registry& reg,
    std::vector<std::unique_ptr<CountingSink>>* owned) {
  std::vector<std::pair<const char*, io::Sink*>> slots = {{"matches", outputs.matches},
                                                          {"late", outputs.late},
                                                          {"dead_letter", outputs.dead_letter},
                                                          {"watermarks", outputs.watermarks}};
  const auto& routed = pipeline.config.routed_outputs;
  for (size_t i = 0; i < routed.size() && i < outputs.routed.size(); ++i)
    slots.emplace_back(routed[i].name.c_str(), outputs.routed[i]);
  for (auto& [name, sink] : slots) {
    if (!sink) continue;
    owned->push_back(std::make_unique<CountingSink>(
        sink, &reg.GetCounter("cepheus_output_records_total", "Records written, per output",
                              "output=\"" + std::string(name) + "\"")));
    sink = owned->back().get();
  }
  return slots;
}

// Adds a finished worker's counters to `summary`.
void AddWorker(const Worker& w, RunSummary* summary) {
  summary->matcher.Add(w.stats().matcher());
  const auto& per = w.stats().patterns;
  if (summary->patterns.size() < per.size()) summary->patterns.resize(per.size());
  for (size_t i = 0; i < per.size(); ++i) summary->patterns[i].Add(per[i]);
  summary->keys_evicted += w.stats().keys_evicted;
  summary->keys_loaded += w.stats().keys_loaded;
  summary->peak_cached_keys = std::max(summary->peak_cached_keys, w.stats().peak_cached_keys);
  summary->peak_live_runs += w.stats().peak_live_runs;
  summary->matches = summary->matcher.matches;
  summary->timeouts = summary->matcher.timeouts;
  summary->runs_dropped = summary->matcher.runs_dropped;
}

// The end-of-run warnings (cut runs, skip errors, bad input, held matches).
void LogRunWarnings(const CompiledPipeline& pipeline, const RunOptions& options,
                    const RunSummary& summary) {
  if (const std::string held = summary.matcher.HeldSummary(); !held.empty())
    spdlog::info("{}", held);
  if (summary.matcher.skip_errors)
    spdlog::error(
        "{} matches could not apply AFTER MATCH SKIP ... STRICT; they went to the dead_letter "
        "output with the reason",
        summary.matcher.skip_errors);
  for (const std::string& w : BadInputWarnings(pipeline.config, summary.streams))
    spdlog::warn("{}", w);
  if (summary.matcher.runs_cut_by_budget)
    spdlog::warn(
        "{} partial matches were cut to keep limits.max_live_runs={} (oldest first; see "
        "cepheus_runs_cut_by_budget_total)",
        summary.matcher.runs_cut_by_budget, options.max_live_runs);
  for (size_t i = 0; i < summary.patterns.size() && i < pipeline.patterns.size(); ++i) {
    const uint64_t cut = summary.patterns[i].runs_dropped;
    if (!cut) continue;
    const std::string& name = pipeline.patterns[i]->name;
    const size_t cap = i < pipeline.pattern_run_cap.size() ? pipeline.pattern_run_cap[i]
                                                           : pipeline.config.max_runs_per_key;
    spdlog::warn(
        "pattern {}: {} partial matches were cut by its cap of {} per key ({}; see "
        "cepheus_runs_dropped_total{{pattern=\"{}\"}})",
        name, cut, cap,
        cap < pipeline.config.max_runs_per_key ? "limits." + name
                                               : std::string("limits.max_runs_per_key"),
        name);
  }
}

// One `run`: restore, read and route, checkpoints, and the end (a final
// checkpoint, or a stop). The runner's loop state lives here, one method
// per concern, instead of in lambdas of one long function.
class RunJob {
 public:
  RunJob(const CompiledPipeline& pipeline, const RunOutputs& outputs, const RunOptions& options,
         std::atomic<bool>& stop)
      : pipeline_(pipeline),
        outputs_(outputs),
        options_(options),
        stop_(stop),
        parallelism_(std::max(1, options.parallelism)),
        reg_(options.metrics ? *options.metrics : local_metrics_),
        clock_(options.clock ? *options.clock : system_clock_),
        router_(pipeline, parallelism_),
        batches_(static_cast<size_t>(parallelism_)),
        slots_(CountedSlots(pipeline, outputs, reg_, &counted_)),
        c_records_(reg_.GetCounter("cepheus_records_read_total", "Input records read")),
        c_dead_(reg_.GetCounter("cepheus_dead_letters_total", "Records that could not be decoded")),
        c_late_(reg_.GetCounter("cepheus_late_events_total", "Events at or behind the watermark")) {
  }

  Result<RunSummary> Run() {
    CEPHEUS_RETURN_IF_ERROR(OpenReader());
    MakeWorkers();
    if (options_.readiness) options_.readiness->SetReady(false, "restoring state");
    CEPHEUS_RETURN_IF_ERROR(RestoreState());
    for (auto& w : workers_) w->Start();
    if (options_.readiness) options_.readiness->SetReady(true);
    if (options_.checkpoint.enabled) MakeCoordinator();
    const Status failure = ReadLoop();
    return Finish(failure);
  }

 private:
  Status OpenReader() {
    ReaderOptions ropts;
    ropts.clock = options_.clock;
    ropts.lines_per_turn = std::max<size_t>(1, options_.lines_per_turn);
    if (!options_.sources)
      return Status::InvalidArgument("no source provider (RunOptions::sources)");
    auto sources =
        OpenStreamSources(*options_.sources, pipeline_.config, {}, options_.read_buffer_bytes);
    if (!sources.ok()) return sources.status();
    reader_ = std::make_unique<EventReader>(pipeline_, ropts, std::move(sources.value()));
    // Every input is opened first: a missing file fails the run before it starts.
    return reader_->Open();
  }

  void MakeWorkers() {
    // Live counters: the workers add to them after every batch.
    worker_metrics_ = RegisterWorkerMetrics(reg_, pipeline_);
    for (const state::KeyGroupRange& groups : router_.ranges()) {
      // Each worker runs the CEP operator over its groups; a worker's share of
      // limits.max_live_runs bounds the partial matches it holds.
      workers_.push_back(std::make_unique<Worker>(pipeline_, groups, [&](WorkerStats* stats) {
        auto cep = std::make_unique<CepOperator>(pipeline_, groups, stats, Slot("matches"),
                                                 Slot("dead_letter"));
        std::vector<io::Sink*> routed;
        for (size_t i = 4; i < slots_.size(); ++i) routed.push_back(slots_[i].second);
        cep->RouteOutputs(routed);
        cep->SetTrace(options_.trace);
        if (options_.max_live_runs)
          cep->SetRunBudget(
              std::max<size_t>(1, options_.max_live_runs / static_cast<size_t>(parallelism_)));
        std::vector<std::unique_ptr<KeyedOperator>> ops;
        ops.push_back(std::move(cep));
        return ops;
      }));
      workers_.back()->SetMetrics(&worker_metrics_);
      workers_.back()->SetClock(&clock_);
    }
  }

  // The (counted) output of checkpoint slot `name` (null: none).
  io::Sink* Slot(std::string_view name) const {
    for (const auto& [n, sink] : slots_)
      if (name == n) return sink;
    return nullptr;
  }

  // Durable state: restore the latest complete checkpoint, or start fresh.
  Status RestoreState() {
    const CheckpointOptions& ck = options_.checkpoint;
    if (!ck.enabled) return Status::Ok();
    store_ = std::make_unique<CheckpointStore>(ck.state_dir);
    if (ck.restart) CEPHEUS_RETURN_IF_ERROR(store_->DeleteAll());
    auto opened = OpenLatestState(*store_, ck);
    if (!opened.ok()) return opened.status();
    backend_ = std::move(opened->backend);
    const CheckpointMetadata* meta = opened->found ? &opened->found->metadata : nullptr;
    CEPHEUS_RETURN_IF_ERROR(RecoverSinks(meta, {slots_.begin(), slots_.end()}));
    WorkerStateOptions wso;
    wso.backend = backend_.get();
    wso.cache_keys = ck.cache_keys;
    for (auto& w : workers_) w->AttachState(wso);
    if (meta) {
      CEPHEUS_RETURN_IF_ERROR(store_->DeleteNewerThan(meta->id));
      auto mapping = MapCheckpoint(pipeline_, *meta, backend_.get());
      if (!mapping.ok()) return mapping.status();
      CEPHEUS_RETURN_IF_ERROR(reader_->RestorePosition(meta->reader_state));
      for (auto& w : workers_) CEPHEUS_RETURN_IF_ERROR(w->Restore(mapping.value()));
      sent_wm_ = meta->watermark;
      summary_.restored_from = meta->id;
      spdlog::info(
          "restored checkpoint {} (written by a run with parallelism {}, now {}): watermark {}",
          meta->id, meta->parallelism, parallelism_,
          meta->watermark == Watermark::Min() ? std::string("none")
                                              : FormatRfc3339(meta->watermark.time()));
    } else {
      CEPHEUS_RETURN_IF_ERROR(store_->DeleteAll());
    }
    next_checkpoint_ = store_->NextId();
    return Status::Ok();
  }

  // Checkpoints (engine/checkpoint/checkpoint_coordinator.h): the runner lends
  // the coordinator its barrier injection, its side outputs and its position.
  void MakeCoordinator() {
    const CheckpointOptions& ck = options_.checkpoint;
    CheckpointCoordinator::Wiring wiring;
    wiring.store = store_.get();
    wiring.backend = backend_.get();
    wiring.sinks.assign(slots_.begin(), slots_.end());
    wiring.parallelism = parallelism_;
    wiring.clock = &clock_;
    wiring.hooks = options_.checkpoint_hooks;
    wiring.retain = ck.retain;
    wiring.copy_files = ck.copy_files;
    wiring.interval = ck.interval;
    wiring.metrics = &reg_;
    wiring.readiness = options_.readiness;
    wiring.describe = [this] { return Describe(); };
    wiring.inject_barrier = [this](const std::shared_ptr<SnapshotSync>& barrier, Watermark wm) {
      for (auto& b : batches_) b.barrier = barrier;
      Send(wm);
    };
    wiring.flush_side_outputs = [this] { return FlushSideOutputs(); };
    wiring.on_complete = [this](uint64_t id) { return reader_->OnCheckpointComplete(id); };
    coordinator_ = std::make_unique<CheckpointCoordinator>(std::move(wiring), next_checkpoint_);
  }

  // What a checkpoint records beside the state: the reader's position and
  // what the state was made by (so that a restore can tell what still fits).
  CheckpointMetadata Describe() const {
    CheckpointMetadata meta;
    meta.reader_state = reader_->SavePosition();
    meta.state_backend = state::BackendKindName(options_.checkpoint.backend);
    meta.state_location = "state";
    meta.key_groups = "0-" + std::to_string(state::kDefaultKeyGroups - 1);
    for (size_t i = 0; i < pipeline_.patterns.size(); ++i)
      meta.patterns.emplace_back(pipeline_.patterns[i]->name,
                                 PatternFingerprint(pipeline_, static_cast<int>(i)));
    for (const Keying& k : pipeline_.keyings) meta.keyings.push_back(KeyingSignature(pipeline_, k));
    return meta;
  }

  // Reads, routes and sends batches until the input ends, Stop() or an error.
  Status ReadLoop() {
    std::vector<ReadEvent> events;
    while (!stop_.load()) {
      events.clear();
      auto turn = reader_->ReadTurn(&events, &dead_out_, &late_out_);
      if (!turn.ok()) return turn.status();
      const int64_t arrival_us = events.empty() ? 0 : SteadyMicros();
      for (const ReadEvent& e : events) pending_events_ += router_.Route(e, arrival_us, &batches_);
      PublishCounters();
      PublishWatermark();
      PublishSlowGauges();
      MaybeLogProgress();
      if (*turn == EventReader::Turn::kEnd) {
        if (reader_->stopped_early()) stop_.store(true);  // caught up, not the end of the data
        return Status::Ok();
      }
      if (options_.stop_after_records &&
          reader_->counts().records_read >= options_.stop_after_records)
        stop_.store(true);
      const bool progress = *turn == EventReader::Turn::kProgress;
      // The end of every input (a Max watermark) is sent only after the loop,
      // with the final checkpoint: workers end their run when they see it.
      Watermark wm = reader_->UpdateWatermark();
      if (wm.is_max()) wm = sent_wm_;
      if (pending_events_ >= kBatchEvents ||
          (wm > sent_wm_ && (pending_events_ > 0 || !progress)) ||
          (!progress && pending_events_ > 0)) {
        Send(wm);
      }
      CEPHEUS_RETURN_IF_ERROR(FlushSideOutputs());
      if (coordinator_) {
        Status cs = coordinator_->Finish(/*wait=*/false);
        if (cs.ok() && coordinator_->Due()) cs = coordinator_->Begin(wm, false);
        if (!cs.ok()) return cs.WithPrefix("checkpoint failed: ");
      }
      if (!progress) {
        // Only unbounded inputs remain and none had data: wait for data (or
        // a little while), then look again (the watermark may move with the
        // wall clock meanwhile).
        reader_->WaitForInput(std::min(options_.poll_ms, 20));
      }
    }
    return Status::Ok();
  }

  // The end: a final checkpoint (or the Max watermark without checkpoints),
  // or a stop; then the workers end and the summary is made.
  Result<RunSummary> Finish(Status failure) {
    PublishCounters();
    Status fs = FlushSideOutputs();
    if (failure.ok() && !fs.ok()) failure = fs;
    const bool stopped = stop_.load() || !failure.ok();
    if (coordinator_ && failure.ok()) {
      Status cs = coordinator_->Finish(/*wait=*/true);
      if (!cs.ok()) failure = cs.WithPrefix("checkpoint failed: ");
    }
    if (coordinator_ && failure.ok()) {
      // A stop ends at a checkpoint the next run continues from; the end of
      // the input at a final one that commits the last outputs.
      Status cs = coordinator_->TakeNow(stopped ? sent_wm_ : Watermark::Max(), !stopped);
      if (!cs.ok()) failure = cs.WithPrefix("final checkpoint failed: ");
    } else if (!stopped) {
      Send(Watermark::Max());
      Status ws = FlushSideOutputs();
      if (failure.ok() && !ws.ok()) failure = ws;
    }
    if (stopped || !failure.ok()) {
      for (auto& w : workers_) {
        EventBatch b;
        b.stop = true;
        w->Push(std::move(b));
      }
    }
    for (auto& w : workers_) w->Join();
    last_slow_ms_ = -1;  // the state as the run leaves it
    PublishSlowGauges();
    if (coordinator_) summary_.checkpoints = coordinator_->completed();
    summary_.reader = reader_->counts();
    summary_.streams = reader_->stream_counts();
    for (auto& w : workers_) {
      AddWorker(*w, &summary_);
      if (failure.ok() && !w->status().ok()) failure = w->status();
    }
    reg_.GetMillisGauge("cepheus_held_match_max_wait_seconds",
                        "Longest event-time wait of a held match after its last event")
        .Set(summary_.matcher.held_wait_ms_max);
    // A failed flush (full disk, closed pipe) fails the run: output was lost.
    for (const auto& [name, o] : slots_) {
      if (!o) continue;
      Status flushed = o->Flush();
      if (failure.ok() && !flushed.ok()) failure = flushed;
    }
    if (!failure.ok()) return failure;
    summary_.stopped = stopped;
    LogRunWarnings(pipeline_, options_, summary_);
    return std::move(summary_);
  }

  // The watermark sent to the workers and its lag behind the wall clock
  // (gauges, per turn), and the periodic progress line.
  void PublishWatermark() {
    const int64_t wm = sent_wm_.time().millis();
    if (sent_wm_ == Watermark::Min() || sent_wm_.is_max()) return;
    g_watermark_.Set(wm);
    g_watermark_lag_.Set(clock_.NowMillis() - wm);
  }
  void MaybeLogProgress() {
    const int64_t every = options_.progress_interval.millis();
    if (every <= 0) return;
    const int64_t now = clock_.MonotonicMillis();
    if (last_progress_ms_ < 0) {
      last_progress_ms_ = now;
      return;
    }
    if (now - last_progress_ms_ < every) return;
    const uint64_t records = reader_->counts().records_read;
    const double rate = static_cast<double>(records - last_progress_records_) * 1000.0 /
                        static_cast<double>(now - last_progress_ms_);
    std::string wm = "none yet";
    if (sent_wm_ != Watermark::Min() && !sent_wm_.is_max())
      wm = FormatRfc3339(sent_wm_.time()) + " (" +
           std::to_string((clock_.NowMillis() - sent_wm_.time().millis()) / 1000) +
           " s behind the clock)";
    spdlog::info(
        "progress: {} records ({:.0f}/s), watermark {}, {} live partial matches, last "
        "checkpoint {}",
        records, rate, wm, reg_.GaugeTotal("cepheus_live_runs"),
        coordinator_ ? std::to_string(g_last_checkpoint_.value()) : std::string("off"));
    last_progress_ms_ = now;
    last_progress_records_ = records;
  }

  // Once a second: the state's size, each stream's watermark and lag behind
  // the wall clock, and each Kafka partition's consumer lag.
  void PublishSlowGauges() {
    const int64_t now = clock_.MonotonicMillis();
    if (last_slow_ms_ >= 0 && now - last_slow_ms_ < 1000) return;
    last_slow_ms_ = now;
    if (backend_) g_state_bytes_.Set(static_cast<int64_t>(backend_->ApproximateBytes()));
    const int64_t wall = clock_.NowMillis();
    const std::vector<Watermark> wms = reader_->StreamWatermarks(wall);
    for (size_t i = 0; i < wms.size() && i < pipeline_.config.streams.size(); ++i) {
      if (wms[i] == Watermark::Min() || wms[i].is_max()) continue;
      const std::string l = "stream=\"" + pipeline_.config.streams[i].name + "\"";
      const int64_t t = wms[i].time().millis();
      reg_.GetMillisGauge("cepheus_stream_watermark_seconds",
                          "Event time of a stream's watermark (epoch s)", l)
          .Set(t);
      reg_.GetMillisGauge("cepheus_stream_watermark_lag_seconds",
                          "How far a stream's watermark is behind the wall clock", l)
          .Set(wall - t);
    }
    const auto lags = reader_->SourceLags();
    for (size_t i = 0; i < lags.size() && i < pipeline_.config.streams.size(); ++i)
      for (const io::PartitionLag& pl : lags[i])
        reg_.GetGauge("cepheus_kafka_consumer_lag",
                      "Messages of a partition not read yet (high watermark minus position)",
                      "stream=\"" + pipeline_.config.streams[i].name + "\",topic=\"" + pl.topic +
                          "\",partition=\"" + std::to_string(pl.partition) + "\"")
            .Set(pl.messages);
  }

  // Reader counters are published once per turn, not per record.
  void PublishCounters() {
    const ReaderCounts& c = reader_->counts();
    c_records_.Add(c.records_read - published_.records_read);
    c_dead_.Add(c.dead_letters - published_.dead_letters);
    c_late_.Add(c.late - published_.late);
    published_ = c;
    const std::vector<StreamCounts>& sc = reader_->stream_counts();
    if (stream_counters_.empty()) {
      for (const StreamConfig& st : pipeline_.config.streams) {
        const std::string label = "stream=\"" + st.name + "\"";
        stream_counters_.push_back(
            {&reg_.GetCounter("cepheus_stream_records_total", "Input records read, per stream",
                              label),
             &reg_.GetCounter("cepheus_stream_dead_letters_total",
                              "Records that could not be decoded, per stream", label),
             &reg_.GetCounter("cepheus_stream_late_events_total",
                              "Events at or behind the watermark, per stream", label)});
      }
      stream_published_.resize(stream_counters_.size());
    }
    for (size_t i = 0; i < sc.size() && i < stream_counters_.size(); ++i) {
      StreamCounts& was = stream_published_[i];
      stream_counters_[i].records->Add(sc[i].records - was.records);
      stream_counters_[i].dead->Add(sc[i].dead_letters - was.dead_letters);
      stream_counters_[i].late->Add(sc[i].late - was.late);
      was = sc[i];
    }
  }

  Status FlushSideOutputs() {
    for (auto [out, records] :
         {std::pair{Slot("dead_letter"), &dead_out_}, std::pair{Slot("late"), &late_out_},
          std::pair{Slot("watermarks"), &wm_out_}}) {
      if (records->empty()) continue;
      CEPHEUS_RETURN_IF_ERROR(out->Write(*records));
      records->clear();
    }
    return Status::Ok();
  }

  // Hands every worker its batch with watermark `wm`. The watermarks output
  // gets one record each time the watermark sent to the workers advances,
  // written before the workers see it (so before any result it releases),
  // and one at the end of the input.
  void Send(Watermark wm) {
    if (outputs_.watermarks && wm > sent_wm_) RenderWatermark(wm, &wm_out_);
    for (int w = 0; w < parallelism_; ++w) {
      EventBatch& b = batches_[static_cast<size_t>(w)];
      b.watermark = wm;
      b.sent_us = SteadyMicros();
      workers_[static_cast<size_t>(w)]->Push(std::move(b));
      b = EventBatch{};
    }
    pending_events_ = 0;
    sent_wm_ = wm;
  }

  const CompiledPipeline& pipeline_;
  const RunOutputs& outputs_;
  const RunOptions& options_;
  std::atomic<bool>& stop_;  // PipelineRunner::Stop()
  const int parallelism_;
  metrics::Registry local_metrics_;
  metrics::Registry& reg_;
  SystemClock system_clock_;
  const Clock& clock_;
  RunSummary summary_;
  std::unique_ptr<EventReader> reader_;
  Router router_;
  WorkerMetrics worker_metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<EventBatch> batches_;  // per worker, being filled
  size_t pending_events_ = 0;
  Watermark sent_wm_ = Watermark::Min();
  std::unique_ptr<state::StateBackend> backend_;
  std::unique_ptr<CheckpointStore> store_;
  std::vector<std::unique_ptr<CountingSink>> counted_;  // the slots' sinks, counted
  // The outputs by checkpoint slot name (matches, late, dead_letter,
  // watermarks, then the routed outputs), each wrapped to count its records.
  const std::vector<std::pair<const char*, io::Sink*>> slots_;
  uint64_t next_checkpoint_ = 0;
  std::unique_ptr<CheckpointCoordinator> coordinator_;
  metrics::Counter &c_records_, &c_dead_, &c_late_;
  ReaderCounts published_;
  metrics::Gauge& g_watermark_ = reg_.GetMillisGauge(
      "cepheus_watermark_seconds", "Event time of the watermark sent to the workers (epoch s)");
  metrics::Gauge& g_watermark_lag_ = reg_.GetMillisGauge(
      "cepheus_watermark_lag_seconds", "How far the watermark is behind the wall clock");
  metrics::Gauge& g_last_checkpoint_ =
      reg_.GetGauge("cepheus_last_checkpoint_id", "Id of the last completed checkpoint");
  metrics::Gauge& g_state_bytes_ =
      reg_.GetGauge("cepheus_state_bytes", "Approximate size of the keyed state (backend)");
  int64_t last_slow_ms_ = -1;
  int64_t last_progress_ms_ = -1;
  uint64_t last_progress_records_ = 0;
  struct StreamCounters {
    metrics::Counter *records, *dead, *late;
  };
  std::vector<StreamCounters> stream_counters_;  // per stream, like the pipeline's
  std::vector<StreamCounts> stream_published_;
  io::RecordBatch dead_out_, late_out_, wm_out_;
};

}  // namespace

PipelineRunner::PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs,
                               RunOptions options)
    : pipeline_(pipeline), outputs_(outputs), options_(options) {}

Result<RunSummary> PipelineRunner::Run() {
  return RunJob(pipeline_, outputs_, options_, stop_).Run();
}

}  // namespace cepheus::engine
